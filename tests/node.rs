//! The test node (`dce_e2e::node`): a host-network Pod of the local pause image runs on it,
//! with address 127.0.0.1, a probe that reaches a server on 127.0.0.1 and its log served
//! through the API server, and the node leaves nothing behind when it stops. Needs root, `make kube-tools` and `make images`;
//! skips with the reason otherwise.

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use dce_e2e::cluster::wait_for;
use dce_e2e::control_plane::{ControlPlane, ControlPlaneConfig};
use dce_e2e::moto::workspace_root;
use dce_e2e::node::{Node, node_support};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};

const PAUSE_IMAGE: &str = "localhost/pause:e2e";
/// How long a Pod may take to be scheduled, started and probed on a busy 2-core machine.
const POD_TIMEOUT: Duration = Duration::from_secs(20);

/// Phase, Ready condition and IP of a Pod.
fn pod_state(pod: &Pod) -> (String, bool, String) {
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    (
        status.phase.unwrap_or_default(),
        ready,
        status.pod_ip.unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_host_network_pod_runs_and_the_node_leaves_nothing_behind() -> anyhow::Result<()> {
    if let Err(why) = node_support() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    let archive = workspace_root().join("e2e/kube/images/pause.tar");
    if !archive.is_file() {
        eprintln!(
            "skipped: {} not found: run `make images`",
            archive.display()
        );
        return Ok(());
    }
    let mut control_plane = ControlPlane::start(ControlPlaneConfig::default()).await?;
    let node = Node::start(&mut control_plane, PAUSE_IMAGE).await?;
    node.import_image(&archive)?;
    let footprint = node.footprint();

    // The readiness probe connects to the Pod's IP: it passes only if that is 127.0.0.1,
    // where this listener waits (the kernel completes the connections it never accepts).
    let probed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pause"},
        "spec": {
            "hostNetwork": true,
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "pause",
                "image": PAUSE_IMAGE,
                "imagePullPolicy": "Never",
                "readinessProbe": {
                    "tcpSocket": {"port": probed.local_addr()?.port()},
                    "periodSeconds": 1,
                },
            }],
        },
    }))?;
    let pods: Api<Pod> = Api::namespaced(control_plane.admin_client().await?, "default");
    let created = Instant::now();
    pods.create(&PostParams::default(), &pod).await?;
    let running = wait_for(POD_TIMEOUT, || async {
        let pod = pods.get("pause").await.ok()?;
        let (phase, ready, ip) = pod_state(&pod);
        (phase == "Running" && ready).then_some((pod, ip))
    })
    .await;
    let (pod, ip) = match running {
        Ok(running) => running,
        Err(error) => {
            let pod = pods.get("pause").await?;
            anyhow::bail!(
                "Pod not Running and Ready: {error}; status: {:?}\n{}",
                pod.status,
                node.log_tail(30)
            );
        }
    };
    eprintln!("Pod Running and Ready in {:?}", created.elapsed());
    assert_eq!(ip, "127.0.0.1");
    assert_eq!(
        pod.spec.and_then(|spec| spec.node_name).as_deref(),
        Some(node.name())
    );
    // The sandbox and the container.
    let tasks = node.ctr(&["tasks", "ls"])?;
    assert_eq!(tasks.matches("RUNNING").count(), 2, "tasks:\n{tasks}");
    // The API server reaches the kubelet (at the node's address) for the container's log.
    pods.logs("pause", &Default::default()).await?;

    pods.delete("pause", &DeleteParams::default()).await?;
    wait_for(POD_TIMEOUT, || async {
        pods.get_opt("pause").await.ok()?.is_none().then_some(())
    })
    .await?;

    node.shutdown().await?;
    let leftovers = footprint.leftovers();
    assert!(leftovers.is_empty(), "left behind: {leftovers:#?}");
    control_plane.shutdown().await;
    Ok(())
}
