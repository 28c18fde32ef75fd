use super::*;
use crate::lifecycle::BudgetPeriod;
use crate::lifecycle::fixtures::{DAY, lease, spec, ts};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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

#[test]
fn principal_over_budget_is_refused_in_dce_words() {
    let mut policy = LeasePolicy::default();
    assert_eq!(principal_budget_rejection("alice", 1000.0, &policy), None);
    assert_eq!(
        principal_budget_rejection("alice", 1000.5, &policy)
            .unwrap()
            .message,
        "budgetAmount: Unable to create lease: User principal alice has already spent 1000.50 of their 1000.00 principal budget"
    );
    policy.principal_budget_period = BudgetPeriod::Monthly;
    policy.principal_budget = 49.6;
    assert_eq!(
        principal_budget_rejection("bob", 60.004, &policy)
            .unwrap()
            .api_message(),
        "lease validation error: budgetAmount: Unable to create lease: User principal bob has already spent 60.00 of their 49.60 principal budget."
    );
}
