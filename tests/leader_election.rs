//! Two operator replicas with leader election against one control plane: only the leader
//! reconciles; when it dies the other takes over within the lock's duration, and when it is
//! stopped (SIGTERM) it releases the lock so the other takes over at once.

mod common;

use std::time::{Duration, Instant};

use common::{
    LEADER_LEASE, OperatorOptions, RunningOperator, WAIT, assert_pool_consistent, count_leases,
    create_accounts, lease, wait_accounts_ready,
};
use dce_e2e::cluster::{OPERATOR_NAMESPACE, TestCluster, wait_for};
use dce_e2e::operator_process::{OperatorLaunch, OperatorProcess};
use dce_e2e::target::ScratchDir;
use dce_operator::lifecycle::ResetMode;
use dce_operator::resources::{Lease, LeasePhase};
use k8s_openapi::api::coordination::v1::Lease as LeaderLock;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

/// Short, so that a takeover fits in a test; long enough that a busy machine still renews.
const LOCK_SECONDS: u64 = 4;

fn replica(cluster: &TestCluster, identity: &str) -> RunningOperator {
    RunningOperator::start_with(
        cluster,
        OperatorOptions {
            identity: identity.to_string(),
            leader_lease_seconds: Some(LOCK_SECONDS),
            ..OperatorOptions::new(ResetMode::Disabled)
        },
    )
}

async fn lock_holder(client: &Client) -> Option<String> {
    let locks: Api<LeaderLock> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    locks.get(LEADER_LEASE).await.ok()?.spec?.holder_identity
}

/// The replicas (Event reporting instances) that wrote Events in `namespace`.
async fn event_reporters(client: &Client, namespace: &str) -> anyhow::Result<Vec<String>> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut reporters: Vec<String> = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter_map(|e| e.reporting_instance)
        .collect();
    reporters.sort();
    reporters.dedup();
    Ok(reporters)
}

