//! The plan of one lease reconcile: from the lease, what the controller observed and the policy,
//! the ordered actions that carry the lease to its next state and when to look again.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::{
    FreeAccount, Holding, LeaseObservation, LeaseStep, QueueKey, choose_account, next_step,
};
use crate::lifecycle::account::reason as account_reason;
use crate::lifecycle::admission::{Limit, Terms};
use crate::lifecycle::credentials::{
    RefreshCause, SecretObservation, secret_action, with_refresh_request,
};
use crate::lifecycle::sync::CREDENTIALS_REFRESH_ANNOTATION;
use crate::lifecycle::{LeasePolicy, Notice, conditions};
use crate::resources::{Account, AccountStatus, Lease, LeasePhase, LeaseReason, LeaseStatus};

/// Everything a lease reconcile observed, gathered before anything is decided.
#[derive(Debug, Clone)]
pub struct LeaseFacts {
    /// What the next step depends on.
    pub step: LeaseObservation,
    /// The account this lease holds (present exactly when `step.holding` is [`Holding::Held`]),
    /// as read: the one its status names, or, while it names none, the account it adopts.
    pub held: Option<Arc<Account>>,
    /// Accounts that record this lease as their holder but are not the one it holds: leaked
    /// claims, returned to the pool through a reset (see [`super::sort_claims`]).
    pub strays: Vec<Arc<Account>>,
    /// The Secret holding the lease's credentials name, looked at when the lease holds an
    /// account ([`SecretObservation::Absent`] otherwise).
    pub secret: SecretObservation,
    /// The resourceVersion of that Secret when it is the lease's own: it guards the overwrite.
    pub secret_version: Option<String>,
    pub secret_name: String,
    /// The queue and the free accounts, gathered when the lease waits for an account.
    pub candidates: Option<Candidates>,
}

/// Where a waiting lease stands in the queue, and the accounts it may take.
#[derive(Debug, Clone)]
pub struct Candidates {
    /// This lease's place.
    pub me: QueueKey,
    /// Every waiting lease, this one included, in any order.
    pub queue: Vec<QueueKey>,
    /// Accounts Ready and held by nobody, as the cache showed them.
    pub free: Vec<Arc<Account>>,
}

/// What one reconcile does, in order, then when it looks again.
#[derive(Debug, Clone)]
pub struct LeasePlan {
    pub actions: Vec<LeaseAction>,
    pub then: Requeue,
}

/// When to reconcile again, besides whenever something watched changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Requeue {
    At(Timestamp),
    After(Duration),
    OnChange,
}

/// One step of a plan. Each is carried out by one small function of the lease controller.
#[derive(Debug, Clone)]
pub enum LeaseAction {
    /// Take the account: its status written with the lease as holder, guarded by the
    /// resourceVersion of the copy seen free, so of two leases racing for it one loses. A lost
    /// race ends the plan there; the lease decides again shortly. The claim counts only once the
    /// lease's status names the account (the next [`LeaseAction::WriteStatus`], guarded by the
    /// lease's resourceVersion): if that write finds the lease changed, the claim is undone.
    ClaimAccount(AccountWrite),
    /// Assume the account's principal role as the lease's principal. The outcome goes into the
    /// status written next (the credentials' expiry, or the Ready condition saying why there are
    /// none) and into the Secret written after it.
    ObtainCredentials(CredentialsRequest),
    /// Write the credentials just obtained into the lease's Secret. Always after the status
    /// write that names their account, so a Secret never holds an account the lease does not.
    WriteSecret(SecretWrite),
    /// Read the lease's cost once more before its account is released (best effort); the
    /// reading goes into the status written next.
    TakeFinalReading(Arc<Account>),
    /// Write the lease's status (nothing is sent when it is what is stored).
    WriteStatus(Box<LeaseStatus>),
    /// Give the account back, to be reset; guarded like the claim.
    ReleaseAccount(AccountWrite),
    /// Delete the credentials Secret, if it is the lease's own.
    DeleteSecret,
    /// Publish an Event on the lease.
    Publish(Notice),
    /// Count a lease refused or ended for its spend.
    CountBudgetAction {
        action: &'static str,
        reason: LeaseReason,
    },
    /// Delete the lease: its history retention is over.
    DeleteLease,
    /// Return an account that records this lease as its holder, though the lease holds another
    /// (or none), to the pool through a reset: someone may have used it. The notice goes on the
    /// Account.
    ReleaseStray(AccountWrite, Notice),
}

