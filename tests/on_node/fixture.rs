//! A control plane with a node, the local AWS endpoint, the images imported, and the chart's
//! values for this node.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dce_e2e::cluster::{install_crypto_provider, wait_for_every};
use dce_e2e::control_plane::{ControlPlane, ControlPlaneConfig};
use dce_e2e::helm::Helm;
use dce_e2e::kubectl::Kubectl;
use dce_e2e::moto::{Moto, workspace_root};
use dce_e2e::node::{Node, node_support};
use dce_e2e::process::free_port;
use dce_e2e::target::ScratchDir;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};

pub const NAMESPACE: &str = "dce-system";
pub const RELEASE: &str = "dce-operator";
pub const REGION: &str = "us-east-1";
/// The operator's own AWS identity on the local endpoint (any key pair: it has no auth).
const CREDENTIALS_SECRET: &str = "dce-operator-aws";
pub const PAUSE_IMAGE: &str = "localhost/pause:e2e";
pub const NUKE_IMAGE: &str = "localhost/aws-nuke:v3.64.1";
/// How long Pods may take to start on a loaded 2-core machine.
pub const POD_WAIT: Duration = Duration::from_secs(240);
/// Resource types the resets delete: what the tests leave in accounts, and what it hangs on.
pub const RESET_TYPES: &[&str] = &[
    "S3Bucket",
    "IAMUser",
    "IAMUserAccessKey",
    "IAMRole",
    "IAMRolePolicyAttachment",
    "IAMRolePolicy",
    "IAMPolicy",
    "EC2Instance",
    "LambdaFunction",
];
/// Buckets the documented filter example keeps.
pub const KEPT_BUCKETS: &str = "keep-*";

pub struct OnNode {
    pub node: Node,
    pub control_plane: ControlPlane,
    pub moto: Moto,
    pub client: Client,
    pub helm: Helm,
    pub kubectl: Kubectl,
    pub metrics_port: u16,
    pub api_port: u16,
    /// Holds the kubeconfig Helm and kubectl use.
    _scratch: ScratchDir,
}

fn images_dir() -> PathBuf {
    workspace_root().join("e2e/kube/images")
}

pub fn operator_image() -> (String, String) {
    (
        "localhost/dce-operator".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )
}

/// What stops a node here: a skip on a developer's machine, a failure in CI (where everything
/// the node needs is installed by `make test`).
fn unavailable(why: String) -> anyhow::Result<Option<OnNode>> {
    if std::env::var_os("CI").is_some() {
        anyhow::bail!("the node test cannot run in CI: {why}");
    }
    eprintln!("skipped: {why}");
    Ok(None)
}

impl OnNode {
    /// The cluster, or `None` (after saying why) where no node can run.
    pub async fn start() -> anyhow::Result<Option<Self>> {
        if let Err(why) = node_support() {
            return unavailable(why);
        }
        let archives =
            ["dce-operator.tar", "pause.tar", "aws-nuke.tar"].map(|a| images_dir().join(a));
        if let Some(missing) = archives.iter().find(|a| !a.is_file()) {
            return unavailable(format!(
                "{} not found: run `make images`",
                missing.display()
            ));
        }
        install_crypto_provider();
        let mut control_plane = ControlPlane::start(ControlPlaneConfig {
            workload_controllers: true,
            ..ControlPlaneConfig::default()
        })
        .await?;
        control_plane.start_controller_manager().await?;
        let node = Node::start(&mut control_plane, PAUSE_IMAGE).await?;
        for archive in &archives {
            let started = Instant::now();
            node.import_image(archive)?;
            let size = std::fs::metadata(archive)?.len();
            eprintln!(
                "imported {} ({:.1} MB) in {:?}",
                archive.display(),
                size as f64 / 1e6,
                started.elapsed()
            );
        }
        let moto = Moto::start().await?;
        let dir = ScratchDir::new()?;
        let kubeconfig = dir.path().join("kubeconfig");
        control_plane.write_kubeconfig(&kubeconfig, control_plane.admin_token())?;
        let kubectl = Kubectl::new(&kubeconfig);
        kubectl.create_namespace(NAMESPACE).await?;
        kubectl
            .ok(
                &[
                    "create",
                    "secret",
                    "generic",
                    CREDENTIALS_SECRET,
                    "-n",
                    NAMESPACE,
                    "--from-literal=AWS_ACCESS_KEY_ID=operator",
                    "--from-literal=AWS_SECRET_ACCESS_KEY=operator",
                ],
                None,
            )
            .await?;
        Ok(Some(Self {
            client: control_plane.admin_client().await?,
            helm: Helm::new(&kubeconfig, NAMESPACE),
            node,
            control_plane,
            moto,
            kubectl,
            metrics_port: free_port()?,
            api_port: free_port()?,
            _scratch: dir,
        }))
    }

