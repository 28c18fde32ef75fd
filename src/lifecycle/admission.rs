//! Lease admission: whether a new lease is within the limits, and the terms it is granted.
//! Its messages are DCE's, and the REST API, the lease status and its Event share them.

use jiff::{SignedDuration, Timestamp};

use super::{LeasePolicy, budget};
use crate::resources::{Lease, check_free_form};

/// What a lease was granted at admission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Terms {
    pub expires_on: Timestamp,
    pub budget_amount: f64,
}

/// Why a lease was refused. The message starts with the offending field, as DCE's do, and is
/// shown in the lease status, its event and (see [`Rejection::api_message`]) the REST API.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub limit: Limit,
    pub message: String,
}

impl Rejection {
    /// The message as DCE's API words a refused lease.
    pub fn api_message(&self) -> String {
        validation_error_message(&self.message)
    }
}

/// DCE's wording of a lease refused for `detail` (a status message, which starts with the field).
pub fn validation_error_message(detail: &str) -> String {
    format!("lease validation error: {detail}.")
}

/// DCE's wording of a refused lease of a principal that already holds one. `account` is the
/// account the refused request would have been given (DCE picks it before it looks at the
/// principal's leases), not the one the principal holds.
pub fn already_leased_message(principal: &str, account: &str) -> String {
    format!("lease \"with principal {principal} and account {account}\" already exists")
}

/// Which limit a refused lease broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Its own terms: expiry, period, budget.
    Terms,
    /// The principal already has an unfinished lease.
    OneLeasePerPrincipal,
    /// The principal has spent more than the period budget.
    PrincipalBudget,
}

fn reject(message: String) -> Result<Terms, Rejection> {
    Err(Rejection {
        limit: Limit::Terms,
        message,
    })
}

/// Refusal of a new lease for a principal already over the period budget.
pub fn principal_budget_rejection(
    principal: &str,
    principal_period_spend: f64,
    policy: &LeasePolicy,
) -> Option<Rejection> {
    budget::principal_over_budget(principal, principal_period_spend, policy).map(|message| {
        Rejection {
            limit: Limit::PrincipalBudget,
            message,
        }
    })
}

/// Parses `duration` (`90m`, `8h`, `1d12h`, `3600s`).
pub fn parse_duration(text: &str) -> Option<SignedDuration> {
    let mut total: i64 = 0;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let value: i64 = digits.parse().ok()?;
        digits.clear();
        total = total.checked_add(value.checked_mul(unit)?)?;
    }
    (digits.is_empty() && !text.is_empty()).then(|| SignedDuration::from_secs(total))
}

/// Checks a lease against the limits and works out its terms. `created` is the lease's
/// creation time; the period is measured from it.
pub fn admit(lease: &Lease, created: Timestamp, policy: &LeasePolicy) -> Result<Terms, Rejection> {
    let spec = &lease.spec;
    if let Some(Err(message)) = spec
        .metadata
        .as_ref()
        .map(|m| check_free_form("metadata", m))
    {
        return reject(message);
    }
    let expires_on = match (&spec.expires_on, &spec.duration) {
        (Some(_), Some(_)) => {
            return reject("expiresOn: set at most one of expiresOn and duration".to_string());
        }
        (Some(at), None) => at.0,
        (None, Some(text)) => {
            match parse_duration(text).and_then(|d| created.checked_add(d).ok()) {
                Some(at) => at,
                None => {
                    return reject(format!(
                        "duration: {text:?} is not a duration such as 90m, 8h or 7d"
                    ));
                }
            }
        }
        (None, None) => created + policy.default_lease_period,
    };
    if expires_on <= created {
        return reject(format!(
            "expiresOn: Requested lease has a desired expiry date less than today: {}",
            expires_on.as_second()
        ));
    }
    if expires_on.duration_since(created) > policy.max_lease_period {
        return reject(format!(
            "expiresOn: Requested lease has a budget expires on of {}, which is greater than max lease period of {}",
            expires_on.as_second(),
            (created + policy.max_lease_period).as_second()
        ));
    }
    let budget_amount = spec.budget_amount.unwrap_or(policy.max_budget);
    if !budget_amount.is_finite() || budget_amount < 0.0 {
        return reject(format!(
            "budgetAmount: {budget_amount} must be a non-negative number"
        ));
    }
    if budget_amount > policy.max_budget {
        return reject(format!(
            "budgetAmount: Requested lease has a budget amount of {budget_amount:.6}, which is greater than max lease budget amount of {:.6}",
            policy.max_budget
        ));
    }
    Ok(Terms {
        expires_on,
        budget_amount,
    })
}

#[cfg(test)]
mod tests;
