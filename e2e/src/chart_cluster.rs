//! A test control plane with the operator's Helm chart installed as a user installs it (its
//! RBAC, ServiceAccount and settings), and the operator binary run with the chart's
//! Deployment environment and a token of its ServiceAccount: the closest to a cluster that runs
//! without a node.

use std::path::PathBuf;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::cluster::install_crypto_provider;
use crate::control_plane::{ControlPlane, ControlPlaneConfig, StaticToken};
use crate::helm::{Helm, manifest_objects};
use crate::kubectl::Kubectl;
use crate::target::ScratchDir;

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
            .install(RELEASE, &crate::helm::chart_dir(), values)
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

/// A static token of `username` in `groups`.
pub fn static_token(token: &str, username: &str, groups: &[&str]) -> StaticToken {
    StaticToken {
        token: token.into(),
        username: username.into(),
        uid: format!("{username}-uid"),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// The operator's environment from the rendered Deployment, with the downward API resolved.
pub fn deployment_env(objects: &[Value]) -> Vec<(String, String)> {
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("the chart renders a Deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.namespace") => NAMESPACE.to_string(),
                Some("metadata.name") => "dce-operator-7d9f-abcde".to_string(),
                Some(other) => panic!("unexpected fieldRef {other}"),
                // The API server drops an empty value.
                None => e["value"].as_str().unwrap_or_default().to_string(),
            };
            (name, value)
        })
        .collect()
}

/// Binds ClusterRole `role` to `user`.
pub async fn bind(client: &Client, role: &str, user: &str) {
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": { "name": format!("{role}-{user}") },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}
