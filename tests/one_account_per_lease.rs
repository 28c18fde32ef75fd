//! One account per lease, one lease per account, under the loads users put on the pool: a
//! burst of leases on a small pool followed by deleting the Active ones (first come, first
//! served), the operator SIGKILLed again and again during a storm with churn, two replicas
//! whose leader changes (killed, or paused past its lock and resumed) during a storm, and a
//! leaked claim planted by hand. The pool invariant (`common::invariant`) is checked at
//! checkpoints and at the end of each.
//!
//! `DCE_STORM_ROUNDS=N` repeats each scenario N times in one run (the command in
//! docs/benchmarks.md runs them ten times in a row).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::{
    JobOutcome, RunningOperator, WAIT, active_lease_names, assert_pool_consistent,
    assert_pool_safe, check_pool, create_accounts, finish_job, lease, next_reset_job,
    wait_accounts_ready, wait_lease,
};
use dce_e2e::cluster::{OPERATOR_NAMESPACE, TestCluster, wait_for};
use dce_e2e::operator_process::{OperatorLaunch, OperatorProcess};
use dce_e2e::target::ScratchDir;
use dce_operator::lifecycle::ResetMode;
use dce_operator::lifecycle::account::reason::STRAY_CLAIM_RELEASED;
use dce_operator::metrics::ResultLabels;
use dce_operator::resources::{Account, AccountPhase, Lease, LeasePhase};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease as LeaderLock;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

/// Requests the storms keep in flight, as many clients applying manifests at once would.
const IN_FLIGHT: usize = 20;

