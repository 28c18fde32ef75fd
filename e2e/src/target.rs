//! The cluster an e2e test runs against, chosen by the environment:
//!
//! - by default, a fresh test control plane with the CRDs, moto for AWS and the operator binary
//!   as a child process — one of each per test, so tests run in parallel;
//! - with `DCE_E2E_KUBECONFIG=<path>`, that cluster, where the operator is already deployed
//!   (e.g. by `make kind-e2e`). Then `DCE_E2E_STS_ENDPOINT` must name the STS endpoint the
//!   operator uses, as reachable from the tests (to check the credentials it hands out);
//!   `DCE_E2E_OPERATOR_NAMESPACE` (default `dce-system`) and `DCE_E2E_OPERATOR_DEPLOYMENT`
//!   (default `dce-operator`) locate it. The operator must run with `--reset-mode=job` and a reset
//!   image that succeeds, the tests share its account pool, so run them one at a time
//!   (`--test-threads=1`); each test deletes the namespaces and Accounts it created.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rand::Rng;

use crate::cluster::{JobOutcome, OPERATOR_NAMESPACE, TestCluster, finish_job, wait_for};
use crate::kubectl::{Kubectl, text};
use crate::operator_process::{OperatorLaunch, OperatorProcess};

/// How the local operator cleans accounts between leases (on an external cluster the deployed
/// operator's configuration decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// `--reset-mode=disabled`: a released account is Ready at once.
    Disabled,
    /// `--reset-mode=job`: a reset Job runs first; locally the test completes it.
    Job,
}

/// How the local operator runs.
#[derive(Debug, Clone, Copy)]
pub struct OperatorOptions {
    pub reset: Reset,
    /// With leader election, a restarted process must take over the lock a killed one held.
    pub leader_election: bool,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        Self {
            reset: Reset::Disabled,
            leader_election: false,
        }
    }
}

/// Leader lock duration for local runs: short, so a replacement takes over a killed leader's
/// lock quickly.
const LOCAL_LEADER_LEASE_SECONDS: &str = "3";

enum Backend {
    Local {
        // Field order is drop order: the operator dies before the cluster it talks to.
        operator: Option<OperatorProcess>,
        launch: Box<OperatorLaunch>,
        starts: usize,
        /// Taken by [`E2e::finish`] to stop it cleanly.
        cluster: Option<Box<TestCluster>>,
    },
    External {
        deployment: String,
        /// Replicas to restore after a simulated crash.
        replicas: String,
    },
}

/// A cluster with the operator running, reached through kubectl.
pub struct E2e {
    backend: Backend,
    pub kubectl: Kubectl,
    /// STS endpoint (moto) as reachable from the test process.
    pub sts_endpoint: String,
    /// Namespace of the operator and its reset Jobs.
    pub operator_namespace: String,
    /// Reset mode of the operator under test.
    pub reset: Reset,
    /// How long to wait for the operator to act (longer on a real cluster, where reset Jobs run
    /// pods).
    pub patience: Duration,
    created_namespaces: Mutex<Vec<String>>,
    created_accounts: Mutex<Vec<String>>,
    dir: ScratchDir,
}

impl E2e {
    /// Connects to the cluster the environment names (see the module docs).
    pub async fn start(options: OperatorOptions) -> anyhow::Result<Self> {
        let dir = ScratchDir::new()?;
        match std::env::var_os("DCE_E2E_KUBECONFIG") {
            Some(kubeconfig) => Self::external(PathBuf::from(kubeconfig), dir).await,
            None => Self::local(options, dir).await,
        }
    }

