//! Lease decisions: admission against the limits, account choice, and the next step.

use jiff::{SignedDuration, Timestamp};

use super::{LeasePolicy, usage};
use crate::resources::{Lease, LeasePhase, LeaseReason, check_free_form};

/// What a lease was granted at admission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Terms {
    pub expires_on: Timestamp,
    pub budget_amount: f64,
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

/// Why a lease was refused. The message starts with the offending field, as DCE's do, and is
/// shown in the lease status, its event and (see [`Rejection::api_message`]) the REST API.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub limit: Limit,
    pub message: String,
}

impl Rejection {
    /// The message as DCE's API words a refused lease.
    pub fn api_message(&self) -> String {
        validation_error_message(&self.message)
    }
}

/// DCE's wording of a lease refused for `detail` (a status message, which starts with the field).
pub fn validation_error_message(detail: &str) -> String {
    format!("lease validation error: {detail}.")
}

/// DCE's wording of a principal that already holds a lease (of `account`, empty when none yet).
pub fn already_leased_message(principal: &str, account: &str) -> String {
    format!("lease \"with principal {principal} and account {account}\" already exists")
}

/// Which limit a refused lease broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Its own terms: expiry, period, budget.
    Terms,
    /// The principal already has an unfinished lease.
    OneLeasePerPrincipal,
    /// The principal has spent more than the period budget.
    PrincipalBudget,
}

fn reject(message: String) -> Result<Terms, Rejection> {
    Err(Rejection {
        limit: Limit::Terms,
        message,
    })
}

/// Parses `duration` (`90m`, `8h`, `1d12h`, `3600s`).
pub fn parse_duration(text: &str) -> Option<SignedDuration> {
    let mut total: i64 = 0;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let value: i64 = digits.parse().ok()?;
        digits.clear();
        total = total.checked_add(value.checked_mul(unit)?)?;
    }
    (digits.is_empty() && !text.is_empty()).then(|| SignedDuration::from_secs(total))
}

/// Checks a lease against the limits and works out its terms. `created` is the lease's
/// creation time; the period is measured from it.
pub fn admit(lease: &Lease, created: Timestamp, policy: &LeasePolicy) -> Result<Terms, Rejection> {
    let spec = &lease.spec;
    if let Some(Err(message)) = spec
        .metadata
        .as_ref()
        .map(|m| check_free_form("metadata", m))
    {
        return reject(message);
    }
    let expires_on = match (&spec.expires_on, &spec.duration) {
        (Some(_), Some(_)) => {
            return reject("expiresOn: set at most one of expiresOn and duration".to_string());
        }
        (Some(at), None) => at.0,
        (None, Some(text)) => {
            match parse_duration(text).and_then(|d| created.checked_add(d).ok()) {
                Some(at) => at,
                None => {
                    return reject(format!(
                        "duration: {text:?} is not a duration such as 90m, 8h or 7d"
                    ));
                }
            }
        }
        (None, None) => created + policy.default_lease_period,
    };
    if expires_on <= created {
        return reject(format!(
            "expiresOn: Requested lease has a desired expiry date less than today: {}",
            expires_on.as_second()
        ));
    }
    if expires_on.duration_since(created) > policy.max_lease_period {
        return reject(format!(
            "expiresOn: Requested lease has a budget expires on of {}, which is greater than max lease period of {}",
            expires_on.as_second(),
            (created + policy.max_lease_period).as_second()
        ));
    }
    let budget_amount = spec.budget_amount.unwrap_or(policy.max_budget);
    if !budget_amount.is_finite() || budget_amount < 0.0 {
        return reject(format!(
            "budgetAmount: {budget_amount} must be a non-negative number"
        ));
    }
    if budget_amount > policy.max_budget {
        return reject(format!(
            "budgetAmount: Requested lease has a budget amount of {budget_amount:.6}, which is greater than max lease budget amount of {:.6}",
            policy.max_budget
        ));
    }
    Ok(Terms {
        expires_on,
        budget_amount,
    })
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

/// Decides the next step for `lease`.
pub fn decide(lease: &Lease, obs: &LeaseObservation, policy: &LeasePolicy) -> LeaseStep {
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
            if let Some(reason) =
                usage::over_budget(&terms, spend, obs.principal_period_spend, policy)
            {
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
    if let Some(rejection) = usage::principal_budget_rejection(
        &lease.spec.principal_id,
        obs.principal_period_spend,
        policy,
    ) {
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
    if let Some(id) = requested {
        return free.iter().find(|a| a.id == id);
    }
    let mut sorted_free: Vec<&FreeAccount> = free.iter().collect();
    sorted_free.sort_by(|a, b| a.name.cmp(&b.name));
    let rank = queue.iter().filter(|other| *other < lease).count();
    sorted_free.get(rank).copied()
}

#[cfg(test)]
mod tests;
