//! Account decisions: validation schedule, Ready/NotReady/Leased, reset, deletion.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::provisioning::{self, Provisioning};
use super::{Notice, ResetMode, backoff, conditions};
use crate::resources::{Account, AccountPhase, AccountStatus, CONDITION_READY};

/// Annotation whose change forces a sync (validation) now; any new value counts.
pub const SYNC_REQUEST_ANNOTATION: &str = "dce.dev/sync-requested";

/// Reasons of the Account `Ready` condition.
pub mod reason {
    pub const AVAILABLE: &str = "Available";
    pub const LEASED: &str = "Leased";
    pub const CREDENTIALS_INVALID: &str = "CredentialsInvalid";
    /// AWS could not be asked (unreachable, throttling, failing): says nothing of the account.
    pub const AWS_UNAVAILABLE: &str = "AwsUnavailable";
    pub const RESETTING: &str = "Resetting";
    pub const RESET_FAILED: &str = "ResetFailed";
    pub const DELETION_BLOCKED: &str = "DeletionBlockedByLease";
    /// It recorded a lease as its holder that does not hold it (the lease holds another account,
    /// or is gone): returned to the pool through a reset, since someone may have used it.
    pub const STRAY_CLAIM_RELEASED: &str = "StrayClaimReleased";
}

/// Retry delay (before jitter) of a validation AWS could not answer: short, so an outage's end
/// is noticed within seconds.
const TRANSIENT_RETRY: Duration = Duration::from_secs(5);
const RESET_BACKOFF_BASE: Duration = Duration::from_secs(10);
const RESET_BACKOFF_MAX: Duration = Duration::from_secs(600);

/// Whether `dce.dev/sync-requested` holds a value the status has not recorded as seen.
pub fn sync_requested(account: &Account) -> bool {
    let requested = account
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SYNC_REQUEST_ANNOTATION));
    requested.is_some()
        && requested
            != account
                .status
                .as_ref()
                .and_then(|s| s.observed_sync_request.as_ref())
}

/// Whether the account's access should be validated now.
pub fn needs_validation(account: &Account, now: Timestamp, interval: SignedDuration) -> bool {
    let Some(status) = account.status.as_ref() else {
        return true;
    };
    if sync_requested(account) {
        return true;
    }
    if status.observed_generation != account.metadata.generation {
        return true;
    }
    match &status.last_sync_time {
        None => true,
        Some(at) => now >= at.0 + provisioning::validation_interval(status, interval),
    }
}

/// When the next periodic validation is due.
pub fn next_validation(status: &AccountStatus, interval: SignedDuration) -> Option<Timestamp> {
    let interval = provisioning::validation_interval(status, interval);
    status.last_sync_time.as_ref().map(|at| at.0 + interval)
}

/// The state of the account's reset Job, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    /// Failed, for the reason its Job gives.
    Failed(String),
}

/// Whether the lease recorded as the account's holder still exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderState {
    /// No holder recorded, or it exists.
    Consistent,
    /// The recorded holder was verified gone (e.g. its finalizer was removed by hand).
    Missing,
}