    async fn local(options: OperatorOptions, dir: ScratchDir) -> anyhow::Result<Self> {
        let cluster = TestCluster::start().await?;
        let kubeconfig = dir.path().join("kubeconfig");
        cluster
            .control_plane
            .write_kubeconfig(&kubeconfig, cluster.control_plane.admin_token())?;
        let mut args = vec![
            format!("--namespace={OPERATOR_NAMESPACE}"),
            format!("--leader-election={}", options.leader_election),
            format!("--leader-lease-seconds={LOCAL_LEADER_LEASE_SECONDS}"),
        ];
        args.push(match options.reset {
            Reset::Disabled => "--reset-mode=disabled".to_string(),
            Reset::Job => "--reset-mode=job".to_string(),
        });
        let launch = OperatorLaunch {
            kubeconfig: kubeconfig.clone(),
            sts_endpoint: cluster.moto.endpoint(),
            args,
            env: vec![],
            log_dir: dir.path().to_path_buf(),
        };
        let operator = OperatorProcess::start(&launch, 0).await?;
        Ok(Self {
            sts_endpoint: cluster.moto.endpoint(),
            kubectl: Kubectl::new(&kubeconfig),
            backend: Backend::Local {
                operator: Some(operator),
                launch: Box::new(launch),
                starts: 1,
                cluster: Some(Box::new(cluster)),
            },
            operator_namespace: OPERATOR_NAMESPACE.to_string(),
            reset: options.reset,
            patience: Duration::from_secs(30),
            created_namespaces: Mutex::default(),
            created_accounts: Mutex::default(),
            dir,
        })
    }

    async fn external(kubeconfig: PathBuf, dir: ScratchDir) -> anyhow::Result<Self> {
        let sts_endpoint = std::env::var("DCE_E2E_STS_ENDPOINT").context(
            "DCE_E2E_STS_ENDPOINT must name the operator's STS endpoint as reachable from the tests",
        )?;
        let operator_namespace = env_or("DCE_E2E_OPERATOR_NAMESPACE", OPERATOR_NAMESPACE);
        let deployment = env_or("DCE_E2E_OPERATOR_DEPLOYMENT", "dce-operator");
        // A private copy: kubectl's cache then lives in the scratch directory.
        let private = dir.path().join("kubeconfig");
        std::fs::copy(&kubeconfig, &private)
            .with_context(|| format!("reading {}", kubeconfig.display()))?;
        let kubectl = Kubectl::new(&private);
        let target = format!("deployment/{deployment}");
        kubectl
            .wait(
                "condition=Available",
                &target,
                Some(&operator_namespace),
                Duration::from_secs(120),
            )
            .await
            .context("the operator must be deployed and available")?;
        let spec = kubectl
            .get_json("deployment", Some(&deployment), Some(&operator_namespace))
            .await?;
        let replicas = spec["spec"]["replicas"].as_u64().unwrap_or(1).to_string();
        Ok(Self {
            backend: Backend::External {
                deployment,
                replicas,
            },
            kubectl,
            sts_endpoint,
            operator_namespace,
            reset: Reset::Job,
            patience: Duration::from_secs(180),
            created_namespaces: Mutex::default(),
            created_accounts: Mutex::default(),
            dir,
        })
    }

    /// Whether this is the test control plane (where the test drives reset Jobs itself).
    pub fn is_local(&self) -> bool {
        matches!(self.backend, Backend::Local { .. })
    }

    /// Creates a namespace `<prefix>-<random>` and returns its name; deleted at the end on an
    /// external cluster.
    pub async fn namespace(&self, prefix: &str) -> anyhow::Result<String> {
        let suffix: u32 = rand::rng().random_range(0..0xffffff);
        let name = format!("{prefix}-{suffix:06x}");
        self.kubectl.create_namespace(&name).await?;
        lock(&self.created_namespaces).push(name.clone());
        Ok(name)
    }

    /// `kubectl apply -f -`, failing unless it succeeds; Accounts it creates are recorded for
    /// clean-up.
    pub async fn apply(&self, manifests: &str) -> anyhow::Result<String> {
        let outcome = self.kubectl.apply(manifests).await?;
        self.record_accounts(&outcome.stdout);
        if !outcome.success {
            bail!("kubectl apply failed: {}", outcome.stderr.trim());
        }
        Ok(outcome.stdout)
    }

    /// `kubectl apply -f <file>`, like [`E2e::apply`].
    pub async fn apply_file(&self, path: &Path) -> anyhow::Result<String> {
        let stdout = self.kubectl.apply_file(path).await?;
        self.record_accounts(&stdout);
        Ok(stdout)
    }

