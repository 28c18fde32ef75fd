//! End-to-end suite helpers and the benchmark for dce-operator.

pub mod cluster;
pub mod helm;
pub mod kubectl;
pub mod moto;
pub mod operator_process;
pub mod target;
