//! Cost Explorer: an account's unblended cost per day, read with the account's own credentials.

use aws_sdk_costexplorer::types::{DateInterval, Granularity};
use jiff::civil::Date;

use super::{Aws, AwsError, Identity};

const GET_COST_AND_USAGE: &str = "ce:GetCostAndUsage";
const UNBLENDED_COST: &str = "UnblendedCost";

/// One day's cost as Cost Explorer reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct DayCost {
    pub date: Date,
    pub amount: f64,
    /// ISO 4217 code; empty if Cost Explorer named none.
    pub currency: String,
}

impl Aws {
    /// Unblended cost per day from `start` up to (not including) `end`, signed by `identity`
    /// (the account's admin access). Pages are followed, so this is one call per page.
    pub async fn daily_cost(
        &self,
        identity: Identity<'_>,
        start: Date,
        end: Date,
    ) -> Result<Vec<DayCost>, AwsError> {
        let invalid = |detail: String| AwsError::InvalidResponse {
            operation: GET_COST_AND_USAGE,
            detail,
        };
        let period = DateInterval::builder()
            .start(start.to_string())
            .end(end.to_string())
            .build()
            .map_err(|err| AwsError::InvalidRequest {
                operation: GET_COST_AND_USAGE,
                detail: err.to_string(),
            })?;
        let mut days = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut request = self
                .inner
                .cost_explorer
                .get_cost_and_usage()
                .time_period(period.clone())
                .granularity(Granularity::Daily)
                .metrics(UNBLENDED_COST);
            if let Some(token) = &page_token {
                request = request.next_page_token(token);
            }
            let mut request = request.customize();
            if let Some(credentials) = identity.credentials() {
                request = request.config_override(
                    aws_sdk_costexplorer::Config::builder().credentials_provider(credentials),
                );
            }
            let output = request
                .send()
                .await
                .map_err(|err| AwsError::from_sdk(GET_COST_AND_USAGE, err))?;
            for result in output.results_by_time() {
                let Some(date) = result
                    .time_period()
                    .and_then(|p| p.start().parse::<Date>().ok())
                else {
                    return Err(invalid("a result without a start date".to_string()));
                };
                let metric = result.total().and_then(|t| t.get(UNBLENDED_COST));
                let amount = match metric.and_then(|m| m.amount()) {
                    Some(text) => text
                        .parse::<f64>()
                        .ok()
                        .filter(|a| a.is_finite())
                        .ok_or_else(|| invalid(format!("amount {text:?} is not a number")))?,
                    None => 0.0,
                };
                days.push(DayCost {
                    date,
                    amount,
                    currency: metric
                        .and_then(|m| m.unit())
                        .unwrap_or_default()
                        .to_string(),
                });
            }
            page_token = output.next_page_token().map(str::to_string);
            if page_token.is_none() {
                return Ok(days);
            }
        }
    }
}
