//! The Helm chart and the kustomize base, with the real Helm CLI and kubectl against a real
//! control plane: lint and values schema, install / upgrade / uninstall, the restricted Pod
//! Security Standard, RBAC derived from a recorded run of the operator, and `config/`.

#[path = "../common/mod.rs"]
mod common;

mod admission;
mod chart;
mod config;
mod pod_security;
mod rbac;
mod reset;

use dce_e2e::helm::Helm;
use serde_json::Value;

pub use dce_e2e::chart_cluster::{Cluster, NAMESPACE, RELEASE};

/// The chart's objects for `values`, as `helm template` renders them.
pub async fn render(values: &Value) -> anyhow::Result<Vec<Value>> {
    Helm::template(RELEASE, NAMESPACE, &dce_e2e::helm::chart_dir(), values).await
}

/// The object of `kind` named `name` among `objects`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// The single object of `kind` among `objects`.
pub fn only<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}
