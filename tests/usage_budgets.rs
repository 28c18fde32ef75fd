//! Usage collection and budgets: the real lease reconciler against a real control plane, with
//! Cost Explorer results queued on moto and budget notices received by a local webhook.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use common::{
    OperatorOptions, RunningOperator, WAIT, create_accounts, lease, wait_accounts_ready,
    wait_lease, wait_warning_event,
};
use dce_e2e::cluster::{OPERATOR_NAMESPACE, TestCluster, wait_for};
use dce_operator::lifecycle::lease::END_REQUESTED_ANNOTATION;
use dce_operator::lifecycle::usage_store::{STORE_LABEL, STORE_LABEL_VALUE, store_name};
use dce_operator::lifecycle::{LeasePolicy, ResetMode};
use dce_operator::metrics::BudgetActionLabels;
use dce_operator::resources::{Account, Lease, LeasePhase, LeaseReason};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const NAMESPACE: &str = "team-a";

/// A webhook on loopback that keeps every notice it receives; stopped when dropped.
struct Webhook {
    url: url::Url,
    received: Arc<Mutex<Vec<Value>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Webhook {
    async fn start() -> anyhow::Result<Self> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app =
            axum::Router::new()
                .route(
                    "/notices",
                    post(
                        |State(received): State<Arc<Mutex<Vec<Value>>>>,
                         Json(body): Json<Value>| async move {
                            received.lock().unwrap().push(body);
                            "ok"
                        },
                    ),
                )
                .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            url: format!("http://{addr}/notices").parse()?,
            received,
            stop: Some(stop),
        })
    }

    /// (lease, threshold) of every notice received, in order.
    fn notices(&self) -> Vec<(String, i64)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["lease"].as_str().unwrap_or_default().to_string(),
                    n["thresholdPercent"].as_i64().unwrap_or_default(),
                )
            })
            .collect()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Queues today's unblended cost for the account `id` on moto's Cost Explorer. Moto answers
/// every later request with the same parameters with the same result.
async fn queue_cost_today(cluster: &TestCluster, id: &str, amount: f64) -> anyhow::Result<()> {
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let tomorrow = today.tomorrow()?;
    cluster
        .moto
        .queue_cost_and_usage(&json!({
            "account_id": id,
            "results": [{
                "ResultsByTime": [{
                    "TimePeriod": {"Start": today.to_string(), "End": tomorrow.to_string()},
                    "Total": {"UnblendedCost": {"Amount": amount.to_string(), "Unit": "USD"}},
                    "Groups": [],
                    "Estimated": true
                }]
            }]
        }))
        .await
}

fn options(policy: LeasePolicy, webhook: Option<&Webhook>) -> OperatorOptions {
    OperatorOptions {
        policy,
        budget_webhook: webhook.map(|w| w.url.clone()),
        ..OperatorOptions::new(ResetMode::Disabled)
    }
}

fn fast_collection() -> LeasePolicy {
    LeasePolicy {
        one_active_lease_per_principal: false,
        usage_collection_interval: SignedDuration::from_secs(1),
        budget_notice_thresholds: vec![50, 100],
        ..LeasePolicy::default()
    }
}

fn lease_on(name: &str, principal: &str, account: &str, budget: f64) -> Lease {
    let mut l = lease(name, principal);
    l.spec.account_id = Some(account.to_string());
    l.spec.budget_amount = Some(budget);
    l.spec.budget_notification_emails = vec![format!("{principal}@example.com")];
    l
}

fn spend(lease: &Lease) -> Option<f64> {
    Some(lease.status.as_ref()?.usage.as_ref()?.total)
}

fn budget_actions(operator: &RunningOperator, action: &'static str, reason: &str) -> u64 {
    operator
        .metrics()
        .budget_actions
        .get_or_create(&BudgetActionLabels {
            action,
            reason: reason.to_string(),
        })
        .get()
}