impl LeaseAction {
    /// The action's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ClaimAccount(_) => "ClaimAccount",
            Self::ObtainCredentials(_) => "ObtainCredentials",
            Self::WriteSecret(_) => "WriteSecret",
            Self::TakeFinalReading(_) => "TakeFinalReading",
            Self::WriteStatus(_) => "WriteStatus",
            Self::ReleaseAccount(_) => "ReleaseAccount",
            Self::DeleteSecret => "DeleteSecret",
            Self::Publish(_) => "Publish",
            Self::CountBudgetAction { .. } => "CountBudgetAction",
            Self::DeleteLease => "DeleteLease",
            Self::ReleaseStray(..) => "ReleaseStray",
        }
    }
}

/// A guarded write of an account's status.
#[derive(Debug, Clone)]
pub struct AccountWrite {
    /// The copy the decision was made on; its resourceVersion guards the write.
    pub account: Arc<Account>,
    pub status: AccountStatus,
}

/// Credentials to obtain for the lease's principal in an account.
#[derive(Debug, Clone)]
pub struct CredentialsRequest {
    pub account: Arc<Account>,
    /// The lease's stored Ready reason: a failure is announced only when it changes it.
    pub stored_reason: Option<String>,
    /// How long before the new credentials expire the lease wakes to refresh them.
    pub refresh_lead: SignedDuration,
}

/// The lease's Secret, written with the credentials just obtained.
#[derive(Debug, Clone)]
pub struct SecretWrite {
    /// The account (12-digit id) the credentials are for, recorded on the Secret.
    pub account_id: String,
    /// Why the Secret's credentials are replaced; `None` when it is created.
    pub refresh: Option<RefreshCause>,
    /// The resourceVersion of the Secret replaced; `None` creates it (failing if the name is
    /// taken).
    pub replace_version: Option<String>,
    /// Announced once the credentials are in place (the lease was Active without them).
    pub announce: Option<Notice>,
}

/// Decides what this reconcile of `lease` does: the next step, then the actions that take it,
/// and the release of any leaked claim on another account (after the status write, which for
/// a lease adopting an account is what makes the others strays).
pub fn plan(lease: &Lease, facts: &LeaseFacts, policy: &LeasePolicy) -> LeasePlan {
    let mut plan = step_plan(lease, facts, policy);
    let strays = facts
        .strays
        .iter()
        .map(|stray| release_stray(lease, facts, stray));
    let at = plan
        .actions
        .iter()
        .position(|a| matches!(a, LeaseAction::DeleteLease))
        .unwrap_or(plan.actions.len());
    plan.actions.splice(at..at, strays);
    plan
}

fn step_plan(lease: &Lease, facts: &LeaseFacts, policy: &LeasePolicy) -> LeasePlan {
    let now = facts.step.now;
    let history = Requeue::After(policy.history_retention.unsigned_abs());
    match next_step(lease, &facts.step, policy) {
        LeaseStep::Reject(rejection) => {
            let mut actions = Vec::new();
            let count = rejection.limit == Limit::PrincipalBudget
                && lease.phase() != Some(LeasePhase::Inactive);
            let status = inactive_status(lease, LeaseReason::Invalid, Some(rejection.message), now);
            write_status(lease, status, &mut actions);
            // Counted once the refusal is recorded: a status write that loses a race is retried
            // and would count it again.
            if count {
                actions.push(LeaseAction::CountBudgetAction {
                    action: "refused",
                    reason: LeaseReason::OverPrincipalBudget,
                });
            }
            LeasePlan {
                actions,
                then: history,
            }
        }
        LeaseStep::Claim(terms) => claim(lease, facts, terms, policy),
        LeaseStep::Run(terms) => match &facts.held {
            Some(account) => {
                let mut status = lease.status.clone().unwrap_or_default();
                status.budget_amount = Some(terms.budget_amount);
                // Adopting a claim its status does not name yet (a crash before the commit): the
                // claim is written again, guarded by the account's resourceVersion, so nothing
                // that changed the account since it was read (an undo elsewhere) is overruled,
                // and the status write then commits it. Unchanged, the write costs no update.
                let adopting = status.account_name.as_deref() != Some(&account.name_any());
                let actions = if adopting {
                    vec![LeaseAction::ClaimAccount(claim_write(lease, account, now))]
                } else {
                    Vec::new()
                };
                run(lease, facts, account, terms, status, actions, policy)
            }
            // Observation pairs Held with the account; facts without it are not acted on.
            None => LeasePlan {
                actions: Vec::new(),
                then: Requeue::OnChange,
            },
        },
        LeaseStep::End(reason) => LeasePlan {
            actions: end(lease, facts, reason, now),
            then: if facts.step.deleting {
                Requeue::OnChange
            } else {
                history
            },
        },
        LeaseStep::Expire { at } => LeasePlan {
            actions: end(lease, facts, LeaseReason::Expired, at),
            then: history,
        },
        LeaseStep::Finalize => LeasePlan {
            actions: Vec::new(),
            then: Requeue::OnChange,
        },
        LeaseStep::Retire { at } if now >= at => LeasePlan {
            actions: vec![LeaseAction::DeleteLease],
            then: Requeue::OnChange,
        },
        LeaseStep::Retire { at } => LeasePlan {
            actions: Vec::new(),
            then: Requeue::At(at),
        },
    }
}

