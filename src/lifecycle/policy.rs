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
    /// Spend allowed to one principal per budget period, across all their leases.
    pub principal_budget: f64,
    /// The period `principal_budget` applies to.
    pub principal_budget_period: BudgetPeriod,
    /// How often an Active lease's spend is read from Cost Explorer.
    pub usage_collection_interval: SignedDuration,
    /// How long a day's usage record is kept (DCE's usage TTL): an ended lease is kept at least
    /// this long after its last recorded day.
    pub usage_retention: SignedDuration,
    /// Percentages of the lease budget announced once each when spend reaches them.
    pub budget_notice_thresholds: Vec<i32>,
}

/// The span a principal budget applies to (UTC, as DCE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPeriod {
    /// From Sunday 00:00.
    Weekly,
    /// From the first of the month, 00:00.
    Monthly,
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
            principal_budget: 1000.0,
            principal_budget_period: BudgetPeriod::Weekly,
            usage_collection_interval: SignedDuration::from_hours(1),
            usage_retention: SignedDuration::from_hours(24 * 30),
            budget_notice_thresholds: vec![75, 100],
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
