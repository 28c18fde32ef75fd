//! The chart's RBAC against what the operator does: the operator binary runs as the chart's
//! ServiceAccount (a static token) with the chart installed, through a workload that touches
//! every code path that talks to the API server, while the control plane records each of its
//! authorization decisions. No request may be denied, and every permission the chart grants must
//! have been used — or be listed below with the reason it cannot be exercised here.

use std::collections::BTreeSet;
use std::time::Duration;

use dce_e2e::chart_cluster::{bind, deployment_env, static_token};
use dce_e2e::cluster::wait_for;
use dce_e2e::control_plane::{AuthorizationDecision, ControlPlaneConfig};
use dce_e2e::moto::{FederationStub, Moto};
use dce_e2e::operator_process::{OperatorLaunch, OperatorProcess};
use dce_operator::controllers::FIELD_MANAGER;
use dce_operator::lifecycle::usage_store::store_name;
use dce_operator::resources::{Account, AccountPhase, Lease, LeasePhase, LeaseSpec};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::common::{JobOutcome, WAIT, account, finish_job, wait_lease};
use crate::{Cluster, NAMESPACE, RELEASE};

const OPERATOR_USER: &str = "system:serviceaccount:dce-system:dce-operator";
const POOL_ADMIN_TOKEN: &str = "pool-admin-token";
const LEASE_USER_TOKEN: &str = "alice-token";
const TEAM_NAMESPACE: &str = "team-a";

/// Granted permissions this workload cannot exercise, and why.
const NOT_EXERCISED: &[(&str, &str)] = &[
    (
        "update dce.dev/accounts/finalizers",
        "needed only where the OwnerReferencesPermissionEnforcement admission plugin runs \
         (e.g. OpenShift): the operator sets blockOwnerDeletion on the reset Jobs and Secrets \
         it owns by Account; a default kube-apiserver (as the test control plane runs) does not \
         enforce it",
    ),
    (
        "update dce.dev/leases/finalizers",
        "as above, for the credentials Secrets owned by Leases",
    ),
];

/// One permission a rule grants: a verb on a group/resource[/subresource], optionally limited
/// to names, cluster-wide (ClusterRole) or in the release namespace (Role).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    verb: String,
    group: String,
    resource: String,
    names: Vec<String>,
    cluster_wide: bool,
}

impl Grant {
    fn label(&self) -> String {
        let names = if self.names.is_empty() {
            String::new()
        } else {
            format!(" {:?}", self.names)
        };
        format!("{} {}/{}{names}", self.verb, self.group, self.resource)
    }

    fn allows(&self, d: &AuthorizationDecision) -> bool {
        let resource = if d.subresource.is_empty() {
            d.resource.clone()
        } else {
            format!("{}/{}", d.resource, d.subresource)
        };
        self.verb == d.verb
            && self.group == d.api_group
            && self.resource == resource
            && (self.names.is_empty() || self.names.contains(&d.name))
            && (self.cluster_wide || d.namespace == NAMESPACE)
    }
}

/// Every permission the chart's operator ClusterRole and Role grant.
fn grants(objects: &[Value]) -> Vec<Grant> {
    let mut out = vec![];
    for (kind, cluster_wide) in [("ClusterRole", true), ("Role", false)] {
        let role = objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == RELEASE)
            .unwrap_or_else(|| panic!("the chart renders {kind} {RELEASE}"));
        for rule in role["rules"].as_array().unwrap() {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        assert_ne!(verb, "*", "wildcard verbs are not least privilege");
                        assert_ne!(resource, "*", "wildcard resources are not least privilege");
                        out.push(Grant {
                            verb,
                            group: group.clone(),
                            resource: resource.clone(),
                            names: list("resourceNames"),
                            cluster_wide,
                        });
                    }
                }
            }
        }
    }
    out
}