    fn record_accounts(&self, apply_output: &str) {
        let mut accounts = lock(&self.created_accounts);
        for line in apply_output.lines() {
            if let Some(rest) = line.strip_prefix("account.dce.dev/")
                && let Some(name) = rest.split_whitespace().next()
            {
                accounts.push(name.to_string());
            }
        }
    }

    /// Stops the operator abruptly: SIGKILL locally; on a cluster, the Deployment is scaled to
    /// zero and its pods are force-deleted (no graceful shutdown).
    pub async fn crash_operator(&mut self) -> anyhow::Result<()> {
        match &mut self.backend {
            Backend::Local { operator, .. } => {
                if let Some(process) = operator.take() {
                    process.kill();
                }
                Ok(())
            }
            Backend::External { deployment, .. } => {
                let deployment = deployment.clone();
                let namespace = self.operator_namespace.as_str();
                let target = format!("deployment/{deployment}");
                self.kubectl
                    .ok(&["scale", &target, "--replicas=0", "-n", namespace], None)
                    .await?;
                let selector = self.pod_selector(&deployment).await?;
                self.kubectl
                    .ok(
                        &[
                            "delete",
                            "pods",
                            "-l",
                            &selector,
                            "-n",
                            namespace,
                            "--grace-period=0",
                            "--force",
                        ],
                        None,
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Starts the operator again after [`E2e::crash_operator`] and waits until it is ready.
    pub async fn recover_operator(&mut self) -> anyhow::Result<()> {
        match &mut self.backend {
            Backend::Local {
                operator,
                launch,
                starts,
                ..
            } => {
                *operator = Some(OperatorProcess::start(launch, *starts).await?);
                *starts += 1;
                Ok(())
            }
            Backend::External {
                deployment,
                replicas,
            } => {
                let namespace = self.operator_namespace.as_str();
                let target = format!("deployment/{deployment}");
                let replicas = format!("--replicas={replicas}");
                self.kubectl
                    .ok(&["scale", &target, &replicas, "-n", namespace], None)
                    .await?;
                self.kubectl
                    .ok(
                        &[
                            "rollout",
                            "status",
                            &target,
                            "-n",
                            namespace,
                            "--timeout=180s",
                        ],
                        None,
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// `kubectl get deployment` → its pod selector as `k=v,…`.
    async fn pod_selector(&self, deployment: &str) -> anyhow::Result<String> {
        let object = self
            .kubectl
            .get_json(
                "deployment",
                Some(deployment),
                Some(&self.operator_namespace),
            )
            .await?;
        let labels = object["spec"]["selector"]["matchLabels"]
            .as_object()
            .context("the operator Deployment has no matchLabels selector")?;
        Ok(labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","))
    }

    /// Polls `check` until it yields a value, for up to [`E2e::patience`].
    pub async fn eventually<T, F, Fut>(&self, what: &str, check: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        wait_for(self.patience, check)
            .await
            .with_context(|| format!("waiting for {what}"))
    }

    /// Waits until Account `name` has `accountStatus` `phase`.
    pub async fn wait_account(&self, name: &str, phase: &str) -> anyhow::Result<()> {
        let waited = self
            .kubectl
            .wait(
                &format!("jsonpath={{.status.accountStatus}}={phase}"),
                &format!("accounts.dce.dev/{name}"),
                None,
                self.patience,
            )
            .await;
        if let Err(error) = waited {
            let status = self
                .kubectl
                .get_json("accounts.dce.dev", Some(name), None)
                .await
                .map(|account| account["status"].to_string())
                .unwrap_or_default();
            bail!("Account {name} never became {phase}: {error}; status: {status}");
        }
        Ok(())
    }

    /// The Lease object `name` in `namespace`.
    pub async fn lease(&self, namespace: &str, name: &str) -> anyhow::Result<serde_json::Value> {
        self.kubectl
            .get_json("leases.dce.dev", Some(name), Some(namespace))
            .await
    }

    /// The reset Jobs of Account `account` in the operator's namespace.
    pub async fn reset_jobs(&self, account: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let jobs = self
            .kubectl
            .list("jobs", Some(&self.operator_namespace))
            .await?;
        Ok(jobs
            .into_iter()
            .filter(|job| text(job, "/metadata/labels/dce.dev~1account") == account)
            .collect())
    }

    /// Waits for the reset Job Account `account` records in `status.resetJob` and returns its
    /// name. On the test control plane, where no kubelet runs, it then reports the Job's pod
    /// Succeeded, as a kubelet would, and the Job controller completes the Job; on a cluster
    /// with nodes the Job runs by itself.
    pub async fn complete_reset(&self, account: &str) -> anyhow::Result<String> {
        let name = self
            .eventually(&format!("the reset Job of account {account}"), || async {
                let recorded = self
                    .kubectl
                    .get_json("accounts.dce.dev", Some(account), None)
                    .await
                    .ok()?;
                let name = text(&recorded, "/status/resetJob");
                if name.is_empty() {
                    return None;
                }
                if !self.is_local() {
                    return Some(name.to_string());
                }
                let job = self
                    .kubectl
                    .get_json("job", Some(name), Some(&self.operator_namespace));
                (!job_finished(&job.await.ok()?)).then(|| name.to_string())
            })
            .await?;
        if let Backend::Local {
            cluster: Some(cluster),
            ..
        } = &self.backend
        {
            finish_job(
                &cluster.client,
                &self.operator_namespace,
                &name,
                JobOutcome::Complete,
            )
            .await?;
        }
        Ok(name)
    }

    /// Waits until a freshly applied or released Account is Ready; with reset Jobs on the local
    /// control plane it first completes the reset.
    pub async fn account_ready(&self, name: &str) -> anyhow::Result<()> {
        if self.reset == Reset::Job && self.is_local() {
            self.complete_reset(name).await?;
        }
        self.wait_account(name, "Ready").await
    }

    /// Stops what this test started: the operator, then the test control plane and moto
    /// (waiting until their ports are free). On an external cluster, dropping cleans up.
    pub async fn finish(mut self) {
        if let Backend::Local {
            operator, cluster, ..
        } = &mut self.backend
        {
            drop(operator.take());
            if let Some(cluster) = cluster.take() {
                cluster.stop().await;
            }
        }
    }
}

impl Drop for E2e {
    /// On an external cluster, deletes this test's namespaces (and so its Leases and Secrets),
    /// then its Accounts, so the next test starts with an empty pool. Local clusters just stop.
    fn drop(&mut self) {
        let namespaces = std::mem::take(&mut *lock(&self.created_namespaces));
        let accounts = std::mem::take(&mut *lock(&self.created_accounts));
        if self.is_local() {
            return;
        }
        let kubectl = |args: Vec<String>| {
            let _ = std::process::Command::new(crate::kubectl::kubectl_binary())
                .args(args)
                .env("KUBECONFIG", self.kubectl.kubeconfig())
                .env("HOME", self.dir.path())
                .status();
        };
        if !namespaces.is_empty() {
            let mut args = vec!["delete".to_string(), "namespace".to_string()];
            args.extend(namespaces);
            args.extend(["--ignore-not-found".into(), "--timeout=180s".into()]);
            kubectl(args);
        }
        if !accounts.is_empty() {
            let mut args = vec!["delete".to_string(), "accounts.dce.dev".to_string()];
            args.extend(accounts);
            args.extend(["--ignore-not-found".into(), "--timeout=300s".into()]);
            kubectl(args);
        }
    }
}

/// Whether a Job has its `Complete` or `Failed` condition.
fn job_finished(job: &serde_json::Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                matches!(text(c, "/type"), "Complete" | "Failed") && text(c, "/status") == "True"
            })
        })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// A private temporary directory, removed on drop.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new() -> anyhow::Result<Self> {
        let suffix: u64 = rand::rng().random();
        let path =
            std::env::temp_dir().join(format!("dce-e2e-{}-{suffix:016x}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