#[tokio::test]
async fn spend_is_collected_thresholds_announced_once_and_over_budget_lease_ended()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace(NAMESPACE).await?;
    let webhook = Webhook::start().await?;
    let operator =
        RunningOperator::start_with(&cluster, options(fast_collection(), Some(&webhook)));
    let ids = create_accounts(&cluster.client, 2).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    queue_cost_today(&cluster, &ids[0], 60.0).await?;
    queue_cost_today(&cluster, &ids[1], 150.0).await?;

    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    leases
        .create(
            &PostParams::default(),
            &lease_on("steady", "alice", &ids[0], 100.0),
        )
        .await?;
    leases
        .create(
            &PostParams::default(),
            &lease_on("spender", "bob", &ids[1], 100.0),
        )
        .await?;

    // 150 of a budget of 100: both thresholds announced, then the lease ends OverBudget.
    let ended = wait_lease(&leases, "spender", LeasePhase::Inactive).await?;
    assert_eq!(ended.reason(), Some(LeaseReason::OverBudget));
    assert_eq!(spend(&ended), Some(150.0));
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    wait_for(WAIT, || async {
        secrets
            .get_opt("spender-aws-credentials")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await?;
    let accounts: Api<Account> = Api::all(cluster.client.clone());
    wait_for(WAIT, || async {
        accounts
            .get(&ids[1])
            .await
            .ok()?
            .holder()
            .is_none()
            .then_some(())
    })
    .await?;

    // 60 of 100: the 50 % notice, and the lease runs on. Several more collections (moto answers
    // each with the same 60) must not announce it again.
    let mut seen: Vec<Timestamp> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < 4 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "only {} collections of 60 seen",
            seen.len()
        );
        let current = leases.get("steady").await?;
        if let Some(usage) = current.status.and_then(|s| s.usage)
            && usage.total == 60.0
            && let Some(at) = usage.collected_at
            && !seen.contains(&at.0)
        {
            seen.push(at.0);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let steady = leases.get("steady").await?;
    assert_eq!(steady.phase(), Some(LeasePhase::Active));
    let usage = steady.status.clone().unwrap().usage.unwrap();
    assert_eq!(usage.notified_thresholds, vec![50]);
    assert_eq!(usage.daily.len(), 1);
    assert_eq!(usage.currency, "USD");

    let mut notices = webhook.notices();
    notices.sort();
    assert_eq!(
        notices,
        vec![
            ("spender".to_string(), 50),
            ("spender".to_string(), 100),
            ("steady".to_string(), 50),
        ]
    );
    let first = webhook.received.lock().unwrap()[0].clone();
    assert_eq!(first["budgetAmount"], json!(100.0));
    assert_eq!(first["currency"], json!("USD"));
    assert!(
        first["recipients"][0]
            .as_str()
            .unwrap()
            .ends_with("@example.com")
    );
    assert_eq!(budget_actions(&operator, "ended", "OverBudget"), 1);
    assert_eq!(budget_actions(&operator, "notified", "50%"), 2);
    operator.stop().await;
    Ok(())
}

#[tokio::test]
async fn principal_over_the_period_budget_is_ended_and_refused_a_new_lease() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace(NAMESPACE).await?;
    let policy = LeasePolicy {
        principal_budget: 100.0,
        ..fast_collection()
    };
    let operator = RunningOperator::start_with(&cluster, options(policy, None));
    let ids = create_accounts(&cluster.client, 3).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    queue_cost_today(&cluster, &ids[0], 120.0).await?;

    // Within its own budget of 1000, but over the principal's 100 for the week.
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    leases
        .create(
            &PostParams::default(),
            &lease_on("first", "alice", &ids[0], 1000.0),
        )
        .await?;
    let ended = wait_lease(&leases, "first", LeasePhase::Inactive).await?;
    assert_eq!(ended.reason(), Some(LeaseReason::OverPrincipalBudget));

    // Her next lease is refused in DCE's words; another principal's is served.
    leases
        .create(&PostParams::default(), &lease("second", "alice"))
        .await?;
    let refused = wait_lease(&leases, "second", LeasePhase::Inactive).await?;
    assert_eq!(refused.reason(), Some(LeaseReason::Invalid));
    assert_eq!(
        refused.status.unwrap().message.as_deref(),
        Some(
            "budgetAmount: Unable to create lease: User principal alice has already spent 120.00 of their 100.00 principal budget"
        )
    );
    leases
        .create(&PostParams::default(), &lease("other", "bob"))
        .await?;
    wait_lease(&leases, "other", LeasePhase::Active).await?;
    assert_eq!(budget_actions(&operator, "ended", "OverPrincipalBudget"), 1);
    assert_eq!(
        budget_actions(&operator, "refused", "OverPrincipalBudget"),
        1
    );
    operator.stop().await;
    Ok(())
}

