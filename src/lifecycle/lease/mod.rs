//! Lease decisions: the next step of a lease, the account it claims, and (in [`plan`]) the
//! whole plan a reconcile carries out.

use jiff::Timestamp;

use super::admission::{Limit, Rejection, Terms, admit, principal_budget_rejection};
use super::{LeasePolicy, budget, usage};
use crate::resources::{Lease, LeasePhase, LeaseReason};

mod plan;

pub use plan::{
    AccountWrite, Candidates, CredentialsRequest, LeaseAction, LeaseFacts, LeasePlan, Requeue,
    SecretWrite, plan,
};

/// Ready-condition reasons of an Active lease, about its credentials.
pub mod reason {
    pub const CREDENTIALS_ISSUED: &str = "CredentialsIssued";
    pub const SECRET_CONFLICT: &str = "SecretNameConflict";
    pub const CREDENTIALS_FAILED: &str = "CredentialsFailed";
    /// AWS could not be reached to issue them; retried within seconds.
    pub const CREDENTIALS_PENDING: &str = "CredentialsPending";
}

/// Annotation by which the REST API asks for an Active or Pending lease to be ended (DCE's
/// `DELETE /leases`): the lease then ends as Destroyed and stays, Inactive, as history.
pub const END_REQUESTED_ANNOTATION: &str = "dce.dev/end-requested";

/// Whether someone asked for `lease` to be ended without deleting it.
pub fn end_requested(lease: &Lease) -> bool {
    lease
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|annotations| annotations.contains_key(END_REQUESTED_ANNOTATION))
}

/// Where the lease stands with respect to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// No account records this lease as its holder.
    None,
    /// An account records this lease as its holder.
    Held,
    /// The lease's status names an account that is gone or now held by another lease.
    Lost,
}

/// The accounts that record a lease as their holder, sorted out: the one it holds and the
/// leaked claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims<A> {
    pub holding: Holding,
    pub held: Option<A>,
    pub strays: Vec<A>,
}

/// Sorts out the accounts (`claims`, by name) that record `lease` as their holder.
///
/// The lease's stored status decides: once it names an account it never names another, so the
/// account it names is the one it holds, and any other claim is a leak. A lease whose status
/// names none yet (a claim written, then a crash or a lost race before its status) adopts the
/// first claim; the status write that names it commits the adoption, and only after it are the
/// other claims released. An ended lease that names none adopts nothing.
pub fn sort_claims<A>(lease: &Lease, claims: Vec<(String, A)>) -> Claims<A> {
    let named = lease
        .status
        .as_ref()
        .and_then(|s| s.account_name.as_deref());
    let ended = lease.phase() == Some(LeasePhase::Inactive);
    let mut held = None;
    let mut strays = Vec::new();
    for (name, account) in claims {
        let holds = match named {
            Some(named) => name == named,
            None => !ended && held.is_none(),
        };
        if holds && held.is_none() {
            held = Some(account);
        } else {
            strays.push(account);
        }
    }
    let holding = match (&held, named) {
        (Some(_), _) => Holding::Held,
        (None, Some(_)) if !ended => Holding::Lost,
        (None, _) => Holding::None,
    };
    Claims {
        holding,
        held,
        strays,
    }
}

/// Everything the lease decision looks at besides the lease itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaseObservation {
    pub now: Timestamp,
    pub created: Timestamp,
    pub deleting: bool,
    pub holding: Holding,
    /// Another unfinished lease of the same principal was created earlier.
    pub principal_has_earlier_lease: bool,
    /// What the principal has spent in the current budget period, over all their leases.
    pub principal_period_spend: f64,
}

/// The next step for a lease.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseStep {
    /// Refuse it: Inactive/Invalid with the message.
    Reject(Rejection),
    /// Try to take an account (the controller chooses with [`choose_account`]); Pending if none.
    Claim(Terms),
    /// Keep it Active on these terms: credentials Secret in place, wake up at expiry.
    Run(Terms),
    /// End it: release the account, delete the Secret, Inactive with the reason. Idempotent.
    End(LeaseReason),
    /// End it as [`LeaseStep::End`] with reason Expired, recording `at` (its expiry) as when
    /// it ended, however late the operator saw it.
    Expire { at: Timestamp },
    /// Ended and deleted: remove the finalizer.
    Finalize,
    /// Ended: keep as history, then delete it at `at`.
    Retire { at: Timestamp },
}

