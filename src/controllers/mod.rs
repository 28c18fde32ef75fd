//! Reconcilers: Accounts (validation, reset) and Leases (assignment, credentials, usage and
//! budgets, expiry).
//!
//! They gather observations, ask `lifecycle` what to do, and carry it out against the
//! Kubernetes API and AWS. Status is written by server-side apply under one field manager.

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

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "dce-operator";
