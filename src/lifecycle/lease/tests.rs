use super::*;
use crate::resources::{LeaseSpec, LeaseStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}
const DAY: i64 = 86_400;

fn spec() -> LeaseSpec {
    LeaseSpec::for_principal("alice")
}

fn lease(spec: LeaseSpec, status: Option<LeaseStatus>) -> Lease {
    let mut lease = Lease::new("l", spec);
    lease.status = status;
    lease
}

fn with_phase(
    phase: LeasePhase,
    reason: LeaseReason,
    expires: Option<i64>,
    modified: i64,
) -> Option<LeaseStatus> {
    Some(LeaseStatus {
        lease_status: Some(phase),
        lease_status_reason: Some(reason),
        expires_on: expires.map(|s| Time(ts(s))),
        // Terms are recorded together at activation.
        budget_amount: expires.map(|_| 10.0),
        lease_status_modified_on: Some(Time(ts(modified))),
        ..LeaseStatus::default()
    })
}

fn obs(now: i64) -> LeaseObservation {
    LeaseObservation {
        now: ts(now),
        created: ts(0),
        deleting: false,
        holding: Holding::None,
        principal_has_earlier_lease: false,
        principal_period_spend: 0.0,
    }
}

// --- admission ---

#[test]
fn defaults_give_seven_days_and_max_budget() {
    let terms = admit(&lease(spec(), None), ts(100), &LeasePolicy::default()).unwrap();
    assert_eq!(
        terms,
        Terms {
            expires_on: ts(100 + 7 * DAY),
            budget_amount: 1000.0
        }
    );
}

#[test]
fn explicit_expiry_and_budget_are_kept() {
    let mut s = spec();
    s.expires_on = Some(Time(ts(5000)));
    s.budget_amount = Some(25.5);
    let terms = admit(&lease(s, None), ts(100), &LeasePolicy::default()).unwrap();
    assert_eq!(
        terms,
        Terms {
            expires_on: ts(5000),
            budget_amount: 25.5
        }
    );
}

#[test]
fn duration_counts_from_creation() {
    let mut s = spec();
    s.duration = Some("1d2h30m5s".into());
    let terms = admit(&lease(s, None), ts(100), &LeasePolicy::default()).unwrap();
    assert_eq!(terms.expires_on, ts(100 + DAY + 2 * 3600 + 30 * 60 + 5));
}

#[test]
fn expiry_at_or_before_creation_is_rejected_with_dce_message() {
    for at in [100, 50] {
        let mut s = spec();
        s.expires_on = Some(Time(ts(at)));
        let err = admit(&lease(s, None), ts(100), &LeasePolicy::default()).unwrap_err();
        assert_eq!(
            err.message,
            format!("expiresOn: Requested lease has a desired expiry date less than today: {at}")
        );
    }
}

#[test]
fn metadata_deeper_than_the_bound_is_refused() {
    let mut s = spec();
    let deep = (0..9).fold(
        serde_json::json!("leaf"),
        |v, _| serde_json::json!({ "a": v }),
    );
    s.metadata = serde_json::from_value(deep).ok();
    let err = admit(&lease(s, None), ts(0), &LeasePolicy::default()).unwrap_err();
    assert_eq!(err.message, "metadata: nested deeper than 8 levels");
}

#[test]
fn period_limit_is_inclusive() {
    let policy = LeasePolicy::default();
    let mut s = spec();
    s.expires_on = Some(Time(ts(7 * DAY)));
    assert!(admit(&lease(s.clone(), None), ts(0), &policy).is_ok());
    s.expires_on = Some(Time(ts(7 * DAY + 1)));
    let err = admit(&lease(s, None), ts(0), &policy).unwrap_err();
    assert!(
        err.message
            .contains("greater than max lease period of 604800"),
        "{}",
        err.message
    );
}

