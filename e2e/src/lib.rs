//! End-to-end suite helpers and the benchmark for dce-operator.

pub mod cluster;
pub mod moto;
