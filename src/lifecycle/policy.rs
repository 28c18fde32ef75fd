//! Operator-wide settings the lifecycle decisions depend on.

use jiff::SignedDuration;

/// Limits and defaults applied to leases (DCE's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct LeasePolicy {
    /// Longest lease allowed, from creation to expiry.
    pub max_lease_period: SignedDuration,
    /// Lease period when the lease names neither `expiresOn` nor `duration`.
    pub default_lease_period: SignedDuration,
    /// Largest `budgetAmount` allowed; also the default budget.
    pub max_budget: f64,
    /// Refuse a lease for a principal that already holds an active or pending one.
    pub one_active_lease_per_principal: bool,
    /// How long an Inactive lease is kept as history before it is removed.
    pub history_retention: SignedDuration,
    /// Lifetime requested for lease credentials (STS DurationSeconds).
    pub credentials_lifetime: SignedDuration,
}

impl Default for LeasePolicy {
    fn default() -> Self {
        Self {
            max_lease_period: SignedDuration::from_secs(604_800),
            default_lease_period: SignedDuration::from_secs(604_800),
            max_budget: 1000.0,
            one_active_lease_per_principal: true,
            history_retention: SignedDuration::from_hours(24 * 30),
            credentials_lifetime: SignedDuration::from_hours(1),
        }
    }
}

/// How accounts are cleaned between leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetMode {
    /// Run a reset Job; the account is Ready when it succeeds.
    Job,
    /// No cleanup: a released account is Ready again at once.
    Disabled,
}
