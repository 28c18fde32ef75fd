use super::*;
use crate::lifecycle::fixtures::{account, ts};
use crate::resources::LeaseHolder;
use std::collections::BTreeMap;

fn obs(now: i64) -> AccountObservation {
    AccountObservation {
        now: ts(now),
        deleting: false,
        validation: None,
        provisioning: None,
        holder: HolderState::Consistent,
        reset_job: None,
        reset_mode: ResetMode::Job,
        sync_interval: None,
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
    // A success after failures forgets them.
    let mut after_failures = running;
    after_failures.reset_failures = 2;
    after_failures.reset_failure = Some("reset job reset-0 failed: BackoffLimitExceeded".into());
    let done = decide(
        &account(Some(after_failures)),
        &AccountObservation {
            reset_job: Some(JobState::Succeeded),
            ..obs(12)
        },
    );
    assert_eq!(done.status.reset_failures, 0);
    assert_eq!(done.status.reset_failure, None);
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
            reset_job: Some(JobState::Failed("DeadlineExceeded: ran too long".into())),
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
        "reset job reset-1 failed: DeadlineExceeded: ran too long; consecutive reset failures: 1; \
         retrying at 1970-01-01T00:01:50Z"
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
            reset_job: Some(JobState::Failed("BackoffLimitExceeded".into())),
            ..obs(200)
        },
    );
    assert_eq!(failed2.status.reset_failures, 2);
    assert_eq!(
        failed2.status.reset_failure.as_deref(),
        Some("reset job reset-2 failed: BackoffLimitExceeded")
    );
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
    let stray = plan
        .notices
        .iter()
        .find(|n| n.reason == reason::STRAY_CLAIM_RELEASED)
        .expect("the released claim is announced");
    assert!(
        stray.warning && stray.note.contains("team/gone"),
        "{stray:?}"
    );
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
    assert_eq!(plan.blocked_by.as_deref(), Some("team/l"));
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
    assert_eq!(plan.blocked_by, None);
}

fn notices_of(plan: &AccountPlan) -> Vec<(bool, &str)> {
    plan.notices
        .iter()
        .map(|n| (n.warning, n.reason.as_str()))
        .collect()
}

#[test]
fn each_change_of_phase_or_reason_is_announced_once() {
    // New, validated, reset starting: NotReady/Resetting, a warning.
    let plan = decide(&account(None), &valid(5));
    assert_eq!(notices_of(&plan), vec![(true, reason::RESETTING)]);
    // The same status again: nothing to announce.
    let again = decide(&account(Some(plan.status.clone())), &obs(6));
    assert_eq!(again.status.account_status, plan.status.account_status);
    assert!(again.notices.is_empty());
    // Invalid credentials: a warning carrying the error.
    let plan = decide(
        &account(Some(ready_status())),
        &AccountObservation {
            validation: Some(Validation::Invalid("AccessDenied".into())),
            ..obs(10)
        },
    );
    assert_eq!(notices_of(&plan), vec![(true, reason::CREDENTIALS_INVALID)]);
    assert_eq!(plan.notices[0].note, "NotReady: AccessDenied");
}

#[test]
fn the_next_validation_is_due_only_while_sync_is_enabled() {
    let interval = SignedDuration::from_secs(300);
    let status = ready_status();
    let synced = status.last_sync_time.clone().unwrap().0;
    let enabled = decide(
        &account(Some(status.clone())),
        &AccountObservation {
            sync_interval: Some(interval),
            reset_mode: ResetMode::Disabled,
            ..obs(10)
        },
    );
    assert_eq!(enabled.wake_at, Some(synced + interval));
    let disabled = decide(
        &account(Some(status)),
        &AccountObservation {
            reset_mode: ResetMode::Disabled,
            ..obs(10)
        },
    );
    assert_eq!(disabled.wake_at, None);
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