#[test]
fn budget_limit_is_inclusive_and_message_matches_dce() {
    let policy = LeasePolicy::default();
    let mut s = spec();
    s.budget_amount = Some(1000.0);
    assert!(admit(&lease(s.clone(), None), ts(0), &policy).is_ok());
    s.budget_amount = Some(1000.5);
    let err = admit(&lease(s, None), ts(0), &policy).unwrap_err();
    assert_eq!(
        err.message,
        "budgetAmount: Requested lease has a budget amount of 1000.500000, which is greater than max lease budget amount of 1000.000000"
    );
}

#[test]
fn negative_or_nan_budget_is_rejected() {
    for amount in [-1.0, f64::NAN, f64::INFINITY] {
        let mut s = spec();
        s.budget_amount = Some(amount);
        assert!(
            admit(&lease(s, None), ts(0), &LeasePolicy::default()).is_err(),
            "{amount}"
        );
    }
}

#[test]
fn expiry_and_duration_together_are_rejected() {
    let mut s = spec();
    s.expires_on = Some(Time(ts(5000)));
    s.duration = Some("1h".into());
    assert_eq!(
        admit(&lease(s, None), ts(0), &LeasePolicy::default())
            .unwrap_err()
            .message,
        "expiresOn: set at most one of expiresOn and duration"
    );
}

#[test]
fn bad_or_overflowing_duration_is_rejected() {
    for text in ["", "h", "5", "5x", "99999999999999999999d"] {
        let mut s = spec();
        s.duration = Some(text.into());
        assert!(
            admit(&lease(s, None), ts(0), &LeasePolicy::default()).is_err(),
            "{text:?}"
        );
    }
}

#[test]
fn parse_duration_units() {
    assert_eq!(parse_duration("90m"), Some(SignedDuration::from_secs(5400)));
    assert_eq!(
        parse_duration("7d"),
        Some(SignedDuration::from_secs(604_800))
    );
    assert_eq!(parse_duration("0s"), Some(SignedDuration::ZERO));
    assert_eq!(
        parse_duration("1h1h"),
        Some(SignedDuration::from_secs(7200))
    );
    assert_eq!(parse_duration("1.5h"), None);
}

// --- steps of a new or pending lease ---

#[test]
fn new_valid_lease_claims() {
    let step = decide(&lease(spec(), None), &obs(10), &LeasePolicy::default());
    assert_eq!(
        step,
        LeaseStep::Claim(Terms {
            expires_on: ts(7 * DAY),
            budget_amount: 1000.0
        })
    );
}

#[test]
fn pending_lease_keeps_claiming() {
    let l = lease(
        spec(),
        with_phase(LeasePhase::Pending, LeaseReason::WaitingForAccount, None, 0),
    );
    assert!(matches!(
        decide(&l, &obs(10), &LeasePolicy::default()),
        LeaseStep::Claim(_)
    ));
}

#[test]
fn invalid_lease_is_rejected() {
    let mut s = spec();
    s.budget_amount = Some(5000.0);
    assert!(matches!(
        decide(&lease(s, None), &obs(10), &LeasePolicy::default()),
        LeaseStep::Reject(_)
    ));
}

#[test]
fn second_lease_of_a_principal_is_rejected_unless_allowed() {
    let o = LeaseObservation {
        principal_has_earlier_lease: true,
        ..obs(10)
    };
    let step = decide(&lease(spec(), None), &o, &LeasePolicy::default());
    assert_eq!(
        step,
        LeaseStep::Reject(Rejection {
            limit: Limit::OneLeasePerPrincipal,
            message: "principal \"alice\" already has an active lease".into()
        })
    );
    let relaxed = LeasePolicy {
        one_active_lease_per_principal: false,
        ..LeasePolicy::default()
    };
    assert!(matches!(
        decide(&lease(spec(), None), &o, &relaxed),
        LeaseStep::Claim(_)
    ));
}

