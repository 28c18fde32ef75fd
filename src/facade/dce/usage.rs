//! `GET /usage`: spend records, one per principal, account and UTC day, derived from the daily
//! costs the lease controller keeps in each Lease's status and, for leases deleted since, in
//! the principals' usage stores. DCE's three query forms:
//! `startDate` + `endDate` (summed per principal), `startDate` + `principalId` (daily rows from
//! that day on), and otherwise a filtered list (`principalId`, `accountId`, `startDate`) paged
//! with `limit` and the `next…` cursor.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};

use super::paging::{self, parse_query};
use super::{Caller, DceError};
use crate::facade::{Credentials, FacadeState};
use crate::lifecycle::usage::{day_start, utc_day};
use crate::lifecycle::usage_store::{StoredDay, days_of_gone_leases, stored_days, time_to_live};
use crate::resources::Lease;

const DAY_SECONDS: i64 = 86_400;

/// A usage record in DCE's JSON shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageView {
    principal_id: String,
    account_id: String,
    start_date: i64,
    end_date: i64,
    cost_amount: f64,
    cost_currency: String,
    time_to_live: i64,
}

impl UsageView {
    fn key(&self) -> (i64, &str, &str) {
        (self.start_date, &self.principal_id, &self.account_id)
    }
}

/// One day's cost of one lease: from a Lease's status, or from the store for a deleted lease.
struct DayCost<'a> {
    principal_id: &'a str,
    account_id: &'a str,
    date: jiff::civil::Date,
    amount: f64,
    currency: &'a str,
}

/// The daily costs recorded in `leases`' status.
fn lease_days<'a>(
    leases: impl IntoIterator<Item = &'a Lease>,
) -> impl Iterator<Item = DayCost<'a>> {
    leases.into_iter().flat_map(|lease| {
        let status = lease.status.as_ref();
        let usage = status.and_then(|s| s.usage.as_ref());
        let account = status.and_then(|s| s.account_id.as_deref());
        usage
            .zip(account)
            .into_iter()
            .flat_map(move |(usage, account)| {
                usage.daily.iter().filter_map(move |day| {
                    Some(DayCost {
                        principal_id: &lease.spec.principal_id,
                        account_id: account,
                        date: day.date.parse().ok()?,
                        amount: day.amount,
                        currency: &usage.currency,
                    })
                })
            })
    })
}

/// The stored daily costs of deleted leases.
fn stored_lease_days<'a>(
    days: impl IntoIterator<Item = &'a StoredDay>,
) -> impl Iterator<Item = DayCost<'a>> {
    days.into_iter().map(|day| DayCost {
        principal_id: &day.principal_id,
        account_id: &day.entry.account_id,
        date: day.date,
        amount: day.entry.amount,
        currency: &day.entry.currency,
    })
}

/// Every live record: the daily costs given, summed per principal, account and day, without
/// the ones past their time to live; ordered by day, principal, account.
fn records<'a>(
    days: impl IntoIterator<Item = DayCost<'a>>,
    retention: SignedDuration,
    now: Timestamp,
) -> Vec<UsageView> {
    let mut by_key: BTreeMap<(i64, String, String), UsageView> = BTreeMap::new();
    for day in days {
        let start = day_start(day.date);
        let time_to_live = time_to_live(day.date, retention);
        if time_to_live <= now {
            continue;
        }
        let key = (
            start.as_second(),
            day.principal_id.to_string(),
            day.account_id.to_string(),
        );
        by_key
            .entry(key)
            .and_modify(|record| record.cost_amount += day.amount)
            .or_insert_with(|| UsageView {
                principal_id: day.principal_id.to_string(),
                account_id: day.account_id.to_string(),
                start_date: start.as_second(),
                end_date: start.as_second() + DAY_SECONDS - 1,
                cost_amount: day.amount,
                cost_currency: day.currency.to_string(),
                time_to_live: time_to_live.as_second(),
            });
    }
    by_key.into_values().collect()
}

/// Records from the day of `start` through `end`, one per principal with the sum of their
/// cost and the query's dates, ordered by principal (DCE's date-range form).
fn summed_per_principal(records: Vec<UsageView>, start: i64, end: i64) -> Vec<UsageView> {
    let first_day = day_start_of(start);
    let mut by_principal: BTreeMap<String, UsageView> = BTreeMap::new();
    for record in records
        .into_iter()
        .filter(|r| r.start_date >= first_day && r.start_date <= end)
    {
        by_principal
            .entry(record.principal_id.clone())
            .and_modify(|sum| sum.cost_amount += record.cost_amount)
            .or_insert(UsageView {
                start_date: start,
                end_date: end,
                ..record
            });
    }
    by_principal.into_values().collect()
}

