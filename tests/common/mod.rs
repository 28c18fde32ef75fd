//! Shared by the controller test binaries: the real operator running in-process against the
//! test control plane and moto, and the fixtures and checks the tests have in common.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::Context as _;

use dce_e2e::cluster::{OPERATOR_NAMESPACE, TestCluster, wait_for};
use dce_operator::aws::{Aws, AwsSettings, StaticKeys, TemporaryCredentials};
use dce_operator::controllers::Settings;
use dce_operator::kube_client;
use dce_operator::leader::{self, Election};
use dce_operator::lifecycle::principal::DEFAULT_POLICY_TEMPLATE;
use dce_operator::lifecycle::{LeasePolicy, ResetMode};
use dce_operator::metrics::Metrics;
use dce_operator::operator::{self, Caches};
use dce_operator::resources::{Account, AccountPhase, AccountSpec, Lease, LeasePhase, LeaseSpec};
use jiff::SignedDuration;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::events::Reporter;
use tokio::sync::watch;

pub mod facade;
mod invariant;
// Each test binary uses part of it.
#[allow(unused_imports)]
pub use invariant::{active_lease_names, assert_pool_consistent, assert_pool_safe, check_pool};

/// How long a test waits for the operator to converge.
pub const WAIT: Duration = Duration::from_secs(30);
/// Name of the leader-election lock in the tests.
pub const LEADER_LEASE: &str = "dce-operator-leader";

/// How the in-process operator is configured.
pub struct OperatorOptions {
    pub reset_mode: ResetMode,
    /// The operator's own AWS identity (moto accepts any keys unless it enforces auth).
    pub operator_keys: StaticKeys,
    /// Event reporter instance and, with leader election, the lock holder's identity.
    pub identity: String,
    /// Take part in leader election, with this lock duration in seconds.
    pub leader_lease_seconds: Option<u64>,
    /// Lease limits, budgets and usage collection; by default a principal may hold several
    /// leases, which most tests use.
    pub policy: LeasePolicy,
    /// Where budget notices are POSTed.
    pub budget_webhook: Option<url::Url>,
    /// Cost Explorer endpoint, if not moto's.
    pub cost_explorer_endpoint: Option<String>,
    /// STS endpoint, if not moto's.
    pub sts_endpoint: Option<String>,
    /// The principal policy template.
    pub principal_policy_template: String,
    /// How long each Kubernetes API call may take to start answering.
    pub kube_call_deadline: Duration,
}

impl OperatorOptions {
    pub fn new(reset_mode: ResetMode) -> Self {
        Self {
            reset_mode,
            operator_keys: StaticKeys {
                access_key_id: "AKIDOPERATOR".into(),
                secret_access_key: "operator-secret".into(),
            },
            identity: "test".into(),
            leader_lease_seconds: None,
            policy: LeasePolicy {
                one_active_lease_per_principal: false,
                ..LeasePolicy::default()
            },
            budget_webhook: None,
            cost_explorer_endpoint: None,
            sts_endpoint: None,
            principal_policy_template: DEFAULT_POLICY_TEMPLATE.to_string(),
            kube_call_deadline: kube_client::CALL_DEADLINE,
        }
    }
}

/// An operator running in this process; dropping it aborts it like a crash.
pub struct RunningOperator {
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    stop: watch::Sender<bool>,
    /// The metrics this replica exports.
    pub metrics: Metrics,
}

impl RunningOperator {
    pub fn start(cluster: &TestCluster, reset_mode: ResetMode) -> Self {
        Self::start_with(cluster, OperatorOptions::new(reset_mode))
    }

