//! Budget rules, for admission and for running leases alike: the budget period, when spend
//! ends a lease, when a principal may not lease, and which spend notices are due.

use jiff::Timestamp;
use jiff::ToSpan;
use jiff::civil::Date;

use super::usage::utc_day;
use super::{BudgetPeriod, LeasePolicy};
use crate::resources::LeaseReason;

/// First day of the budget period `now` falls in: the latest Sunday, or the first of the month.
pub fn period_start(now: Timestamp, period: BudgetPeriod) -> Date {
    let today = utc_day(now);
    match period {
        BudgetPeriod::Weekly => {
            let back = i64::from(today.weekday().to_sunday_zero_offset());
            today.checked_sub(back.days()).unwrap_or(today)
        }
        BudgetPeriod::Monthly => today.first_of_month(),
    }
}

/// Why an Active lease must end for its spend, if it must. Expiry is decided first, by the
/// caller; then the lease budget, then the principal's (DCE's precedence).
pub fn over_budget(
    lease_budget: f64,
    lease_spend: f64,
    principal_period_spend: f64,
    policy: &LeasePolicy,
) -> Option<LeaseReason> {
    if lease_spend > lease_budget {
        Some(LeaseReason::OverBudget)
    } else if principal_period_spend > policy.principal_budget {
        Some(LeaseReason::OverPrincipalBudget)
    } else {
        None
    }
}

/// Why a principal already over the period budget may not lease, in DCE's words (the amount
/// spent, then the budget); `None` while within it.
pub fn principal_over_budget(
    principal: &str,
    principal_period_spend: f64,
    policy: &LeasePolicy,
) -> Option<String> {
    (principal_period_spend > policy.principal_budget).then(|| {
        format!(
            "budgetAmount: Unable to create lease: User principal {principal} has already spent {principal_period_spend:.2} of their {:.2} principal budget",
            policy.principal_budget,
        )
    })
}

/// Thresholds (percent of `budget`) that `spend` has reached and that were not announced yet,
/// lowest first. Nothing is due before any spend.
pub fn notices_due(spend: f64, budget: f64, thresholds: &[i32], announced: &[i32]) -> Vec<i32> {
    if spend <= 0.0 {
        return Vec::new();
    }
    let mut due: Vec<i32> = thresholds
        .iter()
        .copied()
        .filter(|t| !announced.contains(t) && spend >= budget * f64::from(*t) / 100.0)
        .collect();
    due.sort_unstable();
    due.dedup();
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }
    fn day(text: &str) -> Date {
        text.parse().unwrap()
    }

    // --- periods (2026-11-22 is a Sunday) ---

    #[test]
    fn weekly_period_starts_on_the_latest_sunday_utc() {
        for (now, start) in [
            ("2026-11-22T00:00:00Z", "2026-11-22"),
            ("2026-11-22T23:59:59Z", "2026-11-22"),
            ("2026-11-23T10:00:00Z", "2026-11-22"),
            ("2026-11-28T23:59:59Z", "2026-11-22"),
            ("2026-11-21T23:59:59Z", "2026-11-15"),
            // Across a month and a year boundary.
            ("2026-12-02T12:00:00Z", "2026-11-29"),
            ("2027-01-01T00:00:00Z", "2026-12-27"),
        ] {
            assert_eq!(
                period_start(at(now), BudgetPeriod::Weekly),
                day(start),
                "{now}"
            );
        }
    }

    #[test]
    fn weekly_period_ignores_local_offsets() {
        // 23:30 on Saturday in UTC is already Sunday in UTC+1: UTC decides.
        assert_eq!(
            period_start(at("2026-11-21T23:30:00-00:00"), BudgetPeriod::Weekly),
            day("2026-11-15")
        );
        assert_eq!(
            period_start(at("2026-11-22T00:30:00+01:00"), BudgetPeriod::Weekly),
            day("2026-11-15")
        );
    }

    #[test]
    fn monthly_period_starts_on_the_first_utc() {
        for (now, start) in [
            ("2026-11-01T00:00:00Z", "2026-11-01"),
            ("2026-11-30T23:59:59Z", "2026-11-01"),
            ("2026-12-01T00:00:00Z", "2026-12-01"),
            ("2028-02-29T12:00:00Z", "2028-02-01"),
            ("2026-12-01T00:30:00+01:00", "2026-11-01"),
        ] {
            assert_eq!(
                period_start(at(now), BudgetPeriod::Monthly),
                day(start),
                "{now}"
            );
        }
    }

    // --- scheduling ---

    // --- enforcement ---

    #[test]
    fn lease_budget_is_exceeded_only_above_the_amount() {
        let policy = LeasePolicy::default();
        assert_eq!(over_budget(100.0, 100.0, 100.0, &policy), None);
        assert_eq!(
            over_budget(100.0, 100.01, 100.01, &policy),
            Some(LeaseReason::OverBudget)
        );
    }

    #[test]
    fn principal_budget_is_exceeded_only_above_the_amount() {
        let policy = LeasePolicy::default();
        assert_eq!(over_budget(100.0, 50.0, 1000.0, &policy), None);
        assert_eq!(
            over_budget(100.0, 50.0, 1000.5, &policy),
            Some(LeaseReason::OverPrincipalBudget)
        );
    }

    #[test]
    fn lease_budget_takes_precedence_over_principal_budget() {
        let policy = LeasePolicy::default();
        assert_eq!(
            over_budget(100.0, 2000.0, 2000.0, &policy),
            Some(LeaseReason::OverBudget)
        );
    }

    // --- notices ---

    #[test]
    fn thresholds_fire_once_each_when_reached() {
        let t = [75, 100];
        assert_eq!(notices_due(74.99, 100.0, &t, &[]), Vec::<i32>::new());
        assert_eq!(notices_due(75.0, 100.0, &t, &[]), vec![75]);
        assert_eq!(notices_due(80.0, 100.0, &t, &[75]), Vec::<i32>::new());
        assert_eq!(notices_due(100.0, 100.0, &t, &[75]), vec![100]);
        assert_eq!(notices_due(150.0, 100.0, &t, &[75, 100]), Vec::<i32>::new());
    }

    #[test]
    fn a_jump_past_several_thresholds_announces_each_once_in_order() {
        assert_eq!(
            notices_due(500.0, 100.0, &[100, 50, 75, 75], &[]),
            vec![50, 75, 100]
        );
    }

    #[test]
    fn nothing_is_announced_before_any_spend() {
        assert_eq!(notices_due(0.0, 0.0, &[75, 100], &[]), Vec::<i32>::new());
        assert_eq!(notices_due(0.01, 0.0, &[75, 100], &[]), vec![75, 100]);
    }
}
