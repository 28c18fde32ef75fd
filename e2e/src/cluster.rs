//! A test cluster: a real control plane with the CRDs installed, plus moto for AWS.
//!
//! Everything started here is stopped when the value is dropped.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::control_plane::{ControlPlane, ControlPlaneConfig};
use crate::moto::Moto;

/// Namespace the operator runs in during tests.
pub const OPERATOR_NAMESPACE: &str = "dce-system";

pub struct TestCluster {
    pub control_plane: ControlPlane,
    pub moto: Moto,
    pub client: Client,
}

/// The repository's `crds/` directory.
pub fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("crds")
}

/// A kube client for `kubeconfig` YAML.
pub async fn client_for(kubeconfig: &str) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Installs the crypto provider kube's TLS stack needs when two are compiled in.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl TestCluster {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(ControlPlaneConfig::default()).await
    }

    /// Starts a control plane with `config`, installs the CRDs, then starts the
    /// controller-manager (so its garbage collector knows the CRDs from the start).
    pub async fn start_with(config: ControlPlaneConfig) -> anyhow::Result<Self> {
        install_crypto_provider();
        let mut control_plane = ControlPlane::start(ControlPlaneConfig {
            defer_controller_manager: true,
            ..config
        })
        .await?;
        let client = control_plane.admin_client().await?;
        install_crds(&client).await?;
        control_plane.start_controller_manager().await?;
        create_namespace(&client, OPERATOR_NAMESPACE).await?;
        let moto = Moto::start().await?;
        Ok(Self {
            control_plane,
            moto,
            client,
        })
    }

    /// Creates a namespace for a test's leases.
    pub async fn namespace(&self, name: &str) -> anyhow::Result<()> {
        create_namespace(&self.client, name).await
    }

    pub async fn stop(self) {
        self.control_plane.shutdown().await;
    }
}

/// Applies every CRD in `crds/` and waits until each is Established.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(crd_dir()).context("reading crds/")? {
        let path = entry?.path();
        let is_crd = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".dce.dev.yaml"));
        if !is_crd {
            continue;
        }
        let crd: CustomResourceDefinition = serde_yaml::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("parsing {}", path.display()))?;
        names.push(crd.metadata.name.clone().unwrap_or_default());
        api.create(&PostParams::default(), &crd)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
    }
    for name in names {
        wait_for(Duration::from_secs(10), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await.ok()?;
                let established = crd
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            }
        })
        .await
        .with_context(|| format!("CRD {name} not established"))?;
    }
    Ok(())
}

/// Creates namespace `name`; one that exists already is fine.
pub async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match namespaces.create(&PostParams::default(), &namespace).await {
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        created => created.map(|_| ()).map_err(Into::into),
    }
}

/// Polls `check` until it yields a value or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_every(Duration::from_millis(25), timeout, check).await
}

/// [`wait_for`], checking once every `period`: for waits of minutes (Pods, Jobs), which would
/// cost the API server thousands of requests at the short period.
pub async fn wait_for_every<T, F, Fut>(
    period: Duration,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(period).await;
    }
}

/// How a Job's pod ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Complete,
    Failed,
}

/// How long the Job controller may take to create a Job's pod or record its end.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// Ends the running pod of Job `name` as a kubelet would report it (phase Succeeded or Failed,
/// through the pod's status subresource), then waits until the Job controller has recorded the
/// outcome on the Job (or the Job is gone: its owner may delete it as soon as it has finished).
/// No kubelet runs on the test control plane, so pods never end by themselves.
pub async fn finish_job(
    client: &Client,
    namespace: &str,
    name: &str,
    outcome: JobOutcome,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let selector = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}"));
    let pod = wait_for(JOB_TIMEOUT, || async {
        let listed = pods.list(&selector).await.ok()?;
        listed.items.into_iter().find(|pod| {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
    })
    .await
    .with_context(|| format!("the Job controller created no running pod for Job {name}"))?;
    let (phase, condition) = match outcome {
        JobOutcome::Complete => ("Succeeded", "Complete"),
        JobOutcome::Failed => ("Failed", "Failed"),
    };
    pods.patch_status(
        &pod.metadata.name.unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": { "phase": phase } })),
    )
    .await
    .with_context(|| format!("ending the pod of Job {name}"))?;
    wait_for(JOB_TIMEOUT, || async {
        let Some(job) = jobs.get_opt(name).await.ok()? else {
            return Some(());
        };
        let finished = job
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == condition && c.status == "True");
        finished.then_some(())
    })
    .await
    .with_context(|| format!("Job {name} never became {condition}"))
}