    pub fn start_with(cluster: &TestCluster, options: OperatorOptions) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .try_init();
        let aws = Aws::with_operator_keys(
            AwsSettings {
                sts_endpoint: Some(
                    options
                        .sts_endpoint
                        .clone()
                        .unwrap_or_else(|| cluster.moto.endpoint()),
                ),
                cost_explorer_endpoint: Some(
                    options
                        .cost_explorer_endpoint
                        .clone()
                        .unwrap_or_else(|| cluster.moto.endpoint()),
                ),
                iam_endpoint: Some(cluster.moto.endpoint()),
                ..AwsSettings::default()
            },
            &options.operator_keys,
        );
        let settings = Settings {
            namespace: OPERATOR_NAMESPACE.to_string(),
            principal_role_name: "DCEPrincipal".to_string(),
            allowed_regions: vec!["us-east-1".to_string()],
            principal_policy_template: options.principal_policy_template.clone(),
            nuke_extra_filters: Default::default(),
            nuke_endpoint: None,
            nuke_resource_types: Vec::new(),
            reset_host_network: false,
            region: "us-east-1".to_string(),
            policy: options.policy.clone(),
            reset_mode: options.reset_mode,
            reset_image: "example.invalid/reset:test".to_string(),
            reset_command: vec!["reset".to_string()],
            reset_deadline_seconds: 600,
            sync_interval: SignedDuration::from_hours(1),
            concurrency: 32,
            budget_webhook: options.budget_webhook.clone(),
        };
        let election = options.leader_lease_seconds.map(|seconds| Election {
            namespace: OPERATOR_NAMESPACE.to_string(),
            lease_name: LEADER_LEASE.to_string(),
            identity: options.identity.clone(),
            lease_seconds: seconds,
        });
        let reporter = Reporter {
            controller: "dce-operator".into(),
            instance: Some(options.identity),
        };
        let (stop, stopped) = watch::channel(false);
        let stopped = async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|s| *s).await;
        };
        let metrics = Metrics::default();
        // The operator's own client stack (deadline, request cap, User-Agent), as main builds it.
        let kubeconfig = cluster
            .control_plane
            .kubeconfig_yaml(cluster.control_plane.admin_token());
        let deadline = options.kube_call_deadline;
        let task = {
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let config = kube::Config::from_custom_kubeconfig(
                    kube::config::Kubeconfig::from_yaml(&kubeconfig)?,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await?;
                let client = kube_client::build(config, 64, deadline)?;
                leader::run_while_leading(
                    client.clone(),
                    election.as_ref(),
                    &metrics,
                    stopped,
                    |shutdown| {
                        operator::run(
                            client.clone(),
                            aws,
                            settings,
                            metrics.clone(),
                            reporter,
                            Caches::default(),
                            shutdown,
                        )
                    },
                )
                .await
            })
        };
        Self {
            task,
            stop,
            metrics,
        }
    }

    /// Stops it gracefully.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }

    /// Kills it mid-flight.
    pub async fn kill(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// Waits for it to end by itself (e.g. after losing leadership) and returns how it ended.
    pub async fn ended(mut self) -> anyhow::Result<()> {
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .map_err(|_| anyhow::anyhow!("operator still running after {WAIT:?}"))??
    }

    /// This replica's metrics.
    pub fn metrics(&self) -> &dce_operator::metrics::Metrics {
        &self.metrics
    }

    /// Reconciles this replica has run for `controller` ("account" or "lease").
    pub fn reconciles(&self, controller: &'static str) -> u64 {
        self.metrics
            .reconciles
            .get_or_create(&dce_operator::metrics::ControllerLabels { controller })
            .get()
    }

    /// Events this replica announced for `kind` with `reason` (the `state_transitions` metric).
    pub fn transitions(&self, kind: &'static str, reason: &str) -> u64 {
        self.metrics
            .transitions
            .get_or_create(&dce_operator::metrics::EventLabels {
                kind,
                reason: reason.to_string(),
            })
            .get()
    }
}

impl Drop for RunningOperator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn account(id: &str) -> Account {
    Account::new(
        id,
        AccountSpec::with_admin_role(
            id.to_string(),
            format!("arn:aws:iam::{id}:role/OrganizationAccountAccessRole"),
        ),
    )
}

pub fn lease(name: &str, principal: &str) -> Lease {
    Lease::new(
        name,
        LeaseSpec {
            budget_amount: Some(100.0),
            expires_on: None,
            ..LeaseSpec::for_principal(principal)
        },
    )
}

pub fn account_id(n: usize) -> String {
    format!("{:012}", 100_000_000_000u64 + n as u64)
}

