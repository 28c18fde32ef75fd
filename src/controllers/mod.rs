//! Reconcilers: Accounts (validation, provisioning, reset), Leases (assignment, credentials,
//! budgets, expiry) and the usage loop (Cost Explorer readings of Active leases).
//!
//! Each reconcile observes (the facts, into one value), decides (one call into `lifecycle`,
//! which returns the plan) and acts (carries the plan out against the Kubernetes API and AWS).
//! Status is written by server-side apply, and `status.usage` by a JSON Patch that replaces it
//! whole, under one field manager.

pub mod account;
pub mod api_keys;
mod arrivals;
mod context;
mod error;
mod events;
mod expectations;
pub mod lease;
mod notices;
pub mod principal;
mod reset;
mod secrets;
mod status;
pub mod usage;
mod usage_store;

pub use arrivals::Arrivals;
pub use context::{Context, Settings};
pub use error::Error;

/// Reconcile again at `at`, but no sooner than `floor` from now.
fn requeue_at(
    at: jiff::Timestamp,
    floor: std::time::Duration,
) -> kube::runtime::controller::Action {
    let wait = at.duration_since(jiff::Timestamp::now()).unsigned_abs();
    kube::runtime::controller::Action::requeue(wait.max(floor))
}

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "dce-operator";