#[tokio::test]
async fn failed_collection_is_reported_and_the_lease_keeps_running() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace(NAMESPACE).await?;
    // Nothing listens on the discard port of loopback.
    let operator = RunningOperator::start_with(
        &cluster,
        OperatorOptions {
            cost_explorer_endpoint: Some("http://127.0.0.1:9".to_string()),
            ..options(fast_collection(), None)
        },
    );
    let ids = create_accounts(&cluster.client, 1).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    leases
        .create(&PostParams::default(), &lease("dev", "alice"))
        .await?;
    wait_lease(&leases, "dev", LeasePhase::Active).await?;
    wait_warning_event(&cluster.client, NAMESPACE, "dev", "UsageCollectionFailed").await?;
    let current = wait_for(WAIT, || async {
        let l = leases.get("dev").await.ok()?;
        l.status
            .as_ref()?
            .usage
            .as_ref()?
            .last_error
            .is_some()
            .then_some(l)
    })
    .await?;
    let usage = current.status.clone().unwrap().usage.unwrap();
    assert!(
        usage
            .last_error
            .as_deref()
            .unwrap()
            .contains("GetCostAndUsage"),
        "{usage:?}"
    );
    assert_eq!(usage.collected_at, None);
    assert_eq!(current.phase(), Some(LeasePhase::Active));
    operator.stop().await;
    Ok(())
}

/// Waits until the lease `name` is gone.
async fn wait_deleted(leases: &Api<Lease>, name: &str) -> anyhow::Result<()> {
    wait_for(WAIT, || async {
        leases.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await
}

/// The amounts `principal`'s usage store holds, whatever the day and lease.
async fn stored_amounts(cluster: &TestCluster, principal: &str) -> anyhow::Result<Vec<f64>> {
    let stores: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), OPERATOR_NAMESPACE);
    let Some(store) = stores.get_opt(&store_name(principal)).await? else {
        return Ok(Vec::new());
    };
    let mut amounts = Vec::new();
    for value in store.data.unwrap_or_default().values() {
        let entry: Value = serde_json::from_str(value)?;
        amounts.push(entry["amount"].as_f64().unwrap_or_default());
    }
    Ok(amounts)
}