/// Start of the UTC day of an epoch second.
fn day_start_of(epoch: i64) -> i64 {
    Timestamp::from_second(epoch)
        .map(|at| day_start(utc_day(at)).as_second())
        .unwrap_or(epoch)
}

/// An epoch-seconds parameter; `what` names it in DCE's parse error, which quotes Go's
/// integer parser.
fn epoch(query: &HashMap<String, String>, name: &str, what: &str) -> Result<Option<i64>, DceError> {
    query
        .get(name)
        .map(|text| {
            let problem = match text.parse::<i64>() {
                Ok(seconds) if Timestamp::from_second(seconds).is_ok() => return Ok(seconds),
                Ok(_) => "value out of range",
                Err(error) if *error.kind() == std::num::IntErrorKind::PosOverflow => {
                    "value out of range"
                }
                Err(error) if *error.kind() == std::num::IntErrorKind::NegOverflow => {
                    "value out of range"
                }
                Err(_) => "invalid syntax",
            };
            Err(DceError::validation(format!(
                "Failed to parse usage {what}: strconv.ParseInt: parsing {text:?}: {problem}"
            )))
        })
        .transpose()
}

pub async fn list(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    credentials: Credentials,
    RawQuery(raw): RawQuery,
) -> Result<Response, DceError> {
    let caller = Caller::authorize_leases(&state, &credentials, "list").await?;
    let query = parse_query(raw.as_deref());
    let start = epoch(&query, "startDate", "start date")?;
    let end = epoch(&query, "endDate", "end date")?;
    let principal = query.get("principalId").filter(|p| !p.is_empty());
    let now = Timestamp::now();
    let cached = state.leases.store().state();
    let stores = state.usage_stores.state();
    let stored = stored_days(stores.iter().map(|s| s.as_ref()));
    let gone = days_of_gone_leases(&stored, cached.iter().map(|lease| lease.as_ref()));
    // A user who is not an admin sees only their own usage.
    let visible = |principal: &str| caller.admin || principal == caller.user.username;
    let days = lease_days(cached.iter().map(|lease| lease.as_ref()))
        .chain(stored_lease_days(gone))
        .filter(|day| visible(day.principal_id));
    let all = records(days, state.settings.policy.usage_retention, now);

    if let (Some(start), Some(end)) = (start, end) {
        if start > end {
            return Err(DceError::validation(
                "invalid request parameters: startDate must not be after endDate",
            ));
        }
        return Ok(axum::Json(summed_per_principal(all, start, end)).into_response());
    }
    if let (Some(start), Some(principal)) = (start, principal) {
        let first_day = day_start_of(start);
        let rows: Vec<UsageView> = all
            .into_iter()
            .filter(|r| r.principal_id == *principal && r.start_date >= first_day)
            .collect();
        return Ok(axum::Json(rows).into_response());
    }

    // The filtered list.
    let limit = paging::limit(&query)?;
    let account = query.get("accountId").filter(|a| !a.is_empty());
    let day = start.map(day_start_of);
    let cursor = match query.get("nextStartDate") {
        Some(text) => Some((
            text.parse::<i64>().map_err(|_| {
                DceError::validation(format!(
                    "invalid request parameters: nextStartDate must be epoch seconds, not {text:?}"
                ))
            })?,
            query.get("nextPrincipalId").cloned().unwrap_or_default(),
            query.get("nextAccountId").cloned().unwrap_or_default(),
        )),
        None => None,
    };
    let mut page: Vec<UsageView> = all
        .into_iter()
        .filter(|r| principal.is_none_or(|p| r.principal_id == *p))
        .filter(|r| account.is_none_or(|a| r.account_id == *a))
        .filter(|r| day.is_none_or(|d| r.start_date == d))
        .filter(|r| {
            cursor
                .as_ref()
                .is_none_or(|(s, p, a)| r.key() > (*s, p.as_str(), a.as_str()))
        })
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let next = match (more, page.last()) {
        (true, Some(last)) => Some(vec![
            ("nextStartDate", last.start_date.to_string()),
            ("nextPrincipalId", last.principal_id.clone()),
            ("nextAccountId", last.account_id.clone()),
        ]),
        _ => None,
    };
    Ok(paging::page_response(
        page,
        &headers,
        "/usage",
        &query,
        next.as_deref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{DailyCost, LeaseSpec, LeaseStatus, LeaseUsage};

    fn lease(principal: &str, account: &str, days: &[(&str, f64)]) -> Lease {
        let mut lease = Lease::new("l", LeaseSpec::for_principal(principal));
        lease.status = Some(LeaseStatus {
            account_id: Some(account.into()),
            usage: Some(LeaseUsage {
                daily: days
                    .iter()
                    .map(|(d, a)| DailyCost {
                        date: d.to_string(),
                        amount: *a,
                    })
                    .collect(),
                total: days.iter().map(|(_, a)| a).sum(),
                currency: "USD".into(),
                ..LeaseUsage::default()
            }),
            ..LeaseStatus::default()
        });
        lease
    }

    fn epoch_of(day: &str) -> i64 {
        day_start(day.parse().unwrap()).as_second()
    }

    #[test]
    fn records_are_per_principal_account_and_day_and_expire() {
        let leases = [
            lease(
                "alice",
                "111111111111",
                &[("2026-11-20", 1.0), ("2026-11-21", 2.0)],
            ),
            // A second lease of alice on the same account and day adds up.
            lease("alice", "111111111111", &[("2026-11-21", 0.5)]),
            lease("bob", "222222222222", &[("2026-11-21", 4.0)]),
        ];
        let now = "2026-11-22T00:00:00Z".parse().unwrap();
        let all = records(
            lease_days(&leases),
            SignedDuration::from_hours(24 * 30),
            now,
        );
        let summary: Vec<(i64, &str, f64)> = all
            .iter()
            .map(|r| (r.start_date, r.principal_id.as_str(), r.cost_amount))
            .collect();
        assert_eq!(
            summary,
            vec![
                (epoch_of("2026-11-20"), "alice", 1.0),
                (epoch_of("2026-11-21"), "alice", 2.5),
                (epoch_of("2026-11-21"), "bob", 4.0),
            ]
        );
        assert_eq!(all[0].end_date, epoch_of("2026-11-21") - 1);
        assert_eq!(
            all[0].time_to_live,
            epoch_of("2026-11-20") + 30 * DAY_SECONDS
        );
        // One day of retention: the first day's record has lived out its time.
        let short = records(lease_days(&leases), SignedDuration::from_hours(36), now);
        assert_eq!(short.len(), 2);
    }

    #[test]
    fn stored_days_of_deleted_leases_join_the_live_records() {
        use crate::lifecycle::usage_store::StoredEntry;
        let live = [lease("alice", "111111111111", &[("2026-11-21", 2.0)])];
        let stored = |date: &str, amount: f64| StoredDay {
            principal_id: "alice".into(),
            lease_uid: "gone".into(),
            date: date.parse().unwrap(),
            entry: StoredEntry {
                account_id: "111111111111".into(),
                amount,
                currency: "USD".into(),
                lease: "team-a/gone".into(),
            },
        };
        let gone = [stored("2026-11-21", 0.5), stored("2026-11-22", 3.0)];
        let now = "2026-11-23T00:00:00Z".parse().unwrap();
        let all = records(
            lease_days(&live).chain(stored_lease_days(&gone)),
            SignedDuration::from_hours(24 * 30),
            now,
        );
        let summary: Vec<(i64, f64)> = all.iter().map(|r| (r.start_date, r.cost_amount)).collect();
        assert_eq!(
            summary,
            vec![(epoch_of("2026-11-21"), 2.5), (epoch_of("2026-11-22"), 3.0)]
        );
    }

    #[test]
    fn date_range_sums_per_principal_with_the_query_dates() {
        let leases = [
            lease(
                "alice",
                "111111111111",
                &[("2026-11-20", 1.0), ("2026-11-21", 2.0)],
            ),
            lease("alice", "333333333333", &[("2026-11-22", 8.0)]),
            lease("bob", "222222222222", &[("2026-11-21", 4.0)]),
        ];
        let now = "2026-11-23T00:00:00Z".parse().unwrap();
        let all = records(
            lease_days(&leases),
            SignedDuration::from_hours(24 * 30),
            now,
        );
        // From the middle of the 21st (its whole day counts) to the end of the 21st.
        let start = epoch_of("2026-11-21") + 3600;
        let end = epoch_of("2026-11-22") - 1;
        let summed = summed_per_principal(all, start, end);
        let summary: Vec<(&str, f64, i64, i64)> = summed
            .iter()
            .map(|r| {
                (
                    r.principal_id.as_str(),
                    r.cost_amount,
                    r.start_date,
                    r.end_date,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![("alice", 2.0, start, end), ("bob", 4.0, start, end)]
        );
    }
}