    /// The chart's values for this node, with the reset Job's aws-nuke sent to `nuke_endpoint`.
    pub fn values(&self, nuke_endpoint: &str) -> Value {
        let (repository, tag) = operator_image();
        let apiserver_port = url::Url::parse(&self.control_plane.https_url())
            .ok()
            .and_then(|u| u.port())
            .unwrap_or(443);
        let aws = self.moto.endpoint();
        json!({
            "image": { "repository": repository, "tag": tag, "pullPolicy": "Never" },
            "hostNetwork": { "enabled": true },
            "api": { "port": self.api_port },
            "metrics": { "port": self.metrics_port },
            "aws": { "credentialsSecret": CREDENTIALS_SECRET },
            "config": { "stsEndpoint": aws, "iamEndpoint": aws, "logFilter": "info" },
            "usage": { "costExplorerEndpoint": aws },
            "reset": {
                "image": NUKE_IMAGE,
                "awsEndpoint": nuke_endpoint,
                "resourceTypes": RESET_TYPES,
                "nukeFilters": {
                    "S3Bucket": [{ "property": "Name", "type": "glob", "value": KEPT_BUCKETS }],
                },
            },
            // No kube-proxy here: the operator reaches the API server where it listens.
            "extraEnv": [
                { "name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1" },
                { "name": "KUBERNETES_SERVICE_PORT", "value": apiserver_port.to_string() },
            ],
        })
    }

    /// Waits until the Deployment's current generation runs, every replica available.
    pub async fn wait_rolled_out(&self) -> anyhow::Result<Deployment> {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), NAMESPACE);
        eventually(|| async {
            let deployment = deployments.get(RELEASE).await.ok()?;
            let status = deployment.status.clone()?;
            let wanted = deployment.spec.as_ref()?.replicas.unwrap_or(1);
            (status.observed_generation == deployment.metadata.generation
                && status.updated_replicas == Some(wanted)
                && status.available_replicas == Some(wanted)
                && status.replicas == Some(wanted))
            .then_some(deployment)
        })
        .await
    }

    /// What a failed step needs to be understood: the cluster's objects and the operator's log.
    pub async fn report(&self) {
        for args in [
            &["get", "accounts.dce.dev,leases.dce.dev", "-A", "-o", "yaml"][..],
            &["get", "deployments,pods,jobs,events", "-A", "-o", "wide"],
            &[
                "logs",
                "-n",
                NAMESPACE,
                "-l",
                "app.kubernetes.io/instance=dce-operator",
                "--tail=80",
            ],
            &[
                "logs",
                "-n",
                NAMESPACE,
                "-l",
                "dce.dev/account",
                "--tail=40",
            ],
        ] {
            match self.kubectl.run(args, None).await {
                Ok(outcome) => eprintln!(
                    "$ kubectl {}\n{}{}",
                    args.join(" "),
                    outcome.stdout,
                    outcome.stderr
                ),
                Err(e) => eprintln!("$ kubectl {}: {e:#}", args.join(" ")),
            }
        }
    }

    pub async fn stop(self) {
        let OnNode {
            node,
            control_plane,
            moto,
            ..
        } = self;
        node.shutdown()
            .await
            .expect("the node leaves nothing behind");
        drop(moto);
        control_plane.shutdown().await;
    }
}

/// Polls `check` every half second until it yields, for at most [`POD_WAIT`].
pub async fn eventually<T, F, Fut>(check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_every(Duration::from_millis(500), POD_WAIT, check).await
}