#[tokio::test]
async fn deleting_a_finished_lease_does_not_give_its_spend_back() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace(NAMESPACE).await?;
    let policy = LeasePolicy {
        principal_budget: 100.0,
        ..fast_collection()
    };
    let operator = RunningOperator::start_with(&cluster, options(policy, None));
    let ids = create_accounts(&cluster.client, 2).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    queue_cost_today(&cluster, &ids[0], 120.0).await?;

    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    leases
        .create(
            &PostParams::default(),
            &lease_on("first", "alice", &ids[0], 1000.0),
        )
        .await?;
    let ended = wait_lease(&leases, "first", LeasePhase::Inactive).await?;
    assert_eq!(ended.reason(), Some(LeaseReason::OverPrincipalBudget));
    leases.delete("first", &DeleteParams::default()).await?;
    wait_deleted(&leases, "first").await?;
    assert_eq!(stored_amounts(&cluster, "alice").await?, vec![120.0]);
    let stores: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), OPERATOR_NAMESPACE);
    let listed = stores
        .list(&ListParams::default().labels(&format!("{STORE_LABEL}={STORE_LABEL_VALUE}")))
        .await?;
    assert_eq!(listed.items.len(), 1);

    // The deleted lease's spend still counts: her next lease is refused.
    leases
        .create(&PostParams::default(), &lease("second", "alice"))
        .await?;
    let refused = wait_lease(&leases, "second", LeasePhase::Inactive).await?;
    assert_eq!(refused.reason(), Some(LeaseReason::Invalid));
    assert_eq!(
        refused.status.unwrap().message.as_deref(),
        Some(
            "budgetAmount: Unable to create lease: User principal alice has already spent 120.00 of their 100.00 principal budget"
        )
    );
    operator.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_ending_lease_has_its_cost_read_once_more() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace(NAMESPACE).await?;
    // Collections an hour apart: the only reading after the costs below are queued is the one
    // a lease gets as it ends.
    let policy = LeasePolicy {
        one_active_lease_per_principal: false,
        principal_budget: 30.0,
        ..LeasePolicy::default()
    };
    let operator = RunningOperator::start_with(&cluster, options(policy, None));
    let ids = create_accounts(&cluster.client, 3).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), NAMESPACE);

    // Ended on request (as the REST API's DELETE does).
    leases
        .create(
            &PostParams::default(),
            &lease_on("requested", "alice", &ids[0], 1000.0),
        )
        .await?;
    // Expiring by itself.
    let mut expiring = lease_on("expiring", "carol", &ids[1], 1000.0);
    expiring.spec.expires_on = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::now() + SignedDuration::from_secs(8),
    ));
    leases.create(&PostParams::default(), &expiring).await?;
    // Deleted with kubectl.
    leases
        .create(
            &PostParams::default(),
            &lease_on("deleted", "bob", &ids[2], 1000.0),
        )
        .await?;
    for name in ["requested", "expiring", "deleted"] {
        wait_lease(&leases, name, LeasePhase::Active).await?;
    }
    queue_cost_today(&cluster, &ids[0], 40.0).await?;
    queue_cost_today(&cluster, &ids[1], 20.0).await?;
    queue_cost_today(&cluster, &ids[2], 35.0).await?;

    let end = json!({"metadata": {"annotations": {END_REQUESTED_ANNOTATION: Timestamp::now().to_string()}}});
    leases
        .patch("requested", &PatchParams::default(), &Patch::Merge(&end))
        .await?;
    let requested = wait_lease(&leases, "requested", LeasePhase::Inactive).await?;
    assert_eq!(requested.reason(), Some(LeaseReason::Destroyed));
    assert_eq!(spend(&requested), Some(40.0));
    assert_eq!(stored_amounts(&cluster, "alice").await?, vec![40.0]);

    let expired = wait_lease(&leases, "expiring", LeasePhase::Inactive).await?;
    assert_eq!(expired.reason(), Some(LeaseReason::Expired));
    assert_eq!(spend(&expired), Some(20.0));

    // The Lease and its status go: the reading lands in the store, and counts.
    leases.delete("deleted", &DeleteParams::default()).await?;
    wait_deleted(&leases, "deleted").await?;
    assert_eq!(stored_amounts(&cluster, "bob").await?, vec![35.0]);
    leases
        .create(&PostParams::default(), &lease("again", "bob"))
        .await?;
    let refused = wait_lease(&leases, "again", LeasePhase::Inactive).await?;
    assert_eq!(refused.reason(), Some(LeaseReason::Invalid));
    operator.stop().await;
    Ok(())
}

/// A restarted operator reads the cost of leases that were Active before it started: its usage
/// loop is woken by nothing but time for them.
#[tokio::test]
async fn spend_of_leases_active_before_a_restart_is_collected() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace(NAMESPACE).await?;
    let slow = LeasePolicy {
        usage_collection_interval: SignedDuration::from_hours(1),
        ..fast_collection()
    };
    let operator = RunningOperator::start_with(&cluster, options(slow, None));
    let ids = create_accounts(&cluster.client, 1).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    leases
        .create(
            &PostParams::default(),
            &lease_on("before", "alice", &ids[0], 100.0),
        )
        .await?;
    let active = wait_lease(&leases, "before", LeasePhase::Active).await?;
    assert_eq!(spend(&active), None, "nothing is due within the hour");
    operator.stop().await;

    queue_cost_today(&cluster, &ids[0], 30.0).await?;
    let operator = RunningOperator::start_with(&cluster, options(fast_collection(), None));
    wait_for(WAIT, || async {
        (spend(&leases.get("before").await.ok()?) == Some(30.0)).then_some(())
    })
    .await?;
    operator.stop().await;
    cluster.stop().await;
    Ok(())
}
