//! Two replicas, one per node (their ports are their node's): one leader, a deleted leader's
//! work taken over at once, and an upgrade rolled out while a request loop loses no request.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dce_e2e::helm::chart_dir;
use k8s_openapi::api::coordination::v1::Lease as LeaderLock;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::fixture::{LEADER_LOCK, NAMESPACE, OnNode, RELEASE, RELEASE_SELECTOR, eventually};
use crate::install::{condition_time, operator_pods};

/// The chart's leader lease duration (`leaderElection.leaseSeconds`).
const LEASE_SECONDS: u64 = 15;

async fn leader(client: &Client) -> Option<String> {
    let locks: Api<LeaderLock> = Api::namespaced(client.clone(), NAMESPACE);
    locks.get(LEADER_LOCK).await.ok()?.spec?.holder_identity
}

pub async fn two_replicas_elect_one_leader_and_replace_a_deleted_one(
    cluster: &mut OnNode,
) -> anyhow::Result<()> {
    let mut values = cluster.values(&cluster.moto.endpoint());
    values["replicaCount"] = json!(2);
    cluster.helm.upgrade(RELEASE, &chart_dir(), &values).await?;
    cluster.wait_rolled_out().await?;
    let pods = operator_pods(cluster).await?;
    let ips: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    assert_eq!(ips.len(), 2, "one replica per node: {ips:?}");
    let first = eventually(|| leader(&cluster.client)).await?;
    assert!(pods.iter().any(|p| p.name_any() == first), "{first}");

    let deleted = Instant::now();
    let pods_api: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    pods_api.delete(&first, &DeleteParams::default()).await?;
    let successor = eventually(|| async {
        let holder = leader(&cluster.client).await?;
        (holder != first).then_some(holder)
    })
    .await?;
    let takeover = deleted.elapsed();
    cluster.wait_rolled_out().await?;
    eprintln!(
        "leader {first} deleted: {successor} leads after {:.1} s, its replacement Ready after \
         {:.1} s (lease {LEASE_SECONDS} s)",
        takeover.as_secs_f64(),
        deleted.elapsed().as_secs_f64()
    );
    // A stopping leader releases its lock: the other replica need not wait for it to expire.
    assert!(
        takeover < Duration::from_secs(LEASE_SECONDS),
        "{takeover:?}"
    );
    Ok(())
}

/// The facade's addresses on the Pods a Service would send requests to: Ready and not
/// terminating, as the EndpointSlice controller chooses them (the slices themselves refuse
/// this node's loopback addresses, and no kube-proxy runs here).
async fn serving_endpoints(client: &Client, port: u16) -> Vec<SocketAddr> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let selector = kube::api::ListParams::default().labels(RELEASE_SELECTOR);
    let Ok(list) = pods.list(&selector).await else {
        return Vec::new();
    };
    list.items
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| condition_time(pod, "Ready").is_some())
        .filter_map(|pod| pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok())
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

pub async fn an_upgrade_rolls_out_without_a_failed_request(
    cluster: &mut OnNode,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let requests = tokio::spawn({
        let (client, stop, port) = (cluster.client.clone(), stop.clone(), cluster.api_port);
        let token = format!("Bearer {}", cluster.control_plane.admin_token());
        async move {
            let (mut answered, mut failed) = (0u32, Vec::new());
            let mut turn = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let endpoints = serving_endpoints(&client, port).await;
                turn += 1;
                if let Some(addr) = endpoints.get(turn % endpoints.len().max(1)) {
                    let headers = [("Authorization", token.as_str())];
                    match dce_e2e::http::request(*addr, "GET", "/accounts", &headers, b"").await {
                        Ok((200, _)) => answered += 1,
                        other => failed.push(format!("{addr}: {other:?}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (answered, failed)
        }
    });
    let mut values = cluster.values(&cluster.moto.endpoint());
    values["replicaCount"] = json!(2);
    // A changed setting: every Pod is replaced.
    values["config"]["logFilter"] = json!("debug");
    let started = Instant::now();
    cluster.helm.upgrade(RELEASE, &chart_dir(), &values).await?;
    cluster.wait_rolled_out().await?;
    stop.store(true, Ordering::Relaxed);
    let (answered, failed) = requests.await?;
    eprintln!(
        "upgrade of 2 replicas rolled out in {:.1} s; {answered} requests answered, {} failed",
        started.elapsed().as_secs_f64(),
        failed.len()
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(
        answered > 10,
        "the loop ran through the rollout: {answered}"
    );
    Ok(())
}
