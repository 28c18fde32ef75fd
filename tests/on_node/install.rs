//! `helm install` on the node, what a user then does with the operator, and `helm uninstall`.

use std::net::SocketAddr;

use dce_e2e::aws_account::AwsAccount;
use dce_e2e::helm::chart_dir;
use dce_operator::resources::{Account, AccountPhase, Lease, LeasePhase};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

use crate::fixture::{
    NAMESPACE, OnNode, PAUSE_IMAGE, REGION, RELEASE, RELEASE_SELECTOR, eventually,
};

/// The pool account of the scenario, and the role the operator reaches it through.
pub const ACCOUNT_ID: &str = "210000000001";
pub const ADMIN_ROLE: &str = "OrganizationAccountAccessRole";
/// Where a team's Lease and the Pod using its credentials live.
pub const TEAM_NAMESPACE: &str = "team-a";
/// The lease whose Secret a Pod mounts; the reset test then leaves resources in its account.
pub const FIRST_LEASE: &str = "alice-sandbox";

pub fn admin_role_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:role/{ADMIN_ROLE}")
}

/// The operator's Pods.
pub async fn operator_pods(cluster: &OnNode) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    Ok(pods
        .list(&ListParams::default().labels(RELEASE_SELECTOR))
        .await?
        .items)
}

pub fn condition_time(pod: &Pod, kind: &str) -> Option<jiff::Timestamp> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let condition = conditions
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")?;
    Some(condition.last_transition_time.as_ref()?.0)
}

pub async fn installs_ready_through_its_probes(cluster: &mut OnNode) -> anyhow::Result<()> {
    let values = cluster.values(&cluster.moto.endpoint());
    cluster.helm.install(RELEASE, &chart_dir(), &values).await?;
    cluster.wait_rolled_out().await?;
    let pods = operator_pods(cluster).await?;
    assert_eq!(pods.len(), 1, "one replica");
    let pod = &pods[0];
    assert_eq!(pod.spec.as_ref().and_then(|s| s.host_network), Some(true));
    let status = pod.status.as_ref().expect("a running Pod has a status");
    // The node's address, so the kubelet's probes and the Service reach it on loopback.
    let ip: std::net::IpAddr = status.pod_ip.as_deref().unwrap_or_default().parse()?;
    assert!(ip.is_loopback(), "{ip}");
    let container = &status
        .container_statuses
        .as_ref()
        .expect("container statuses")[0];
    let started = container
        .state
        .as_ref()
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.as_ref())
        .expect("the container runs")
        .0;
    let ready = condition_time(pod, "Ready").expect("the Pod is Ready");
    eprintln!(
        "operator image {}: container start to Ready in {:.1} s",
        container.image,
        ready.duration_since(started).as_secs_f64()
    );
    // Ready means the probes answered; ask the same endpoint directly too.
    let metrics = SocketAddr::new(ip, cluster.metrics_port);
    let (code, _) = dce_e2e::http::request(metrics, "GET", "/readyz", &[], b"").await?;
    assert_eq!(code, 200);
    Ok(())
}

/// An Account applied with kubectl is onboarded and reset (a real aws-nuke Job) into Ready.
pub async fn an_account_is_onboarded_and_reset(cluster: &OnNode) -> anyhow::Result<String> {
    let aws = AwsAccount::assuming(&cluster.moto.endpoint(), REGION, &admin_role_arn());
    aws.create_role(ADMIN_ROLE).await?;
    let manifest = json!({
        "apiVersion": "dce.dev/v1alpha1",
        "kind": "Account",
        "metadata": { "name": ACCOUNT_ID },
        "spec": { "id": ACCOUNT_ID, "adminRoleArn": admin_role_arn() },
    });
    cluster.kubectl.apply(&manifest.to_string()).await?;
    let accounts: Api<Account> = Api::all(cluster.client.clone());
    eventually(|| async {
        (accounts.get(ACCOUNT_ID).await.ok()?.phase() == Some(AccountPhase::Ready)).then_some(())
    })
    .await?;
    // The operator made the principal role and its policy, and the reset kept them.
    let held = aws.inventory().await?;
    assert!(held["IAMRole"].contains("DCEPrincipal"), "{held:?}");
    assert!(
        held["IAMPolicy"].contains("DCEPrincipalDefaultPolicy"),
        "{held:?}"
    );
    Ok(ACCOUNT_ID.to_string())
}