/// The outcome of validating an account's access.
#[derive(Debug, Clone, PartialEq)]
pub enum Validation {
    /// Access works; the AWS account number it reached.
    Valid(String),
    /// Refused or wrong (role cannot be assumed, keys rejected, another account): an admin acts.
    Invalid(String),
    /// AWS could not be asked: retried soon, and an account that was validated stays as it was.
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccountObservation {
    pub now: Timestamp,
    pub deleting: bool,
    /// Outcome of validating access this round, if it was due.
    pub validation: Option<Validation>,
    /// Outcome of provisioning the principal role and policy this round (after a validation).
    pub provisioning: Option<Provisioning>,
    pub holder: HolderState,
    /// The Job named in `status.resetJob`, if it exists.
    pub reset_job: Option<JobState>,
    pub reset_mode: ResetMode,
    /// How often access is validated while sync is enabled; `None` while it is disabled.
    pub sync_interval: Option<SignedDuration>,
    /// Random value in [0, 1) spreading retry times.
    pub jitter: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountAction {
    /// Create a reset Job (the controller names it and records it in the status it writes).
    StartReset,
    /// Delete a finished reset Job.
    DeleteResetJob(String),
    /// Deleting and free: remove the finalizer.
    AllowDeletion,
}

/// The account's next status and what to do: the actions, then the status write (when it
/// changed), then the Events.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountPlan {
    pub status: AccountStatus,
    pub actions: Vec<AccountAction>,
    /// Events announcing what the status write changes.
    pub notices: Vec<Notice>,
    /// Wake up then even if nothing changes (validation due, reset retry).
    pub wake_at: Option<Timestamp>,
    /// Being deleted while this lease (namespace/name) holds it: the deletion waits.
    pub blocked_by: Option<String>,
}

/// Decides the account's next status from its current one and the observations.
pub fn decide(account: &Account, obs: &AccountObservation) -> AccountPlan {
    let now = obs.now;
    let mut status = account.status.clone().unwrap_or_else(|| AccountStatus {
        // Pool accounts may hold leftovers: reset before first use, as DCE does.
        reset_required: obs.reset_mode == ResetMode::Job,
        ..AccountStatus::default()
    });
    let mut actions = Vec::new();
    let mut wake_at = None;

    let unavailable = record(account, obs, &mut status);
    let (phase, ready, reason, message) = readiness(
        &mut status,
        obs,
        unavailable.as_deref(),
        &mut actions,
        &mut wake_at,
    );

    if obs.deleting && status.lease.is_none() {
        if let Some(job) = status.reset_job.take() {
            actions.retain(|a| *a != AccountAction::StartReset);
            actions.push(AccountAction::DeleteResetJob(job));
        }
        actions.retain(|a| *a != AccountAction::StartReset);
        actions.push(AccountAction::AllowDeletion);
    }

    if unavailable.is_some() {
        let retry = now
            + SignedDuration::try_from(TRANSIENT_RETRY.mul_f64(0.5 + obs.jitter))
                .unwrap_or(SignedDuration::from_secs(5));
        wake_at = Some(wake_at.map_or(retry, |at: Timestamp| at.min(retry)));
    }
    status.account_status = Some(phase);
    conditions::set_ready(
        &mut status.conditions,
        ready,
        reason,
        &message,
        account.metadata.generation,
        now,
    );
    let blocked_by = if obs.deleting && !actions.contains(&AccountAction::AllowDeletion) {
        status
            .lease
            .as_ref()
            .map(|h| format!("{}/{}", h.namespace, h.name))
    } else {
        None
    };
    // While sync is disabled nothing periodic is due; enabling it reconciles every account.
    if let Some(next) = obs
        .sync_interval
        .and_then(|interval| next_validation(&status, interval))
    {
        wake_at = Some(wake_at.map_or(next, |at: Timestamp| at.min(next)));
    }
    let mut notices = notices(account.status.as_ref(), &status);
    if let Some(holder) = account.status.as_ref().and_then(|s| s.lease.as_ref())
        && obs.holder == HolderState::Missing
    {
        notices.push(Notice {
            warning: true,
            reason: reason::STRAY_CLAIM_RELEASED.to_string(),
            note: format!(
                "recorded lease {}/{} as its holder, but that lease no longer exists; returned to the pool through a reset",
                holder.namespace, holder.name
            ),
        });
    }
    AccountPlan {
        notices,
        status,
        actions,
        wake_at,
        blocked_by,
    }
}

/// Events for what changes from `old` to `new`: the principal's provisioning (its condition or
/// policy hash), then the account's phase or Ready reason.
fn notices(old: Option<&AccountStatus>, new: &AccountStatus) -> Vec<Notice> {
    let mut notices = Vec::new();
    let provisioning = |status: Option<&AccountStatus>| {
        status.and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == provisioning::CONDITION)
                .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        })
    };
    if let Some((state, reason, message)) = provisioning(Some(new)) {
        let same_hash = old.and_then(|s| s.principal_policy_hash.as_ref())
            == new.principal_policy_hash.as_ref();
        let before = provisioning(old);
        if !same_hash || before.as_ref().map(|(s, r, _)| (s, r)) != Some((&state, &reason)) {
            notices.push(Notice {
                warning: state != "True",
                reason,
                note: message,
            });
        }
    }
    let old_phase = old.and_then(|s| s.account_status);
    let old_reason = old.and_then(|s| conditions::ready_reason(&s.conditions));
    let new_reason = conditions::ready_reason(&new.conditions);
    if old_phase != new.account_status || old_reason != new_reason {
        let ready = new.conditions.iter().find(|c| c.type_ == CONDITION_READY);
        let phase = new.account_status.map(|p| p.as_str()).unwrap_or("Unknown");
        notices.push(Notice {
            warning: ready.is_some_and(|c| c.status != "True"),
            reason: new_reason.unwrap_or(phase).to_string(),
            note: format!(
                "{phase}: {}",
                ready.map(|c| c.message.as_str()).unwrap_or_default()
            ),
        });
    }
    notices
}

/// Records this round's observations in `status`; returns why AWS could not be asked, if so.
fn record(
    account: &Account,
    obs: &AccountObservation,
    status: &mut AccountStatus,
) -> Option<String> {
    let now = obs.now;
    status.observed_generation = account.metadata.generation;
    if let Some(request) = account
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SYNC_REQUEST_ANNOTATION))
    {
        status.observed_sync_request = Some(request.clone());
    }
    let mut unavailable = None;
    match &obs.validation {
        Some(Validation::Valid(number)) => {
            status.last_sync_time = Some(Time(now));
            status.last_successful_sync_time = Some(Time(now));
            status.sync_error = None;
            status.aws_account_id = Some(number.clone());
        }
        Some(Validation::Invalid(message)) => {
            status.last_sync_time = Some(Time(now));
            status.sync_error = Some(message.clone());
        }
        // Not a sync: the validation stays due and is retried soon.
        Some(Validation::Unavailable(message)) => unavailable = Some(message.clone()),
        None => {}
    }
    if let Some(outcome) = &obs.provisioning {
        provisioning::record(status, outcome, account.metadata.generation, now);
    }
    if obs.holder == HolderState::Missing && status.lease.take().is_some() {
        status.reset_required = true;
    }
    unavailable
}

