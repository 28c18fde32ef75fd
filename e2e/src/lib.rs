//! End-to-end suite helpers and the benchmark for dce-operator.

pub mod cluster;
pub mod control_plane;
pub mod helm;
pub mod kubectl;
pub mod moto;
pub mod operator_process;
pub mod outage;
pub mod process;
pub mod target;