/// Takes the account the queue gives this lease, or waits Pending for one.
fn claim(lease: &Lease, facts: &LeaseFacts, terms: Terms, policy: &LeasePolicy) -> LeasePlan {
    let now = facts.step.now;
    let requested = lease.spec.account_id.as_deref();
    let chosen = match &facts.candidates {
        Some(candidates) => {
            let free: Vec<FreeAccount> = candidates
                .free
                .iter()
                .map(|account| FreeAccount {
                    name: account.name_any(),
                    id: account.spec.id.clone(),
                })
                .collect();
            choose_account(&candidates.me, requested, &candidates.queue, &free).and_then(|choice| {
                candidates
                    .free
                    .iter()
                    .find(|account| account.name_any() == choice.name)
            })
        }
        None => None,
    };
    let Some(account) = chosen else {
        let mut status = lease.status.clone().unwrap_or_default();
        set_phase(
            &mut status,
            LeasePhase::Pending,
            LeaseReason::WaitingForAccount,
            now,
        );
        status.expires_on = Some(Time(terms.expires_on));
        status.budget_amount = Some(terms.budget_amount);
        status.message = Some(match requested {
            Some(id) => format!("waiting for account {id} to be Ready"),
            None => "waiting for a Ready account".to_string(),
        });
        conditions::set_ready(
            &mut status.conditions,
            false,
            LeaseReason::WaitingForAccount.as_str(),
            "no account is free",
            lease.metadata.generation,
            now,
        );
        let mut actions = Vec::new();
        write_status(lease, status, &mut actions);
        // The changes that can give it an account wake it (see the lease controller's queue):
        // an account freed, or a lease ahead leaving the queue; the expiry bounds the wait.
        return LeasePlan {
            actions,
            then: Requeue::At(terms.expires_on),
        };
    };
    let actions = vec![LeaseAction::ClaimAccount(claim_write(lease, account, now))];
    // The claim on the Account is written first; the lease's status naming the account, guarded
    // by the lease's resourceVersion, commits it (a copy of the lease that is out of date fails
    // there, and the claim is undone); the Secret comes last. A crash after the claim is
    // recovered from it: the next reconcile finds the claim and adopts it.
    let mut status = lease.status.clone().unwrap_or_default();
    set_phase(&mut status, LeasePhase::Active, LeaseReason::Active, now);
    status.message = None;
    status.budget_amount = Some(terms.budget_amount);
    let facts = LeaseFacts {
        // Nothing of this operator's can be there yet: an earlier claim by this lease would have
        // made it Held. Creating fails on a Secret that exists anyway (someone else's), and the
        // next reconcile reads and reports it.
        secret: SecretObservation::Absent,
        secret_version: None,
        ..facts.clone()
    };
    run(lease, &facts, account, terms, status, actions, policy)
}

