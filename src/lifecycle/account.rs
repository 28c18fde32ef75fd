//! Account decisions: validation schedule, Ready/NotReady/Leased, reset, deletion.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::provisioning::{self, Provisioning};
use super::{ResetMode, backoff, conditions};
use crate::resources::{Account, AccountPhase, AccountStatus};

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
}

/// Retry delay (before jitter) of a validation AWS could not answer: short, so an outage's end
/// is noticed within seconds.
const TRANSIENT_RETRY: Duration = Duration::from_secs(5);
const RESET_BACKOFF_BASE: Duration = Duration::from_secs(10);
const RESET_BACKOFF_MAX: Duration = Duration::from_secs(600);

/// Whether the account's access should be validated now.
pub fn needs_validation(account: &Account, now: Timestamp, interval: SignedDuration) -> bool {
    let Some(status) = account.status.as_ref() else {
        return true;
    };
    let requested = account
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SYNC_REQUEST_ANNOTATION));
    if requested.is_some() && requested != status.observed_sync_request.as_ref() {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
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

/// The account's next status and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountPlan {
    pub status: AccountStatus,
    pub actions: Vec<AccountAction>,
    /// Wake up then even if nothing changes (reset retry).
    pub wake_at: Option<Timestamp>,
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

    status.observed_generation = account.metadata.generation;
    status.observed_sync_request = account
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SYNC_REQUEST_ANNOTATION))
        .cloned()
        .or(status.observed_sync_request);
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
        provisioning::record(&mut status, outcome, account.metadata.generation, now);
    }
    if obs.holder == HolderState::Missing && status.lease.take().is_some() {
        status.reset_required = true;
    }

    let (phase, ready, reason, message) = if let Some(holder) = &status.lease {
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
    } else if let Some(error) = unavailable
        .as_ref()
        .filter(|_| status.last_successful_sync_time.is_none())
    {
        (
            AccountPhase::NotReady,
            false,
            reason::AWS_UNAVAILABLE,
            format!("AWS could not be reached to validate access; retrying: {error}"),
        )
    } else if let Some(error) = provisioning::failure(&status).map(str::to_string) {
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
        match (status.reset_job.clone(), obs.reset_job) {
            (Some(job), Some(JobState::Running)) => (
                AccountPhase::NotReady,
                false,
                reason::RESETTING,
                format!("reset job {job} running"),
            ),
            (Some(job), Some(JobState::Succeeded)) => {
                status.reset_required = false;
                status.reset_failures = 0;
                status.reset_job = None;
                status.next_reset_at = None;
                actions.push(AccountAction::DeleteResetJob(job));
                (AccountPhase::Ready, true, reason::AVAILABLE, String::new())
            }
            (Some(job), Some(JobState::Failed)) => {
                status.reset_failures = status.reset_failures.saturating_add(1);
                status.reset_job = None;
                let attempt = u32::try_from(status.reset_failures).unwrap_or(u32::MAX);
                let delay =
                    backoff::delay(attempt, RESET_BACKOFF_BASE, RESET_BACKOFF_MAX, obs.jitter);
                let retry =
                    now + SignedDuration::try_from(delay).unwrap_or(SignedDuration::from_secs(600));
                status.next_reset_at = Some(Time(retry));
                wake_at = Some(retry);
                actions.push(AccountAction::DeleteResetJob(job));
                let message = reset_retry_message(status.reset_failures, retry);
                (AccountPhase::NotReady, false, reason::RESET_FAILED, message)
            }
            // No job yet, or it vanished: start one unless a retry is scheduled later.
            (_, None) | (None, Some(_)) => match status.next_reset_at.as_ref().map(|t| t.0) {
                Some(retry) if now < retry => {
                    wake_at = Some(retry);
                    let message = reset_retry_message(status.reset_failures, retry);
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
    } else {
        (AccountPhase::Ready, true, reason::AVAILABLE, String::new())
    };

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
    AccountPlan {
        status,
        actions,
        wake_at,
    }
}

/// The Ready message while a failed reset waits for its retry. The same text when the failure
/// is seen and while waiting, so that waiting rewrites nothing.
fn reset_retry_message(failures: i32, retry: Timestamp) -> String {
    format!("consecutive reset failures: {failures}; retrying at {retry}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{AccountSpec, LeaseHolder};
    use std::collections::BTreeMap;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn account(status: Option<AccountStatus>) -> Account {
        let mut a = Account::new(
            "123456789012",
            AccountSpec::with_admin_role("123456789012", "arn:aws:iam::123456789012:role/Admin"),
        );
        a.metadata.generation = Some(1);
        a.status = status;
        a
    }

    fn obs(now: i64) -> AccountObservation {
        AccountObservation {
            now: ts(now),
            deleting: false,
            validation: None,
            provisioning: None,
            holder: HolderState::Consistent,
            reset_job: None,
            reset_mode: ResetMode::Job,
            jitter: 1.0,
        }
    }

    fn valid(now: i64) -> AccountObservation {
        AccountObservation {
            validation: Some(Validation::Valid("123456789012".into())),
            ..obs(now)
        }
    }

    fn ready_status() -> AccountStatus {
        decide(
            &account(None),
            &AccountObservation {
                reset_mode: ResetMode::Disabled,
                ..valid(0)
            },
        )
        .status
    }

    fn reason_of(plan: &AccountPlan) -> &str {
        conditions::ready_reason(&plan.status.conditions).unwrap()
    }

    #[test]
    fn new_account_is_reset_before_first_use() {
        let plan = decide(&account(None), &valid(5));
        assert_eq!(plan.status.account_status, Some(AccountPhase::NotReady));
        assert_eq!(plan.actions, vec![AccountAction::StartReset]);
        assert_eq!(reason_of(&plan), reason::RESETTING);
        assert_eq!(plan.status.aws_account_id.as_deref(), Some("123456789012"));
        assert_eq!(plan.status.last_successful_sync_time, Some(Time(ts(5))));
    }

    #[test]
    fn new_account_is_ready_at_once_without_reset() {
        let plan = decide(
            &account(None),
            &AccountObservation {
                reset_mode: ResetMode::Disabled,
                ..valid(5)
            },
        );
        assert_eq!(plan.status.account_status, Some(AccountPhase::Ready));
        assert!(plan.actions.is_empty());
        assert_eq!(reason_of(&plan), reason::AVAILABLE);
        assert!(!plan.status.reset_required);
    }

    #[test]
    fn failed_validation_makes_it_not_ready_with_the_error() {
        let plan = decide(
            &account(Some(ready_status())),
            &AccountObservation {
                validation: Some(Validation::Invalid("AccessDenied".into())),
                ..obs(9)
            },
        );
        assert_eq!(plan.status.account_status, Some(AccountPhase::NotReady));
        assert_eq!(plan.status.sync_error.as_deref(), Some("AccessDenied"));
        assert_eq!(plan.status.last_sync_time, Some(Time(ts(9))));
        assert_eq!(plan.status.last_successful_sync_time, Some(Time(ts(0))));
        assert_eq!(reason_of(&plan), reason::CREDENTIALS_INVALID);
        // Recovery clears the error.
        let again = decide(&account(Some(plan.status)), &valid(20));
        assert_eq!(again.status.account_status, Some(AccountPhase::Ready));
        assert_eq!(again.status.sync_error, None);
    }

    #[test]
    fn an_aws_outage_is_retried_soon_and_takes_no_account_out_of_the_pool() {
        let outage = |now| AccountObservation {
            validation: Some(Validation::Unavailable("sts: endpoint unreachable".into())),
            ..obs(now)
        };
        let new = decide(&account(None), &outage(9));
        assert_eq!(new.status.account_status, Some(AccountPhase::NotReady));
        assert_eq!(reason_of(&new), reason::AWS_UNAVAILABLE);
        assert_eq!(new.status.sync_error, None);
        assert_eq!(new.status.last_sync_time, None, "still due");
        assert!(new.wake_at.is_some_and(|at| at > ts(9) && at <= ts(9 + 10)));

        let ready = decide(&account(Some(ready_status())), &outage(9));
        assert_eq!(ready.status.account_status, Some(AccountPhase::Ready));
        assert_eq!(reason_of(&ready), reason::AVAILABLE);
        assert_eq!(ready.status.last_sync_time, Some(Time(ts(0))), "still due");
        assert!(ready.wake_at.is_some_and(|at| at <= ts(9 + 10)));
    }

    #[test]
    fn held_account_is_leased_even_if_validation_fails() {
        let mut status = ready_status();
        status.lease = Some(LeaseHolder {
            namespace: "team".into(),
            name: "l".into(),
            uid: "u".into(),
        });
        let plan = decide(
            &account(Some(status)),
            &AccountObservation {
                validation: Some(Validation::Invalid("x".into())),
                ..obs(9)
            },
        );
        assert_eq!(plan.status.account_status, Some(AccountPhase::Leased));
        assert_eq!(reason_of(&plan), reason::LEASED);
    }

    #[test]
    fn released_account_is_reset_then_ready() {
        let mut status = ready_status();
        status.reset_required = true;
        let start = decide(&account(Some(status)), &obs(10));
        assert_eq!(start.actions, vec![AccountAction::StartReset]);
        let mut running = start.status.clone();
        running.reset_job = Some("reset-1".into());
        let plan = decide(
            &account(Some(running.clone())),
            &AccountObservation {
                reset_job: Some(JobState::Running),
                ..obs(11)
            },
        );
        assert!(plan.actions.is_empty());
        assert_eq!(reason_of(&plan), reason::RESETTING);
        let done = decide(
            &account(Some(running)),
            &AccountObservation {
                reset_job: Some(JobState::Succeeded),
                ..obs(12)
            },
        );
        assert_eq!(done.status.account_status, Some(AccountPhase::Ready));
        assert_eq!(
            done.actions,
            vec![AccountAction::DeleteResetJob("reset-1".into())]
        );
        assert!(!done.status.reset_required);
        assert_eq!(done.status.reset_job, None);
    }

    #[test]
    fn failed_reset_backs_off_exponentially_then_retries() {
        let mut status = ready_status();
        status.reset_required = true;
        status.reset_job = Some("reset-1".into());
        let failed = decide(
            &account(Some(status)),
            &AccountObservation {
                reset_job: Some(JobState::Failed),
                ..obs(100)
            },
        );
        assert_eq!(failed.status.reset_failures, 1);
        assert_eq!(
            failed.actions,
            vec![AccountAction::DeleteResetJob("reset-1".into())]
        );
        assert_eq!(failed.wake_at, Some(ts(110)));
        assert_eq!(reason_of(&failed), reason::RESET_FAILED);
        assert_eq!(
            failed.status.conditions[0].message,
            "consecutive reset failures: 1; retrying at 1970-01-01T00:01:50Z"
        );
        // Before the retry time: wait, with nothing new to write.
        let waiting = decide(&account(Some(failed.status.clone())), &obs(105));
        assert!(waiting.actions.is_empty());
        assert_eq!(waiting.status, failed.status);
        assert_eq!(waiting.wake_at, Some(ts(110)));
        // At the retry time: a new job.
        let retry = decide(&account(Some(failed.status.clone())), &obs(110));
        assert_eq!(retry.actions, vec![AccountAction::StartReset]);
        // A second failure doubles the delay.
        let mut second = retry.status.clone();
        second.reset_job = Some("reset-2".into());
        let failed2 = decide(
            &account(Some(second)),
            &AccountObservation {
                reset_job: Some(JobState::Failed),
                ..obs(200)
            },
        );
        assert_eq!(failed2.status.reset_failures, 2);
        assert_eq!(failed2.wake_at, Some(ts(220)));
    }

    #[test]
    fn vanished_reset_job_is_started_again() {
        let mut status = ready_status();
        status.reset_required = true;
        status.reset_job = Some("reset-1".into());
        let plan = decide(&account(Some(status)), &obs(10));
        assert_eq!(plan.actions, vec![AccountAction::StartReset]);
        assert_eq!(plan.status.reset_job, None);
    }

    #[test]
    fn missing_holder_releases_account_for_reset() {
        let mut status = ready_status();
        status.lease = Some(LeaseHolder {
            namespace: "team".into(),
            name: "gone".into(),
            uid: "u".into(),
        });
        let plan = decide(
            &account(Some(status)),
            &AccountObservation {
                holder: HolderState::Missing,
                ..obs(10)
            },
        );
        assert_eq!(plan.status.lease, None);
        assert!(plan.status.reset_required);
        assert_eq!(plan.actions, vec![AccountAction::StartReset]);
    }

    #[test]
    fn leased_account_cannot_be_deleted() {
        let mut status = ready_status();
        status.lease = Some(LeaseHolder {
            namespace: "team".into(),
            name: "l".into(),
            uid: "u".into(),
        });
        let plan = decide(
            &account(Some(status)),
            &AccountObservation {
                deleting: true,
                ..obs(10)
            },
        );
        assert!(plan.actions.is_empty());
        assert_eq!(reason_of(&plan), reason::DELETION_BLOCKED);
    }

    #[test]
    fn free_account_deletion_cleans_up_reset_job() {
        let mut status = ready_status();
        status.reset_required = true;
        status.reset_job = Some("reset-1".into());
        let plan = decide(
            &account(Some(status)),
            &AccountObservation {
                deleting: true,
                reset_job: Some(JobState::Running),
                ..obs(10)
            },
        );
        assert_eq!(
            plan.actions,
            vec![
                AccountAction::DeleteResetJob("reset-1".into()),
                AccountAction::AllowDeletion
            ]
        );
        let plan = decide(
            &account(Some(ready_status())),
            &AccountObservation {
                deleting: true,
                ..obs(10)
            },
        );
        assert_eq!(plan.actions, vec![AccountAction::AllowDeletion]);
    }

    #[test]
    fn validation_schedule() {
        let interval = SignedDuration::from_secs(300);
        assert!(needs_validation(&account(None), ts(0), interval));
        let mut a = account(Some(ready_status()));
        assert!(!needs_validation(&a, ts(299), interval));
        assert!(needs_validation(&a, ts(300), interval));
        assert_eq!(
            next_validation(a.status.as_ref().unwrap(), interval),
            Some(ts(300))
        );
        // A spec change forces it.
        a.metadata.generation = Some(2);
        assert!(needs_validation(&a, ts(1), interval));
    }

    #[test]
    fn sync_request_annotation_forces_validation_once() {
        let interval = SignedDuration::from_secs(300);
        let mut a = account(Some(ready_status()));
        a.metadata.annotations = Some(BTreeMap::from([(
            SYNC_REQUEST_ANNOTATION.to_string(),
            "1".to_string(),
        )]));
        assert!(needs_validation(&a, ts(1), interval));
        let plan = decide(&a, &valid(1));
        assert_eq!(plan.status.observed_sync_request.as_deref(), Some("1"));
        a.status = Some(plan.status);
        assert!(!needs_validation(&a, ts(2), interval));
    }
}