/// A REST call to the operator's API with a bearer token: status and JSON body.
async fn rest(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap();
    let response = client.request(request).await.expect("the REST API answers");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Completes reset Jobs of `account` until it is Ready (no kubelet runs their pods here).
pub async fn reset_until_ready(client: &Client, account: &str) {
    let accounts: Api<Account> = Api::all(client.clone());
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let current = accounts.get(account).await.unwrap();
        if current.phase() == Some(AccountPhase::Ready) {
            return;
        }
        let status = serde_json::to_string(&current.status).unwrap();
        let recorded = current.status.and_then(|s| s.reset_job);
        if let Some(name) = recorded
            && let Some(job) = jobs.get_opt(&name).await.unwrap()
            && job.status.and_then(|s| s.succeeded).is_none()
        {
            finish_job(client, &name, JobOutcome::Complete)
                .await
                .unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "account {account} never became Ready: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn chart_rbac_is_exactly_what_the_operator_uses() {
    let cluster = Cluster::start_with(ControlPlaneConfig {
        tokens: vec![
            static_token(POOL_ADMIN_TOKEN, "pool-admin", &[]),
            static_token(LEASE_USER_TOKEN, "alice", &[]),
        ],
        audited_users: vec![OPERATOR_USER.into()],
        ..ControlPlaneConfig::default()
    })
    .await
    .unwrap();
    let client = cluster.client.clone();
    // Reset Jobs on; Inactive leases are deleted a second after they end.
    let objects = cluster
        .install(&json!({ "config": { "leaseHistorySeconds": 1 } }))
        .await
        .expect("install");
    bind(&client, "dce-admin", "pool-admin").await;
    bind(&client, "dce-lease-user", "alice").await;
    cluster
        .kubectl
        .create_namespace(TEAM_NAMESPACE)
        .await
        .unwrap();

    let moto = Moto::start().await.unwrap();
    let federation = FederationStub::start().await.unwrap();
    let kubeconfig = cluster.operator_kubeconfig().await.unwrap();
    let launch = OperatorLaunch {
        kubeconfig,
        sts_endpoint: moto.endpoint(),
        args: vec![format!("--federation-endpoint={}", federation.endpoint())],
        env: deployment_env(&objects),
        log_dir: cluster.dir.path().to_path_buf(),
    };
    let operator = OperatorProcess::start(&launch, 0).await.unwrap();
    let api = operator.api_url();
    run_workload(&client, &api, &moto).await;
    drop(operator);

    let decisions = cluster
        .control_plane
        .authorization_decisions()
        .expect("the audit log");
    let denied: BTreeSet<String> = decisions
        .iter()
        .filter(|d| !d.allowed)
        .map(|d| format!("{d:?}"))
        .collect();
    assert!(
        denied.is_empty(),
        "the chart's RBAC denied the operator: {denied:#?}"
    );
    let agent = format!("dce-operator/{}", env!("CARGO_PKG_VERSION"));
    let anonymous: BTreeSet<&str> = decisions
        .iter()
        .filter(|d| !d.user_agent.starts_with(&agent))
        .map(|d| d.user_agent.as_str())
        .collect();
    assert!(
        anonymous.is_empty(),
        "requests without the User-Agent {agent}: {anonymous:?}"
    );

    let grants = grants(&objects);
    let mut unused = vec![];
    let mut narrower = vec![];
    for grant in &grants {
        let uses: Vec<&AuthorizationDecision> =
            decisions.iter().filter(|d| grant.allows(d)).collect();
        let exempt = NOT_EXERCISED
            .iter()
            .any(|(label, _)| *label == grant.label());
        if uses.is_empty() && !exempt {
            unused.push(grant.label());
        }
        if !uses.is_empty() && exempt {
            panic!("{} is listed as not exercised but was used", grant.label());
        }
        // A cluster-wide grant of a namespaced resource must be needed outside the release
        // namespace (or across all namespaces); otherwise a Role would do.
        let outside = uses.iter().any(|d| d.namespace != NAMESPACE);
        if grant.cluster_wide && !uses.is_empty() && !outside {
            narrower.push(grant.label());
        }
    }
    assert!(unused.is_empty(), "granted but never used: {unused:#?}");
    assert!(
        narrower.is_empty(),
        "cluster-wide but used only in {NAMESPACE}: {narrower:#?}"
    );
    for (label, _) in NOT_EXERCISED {
        assert!(
            grants.iter().any(|g| g.label() == *label),
            "{label} is listed as not exercised but is not granted"
        );
    }

    federation.shutdown().await;
    drop(moto);
    cluster.stop().await;
}

/// Today's cost of the account `id`, queued on moto's Cost Explorer.
async fn queue_cost_today(moto: &Moto, id: &str, amount: f64) {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let period = json!({"Start": today.to_string(), "End": today.tomorrow().unwrap().to_string()});
    moto.queue_cost_and_usage(&json!({
        "account_id": id,
        "results": [{
            "ResultsByTime": [{
                "TimePeriod": period,
                "Total": {"UnblendedCost": {"Amount": amount.to_string(), "Unit": "USD"}},
                "Groups": [],
                "Estimated": true
            }]
        }]
    }))
    .await
    .unwrap();
}

/// Everything the operator does that reaches the API server: the pool, leases through kubectl
/// and REST to Active, expiry and deletion, usage stores, reset Jobs, history clean-up, credential refresh,
/// both REST APIs (TokenReview, SubjectAccessReview), the sync setting and key-pair accounts.
async fn run_workload(client: &Client, api: &str, moto: &Moto) {
    let accounts: Api<Account> = Api::all(client.clone());
    let usage_stores: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let team_leases: Api<Lease> = Api::namespaced(client.clone(), TEAM_NAMESPACE);
    let first = "111111111111";
    accounts
        .create(&PostParams::default(), &account(first))
        .await
        .unwrap();
    reset_until_ready(client, first).await;

    // A kubectl-style lease that expires: credentials Secret, expiry, reset, history deletion.
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
    let short = Lease::new(
        "short",
        LeaseSpec {
            expires_on: Some(Time(expires)),
            ..LeaseSpec::for_principal("carol")
        },
    );
    team_leases
        .create(&PostParams::default(), &short)
        .await
        .unwrap();
    wait_lease(&team_leases, "short", LeasePhase::Active)
        .await
        .unwrap();
    reset_until_ready(client, first).await;
    wait_for(WAIT, || async {
        team_leases
            .get_opt("short")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .expect("the expired lease is deleted after its history period");

    // A kubectl-style lease with spend, deleted while Active: its final reading creates alice's
    // usage store (her REST lease's, below, is patched into it).
    queue_cost_today(moto, first, 3.5).await;
    team_leases
        .create(
            &PostParams::default(),
            &Lease::new("spent", LeaseSpec::for_principal("alice")),
        )
        .await
        .unwrap();
    wait_lease(&team_leases, "spent", LeasePhase::Active)
        .await
        .unwrap();
    team_leases
        .delete("spent", &Default::default())
        .await
        .unwrap();
    wait_for(WAIT, || async {
        team_leases
            .get_opt("spent")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .expect("the deleted lease is gone");
    reset_until_ready(client, first).await;

    // The DCE API: an account and a lease through REST, credentials, a refresh, a deletion.
    let admin = POOL_ADMIN_TOKEN;
    let second = "222222222222";
    let (code, body) = rest(
        api,
        admin,
        "POST",
        "/accounts",
        Some(json!({ "id": second, "adminRoleArn": format!("arn:aws:iam::{second}:role/Admin") })),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    reset_until_ready(client, second).await;
    queue_cost_today(moto, second, 1.25).await;
    let (code, lease) = rest(
        api,
        admin,
        "POST",
        "/leases",
        Some(json!({ "principalId": "alice" })),
    )
    .await;
    assert_eq!(code, 201, "{lease}");
    let id = lease["id"].as_str().unwrap().to_string();
    let (code, list) = rest(api, LEASE_USER_TOKEN, "GET", "/leases", None).await;
    assert_eq!(
        (code, list.as_array().map(Vec::len)),
        (200, Some(1)),
        "{list}"
    );
    let (code, auth) = rest(api, admin, "POST", &format!("/leases/{id}/auth"), None).await;
    assert_eq!(code, 201, "{auth}");

    // The AWS-integration API: the sync setting, a sync (which refreshes lease credentials),
    // key-pair accounts.
    let prefix = "/api/npm.aws_config/1.0";
    for setting in ["DISABLED", "ENABLED"] {
        let (code, body) = rest(
            api,
            admin,
            "PUT",
            &format!("{prefix}/sync/status"),
            Some(json!({ "status": setting })),
        )
        .await;
        assert_eq!(code, 204, "{body}");
    }
    let (code, status) = rest(api, admin, "GET", &format!("{prefix}/status"), None).await;
    assert_eq!(code, 200, "{status}");
    let api_leases: Api<Lease> = Api::namespaced(client.clone(), "dce-leases");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "dce-leases");
    let rest_lease = api_leases
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let secret_name = rest_lease
        .status
        .and_then(|s| s.credentials_secret_name)
        .unwrap();
    let written = secrets.get(&secret_name).await.unwrap().resource_version();
    let (code, body) = rest(api, admin, "POST", &format!("{prefix}/sync"), None).await;
    assert_eq!(code, 204, "{body}");
    wait_for(WAIT, || async {
        (secrets.get(&secret_name).await.ok()?.resource_version() != written).then_some(())
    })
    .await
    .expect("POST /sync rewrites the active lease's credentials Secret");
    let codes = json!([{ "acc_id": "integration-1", "access_key": "AKIDEXAMPLE", "secret_key": "example-secret" }]);
    let (code, body) = rest(
        api,
        admin,
        "PUT",
        &format!("{prefix}/auth_codes"),
        Some(codes),
    )
    .await;
    assert_eq!(code, 204, "{body}");
    let (code, listed) = rest(api, admin, "GET", &format!("{prefix}/auth_codes"), None).await;
    assert_eq!(code, 200, "{listed}");
    let (code, body) = rest(
        api,
        admin,
        "DELETE",
        &format!("{prefix}/auth_codes"),
        Some(json!([{ "acc_id": "integration-1" }])),
    )
    .await;
    assert_eq!(code, 204, "{body}");

    // Ending the REST lease, then retiring the first account.
    let (code, ended) = rest(api, admin, "DELETE", &format!("/leases/{id}"), None).await;
    assert_eq!(code, 200, "{ended}");
    wait_for(WAIT, || async {
        let store = usage_stores.get_opt(&store_name("alice")).await.ok()??;
        (store.data?.len() == 2).then_some(())
    })
    .await
    .expect("both of alice's leases are in her usage store");
    let leased = [first, second];
    for id in leased {
        reset_until_ready(client, id).await;
    }

    // An account whose holder lease vanished while the operator was away (deleted with its
    // finalizer removed by hand): the operator looks the lease up before releasing the account.
    // The holder is written as the operator writes it, with its field manager.
    let mut status = serde_json::to_value(accounts.get(first).await.unwrap().status).unwrap();
    status["accountStatus"] = json!("Leased");
    status["lease"] = json!({ "namespace": TEAM_NAMESPACE, "name": "force-deleted", "uid": "0e0c2a52-5d44-4c63-9d1f-5b3c1ad0c0de" });
    let vanished = json!({ "apiVersion": "dce.dev/v1alpha1", "kind": "Account", "status": status });
    accounts
        .patch_status(
            first,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&vanished),
        )
        .await
        .unwrap();
    wait_for(WAIT, || async {
        (accounts.get(first).await.ok()?.phase() != Some(AccountPhase::Leased)).then_some(())
    })
    .await
    .expect("the operator releases an account whose lease is gone");
    reset_until_ready(client, first).await;

    let (code, body) = rest(api, admin, "DELETE", &format!("/accounts/{first}"), None).await;
    assert_eq!(code, 204, "{body}");
}