/// Keeps an Active lease on `account` as `status` (built on the stored one) says, with its
/// credentials Secret in place, after `actions`; wakes at the credentials' refresh or expiry.
///
/// Order: credentials are obtained, then the status naming the account is written (guarded by
/// the lease's resourceVersion: the commit point of a claim or an adoption), then the Secret,
/// then the Events. A Secret therefore never holds credentials for an account the lease's
/// stored status does not name.
fn run(
    lease: &Lease,
    facts: &LeaseFacts,
    account: &Arc<Account>,
    terms: Terms,
    mut status: LeaseStatus,
    mut actions: Vec<LeaseAction>,
    policy: &LeasePolicy,
) -> LeasePlan {
    let now = facts.step.now;
    if status.lease_status != Some(LeasePhase::Active) {
        set_phase(&mut status, LeasePhase::Active, LeaseReason::Active, now);
    }
    status.account_id = Some(account.spec.id.clone());
    status.account_name = Some(account.name_any());
    status.expires_on = Some(Time(terms.expires_on));
    status.credentials_secret_name = Some(facts.secret_name.clone());
    let refresh_request = lease
        .annotations()
        .get(CREDENTIALS_REFRESH_ANNOTATION)
        .cloned();
    let stored = lease.status.as_ref();
    let refresh_requested = refresh_request.is_some()
        && refresh_request != stored.and_then(|s| s.observed_refresh_request.clone());
    status.observed_refresh_request = refresh_request;
    let secret = with_refresh_request(
        secret_action(
            &facts.secret,
            &account.spec.id,
            policy.credentials_lifetime,
            now,
        ),
        refresh_requested,
    );
    let credentials = credentials(lease, facts, account, secret, &mut status, policy);
    if let Some(at) = intact_expiry(&facts.secret, &account.spec.id) {
        status.credentials_expire_at = Some(Time(at));
    }
    let (status_write, transition) = status_write(lease, status);
    actions.extend(credentials.obtain);
    actions.push(status_write);
    actions.extend(credentials.write);
    actions.extend(transition.map(LeaseAction::Publish));
    actions.extend(credentials.notices.into_iter().map(LeaseAction::Publish));
    LeasePlan {
        actions,
        then: Requeue::At(
            credentials
                .wake
                .map_or(terms.expires_on, |at| at.min(terms.expires_on)),
        ),
    }
}

/// Ends the lease as of `ended_at`: a final usage reading, its status (so a crash leaves the
/// reason recorded), the account released for reset, then the credentials Secret deleted.
fn end(
    lease: &Lease,
    facts: &LeaseFacts,
    reason: LeaseReason,
    ended_at: Timestamp,
) -> Vec<LeaseAction> {
    let now = facts.step.now;
    let ending = lease.phase() != Some(LeasePhase::Inactive);
    let mut actions = Vec::new();
    let held = facts
        .held
        .as_ref()
        .filter(|_| facts.step.holding == Holding::Held);
    if let Some(account) = held
        && lease.phase() == Some(LeasePhase::Active)
        && !usage_read_at_or_after(lease, now)
    {
        actions.push(LeaseAction::TakeFinalReading(account.clone()));
    }
    // A lease deleted while it holds nothing just goes: a last status (and its Event) on an
    // object about to disappear would cost a write each for nobody to read, which adds up when
    // hundreds of waiting leases are deleted at once.
    let vanishing = facts.step.deleting && held.is_none();
    if (ending || lease.reason() != Some(reason)) && !vanishing {
        write_status(
            lease,
            inactive_status(lease, reason, None, ended_at),
            &mut actions,
        );
    }
    // Counted once the end is recorded: a status write that loses a race is retried and would
    // count it again.
    if ending
        && matches!(
            reason,
            LeaseReason::OverBudget | LeaseReason::OverPrincipalBudget
        )
    {
        actions.push(LeaseAction::CountBudgetAction {
            action: "ended",
            reason,
        });
    }
    if let Some(account) = held {
        actions.push(LeaseAction::ReleaseAccount(released(
            account,
            account_reason::RESETTING,
            "lease ended; reset pending",
            now,
        )));
    }
    actions.push(LeaseAction::DeleteSecret);
    actions
}

/// Whether the lease's cost was last read at `at` or later (a final reading just taken).
fn usage_read_at_or_after(lease: &Lease, at: Timestamp) -> bool {
    lease
        .status
        .as_ref()
        .and_then(|s| s.usage.as_ref())
        .and_then(|u| u.last_attempt_at.as_ref())
        .is_some_and(|read| read.0 >= at)
}

mod accounts;
mod credentials;
mod status;

use accounts::{claim_write, release_stray, released};
use credentials::{credentials, intact_expiry};
use status::{inactive_status, set_phase, status_write, write_status};

#[cfg(test)]
mod tests;
