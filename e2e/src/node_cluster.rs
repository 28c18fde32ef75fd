//! The operator as its users run it, on real nodes: a control plane with two nodes (kubelet,
//! containerd), moto as the local AWS endpoint, the images of `make images` imported, and the
//! chart's values for them. The node tests (`tests/on_node`) and `make dev-node` use it.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cluster::{install_crypto_provider, wait_for_every};
use crate::control_plane::{ControlPlane, ControlPlaneConfig};
use crate::helm::Helm;
use crate::kubectl::Kubectl;
use crate::moto::{Moto, workspace_root};
use crate::node::{Node, node_support};
use crate::process::free_port;
use crate::target::ScratchDir;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease as LeaderLock;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

pub const NAMESPACE: &str = "dce-system";
pub const RELEASE: &str = "dce-operator";
/// Selects the release's Pods.
pub const RELEASE_SELECTOR: &str = "app.kubernetes.io/instance=dce-operator";
/// The chart's leader lock (`leaderElection.leaseName`).
pub const LEADER_LOCK: &str = "dce-operator-leader";
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

/// The nodes' addresses: two nodes, so two replicas of the operator (host network, same
/// ports) each have one.
const NODE_ADDRESSES: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)];

pub struct NodeCluster {
    pub nodes: Vec<Node>,
    pub control_plane: ControlPlane,
    pub moto: Moto,
    pub client: Client,
    pub helm: Helm,
    pub kubectl: Kubectl,
    pub metrics_port: u16,
    pub api_port: u16,
    operator_tag: String,
    /// An admin kubeconfig (the one Helm and kubectl use).
    pub kubeconfig: PathBuf,
    _scratch: ScratchDir,
}

fn images_dir() -> PathBuf {
    workspace_root().join("e2e/kube/images")
}

/// The image archives `make images` writes.
const ARCHIVES: [&str; 3] = ["dce-operator.tar", "pause.tar", "aws-nuke.tar"];
/// The operator's image, as `make images` names it (the tag is the operator's version).
pub const OPERATOR_REPOSITORY: &str = "localhost/dce-operator";

/// Why the nodes cannot run here, if they cannot: no root, a missing binary or image.
pub fn node_cluster_support() -> Result<(), String> {
    node_support()?;
    match ARCHIVES
        .iter()
        .map(|a| images_dir().join(a))
        .find(|a| !a.is_file())
    {
        Some(missing) => Err(format!(
            "{} not found: run `make images`",
            missing.display()
        )),
        None => Ok(()),
    }
}

impl NodeCluster {
    /// The cluster, or `None` (after saying why) where no node can run.
    /// Starts everything, the operator's image tagged `operator_tag` (its version); see
    /// [`node_cluster_support`] for what it needs.
    pub async fn start(operator_tag: &str) -> anyhow::Result<Self> {
        node_cluster_support().map_err(anyhow::Error::msg)?;
        let archives = ARCHIVES.map(|a| images_dir().join(a));
        install_crypto_provider();
        let mut control_plane = ControlPlane::start(ControlPlaneConfig {
            workload_controllers: true,
            ..ControlPlaneConfig::default()
        })
        .await?;
        control_plane.start_controller_manager().await?;
        let mut nodes = Vec::new();
        for address in NODE_ADDRESSES {
            let node = Node::start_at(&mut control_plane, PAUSE_IMAGE, address).await?;
            for archive in &archives {
                let started = Instant::now();
                node.import_image(archive)?;
                let size = std::fs::metadata(archive)?.len();
                eprintln!(
                    "imported {} ({:.1} MB) into {} in {:?}",
                    archive.display(),
                    size as f64 / 1e6,
                    node.name(),
                    started.elapsed()
                );
            }
            nodes.push(node);
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
        Ok(Self {
            client: control_plane.admin_client().await?,
            helm: Helm::new(&kubeconfig, NAMESPACE),
            nodes,
            control_plane,
            moto,
            kubectl,
            metrics_port: free_port()?,
            api_port: free_port()?,
            operator_tag: operator_tag.to_string(),
            kubeconfig,
            _scratch: dir,
        })
    }

    /// The chart's values for this node, with the reset Job's aws-nuke sent to `nuke_endpoint`.
    pub fn values(&self, nuke_endpoint: &str) -> Value {
        let (repository, tag) = (OPERATOR_REPOSITORY, &self.operator_tag);
        let apiserver_port = self.control_plane.port();
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

    /// Waits until the Deployment's current generation runs, every replica available, no old
    /// Pod still stopping (a stopping leader reconciles on through its preStop sleep) and a
    /// current Pod holds the leader lock: the release's settings are in charge.
    pub async fn wait_rolled_out(&self) -> anyhow::Result<()> {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NAMESPACE);
        let locks: Api<LeaderLock> = Api::namespaced(self.client.clone(), NAMESPACE);
        let selector = ListParams::default().labels(RELEASE_SELECTOR);
        eventually(|| async {
            let deployment = deployments.get(RELEASE).await.ok()?;
            let status = deployment.status.clone()?;
            let wanted = deployment.spec.as_ref()?.replicas.unwrap_or(1);
            let current = status.observed_generation == deployment.metadata.generation
                && status.updated_replicas == Some(wanted)
                && status.available_replicas == Some(wanted)
                && status.replicas == Some(wanted);
            let running = pods.list(&selector).await.ok()?.items;
            let leader = locks.get(LEADER_LOCK).await.ok()?.spec?.holder_identity?;
            (current
                && running.len() == usize::try_from(wanted).ok()?
                && running
                    .iter()
                    .all(|p| p.metadata.deletion_timestamp.is_none())
                && running.iter().any(|p| p.name_any() == leader))
            .then_some(())
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
        let NodeCluster {
            nodes,
            control_plane,
            moto,
            ..
        } = self;
        for node in nodes {
            node.shutdown()
                .await
                .expect("the node leaves nothing behind");
        }
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