/// The account's phase, whether it is ready, and its Ready reason and message.
type Readiness = (AccountPhase, bool, &'static str, String);

/// Works out the account's readiness from its recorded status: leased, access refused, AWS
/// unreachable before any success, principal not provisioned, resetting, or available.
fn readiness(
    status: &mut AccountStatus,
    obs: &AccountObservation,
    unavailable: Option<&str>,
    actions: &mut Vec<AccountAction>,
    wake_at: &mut Option<Timestamp>,
) -> Readiness {
    if let Some(holder) = &status.lease {
        let message = format!("leased by {}/{}", holder.namespace, holder.name);
        if obs.deleting {
            (
                AccountPhase::Leased,
                true,
                reason::DELETION_BLOCKED,
                format!("cannot be deleted while {message}"),
            )
        } else {
            (AccountPhase::Leased, true, reason::LEASED, message)
        }
    } else if let Some(error) = &status.sync_error {
        (
            AccountPhase::NotReady,
            false,
            reason::CREDENTIALS_INVALID,
            error.clone(),
        )
    } else if let Some(error) = unavailable.filter(|_| status.last_successful_sync_time.is_none()) {
        (
            AccountPhase::NotReady,
            false,
            reason::AWS_UNAVAILABLE,
            format!("AWS could not be reached to validate access; retrying: {error}"),
        )
    } else if let Some(error) = provisioning::failure(status).map(str::to_string) {
        // A reset that finished stays recorded until the principal is provisioned again.
        (
            AccountPhase::NotReady,
            false,
            provisioning::reason::FAILED,
            error,
        )
    } else if status.reset_required && obs.reset_mode == ResetMode::Disabled {
        status.reset_required = false;
        (AccountPhase::Ready, true, reason::AVAILABLE, String::new())
    } else if status.reset_required {
        reset(status, obs, actions, wake_at)
    } else {
        (AccountPhase::Ready, true, reason::AVAILABLE, String::new())
    }
}

/// Readiness while a reset is required: its Job running, succeeded, failed (retried with
/// backoff), or to be started.
fn reset(
    status: &mut AccountStatus,
    obs: &AccountObservation,
    actions: &mut Vec<AccountAction>,
    wake_at: &mut Option<Timestamp>,
) -> Readiness {
    let now = obs.now;
    match (status.reset_job.clone(), obs.reset_job.clone()) {
        (Some(job), Some(JobState::Running)) => (
            AccountPhase::NotReady,
            false,
            reason::RESETTING,
            format!("reset job {job} running"),
        ),
        (Some(job), Some(JobState::Succeeded)) => {
            status.reset_required = false;
            status.reset_failures = 0;
            status.reset_failure = None;
            status.reset_job = None;
            status.next_reset_at = None;
            actions.push(AccountAction::DeleteResetJob(job));
            (AccountPhase::Ready, true, reason::AVAILABLE, String::new())
        }
        (Some(job), Some(JobState::Failed(why))) => {
            status.reset_failures = status.reset_failures.saturating_add(1);
            status.reset_failure = Some(format!("reset job {job} failed: {why}"));
            status.reset_job = None;
            let attempt = u32::try_from(status.reset_failures).unwrap_or(u32::MAX);
            let delay = backoff::delay(attempt, RESET_BACKOFF_BASE, RESET_BACKOFF_MAX, obs.jitter);
            let retry =
                now + SignedDuration::try_from(delay).unwrap_or(SignedDuration::from_secs(600));
            status.next_reset_at = Some(Time(retry));
            *wake_at = Some(retry);
            actions.push(AccountAction::DeleteResetJob(job));
            let message = reset_retry_message(status, retry);
            (AccountPhase::NotReady, false, reason::RESET_FAILED, message)
        }
        // No job yet, or it vanished: start one unless a retry is scheduled later.
        (_, None) | (None, Some(_)) => match status.next_reset_at.as_ref().map(|t| t.0) {
            Some(retry) if now < retry => {
                *wake_at = Some(retry);
                let message = reset_retry_message(status, retry);
                (AccountPhase::NotReady, false, reason::RESET_FAILED, message)
            }
            _ => {
                status.reset_job = None;
                actions.push(AccountAction::StartReset);
                (
                    AccountPhase::NotReady,
                    false,
                    reason::RESETTING,
                    "starting reset job".to_string(),
                )
            }
        },
    }
}

/// The Ready message while a failed reset waits for its retry. The same text when the failure
/// is seen and while waiting, so that waiting rewrites nothing.
fn reset_retry_message(status: &AccountStatus, retry: Timestamp) -> String {
    let failures = status.reset_failures;
    match &status.reset_failure {
        Some(why) => format!("{why}; consecutive reset failures: {failures}; retrying at {retry}"),
        None => format!("consecutive reset failures: {failures}; retrying at {retry}"),
    }
}

#[cfg(test)]
mod tests;