/// Decides the next step for `lease`: the first half of [`plan`].
pub fn next_step(lease: &Lease, obs: &LeaseObservation, policy: &LeasePolicy) -> LeaseStep {
    let status = lease.status.as_ref();
    let phase = lease.phase();
    if phase == Some(LeasePhase::Inactive) {
        if obs.holding == Holding::Held {
            // A release was interrupted: finish it.
            return LeaseStep::End(lease.reason().unwrap_or(LeaseReason::Destroyed));
        }
        if obs.deleting {
            return LeaseStep::Finalize;
        }
        let ended = status
            .and_then(|s| s.lease_status_modified_on.as_ref())
            .map(|t| t.0)
            .unwrap_or(obs.created);
        let history_until = ended + policy.history_retention;
        let usage = status.and_then(|s| s.usage.as_ref());
        return LeaseStep::Retire {
            at: usage::usage_kept_until(usage, policy.usage_retention)
                .map_or(history_until, |until| until.max(history_until)),
        };
    }
    if obs.deleting || end_requested(lease) {
        return LeaseStep::End(LeaseReason::Destroyed);
    }
    match obs.holding {
        Holding::Lost => return LeaseStep::End(LeaseReason::AccountOrphaned),
        Holding::Held => {
            // Terms were fixed when the account was claimed; a claim whose status write was
            // lost (or is not yet in the cache) is re-admitted to recover them.
            let recorded = status.and_then(|s| Some((s.expires_on.as_ref()?.0, s.budget_amount?)));
            let terms = match recorded {
                Some((expires_on, budget_amount)) => Terms {
                    expires_on,
                    budget_amount,
                },
                None => match admit(lease, obs.created, policy) {
                    Ok(terms) => terms,
                    Err(_) => return LeaseStep::End(LeaseReason::Invalid),
                },
            };
            if obs.now >= terms.expires_on {
                return LeaseStep::Expire {
                    at: terms.expires_on,
                };
            }
            let spend = usage::lease_spend(status.and_then(|s| s.usage.as_ref()));
            if let Some(reason) = budget::over_budget(
                terms.budget_amount,
                spend,
                obs.principal_period_spend,
                policy,
            ) {
                return LeaseStep::End(reason);
            }
            return LeaseStep::Run(terms);
        }
        Holding::None => {}
    }
    if phase == Some(LeasePhase::Active) {
        // Active yet holding nothing: the account was taken from it.
        return LeaseStep::End(LeaseReason::AccountOrphaned);
    }
    let terms = match admit(lease, obs.created, policy) {
        Ok(terms) => terms,
        Err(rejection) => return LeaseStep::Reject(rejection),
    };
    if obs.now >= terms.expires_on {
        return LeaseStep::Expire {
            at: terms.expires_on,
        };
    }
    if let Some(rejection) =
        principal_budget_rejection(&lease.spec.principal_id, obs.principal_period_spend, policy)
    {
        return LeaseStep::Reject(rejection);
    }
    if policy.one_active_lease_per_principal && obs.principal_has_earlier_lease {
        return LeaseStep::Reject(Rejection {
            limit: Limit::OneLeasePerPrincipal,
            message: format!(
                "principal {:?} already has an active lease",
                lease.spec.principal_id
            ),
        });
    }
    LeaseStep::Claim(terms)
}

/// A lease's place in the first-come-first-served queue: creation time (to the second), then
/// the order the operator first saw leases in, then uid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueKey {
    pub created: Timestamp,
    pub arrival: u64,
    pub uid: String,
}

/// An account free to be claimed (Ready, no holder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeAccount {
    /// Kubernetes name.
    pub name: String,
    /// REST id (`spec.id`).
    pub id: String,
}

/// Picks the account a lease should claim. A lease asking for a specific account gets it if it
/// is free. Otherwise leases are served in queue order: the lease at position `n` among the
/// waiting leases (`queue`, any order, including this one) takes the `n`-th free account by name,
/// so concurrent reconciles of different leases aim at different accounts and the oldest
/// waiting lease is served first.
pub fn choose_account<'a>(
    lease: &QueueKey,
    requested: Option<&str>,
    queue: &[QueueKey],
    free: &'a [FreeAccount],
) -> Option<&'a FreeAccount> {
    let rank = queue.iter().filter(|other| *other < lease).count();
    account_at_rank(requested, rank, free)
}

/// The account a lease would take now with no lease ahead of it: the one it asks for if that is
/// free, else the first free account by name.
pub fn first_choice<'a>(
    requested: Option<&str>,
    free: &'a [FreeAccount],
) -> Option<&'a FreeAccount> {
    account_at_rank(requested, 0, free)
}

fn account_at_rank<'a>(
    requested: Option<&str>,
    rank: usize,
    free: &'a [FreeAccount],
) -> Option<&'a FreeAccount> {
    if let Some(id) = requested {
        return free.iter().find(|a| a.id == id);
    }
    let mut sorted_free: Vec<&FreeAccount> = free.iter().collect();
    sorted_free.sort_by(|a, b| a.name.cmp(&b.name));
    sorted_free.get(rank).copied()
}

#[cfg(test)]
mod tests;
