//! Steps of Active and Inactive leases.

use super::*;
use jiff::SignedDuration;

// --- active leases ---

fn active(expires: i64) -> Lease {
    lease(
        spec(),
        with_phase(LeasePhase::Active, LeaseReason::Active, Some(expires), 0),
    )
}

#[test]
fn active_lease_runs_until_expiry_to_the_second() {
    let o = LeaseObservation {
        holding: Holding::Held,
        ..obs(999)
    };
    assert_eq!(
        next_step(&active(1000), &o, &LeasePolicy::default()),
        LeaseStep::Run(Terms {
            expires_on: ts(1000),
            budget_amount: 10.0
        })
    );
    let o = LeaseObservation { now: ts(1000), ..o };
    assert_eq!(
        next_step(&active(1000), &o, &LeasePolicy::default()),
        LeaseStep::Expire { at: ts(1000) }
    );
}

#[test]
fn a_lease_seen_expired_late_ended_at_its_expiry() {
    // e.g. the operator was down when it expired
    let o = LeaseObservation {
        holding: Holding::Held,
        ..obs(5000)
    };
    assert_eq!(
        next_step(&active(1000), &o, &LeasePolicy::default()),
        LeaseStep::Expire { at: ts(1000) }
    );
}

fn with_spend(mut l: Lease, amount: f64) -> Lease {
    let status = l.status.get_or_insert_with(LeaseStatus::default);
    status.usage = Some(crate::resources::LeaseUsage {
        daily: vec![crate::resources::DailyCost {
            date: "1970-01-01".into(),
            amount,
        }],
        total: amount,
        currency: "USD".into(),
        ..Default::default()
    });
    l
}

#[test]
fn active_lease_over_its_budget_ends_over_budget() {
    // `active` has a budget of 10.
    let o = LeaseObservation {
        holding: Holding::Held,
        principal_period_spend: 10.5,
        ..obs(999)
    };
    assert!(matches!(
        next_step(&with_spend(active(1000), 10.0), &o, &LeasePolicy::default()),
        LeaseStep::Run(_)
    ));
    assert_eq!(
        next_step(&with_spend(active(1000), 10.5), &o, &LeasePolicy::default()),
        LeaseStep::End(LeaseReason::OverBudget)
    );
}

#[test]
fn active_lease_of_a_principal_over_the_period_budget_ends() {
    let policy = LeasePolicy {
        principal_budget: 50.0,
        ..LeasePolicy::default()
    };
    let o = LeaseObservation {
        holding: Holding::Held,
        principal_period_spend: 50.01,
        ..obs(999)
    };
    assert_eq!(
        next_step(&with_spend(active(1000), 1.0), &o, &policy),
        LeaseStep::End(LeaseReason::OverPrincipalBudget)
    );
}

#[test]
fn expiry_takes_precedence_over_budgets_and_lease_budget_over_principal() {
    let policy = LeasePolicy {
        principal_budget: 5.0,
        ..LeasePolicy::default()
    };
    let over_both = LeaseObservation {
        holding: Holding::Held,
        principal_period_spend: 100.0,
        ..obs(1000)
    };
    assert_eq!(
        next_step(&with_spend(active(1000), 100.0), &over_both, &policy),
        LeaseStep::Expire { at: ts(1000) }
    );
    let before_expiry = LeaseObservation {
        now: ts(999),
        ..over_both
    };
    assert_eq!(
        next_step(&with_spend(active(1000), 100.0), &before_expiry, &policy),
        LeaseStep::End(LeaseReason::OverBudget)
    );
}

