//! Pure lifecycle decisions: (resource, observations, now) → next state and actions.
//!
//! Nothing here performs I/O or reads a clock; controllers gather observations, call these
//! functions and carry out what they return. That keeps every transition unit-testable.

pub mod account;
pub mod admission;
pub mod api_keys;
pub mod backoff;
pub mod budget;
pub mod conditions;
pub mod credentials;
#[cfg(test)]
mod fixtures;
pub mod lease;
pub mod notice;
pub mod nuke;
pub mod policy;
pub mod principal;
pub mod provisioning;
pub mod sync;
pub mod usage;
pub mod usage_store;

pub use notice::Notice;
pub use policy::{BudgetPeriod, LeasePolicy, ResetMode};
