//! Usage and budget decisions: when to read a lease's cost, how fetched days fold into its
//! record, what a principal has spent in the budget period, which budget notices are due, and
//! whether a lease is over budget.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::lease::{Limit, Rejection, Terms};
use super::{BudgetPeriod, LeasePolicy};
use crate::resources::{DailyCost, LeaseReason, LeaseUsage};

/// Wait after a failed collection before trying again (at most the collection interval).
pub const COLLECTION_RETRY: SignedDuration = SignedDuration::from_mins(5);

/// The UTC day `at` falls on.
pub fn utc_day(at: Timestamp) -> Date {
    at.to_zoned(TimeZone::UTC).date()
}

/// Start of the day `date` (UTC).
pub fn day_start(date: Date) -> Timestamp {
    date.to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

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

/// When an Active lease's cost should next be read. `activated` is when it became Active; a
/// failed attempt is retried sooner than the interval.
pub fn next_collection(
    usage: Option<&LeaseUsage>,
    activated: Timestamp,
    interval: SignedDuration,
) -> Timestamp {
    let last_success = usage
        .and_then(|u| u.collected_at.as_ref())
        .map(|t| t.0)
        .unwrap_or(activated);
    let failed_at = usage
        .filter(|u| u.last_error.is_some())
        .and_then(|u| u.last_attempt_at.as_ref())
        .map(|t| t.0);
    match failed_at {
        Some(at) => at + COLLECTION_RETRY.min(interval),
        None => last_success + interval,
    }
}

/// The days to ask Cost Explorer for: from the day the lease became Active through today;
/// `end` is exclusive, as Cost Explorer's is.
pub fn query_window(activated: Timestamp, now: Timestamp) -> (Date, Date) {
    let start = utc_day(activated);
    let today = utc_day(now.max(activated));
    (start, today.tomorrow().unwrap_or(today))
}

/// One day's cost as Cost Explorer reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedDay {
    pub date: Date,
    pub amount: f64,
    pub currency: String,
}

/// The lease's usage after a successful collection at `now`: fetched days replace recorded ones
/// (Cost Explorer revises recent days), days outside the window are dropped, and the total is
/// recomputed.
pub fn record_collection(
    previous: Option<&LeaseUsage>,
    fetched: &[FetchedDay],
    window: (Date, Date),
    now: Timestamp,
) -> LeaseUsage {
    let mut days: std::collections::BTreeMap<Date, f64> = previous
        .map(|u| u.daily.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|d| Some((d.date.parse::<Date>().ok()?, d.amount)))
        .collect();
    for day in fetched {
        days.insert(day.date, day.amount);
    }
    days.retain(|date, _| *date >= window.0 && *date < window.1);
    let daily: Vec<DailyCost> = days
        .into_iter()
        .map(|(date, amount)| DailyCost {
            date: date.to_string(),
            amount,
        })
        .collect();
    let currency = fetched
        .iter()
        .map(|d| d.currency.clone())
        .find(|c| !c.is_empty())
        .or_else(|| previous.map(|u| u.currency.clone()))
        .unwrap_or_else(|| "USD".to_string());
    LeaseUsage {
        total: daily.iter().map(|d| d.amount).sum(),
        daily,
        currency,
        collected_at: Some(Time(now)),
        last_attempt_at: Some(Time(now)),
        last_error: None,
        notified_thresholds: previous
            .map(|u| u.notified_thresholds.clone())
            .unwrap_or_default(),
    }
}

/// The lease's usage after a failed collection at `now`: figures kept, failure recorded.
pub fn record_failure(previous: Option<&LeaseUsage>, error: String, now: Timestamp) -> LeaseUsage {
    let mut usage = previous.cloned().unwrap_or_else(|| LeaseUsage {
        currency: "USD".to_string(),
        ..LeaseUsage::default()
    });
    usage.last_attempt_at = Some(Time(now));
    usage.last_error = Some(error);
    usage
}

/// Spend recorded on or after `from`.
pub fn spend_since(usage: Option<&LeaseUsage>, from: Date) -> f64 {
    usage
        .map(|u| u.daily.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|d| d.date.parse::<Date>().is_ok_and(|date| date >= from))
        .map(|d| d.amount)
        .sum()
}

/// A lease's spend so far.
pub fn lease_spend(usage: Option<&LeaseUsage>) -> f64 {
    usage.map_or(0.0, |u| u.total)
}

