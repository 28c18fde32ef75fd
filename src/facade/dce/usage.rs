//! `GET /usage?startDate&endDate`: spend records in a date range. No usage is collected yet,
//! so every valid request gets an empty list.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;

use super::paging::parse_query;
use super::{Caller, DceError};
use crate::facade::{Access, FacadeState};

/// A usage record in DCE's JSON shape.
#[derive(Debug, serde::Serialize)]
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

/// An epoch-seconds date parameter.
fn date(
    query: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<Option<i64>, DceError> {
    query
        .get(name)
        .map(|text| {
            text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                DceError::validation(format!(
                    "invalid request parameters: {name} must be epoch seconds, not {text:?}"
                ))
            })
        })
        .transpose()
}

pub async fn list(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<UsageView>>, DceError> {
    Caller::authorize(&state, &headers, &Access::new("list", "leases")).await?;
    let query = parse_query(raw.as_deref());
    let start = date(&query, "startDate")?;
    let end = date(&query, "endDate")?;
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(DceError::validation(
            "invalid request parameters: startDate must not be after endDate",
        ));
    }
    Ok(Json(Vec::new()))
}