#[test]
fn new_lease_of_a_principal_over_the_period_budget_is_refused() {
    let o = LeaseObservation {
        principal_period_spend: 1000.5,
        ..obs(10)
    };
    match next_step(&lease(spec(), None), &o, &LeasePolicy::default()) {
        LeaseStep::Reject(rejection) => assert!(
            rejection.limit == Limit::PrincipalBudget
                && rejection.message.starts_with(
                    "budgetAmount: Unable to create lease: User principal alice has already spent 1000.50 of their 1000.00"
                ),
            "{}",
            rejection.message
        ),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let at_budget = LeaseObservation {
        principal_period_spend: 1000.0,
        ..obs(10)
    };
    assert!(matches!(
        next_step(&lease(spec(), None), &at_budget, &LeasePolicy::default()),
        LeaseStep::Claim(_)
    ));
}

#[test]
fn ended_lease_is_kept_while_its_usage_is_retained() {
    let l = with_spend(
        lease(
            spec(),
            with_phase(
                LeasePhase::Inactive,
                LeaseReason::OverBudget,
                Some(1000),
                1000,
            ),
        ),
        20.0,
    );
    // Usage of 1970-01-01 is kept until 1970-01-02 + 2 days.
    let policy = LeasePolicy {
        history_retention: SignedDuration::from_secs(60),
        usage_retention: SignedDuration::from_hours(48),
        ..LeasePolicy::default()
    };
    assert_eq!(
        next_step(&l, &obs(1010), &policy),
        LeaseStep::Retire { at: ts(3 * DAY) }
    );
    let long_history = LeasePolicy {
        history_retention: SignedDuration::from_hours(24 * 10),
        ..policy
    };
    assert_eq!(
        next_step(&l, &obs(1010), &long_history),
        LeaseStep::Retire {
            at: ts(1000 + 10 * DAY)
        }
    );
}

#[test]
fn claim_without_status_is_recovered_as_active() {
    // The operator died between claiming the account and writing the lease status.
    let o = LeaseObservation {
        holding: Holding::Held,
        ..obs(10)
    };
    assert_eq!(
        next_step(&lease(spec(), None), &o, &LeasePolicy::default()),
        LeaseStep::Run(Terms {
            expires_on: ts(7 * DAY),
            budget_amount: LeasePolicy::default().max_budget
        })
    );
}

#[test]
fn recovered_claim_that_no_longer_admits_is_ended_invalid() {
    let mut s = spec();
    s.budget_amount = Some(1e9);
    let o = LeaseObservation {
        holding: Holding::Held,
        ..obs(10)
    };
    assert_eq!(
        next_step(&lease(s, None), &o, &LeasePolicy::default()),
        LeaseStep::End(LeaseReason::Invalid)
    );
}

#[test]
fn deleting_an_active_lease_destroys_it() {
    let o = LeaseObservation {
        holding: Holding::Held,
        deleting: true,
        ..obs(10)
    };
    assert_eq!(
        next_step(&active(1000), &o, &LeasePolicy::default()),
        LeaseStep::End(LeaseReason::Destroyed)
    );
}

#[test]
fn end_request_destroys_an_active_or_pending_lease_and_keeps_it() {
    let mut requested = active(1000);
    requested
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            END_REQUESTED_ANNOTATION.into(),
            "2026-01-01T00:00:00Z".into(),
        );
    let held = LeaseObservation {
        holding: Holding::Held,
        ..obs(10)
    };
    assert_eq!(
        next_step(&requested, &held, &LeasePolicy::default()),
        LeaseStep::End(LeaseReason::Destroyed)
    );
    let mut pending = requested.clone();
    pending.status = with_phase(LeasePhase::Pending, LeaseReason::WaitingForAccount, None, 0);
    assert_eq!(
        next_step(&pending, &obs(10), &LeasePolicy::default()),
        LeaseStep::End(LeaseReason::Destroyed)
    );
    // Once ended it is history, retired like an expired lease.
    requested.status = with_phase(LeasePhase::Inactive, LeaseReason::Destroyed, Some(1000), 20);
    let policy = LeasePolicy {
        history_retention: SignedDuration::from_secs(60),
        ..LeasePolicy::default()
    };
    assert_eq!(
        next_step(&requested, &obs(30), &policy),
        LeaseStep::Retire { at: ts(80) }
    );
}

#[test]
fn active_lease_that_lost_its_account_is_orphaned() {
    for holding in [Holding::Lost, Holding::None] {
        let o = LeaseObservation { holding, ..obs(10) };
        assert_eq!(
            next_step(&active(1000), &o, &LeasePolicy::default()),
            LeaseStep::End(LeaseReason::AccountOrphaned)
        );
    }
}

// --- inactive leases ---

#[test]
fn inactive_lease_is_retired_after_retention() {
    let l = lease(
        spec(),
        with_phase(LeasePhase::Inactive, LeaseReason::Expired, Some(1000), 1000),
    );
    let policy = LeasePolicy {
        history_retention: SignedDuration::from_secs(60),
        ..LeasePolicy::default()
    };
    assert_eq!(
        next_step(&l, &obs(1010), &policy),
        LeaseStep::Retire { at: ts(1060) }
    );
}

#[test]
fn inactive_lease_still_holding_finishes_release() {
    let l = lease(
        spec(),
        with_phase(LeasePhase::Inactive, LeaseReason::Expired, Some(1000), 1000),
    );
    let o = LeaseObservation {
        holding: Holding::Held,
        ..obs(1010)
    };
    assert_eq!(
        next_step(&l, &o, &LeasePolicy::default()),
        LeaseStep::End(LeaseReason::Expired)
    );
}

#[test]
fn deleted_inactive_lease_is_finalized() {
    let l = lease(
        spec(),
        with_phase(LeasePhase::Inactive, LeaseReason::Invalid, None, 5),
    );
    let o = LeaseObservation {
        deleting: true,
        ..obs(10)
    };
    assert_eq!(
        next_step(&l, &o, &LeasePolicy::default()),
        LeaseStep::Finalize
    );
}