fn rounds() -> usize {
    std::env::var("DCE_STORM_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// Creates `count` leases named `<prefix><n>` (one principal each), `IN_FLIGHT` at a time;
/// returns their names in queue order: creation second, then the order the API server stored
/// them in (the order a watch delivers them in).
async fn storm(leases: &Api<Lease>, prefix: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let mut created: Vec<(jiff::Timestamp, u64, String)> = futures::stream::iter(0..count)
        .map(|n| async move {
            let name = format!("{prefix}{n:04}");
            let stored = leases
                .create(
                    &PostParams::default(),
                    &lease(&name, &format!("user-{prefix}{n}")),
                )
                .await?;
            let created = stored
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .context("no creation time")?;
            let version: u64 = stored.resource_version().unwrap_or_default().parse()?;
            anyhow::Ok((created, version, name))
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    created.sort();
    Ok(created.into_iter().map(|(_, _, name)| name).collect())
}

/// Waits until `namespace` has `active` Active and `pending` Pending leases, checking the
/// always-true part of the invariant on the way.
async fn wait_counts(
    cluster: &TestCluster,
    namespace: &str,
    active: usize,
    pending: usize,
    within: Duration,
) -> anyhow::Result<()> {
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), namespace);
    let deadline = Instant::now() + within;
    let mut last_check = Instant::now();
    loop {
        let listed = leases.list(&ListParams::default()).await?.items;
        let count = |phase| listed.iter().filter(|l| l.phase() == Some(phase)).count();
        let (now_active, now_pending) = (count(LeasePhase::Active), count(LeasePhase::Pending));
        if now_active == active && now_pending == pending {
            return Ok(());
        }
        if last_check.elapsed() > Duration::from_secs(1) {
            assert_pool_safe(cluster).await?;
            last_check = Instant::now();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{namespace}: {now_active} Active and {now_pending} Pending after {within:?}, \
             expected {active} and {pending}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn lease_reconciles(operator: &RunningOperator) -> u64 {
    operator.reconciles(dce_operator::controllers::lease::CONTROLLER)
}

/// 50 accounts, 500 leases at once: the 50 first in the queue hold the accounts. Deleting
/// those promotes exactly the next 50, in queue order. Then all 500 are deleted in one request;
/// the figures of that bulk delete are printed.
#[tokio::test]
async fn a_storm_then_deleting_the_active_leases_promotes_the_oldest_waiting() -> anyhow::Result<()>
{
    const ACCOUNTS: usize = 50;
    const LEASES: usize = 500;
    let cluster = TestCluster::start().await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let ids = create_accounts(&cluster.client, ACCOUNTS).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    for round in 0..rounds() {
        let namespace = format!("storm-{round}");
        cluster.namespace(&namespace).await?;
        let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &namespace);
        let queue = storm(&leases, "l", LEASES).await?;
        wait_counts(&cluster, &namespace, ACCOUNTS, LEASES - ACCOUNTS, WAIT * 4).await?;
        assert_pool_consistent(&cluster).await?;
        let first: BTreeSet<String> = queue[..ACCOUNTS].iter().cloned().collect();
        assert_eq!(
            active_lease_names(&cluster.client, &namespace).await?,
            first,
            "round {round}: the first {ACCOUNTS} in the queue hold the accounts"
        );

        for name in &first {
            leases.delete(name, &DeleteParams::default()).await?;
        }
        wait_counts(
            &cluster,
            &namespace,
            ACCOUNTS,
            LEASES - 2 * ACCOUNTS,
            WAIT * 2,
        )
        .await?;
        assert_pool_consistent(&cluster).await?;
        let next: BTreeSet<String> = queue[ACCOUNTS..2 * ACCOUNTS].iter().cloned().collect();
        assert_eq!(
            active_lease_names(&cluster.client, &namespace).await?,
            next,
            "round {round}: the next {ACCOUNTS} in the queue were promoted"
        );

        let remaining = leases.list(&ListParams::default()).await?.items.len();
        let reconciles_before = lease_reconciles(&operator);
        let deleted = Instant::now();
        leases
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        wait_for(WAIT * 4, || async {
            leases
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        })
        .await
        .with_context(|| format!("round {round}: the deleted leases never went"))?;
        let gone_after = deleted.elapsed();
        let reconciles = lease_reconciles(&operator) - reconciles_before;
        eprintln!(
            "bulk delete: {remaining} leases ({ACCOUNTS} Active) gone in {:.1} s with {reconciles} \
             lease reconciles ({:.2} per lease)",
            gone_after.as_secs_f64(),
            reconciles as f64 / remaining as f64
        );
        wait_for(WAIT, || async {
            let accounts: Api<Account> = Api::all(cluster.client.clone());
            let listed = accounts.list(&ListParams::default()).await.ok()?.items;
            listed
                .iter()
                .all(|a| a.phase() == Some(AccountPhase::Ready))
                .then_some(())
        })
        .await
        .with_context(|| format!("round {round}: the pool did not come back whole"))?;
        assert_pool_consistent(&cluster).await?;
    }
    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

/// How the operator processes of a test are launched.
fn launch(
    cluster: &TestCluster,
    dir: &ScratchDir,
    lock_seconds: u64,
) -> anyhow::Result<OperatorLaunch> {
    let kubeconfig = dir.path().join("kubeconfig");
    cluster
        .control_plane
        .write_kubeconfig(&kubeconfig, cluster.control_plane.admin_token())?;
    Ok(OperatorLaunch {
        kubeconfig,
        sts_endpoint: cluster.moto.endpoint(),
        args: vec![
            "--reset-mode=disabled".into(),
            format!("--leader-lease-seconds={lock_seconds}"),
        ],
        env: vec![],
        log_dir: dir.path().to_path_buf(),
    })
}

/// Leases created and deleted (Active and waiting alike) in one namespace, in the background.
struct Churn {
    namespace: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<(usize, usize)>>,
}

impl Churn {
    async fn start(cluster: &TestCluster, namespace: String) -> anyhow::Result<Self> {
        cluster.namespace(&namespace).await?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &namespace);
        let task = tokio::spawn(async move {
            let (mut created, mut deleted) = (0, 0);
            while !*stopped.borrow() {
                let batch = storm(&leases, &format!("c{created}-"), 10).await?;
                created += batch.len();
                // Every third lease of the batch, whatever it is doing by now.
                for name in batch.iter().step_by(3) {
                    leases.delete(name, &DeleteParams::default()).await?;
                    deleted += 1;
                }
                tokio::select! {
                    _ = stopped.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                }
            }
            anyhow::Ok((created, deleted))
        });
        Ok(Self {
            namespace,
            stop,
            task,
        })
    }

    /// Stops it; once the operator is at rest — as many Active leases as there are accounts
    /// or live leases, whichever is fewer — checks the whole invariant, reports `what`
    /// happened meanwhile, and deletes the namespace's leases.
    async fn settle(
        self,
        cluster: &TestCluster,
        accounts: usize,
        what: &str,
    ) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let (created, deleted) = self.task.await??;
        let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &self.namespace);
        let live = leases
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|l| l.metadata.deletion_timestamp.is_none())
            .count();
        let active = live.min(accounts);
        wait_counts(cluster, &self.namespace, active, live - active, WAIT * 2).await?;
        let counts = assert_pool_consistent(cluster).await?;
        eprintln!(
            "{what}, {created} leases created and {deleted} deleted meanwhile; at rest {} \
             Active, {} Pending, one account each",
            counts.active_leases, counts.pending_leases
        );
        leases
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        Ok(())
    }
}

/// The operator, a real process, is SIGKILLed 20 times while leases are created and deleted.
#[tokio::test]
async fn twenty_kills_during_a_storm_with_churn_leave_one_account_per_lease() -> anyhow::Result<()>
{
    const ACCOUNTS: usize = 20;
    const KILLS: usize = 20;
    let cluster = TestCluster::start().await?;
    let dir = ScratchDir::new()?;
    let launch = launch(&cluster, &dir, 15)?;
    let ids = create_accounts(&cluster.client, ACCOUNTS).await?;
    let mut operator = OperatorProcess::start(&launch, 0).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    for round in 0..rounds() {
        let churn = Churn::start(&cluster, format!("kills-{round}")).await?;
        for kill in 0..KILLS {
            // Killed at a different point of its work each time.
            let running = Duration::from_millis(200 + (kill as u64 * 137) % 900);
            tokio::time::sleep(running).await;
            operator.kill();
            assert_pool_safe(&cluster)
                .await
                .with_context(|| format!("round {round}, after kill {kill}"))?;
            operator = OperatorProcess::start(&launch, 0).await?;
        }
        let what = format!("kills: round {round}: {KILLS} SIGKILLs");
        churn
            .settle(&cluster, ACCOUNTS, &what)
            .await
            .map_err(|e| anyhow::anyhow!("{e}\n{}", operator.log_tail()))?;
    }
    drop(operator);
    cluster.stop().await;
    Ok(())
}

async fn lock_holder(client: &Client) -> Option<String> {
    let locks: Api<LeaderLock> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    locks
        .get(common::LEADER_LEASE)
        .await
        .ok()?
        .spec?
        .holder_identity
}

/// Waits until the lock names a replica other than `previous`; returns it.
async fn new_leader(client: &Client, previous: Option<&str>) -> anyhow::Result<String> {
    wait_for(WAIT, || async {
        lock_holder(client)
            .await
            .filter(|holder| Some(holder.as_str()) != previous)
    })
    .await
    .context("no replica took the lock")
}

/// Pauses a process (SIGSTOP) for `pause`, then resumes it (SIGCONT): a leader that stalls past
/// its lock (a long GC pause, a frozen VM) and wakes up mid-reconcile, its caches out of date.
async fn pause(process: &OperatorProcess, pause: Duration) {
    process.signal(libc::SIGSTOP);
    tokio::time::sleep(pause).await;
    process.signal(libc::SIGCONT);
}

/// Two replicas; during a storm with churn the leader changes eight times: killed (SIGKILL),
/// or paused past its lock and resumed while the other leads.
#[tokio::test]
async fn two_replicas_with_leader_changes_during_a_storm_keep_one_account_per_lease()
-> anyhow::Result<()> {
    const ACCOUNTS: usize = 20;
    const LOCK_SECONDS: u64 = 3;
    const CHANGES: usize = 8;
    let cluster = TestCluster::start().await?;
    let dir = ScratchDir::new()?;
    let launch = launch(&cluster, &dir, LOCK_SECONDS)?;
    let ids = create_accounts(&cluster.client, ACCOUNTS).await?;
    let mut replicas = vec![
        OperatorProcess::start(&launch, 0).await?,
        OperatorProcess::start(&launch, 1).await?,
    ];
    wait_accounts_ready(&cluster.client, &ids).await?;
    for round in 0..rounds() {
        let churn = Churn::start(&cluster, format!("replicas-{round}")).await?;
        let mut leader = new_leader(&cluster.client, None).await?;
        for change in 0..CHANGES {
            tokio::time::sleep(Duration::from_millis(700)).await;
            // A replica that lost the lock exits; its Deployment would start it again.
            for replica in replicas.iter_mut() {
                if replica.exited() {
                    *replica = OperatorProcess::start(&launch, replica.instance()).await?;
                }
            }
            let index = replicas
                .iter()
                .position(|r| r.identity() == leader)
                .context("the leader is not one of the replicas")?;
            if change % 2 == 0 {
                let killed = replicas.remove(index);
                let instance = killed.instance();
                killed.kill();
                leader = new_leader(&cluster.client, Some(&leader)).await?;
                replicas.push(OperatorProcess::start(&launch, instance).await?);
            } else {
                pause(&replicas[index], Duration::from_secs(LOCK_SECONDS * 2)).await;
                leader = new_leader(&cluster.client, Some(&leader)).await?;
            }
            assert_pool_safe(&cluster)
                .await
                .with_context(|| format!("round {round}, after leader change {change}"))?;
        }
        let what = format!("replicas: round {round}: {CHANGES} leader changes");
        churn.settle(&cluster, ACCOUNTS, &what).await?;
    }
    drop(replicas);
    cluster.stop().await;
    Ok(())
}

/// An Account edited by hand to name a lease that holds another account is returned to the pool
/// through a reset; a Secret holding another account's credentials is rewritten.
#[tokio::test]
async fn a_leaked_claim_planted_by_hand_is_released_through_a_reset() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    cluster.namespace("planted").await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Job);
    let client = &cluster.client;
    let ids = create_accounts(client, 2).await?;
    for id in &ids {
        let job = next_reset_job(client, id, None).await?;
        finish_job(client, &job.name_any(), JobOutcome::Complete).await?;
    }
    wait_accounts_ready(client, &ids).await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "planted");
    leases
        .create(&PostParams::default(), &lease("holder", "alice"))
        .await?;
    let holder = wait_lease(&leases, "holder", LeasePhase::Active).await?;
    assert_pool_consistent(&cluster).await?;
    let held = holder
        .status
        .clone()
        .unwrap_or_default()
        .account_name
        .unwrap();
    let other = ids.iter().find(|id| **id != held).unwrap().clone();

    // The other account now claims to be held by the same lease.
    let accounts: Api<Account> = Api::all(client.clone());
    let before = accounts.get(&other).await?;
    let previous_job = before.status.as_ref().and_then(|s| s.reset_job.clone());
    accounts
        .patch_status(
            &other,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": {
                "accountStatus": "Leased",
                "lease": { "namespace": "planted", "name": "holder", "uid": holder.uid() },
            }})),
        )
        .await?;
    // Returned to the pool through a reset, announced, counted.
    let job = next_reset_job(client, &other, previous_job.as_deref()).await?;
    let released = accounts.get(&other).await?;
    let status = released.status.clone().unwrap_or_default();
    assert_eq!(status.lease, None);
    assert_eq!(status.account_status, Some(AccountPhase::NotReady));
    common::wait_warning_event(client, "default", &other, STRAY_CLAIM_RELEASED).await?;
    let repaired = operator
        .metrics()
        .account_claims
        .get_or_create(&ResultLabels { result: "repaired" })
        .get();
    assert_eq!(repaired, 1);
    finish_job(client, &job.name_any(), JobOutcome::Complete).await?;
    wait_accounts_ready(client, std::slice::from_ref(&other)).await?;
    // The lease kept its own account all along.
    let still = leases.get("holder").await?;
    assert_eq!(still.status.unwrap_or_default().account_name, Some(held));

    // Its Secret is given the other account's credentials, intact otherwise: rewritten.
    plant_credentials_of(&cluster, &holder, &other).await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, violations) = check_pool(&cluster.client, &cluster.moto.endpoint()).await?;
        if violations.is_empty() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the Secret holding another account's credentials was not rewritten: {violations:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