/// A Lease applied with kubectl gets its Secret, and a Pod that mounts it starts.
pub async fn a_leases_secret_is_mounted_by_a_pod(
    cluster: &OnNode,
    account: &str,
) -> anyhow::Result<()> {
    cluster.kubectl.create_namespace(TEAM_NAMESPACE).await?;
    let lease = active_lease(cluster, FIRST_LEASE, account).await?;
    let secret_name = lease
        .status
        .as_ref()
        .and_then(|s| s.credentials_secret_name.clone())
        .expect("an Active lease names its Secret");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "uses-credentials" },
        "spec": {
            // This node has no Pod network: every Pod uses the node's.
            "hostNetwork": true,
            "containers": [{
                "name": "app",
                "image": PAUSE_IMAGE,
                "imagePullPolicy": "Never",
                "envFrom": [{ "secretRef": { "name": secret_name } }],
                "volumeMounts": [{ "name": "aws", "mountPath": "/var/run/aws", "readOnly": true }],
            }],
            "volumes": [{ "name": "aws", "secret": { "secretName": secret_name } }],
        },
    }))?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), TEAM_NAMESPACE);
    pods.create(&PostParams::default(), &pod).await?;
    eventually(|| async {
        let pod = pods.get("uses-credentials").await.ok()?;
        condition_time(&pod, "Ready").map(|_| ())
    })
    .await?;
    pods.delete("uses-credentials", &Default::default()).await?;
    Ok(())
}

/// Applies a Lease for `account` in the team's namespace and waits until it is Active.
pub async fn active_lease(cluster: &OnNode, name: &str, account: &str) -> anyhow::Result<Lease> {
    let manifest = json!({
        "apiVersion": "dce.dev/v1alpha1",
        "kind": "Lease",
        "metadata": { "name": name, "namespace": TEAM_NAMESPACE },
        "spec": { "principalId": name, "accountId": account, "budgetAmount": 100 },
    });
    cluster.kubectl.apply(&manifest.to_string()).await?;
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), TEAM_NAMESPACE);
    eventually(|| async {
        let lease = leases.get(name).await.ok()?;
        (lease.phase() == Some(LeasePhase::Active)).then_some(lease)
    })
    .await
}

/// The lease's credentials, as its Secret holds them.
pub async fn lease_credentials(
    cluster: &OnNode,
    lease: &Lease,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let name = lease
        .status
        .as_ref()
        .and_then(|s| s.credentials_secret_name.clone())
        .expect("an Active lease names its Secret");
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), TEAM_NAMESPACE);
    let data = secrets.get(&name).await?.data.unwrap_or_default();
    Ok(data
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect())
}

/// The REST facade answers through its Service: `kubectl port-forward service/…` picks a Pod
/// the Service selects and the Service's target port, as a user reaches it from outside. (Its
/// EndpointSlices stay empty here: they refuse the node's loopback address.)
pub async fn the_facade_answers_through_its_service(
    cluster: &OnNode,
    account: &str,
) -> anyhow::Result<()> {
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let service = services.get(RELEASE).await?;
    let ports = service.spec.and_then(|s| s.ports).unwrap_or_default();
    assert!(
        ports.iter().any(|p| p.name.as_deref() == Some("api")),
        "{ports:?}"
    );
    let forward = cluster
        .kubectl
        .port_forward(NAMESPACE, &format!("service/{RELEASE}"), "api")
        .await?;
    let token = format!("Bearer {}", cluster.control_plane.admin_token());
    let (code, body) = dce_e2e::http::request(
        forward.addr,
        "GET",
        "/accounts",
        &[("Authorization", &token)],
        b"",
    )
    .await?;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let listed: Value = serde_json::from_slice(&body)?;
    assert!(
        listed
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["id"] == account)),
        "{listed}"
    );
    Ok(())
}

/// `helm uninstall` stops the operator's Pods and removes everything it installed but the
/// CRDs and the lease namespace, which it keeps by design (they hold users' data).
pub async fn uninstall_leaves_nothing_behind(cluster: &OnNode) -> anyhow::Result<()> {
    cluster.helm.uninstall(RELEASE).await?;
    eventually(|| async {
        let pods = operator_pods(cluster).await.ok()?;
        pods.is_empty().then_some(())
    })
    .await?;
    let left = cluster
        .kubectl
        .ok(
            &[
                "get",
                "all,serviceaccounts,roles,rolebindings,configmaps,secrets,networkpolicies,\
                 poddisruptionbudgets,clusterroles,clusterrolebindings",
                "-A",
                "-l",
                RELEASE_SELECTOR,
                "-o",
                "name",
            ],
            None,
        )
        .await?;
    assert!(left.trim().is_empty(), "left behind: {left}");
    // No container of the operator's is left on the nodes.
    for node in &cluster.nodes {
        let containers = node.ctr(&["containers", "list"])?;
        assert!(
            !containers.contains("dce-operator"),
            "an operator container is left on {}:\n{containers}",
            node.name()
        );
    }
    Ok(())
}
