//! End-to-end suite helpers and the benchmark for dce-operator.

pub mod aws_account;
pub mod cluster;
pub mod control_plane;
pub mod helm;
pub mod http;
pub mod kubectl;
pub mod moto;
pub mod node;
pub mod node_cluster;
pub mod operator_process;
pub mod outage;
pub mod process;
pub mod target;
pub mod tls;