#[test]
fn pending_lease_expires_if_never_served() {
    let mut s = spec();
    s.duration = Some("1h".into());
    let l = lease(
        s,
        with_phase(LeasePhase::Pending, LeaseReason::WaitingForAccount, None, 0),
    );
    assert!(matches!(
        decide(&l, &obs(3599), &LeasePolicy::default()),
        LeaseStep::Claim(_)
    ));
    assert_eq!(
        decide(&l, &obs(3600), &LeasePolicy::default()),
        LeaseStep::Expire { at: ts(3600) }
    );
}

#[test]
fn deleting_a_pending_lease_destroys_it() {
    let o = LeaseObservation {
        deleting: true,
        ..obs(10)
    };
    assert_eq!(
        decide(&lease(spec(), None), &o, &LeasePolicy::default()),
        LeaseStep::End(LeaseReason::Destroyed)
    );
}

// --- account choice ---

fn key(created: i64, uid: &str) -> QueueKey {
    QueueKey {
        created: ts(created),
        arrival: 0,
        uid: uid.into(),
    }
}
fn free(names: &[&str]) -> Vec<FreeAccount> {
    names
        .iter()
        .map(|n| FreeAccount {
            name: n.to_string(),
            id: format!("id-{n}"),
        })
        .collect()
}

#[test]
fn oldest_waiting_lease_gets_first_account() {
    let queue = [key(3, "c"), key(1, "a"), key(2, "b")];
    let accounts = free(&["y", "x"]);
    assert_eq!(
        choose_account(&key(1, "a"), None, &queue, &accounts)
            .unwrap()
            .name,
        "x"
    );
    assert_eq!(
        choose_account(&key(2, "b"), None, &queue, &accounts)
            .unwrap()
            .name,
        "y"
    );
    assert_eq!(choose_account(&key(3, "c"), None, &queue, &accounts), None);
}

#[test]
fn equal_creation_times_are_ordered_by_uid() {
    let queue = [key(1, "b"), key(1, "a")];
    let accounts = free(&["x", "y"]);
    assert_eq!(
        choose_account(&key(1, "a"), None, &queue, &accounts)
            .unwrap()
            .name,
        "x"
    );
    assert_eq!(
        choose_account(&key(1, "b"), None, &queue, &accounts)
            .unwrap()
            .name,
        "y"
    );
}

#[test]
fn within_a_second_arrival_order_comes_before_uid() {
    let arrived = |arrival, uid: &str| QueueKey {
        arrival,
        ..key(1, uid)
    };
    let accounts = free(&["x", "y", "z"]);
    // "b" was seen first; "a" arrives later with a smaller uid and must not overtake it.
    let before = [arrived(1, "b")];
    let after = [arrived(1, "b"), arrived(2, "a")];
    let choice = |me: &QueueKey, queue: &[QueueKey]| {
        choose_account(me, None, queue, &accounts).map(|a| a.name.clone())
    };
    assert_eq!(choice(&arrived(1, "b"), &before), Some("x".into()));
    assert_eq!(choice(&arrived(1, "b"), &after), Some("x".into()));
    assert_eq!(choice(&arrived(2, "a"), &after), Some("y".into()));
    // An earlier second still comes first, whatever the arrival.
    let older = QueueKey {
        arrival: 9,
        ..key(0, "c")
    };
    assert_eq!(
        choice(&older, &[older.clone(), arrived(1, "b")]),
        Some("x".into())
    );
}

#[test]
fn requested_account_only_if_free() {
    let accounts = free(&["x", "y"]);
    assert_eq!(
        choose_account(&key(1, "a"), Some("id-y"), &[], &accounts)
            .unwrap()
            .name,
        "y"
    );
    assert_eq!(
        choose_account(&key(1, "a"), Some("id-z"), &[], &accounts),
        None
    );
}

#[test]
fn no_free_account_means_wait() {
    assert_eq!(
        choose_account(&key(1, "a"), None, &[key(1, "a")], &[]),
        None
    );
}

mod running;