/// Overwrites `lease`'s Secret with working credentials for `account`'s principal role, as an
/// earlier version of the operator wrote them: data hash intact, no account recorded.
async fn plant_credentials_of(
    cluster: &TestCluster,
    lease: &Lease,
    account: &str,
) -> anyhow::Result<()> {
    use dce_operator::aws::{Aws, AwsSettings, StaticKeys};
    use dce_operator::lifecycle::credentials::{
        ACCOUNT_ANNOTATION, DATA_HASH_ANNOTATION, data_hash, secret_data,
    };
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;

    let aws = Aws::with_operator_keys(
        AwsSettings {
            sts_endpoint: Some(cluster.moto.endpoint()),
            iam_endpoint: Some(cluster.moto.endpoint()),
            ..AwsSettings::default()
        },
        &StaticKeys {
            access_key_id: "AKIDPLANTER".into(),
            secret_access_key: "planter".into(),
        },
    );
    let target = Api::<Account>::all(cluster.client.clone())
        .get(account)
        .await?;
    let creds = dce_operator::controllers::lease::principal_credentials(
        &cluster.client,
        &aws,
        &dce_operator::metrics::Metrics::default(),
        &target,
        "DCEPrincipal",
        jiff::SignedDuration::from_hours(1),
        &lease.spec.principal_id,
    )
    .await?;
    let data: std::collections::BTreeMap<String, ByteString> = secret_data(
        &creds.access_key_id,
        &creds.secret_access_key,
        &creds.session_token,
        creds.expiration,
        "us-east-1",
    )
    .into_iter()
    .map(|(k, v)| (k, ByteString(v.into_bytes())))
    .collect();
    let hash = data_hash(data.iter().map(|(k, v)| (k, v.0.as_slice())));
    let secrets: Api<Secret> = Api::namespaced(
        cluster.client.clone(),
        &lease.namespace().unwrap_or_default(),
    );
    let name = format!("{}-aws-credentials", lease.name_any());
    let mut secret = secrets.get(&name).await?;
    secret.data = Some(data);
    let annotations = secret.metadata.annotations.get_or_insert_default();
    annotations.insert(DATA_HASH_ANNOTATION.to_string(), hash);
    annotations.remove(ACCOUNT_ANNOTATION);
    secrets
        .replace(&name, &PostParams::default(), &secret)
        .await?;
    Ok(())
}
