//! Usage records: when to read a lease's cost, how fetched days fold into its record, what was
//! spent since a day, and how long usage outlives its lease. Budget rules are in
//! [`super::budget`].

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::resources::{DailyCost, LeaseUsage};

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
