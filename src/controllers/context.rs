use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::SignedDuration;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use tokio::sync::watch;

use super::Error;
use super::arrivals::Arrivals;
use super::expectations::Expectations;
use super::notices::BudgetWebhook;
use crate::aws::{Aws, AwsError, CallerIdentity};
use crate::lifecycle::nuke::ExtraFilters;
use crate::lifecycle::sync::SyncSetting;
use crate::lifecycle::{LeasePolicy, ResetMode, backoff};
use crate::metrics::Metrics;
use crate::resources::{Account, Lease};
use k8s_openapi::api::core::v1::ConfigMap;

/// Settings the reconcilers need (from the operator's configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    pub namespace: String,
    pub principal_role_name: String,
    /// Regions lease holders may use (the principal policy) and resets clean.
    pub allowed_regions: Vec<String>,
    /// The principal policy template (see `lifecycle::principal::render_policy`).
    pub principal_policy_template: String,
    /// Filters added to every reset's aws-nuke configuration.
    pub nuke_extra_filters: ExtraFilters,
    /// Where the reset Job's aws-nuke sends its requests, if not to AWS itself.
    pub nuke_endpoint: Option<String>,
    /// The resource types resets delete; empty: all.
    pub nuke_resource_types: Vec<String>,
    pub region: String,
    pub policy: LeasePolicy,
    pub reset_mode: ResetMode,
    pub reset_image: String,
    pub reset_command: Vec<String>,
    /// Reset Jobs run in the node's network namespace.
    pub reset_host_network: bool,
    pub reset_deadline_seconds: i64,
    pub sync_interval: SignedDuration,
    /// Reconciles each controller runs at once.
    pub concurrency: u16,
    /// Where budget notices are POSTed, if anywhere.
    pub budget_webhook: Option<url::Url>,
}

/// Shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub aws: Aws,
    pub metrics: Metrics,
    pub recorder: Recorder,
    pub settings: Settings,
    pub accounts: Store<Account>,
    pub leases: Store<Lease>,
    /// The principals' usage stores (see [`crate::lifecycle::usage_store`]).
    pub usage_stores: Store<ConfigMap>,
    /// When the watch first delivered each lease (the queue's tie-break).
    pub arrivals: Arrivals,
    /// The cluster-wide sync setting; `None` until it has been read.
    pub sync_setting: watch::Receiver<Option<SyncSetting>>,
    /// Writes the lease reconciler made that the caches may not show yet.
    pub expectations: Expectations,
    pub budget_webhook: BudgetWebhook,
    /// The operator's own AWS identity, learned once.
    operator_identity: tokio::sync::OnceCell<CallerIdentity>,
    failures: Mutex<HashMap<String, u32>>,
}

const ERROR_BACKOFF_BASE: Duration = Duration::from_secs(1);
const ERROR_BACKOFF_MAX: Duration = Duration::from_secs(300);
const TRANSIENT_BACKOFF_MAX: Duration = Duration::from_secs(8);

impl Context {
    // One argument per shared dependency of the reconcilers; a builder would add nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        aws: Aws,
        metrics: Metrics,
        recorder: Recorder,
        settings: Settings,
        accounts: Store<Account>,
        leases: Store<Lease>,
        usage_stores: Store<ConfigMap>,
        arrivals: Arrivals,
        sync_setting: watch::Receiver<Option<SyncSetting>>,
    ) -> Self {
        let budget_webhook = BudgetWebhook::new(settings.budget_webhook.clone());
        Self {
            budget_webhook,
            client,
            aws,
            metrics,
            recorder,
            settings,
            accounts,
            leases,
            usage_stores,
            arrivals,
            sync_setting,
            expectations: Expectations::default(),
            operator_identity: tokio::sync::OnceCell::new(),
            failures: Mutex::default(),
        }
    }

    /// The operator's own AWS identity (STS GetCallerIdentity, asked once): what principal
    /// roles trust, and the account every reset refuses to touch.
    pub async fn operator_identity(&self) -> Result<&CallerIdentity, AwsError> {
        self.operator_identity
            .get_or_try_init(|| async {
                let result = self.aws.caller_identity(None).await;
                self.metrics.aws_call(
                    "GetCallerIdentity",
                    if result.is_ok() { "ok" } else { "error" },
                );
                result
            })
            .await
    }

    /// Requeue delay after the object's `n`-th consecutive failure: capped exponential, jittered;
    /// capped lower for a transient AWS failure, so its end is noticed within seconds.
    pub fn backoff(&self, key: &str, error: &Error) -> Action {
        let attempt = {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let max = if error.is_transient() {
            TRANSIENT_BACKOFF_MAX
        } else {
            ERROR_BACKOFF_MAX
        };
        Action::requeue(backoff::delay(
            attempt,
            ERROR_BACKOFF_BASE,
            max,
            rand::random(),
        ))
    }

    /// Forgets the object's failures after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }
}
