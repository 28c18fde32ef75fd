//! End-to-end suite helpers and the benchmark for dce-operator.

pub mod aws_account;
pub mod browser;
pub mod chart_cluster;
pub mod cluster;
pub mod connect_proxy;
pub mod control_plane;
pub mod dce_cli;
pub mod helm;
pub mod http;
pub mod https;
pub mod kubectl;
pub mod moto;
pub mod node;
pub mod node_cluster;
pub mod oidc;
pub mod operator_process;
pub mod outage;
pub mod process;
pub mod target;
pub mod tls;
pub mod tls_front;