/// Why an Active lease must end for its spend, if it must. Expiry is decided first, by the
/// caller; then the lease budget, then the principal's (DCE's precedence).
pub fn over_budget(
    terms: &Terms,
    lease_spend: f64,
    principal_period_spend: f64,
    policy: &LeasePolicy,
) -> Option<LeaseReason> {
    if lease_spend > terms.budget_amount {
        Some(LeaseReason::OverBudget)
    } else if principal_period_spend > policy.principal_budget {
        Some(LeaseReason::OverPrincipalBudget)
    } else {
        None
    }
}

/// Refusal of a new lease for a principal already over the period budget, in DCE's words (the
/// amount spent, then the budget).
pub fn principal_budget_rejection(
    principal: &str,
    principal_period_spend: f64,
    policy: &LeasePolicy,
) -> Option<Rejection> {
    (principal_period_spend > policy.principal_budget).then(|| Rejection {
        limit: Limit::PrincipalBudget,
        message: format!(
            "budgetAmount: Unable to create lease: User principal {principal} has already spent {principal_period_spend:.2} of their {:.2} principal budget",
            policy.principal_budget,
        ),
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

/// The earliest an ended lease may be removed so its usage outlives it by the retention.
pub fn usage_kept_until(
    usage: Option<&LeaseUsage>,
    retention: SignedDuration,
) -> Option<Timestamp> {
    let last = usage?
        .daily
        .iter()
        .filter_map(|d| d.date.parse::<Date>().ok())
        .max()?;
    Some(day_start(last.tomorrow().ok()?) + retention)
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
    fn usage(days: &[(&str, f64)]) -> LeaseUsage {
        let daily: Vec<DailyCost> = days
            .iter()
            .map(|(d, a)| DailyCost {
                date: d.to_string(),
                amount: *a,
            })
            .collect();
        LeaseUsage {
            total: daily.iter().map(|d| d.amount).sum(),
            daily,
            currency: "USD".into(),
            ..LeaseUsage::default()
        }
    }
    fn fetched(date: &str, amount: f64) -> FetchedDay {
        FetchedDay {
            date: day(date),
            amount,
            currency: "USD".into(),
        }
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

    #[test]
    fn first_collection_is_one_interval_after_activation() {
        let hour = SignedDuration::from_hours(1);
        let activated = at("2026-11-23T10:00:00Z");
        assert_eq!(
            next_collection(None, activated, hour),
            at("2026-11-23T11:00:00Z")
        );
    }

    #[test]
    fn next_collection_counts_from_the_last_success() {
        let hour = SignedDuration::from_hours(1);
        let mut u = usage(&[]);
        u.collected_at = Some(Time(at("2026-11-23T12:10:00Z")));
        u.last_attempt_at = u.collected_at.clone();
        assert_eq!(
            next_collection(Some(&u), at("2026-11-23T10:00:00Z"), hour),
            at("2026-11-23T13:10:00Z")
        );
    }

    #[test]
    fn a_failure_is_retried_sooner_but_never_later_than_the_interval() {
        let activated = at("2026-11-23T10:00:00Z");
        let mut u = usage(&[]);
        u.collected_at = Some(Time(at("2026-11-23T11:00:00Z")));
        u.last_attempt_at = Some(Time(at("2026-11-23T12:00:00Z")));
        u.last_error = Some("throttled".into());
        assert_eq!(
            next_collection(Some(&u), activated, SignedDuration::from_hours(1)),
            at("2026-11-23T12:05:00Z")
        );
        assert_eq!(
            next_collection(Some(&u), activated, SignedDuration::from_secs(60)),
            at("2026-11-23T12:01:00Z")
        );
    }

    #[test]
    fn window_runs_from_activation_day_through_today() {
        assert_eq!(
            query_window(at("2026-11-20T23:59:59Z"), at("2026-11-23T00:00:01Z")),
            (day("2026-11-20"), day("2026-11-24"))
        );
        // Same day: one day, never an empty window.
        assert_eq!(
            query_window(at("2026-11-23T10:00:00Z"), at("2026-11-23T10:00:00Z")),
            (day("2026-11-23"), day("2026-11-24"))
        );
        // A month end.
        assert_eq!(
            query_window(at("2026-11-30T10:00:00Z"), at("2026-11-30T11:00:00Z")),
            (day("2026-11-30"), day("2026-12-01"))
        );
    }

    // --- spend accounting ---

    #[test]
    fn collection_replaces_revised_days_and_keeps_the_rest() {
        let before = usage(&[("2026-11-20", 5.0), ("2026-11-21", 7.0)]);
        let window = (day("2026-11-20"), day("2026-11-23"));
        let now = at("2026-11-22T12:00:00Z");
        let after = record_collection(
            Some(&before),
            &[fetched("2026-11-21", 8.5), fetched("2026-11-22", 1.25)],
            window,
            now,
        );
        assert_eq!(
            after.daily,
            vec![
                DailyCost {
                    date: "2026-11-20".into(),
                    amount: 5.0
                },
                DailyCost {
                    date: "2026-11-21".into(),
                    amount: 8.5
                },
                DailyCost {
                    date: "2026-11-22".into(),
                    amount: 1.25
                },
            ]
        );
        assert_eq!(after.total, 14.75);
        assert_eq!(after.collected_at, Some(Time(now)));
        assert_eq!(after.last_error, None);
    }

    #[test]
    fn days_outside_the_window_are_not_counted() {
        let window = (day("2026-11-20"), day("2026-11-22"));
        let after = record_collection(
            None,
            &[
                fetched("2026-11-19", 100.0),
                fetched("2026-11-20", 1.0),
                fetched("2026-11-22", 100.0),
            ],
            window,
            at("2026-11-21T00:00:00Z"),
        );
        assert_eq!(after.total, 1.0);
        assert_eq!(after.daily.len(), 1);
    }

    #[test]
    fn a_success_clears_the_last_error_and_keeps_announcements() {
        let mut before = record_failure(None, "denied".into(), at("2026-11-23T00:00:00Z"));
        before.notified_thresholds = vec![75];
        assert_eq!(before.last_error.as_deref(), Some("denied"));
        let after = record_collection(
            Some(&before),
            &[],
            (day("2026-11-23"), day("2026-11-24")),
            at("2026-11-23T01:00:00Z"),
        );
        assert_eq!(after.last_error, None);
        assert_eq!(after.notified_thresholds, vec![75]);
        assert_eq!(after.currency, "USD");
    }

    #[test]
    fn a_failure_keeps_the_figures() {
        let before = usage(&[("2026-11-20", 5.0)]);
        let after = record_failure(
            Some(&before),
            "throttled".into(),
            at("2026-11-23T00:00:00Z"),
        );
        assert_eq!(after.total, 5.0);
        assert_eq!(after.daily, before.daily);
        assert_eq!(after.last_error.as_deref(), Some("throttled"));
    }

    #[test]
    fn spend_since_counts_the_period_days_only() {
        let u = usage(&[
            ("2026-11-21", 5.0),
            ("2026-11-22", 7.0),
            ("2026-11-23", 1.0),
        ]);
        assert_eq!(spend_since(Some(&u), day("2026-11-22")), 8.0);
        assert_eq!(spend_since(Some(&u), day("2026-11-24")), 0.0);
        assert_eq!(spend_since(None, day("2026-11-22")), 0.0);
        assert_eq!(lease_spend(Some(&u)), 13.0);
        assert_eq!(lease_spend(None), 0.0);
    }

    // --- enforcement ---

    fn terms(budget: f64) -> Terms {
        Terms {
            expires_on: at("2026-12-01T00:00:00Z"),
            budget_amount: budget,
        }
    }

    #[test]
    fn lease_budget_is_exceeded_only_above_the_amount() {
        let policy = LeasePolicy::default();
        assert_eq!(over_budget(&terms(100.0), 100.0, 100.0, &policy), None);
        assert_eq!(
            over_budget(&terms(100.0), 100.01, 100.01, &policy),
            Some(LeaseReason::OverBudget)
        );
    }

    #[test]
    fn principal_budget_is_exceeded_only_above_the_amount() {
        let policy = LeasePolicy::default();
        assert_eq!(over_budget(&terms(100.0), 50.0, 1000.0, &policy), None);
        assert_eq!(
            over_budget(&terms(100.0), 50.0, 1000.5, &policy),
            Some(LeaseReason::OverPrincipalBudget)
        );
    }

    #[test]
    fn lease_budget_takes_precedence_over_principal_budget() {
        let policy = LeasePolicy::default();
        assert_eq!(
            over_budget(&terms(100.0), 2000.0, 2000.0, &policy),
            Some(LeaseReason::OverBudget)
        );
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

    // --- retention ---

    #[test]
    fn usage_is_kept_for_the_retention_after_its_last_day() {
        let u = usage(&[("2026-11-20", 1.0), ("2026-11-22", 1.0)]);
        assert_eq!(
            usage_kept_until(Some(&u), SignedDuration::from_hours(24)),
            Some(at("2026-11-24T00:00:00Z"))
        );
        assert_eq!(
            usage_kept_until(Some(&usage(&[])), SignedDuration::ZERO),
            None
        );
        assert_eq!(usage_kept_until(None, SignedDuration::ZERO), None);
    }
}
