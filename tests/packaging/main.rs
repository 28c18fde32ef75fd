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

use std::path::PathBuf;

use dce_e2e::cluster::install_crypto_provider;
use dce_e2e::control_plane::{ControlPlane, ControlPlaneConfig};
use dce_e2e::helm::{Helm, manifest_objects};
use dce_e2e::kubectl::Kubectl;
use dce_e2e::target::ScratchDir;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::Value;

/// Namespace and release name the chart is installed with.
pub const NAMESPACE: &str = "dce-system";
pub const RELEASE: &str = "dce-operator";

/// A control plane with the release namespace, and Helm and kubectl as its admin.
pub struct Cluster {
    pub control_plane: ControlPlane,
    pub client: Client,
    pub helm: Helm,
    pub kubectl: Kubectl,
    pub kubeconfig: PathBuf,
    pub dir: ScratchDir,
}

impl Cluster {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(ControlPlaneConfig::default()).await
    }

    pub async fn start_with(config: ControlPlaneConfig) -> anyhow::Result<Self> {
        install_crypto_provider();
        let control_plane = ControlPlane::start(config).await?;
        let dir = ScratchDir::new()?;
        let kubeconfig = dir.path().join("kubeconfig");
        control_plane.write_kubeconfig(&kubeconfig, control_plane.admin_token())?;
        let client = control_plane.admin_client().await?;
        let kubectl = Kubectl::new(&kubeconfig);
        kubectl.create_namespace(NAMESPACE).await?;
        Ok(Self {
            helm: Helm::new(&kubeconfig, NAMESPACE),
            control_plane,
            client,
            kubectl,
            kubeconfig,
            dir,
        })
    }

    /// Installs the chart with `values` and returns the objects it rendered.
    pub async fn install(&self, values: &Value) -> anyhow::Result<Vec<Value>> {
        let release = self
            .helm
            .install(RELEASE, &dce_e2e::helm::chart_dir(), values)
            .await?;
        manifest_objects(&release)
    }

    /// A kubeconfig for the operator binary with a token of the chart's ServiceAccount, issued
    /// by the API server (TokenRequest), as a pod's projected token would be.
    pub async fn operator_kubeconfig(&self) -> anyhow::Result<PathBuf> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), NAMESPACE);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let issued = accounts
            .create_token_request(RELEASE, &PostParams::default(), &request)
            .await?;
        let token = issued.status.map(|s| s.token).unwrap_or_default();
        let kubeconfig = self.dir.path().join("operator-kubeconfig");
        self.control_plane.write_kubeconfig(&kubeconfig, &token)?;
        Ok(kubeconfig)
    }

    pub async fn stop(self) {
        self.control_plane.shutdown().await;
    }
}

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
