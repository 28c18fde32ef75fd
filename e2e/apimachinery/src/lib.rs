//! Pure Kubernetes API machinery used by the local control plane.
//!
//! Everything here is a function of its inputs: no I/O, no clocks except where a caller passes
//! a time in. The server crate wires these into HTTP handlers.

pub mod apply;
mod go_format;
pub mod names;
pub mod patch;
pub mod rbac;
pub mod schema;
pub mod selector;