#[tokio::test]
async fn only_the_leader_reconciles_and_the_follower_takes_over_when_it_dies() -> anyhow::Result<()>
{
    let cluster = TestCluster::start().await?;
    cluster.namespace("team-l").await?;
    let first = replica(&cluster, "replica-a");
    wait_for(WAIT, || async {
        (first.metrics.leader.get() == 1).then_some(())
    })
    .await?;
    let second = replica(&cluster, "replica-b");

    let ids = create_accounts(&cluster.client, 4).await?;
    wait_accounts_ready(&cluster.client, &ids).await?;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "team-l");
    let creates = (0..6).map(|i| {
        let leases = leases.clone();
        async move {
            leases
                .create(
                    &PostParams::default(),
                    &lease(&format!("l{i}"), &format!("user{i}")),
                )
                .await
        }
    });
    for created in futures::future::join_all(creates).await {
        created?;
    }
    wait_for(WAIT, || async {
        (count_leases(&leases, LeasePhase::Active).await == 4
            && count_leases(&leases, LeasePhase::Pending).await == 2)
            .then_some(())
    })
    .await?;
    assert_pool_consistent(&cluster).await?;

    // Only the leader did any of it.
    assert_eq!(
        lock_holder(&cluster.client).await.as_deref(),
        Some("replica-a")
    );
    assert_eq!(second.metrics.leader.get(), 0);
    assert_eq!(second.reconciles("account") + second.reconciles("lease"), 0);
    assert!(first.reconciles("lease") > 0);
    let reporters = wait_for(WAIT, || async {
        let reporters = event_reporters(&cluster.client, "team-l").await.ok()?;
        (!reporters.is_empty()).then_some(reporters)
    })
    .await?;
    assert_eq!(reporters, ["replica-a"]);

    // The leader dies; the follower takes the lock once it expires, and keeps serving.
    let killed = Instant::now();
    first.kill().await;
    wait_for(WAIT, || async {
        (second.metrics.leader.get() == 1).then_some(())
    })
    .await?;
    let takeover = killed.elapsed();
    // The follower re-checks the lock when it expires, plus up to a second of jitter.
    assert!(
        takeover <= Duration::from_secs(LOCK_SECONDS + 2),
        "takeover after {takeover:?}"
    );
    assert_eq!(
        lock_holder(&cluster.client).await.as_deref(),
        Some("replica-b")
    );

    let all = leases.list(&Default::default()).await?;
    let active = all
        .items
        .iter()
        .find(|l| l.phase() == Some(LeasePhase::Active))
        .map(|l| l.name_any())
        .expect("an active lease");
    let waiting: Vec<String> = all
        .items
        .iter()
        .filter(|l| l.phase() == Some(LeasePhase::Pending))
        .map(|l| l.name_any())
        .collect();
    leases.delete(&active, &DeleteParams::default()).await?;
    wait_for(WAIT, || async {
        for name in &waiting {
            if leases.get(name).await.ok()?.phase() == Some(LeasePhase::Active) {
                return Some(());
            }
        }
        None
    })
    .await?;
    assert_pool_consistent(&cluster).await?;
    assert!(second.reconciles("lease") > 0);
    wait_for(WAIT, || async {
        let reporters = event_reporters(&cluster.client, "team-l").await.ok()?;
        reporters.contains(&"replica-b".to_string()).then_some(())
    })
    .await?;

    second.stop().await;
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_leader_that_loses_the_lock_stops_reconciling() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let leader = replica(&cluster, "replica-a");
    wait_for(WAIT, || async {
        (leader.metrics.leader.get() == 1).then_some(())
    })
    .await?;

    // Someone else holds the lock now (e.g. the leader could not renew it in time).
    let locks: Api<LeaderLock> = Api::namespaced(cluster.client.clone(), OPERATOR_NAMESPACE);
    // MicroTime: the API server takes at most microseconds.
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now());
    let stolen = serde_json::json!({ "spec": {
        "holderIdentity": "replica-z",
        "acquireTime": now,
        "renewTime": now,
        "leaseDurationSeconds": 60,
    }});
    locks
        .patch(LEADER_LEASE, &PatchParams::default(), &Patch::Merge(stolen))
        .await?;

    let metrics = leader.metrics.clone();
    let outcome = leader.ended().await;
    let error = outcome.expect_err("a replica without the lock must not keep running");
    assert!(error.to_string().contains("lost leadership"), "{error}");
    assert_eq!(metrics.leader.get(), 0);
    assert_eq!(
        lock_holder(&cluster.client).await.as_deref(),
        Some("replica-z")
    );

    cluster.stop().await;
    Ok(())
}

/// A lock long enough that a takeover within it can only come from a release.
const LONG_LOCK_SECONDS: u64 = 30;

#[tokio::test]
async fn sigterm_hands_the_lock_to_the_waiting_replica_at_once() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let dir = ScratchDir::new()?;
    let kubeconfig = dir.path().join("kubeconfig");
    cluster
        .control_plane
        .write_kubeconfig(&kubeconfig, cluster.control_plane.admin_token())?;
    let launch = OperatorLaunch {
        kubeconfig,
        sts_endpoint: cluster.moto.endpoint(),
        args: vec![
            "--reset-mode=disabled".into(),
            format!("--leader-lease-seconds={LONG_LOCK_SECONDS}"),
        ],
        env: vec![],
        log_dir: dir.path().to_path_buf(),
    };
    let first = OperatorProcess::start(&launch, 0).await?;
    wait_for(WAIT, || async {
        (lock_holder(&cluster.client).await.as_deref() == Some("e2e-operator-0")).then_some(())
    })
    .await?;
    let second = OperatorProcess::start(&launch, 1).await?;

    let terminated = Instant::now();
    assert!(
        first.terminate(Duration::from_secs(10)).await,
        "the leader did not exit within 10 s of SIGTERM"
    );
    let exited = terminated.elapsed();
    wait_for(Duration::from_secs(LONG_LOCK_SECONDS / 2), || async {
        (lock_holder(&cluster.client).await.as_deref() == Some("e2e-operator-1")).then_some(())
    })
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "the waiting replica did not take the released lock:\n{}",
            second.log_tail()
        )
    })?;
    let handover = terminated.elapsed();
    eprintln!("SIGTERM: leader exited after {exited:?}; lock handed over after {handover:?}");

    drop(second);
    cluster.stop().await;
    Ok(())
}
