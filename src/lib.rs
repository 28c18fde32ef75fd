//! dce-operator: leases disposable AWS accounts from a pool, as Kubernetes custom resources.
//!
//! Layers, top to bottom (arrows point down only):
//! `operator` (wiring) → `controllers`, `http` → `lifecycle`, `aws` → `resources`.

pub mod aws;
pub mod config;
pub mod controllers;
pub mod facade;
pub mod fanout;
pub mod http;
pub mod kube_client;
pub mod leader;
pub mod lifecycle;
pub mod metrics;
pub mod operator;
pub mod progress;
pub mod resources;
pub mod telemetry;
pub mod tls;