pub async fn create_accounts(client: &Client, n: usize) -> anyhow::Result<Vec<String>> {
    let api: Api<Account> = Api::all(client.clone());
    let mut ids = Vec::new();
    for i in 0..n {
        let id = account_id(i);
        api.create(&PostParams::default(), &account(&id)).await?;
        ids.push(id);
    }
    Ok(ids)
}

pub async fn wait_accounts_ready(client: &Client, ids: &[String]) -> anyhow::Result<()> {
    let api: Api<Account> = Api::all(client.clone());
    for id in ids {
        wait_for(WAIT, || async {
            (api.get(id).await.ok()?.phase() == Some(AccountPhase::Ready)).then_some(())
        })
        .await?;
    }
    Ok(())
}

pub async fn wait_lease(api: &Api<Lease>, name: &str, phase: LeasePhase) -> anyhow::Result<Lease> {
    wait_for(WAIT, || async {
        api.get(name)
            .await
            .ok()
            .filter(|l| l.phase() == Some(phase))
    })
    .await
}

/// Leases in `api` with `phase`.
pub async fn count_leases(api: &Api<Lease>, phase: LeasePhase) -> usize {
    api.list(&Default::default())
        .await
        .map(|l| l.items.iter().filter(|x| x.phase() == Some(phase)).count())
        .unwrap_or(0)
}

pub fn credentials_from(secret: &Secret) -> TemporaryCredentials {
    let data = secret.data.clone().unwrap_or_default();
    let text =
        |k: &str| String::from_utf8(data.get(k).map(|b| b.0.clone()).unwrap_or_default()).unwrap();
    TemporaryCredentials {
        access_key_id: text("AWS_ACCESS_KEY_ID"),
        secret_access_key: text("AWS_SECRET_ACCESS_KEY"),
        session_token: text("AWS_SESSION_TOKEN"),
        expiration: text("AWS_CREDENTIAL_EXPIRATION").parse().unwrap(),
    }
}

/// The `Ready` condition's (status, reason, message).
pub fn ready_condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<(String, String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Events (events.k8s.io/v1) about the object named `name`, in `namespace`, with `reason`.
pub async fn events_about(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> anyhow::Result<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .collect())
}

/// Waits until a Warning Event with `reason` about the object `name` in `namespace` exists.
pub async fn wait_warning_event(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> anyhow::Result<()> {
    wait_for(WAIT, || async {
        let events = events_about(client, namespace, name, reason).await.ok()?;
        events
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning"))
            .then_some(())
    })
    .await
    .with_context(|| format!("Warning Event {reason} about {namespace}/{name}"))
}

pub use dce_e2e::cluster::JobOutcome;

/// Ends reset Job `name` in the operator's namespace (see [`dce_e2e::cluster::finish_job`]).
pub async fn finish_job(client: &Client, name: &str, outcome: JobOutcome) -> anyhow::Result<()> {
    dce_e2e::cluster::finish_job(client, OPERATOR_NAMESPACE, name, outcome).await
}

/// Waits for the account to record a reset Job other than `previous`, and for that Job to exist.
pub async fn next_reset_job(
    client: &Client,
    account: &str,
    previous: Option<&str>,
) -> anyhow::Result<Job> {
    let accounts: Api<Account> = Api::all(client.clone());
    let jobs: Api<Job> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    wait_for(WAIT, || async {
        let name = accounts.get(account).await.ok()?.status?.reset_job?;
        if Some(name.as_str()) == previous {
            return None;
        }
        jobs.get_opt(&name).await.ok()?
    })
    .await
}

/// The in-process operator's own AWS identity (with the default options), as moto reports it.
pub async fn operator_identity(cluster: &TestCluster) -> dce_operator::aws::CallerIdentity {
    let options = OperatorOptions::new(ResetMode::Disabled);
    let aws = Aws::with_operator_keys(
        AwsSettings {
            sts_endpoint: Some(cluster.moto.endpoint()),
            ..AwsSettings::default()
        },
        &options.operator_keys,
    );
    aws.caller_identity(None)
        .await
        .expect("moto answers GetCallerIdentity")
}
