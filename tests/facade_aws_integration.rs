//! The AWS-integration API over HTTP, against a real control plane (tokens and RBAC), moto
//! and the operator running in-process.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use common::{RunningOperator, WAIT, lease, wait_lease};
use dce_e2e::cluster::{OPERATOR_NAMESPACE, TestCluster, install_crypto_provider, wait_for};
use dce_e2e::control_plane::{ControlPlaneConfig, StaticToken};
use dce_operator::aws::{Aws, AwsSettings};
use dce_operator::facade::aws_integration::{OPENAPI, PREFIX};
use dce_operator::facade::{self, ApiKeys, Authorizer, FacadeSettings, FacadeState};
use dce_operator::lifecycle::account::SYNC_REQUEST_ANNOTATION;
use dce_operator::lifecycle::sync::{CREDENTIALS_REFRESH_ANNOTATION, SETTING_CONFIG_MAP};
use dce_operator::lifecycle::{LeasePolicy, ResetMode};
use dce_operator::metrics::Metrics;
use dce_operator::operator::{Caches, Parked};
use dce_operator::resources::{Account, AccountPhase, Lease, LeasePhase};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};
use tokio::sync::watch;

/// Allowed every verb of the API (`list`, `create`, `update`, `delete`, `sync` on accounts).
const EDITOR: &str = "editor-token";
/// Allowed `list` on accounts only.
const VIEWER: &str = "viewer-token";
/// Authenticated, allowed nothing.
const NOBODY: &str = "nobody-token";

/// The control plane with the test users and their RBAC, moto, and the operator namespace.
async fn start_cluster() -> anyhow::Result<TestCluster> {
    install_crypto_provider();
    let user = |token: &str, name: &str| StaticToken {
        token: token.into(),
        username: name.into(),
        uid: name.into(),
        groups: vec!["system:authenticated".into()],
    };
    let cluster = TestCluster::start_with(ControlPlaneConfig {
        tokens: vec![
            user(EDITOR, "carol"),
            user(VIEWER, "alice"),
            user(NOBODY, "bob"),
        ],
        ..ControlPlaneConfig::default()
    })
    .await?;
    grant(
        &cluster.client,
        "carol",
        &["list", "create", "update", "delete", "sync"],
    )
    .await?;
    grant(&cluster.client, "alice", &["list"]).await?;
    Ok(cluster)
}

/// Binds `user` to a ClusterRole allowing `verbs` on accounts.dce.dev.
async fn grant(client: &Client, user: &str, verbs: &[&str]) -> anyhow::Result<()> {
    let name = format!("dce-accounts-{user}");
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["dce.dev".into()]),
            resources: Some(vec!["accounts".into()]),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    };
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name,
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Subject::default()
        }]),
    };
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

/// The REST facade on a loopback port, with its own caches, stopped by [`Facade::stop`].
struct Facade {
    base: String,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    server: tokio::task::JoinHandle<()>,
    caches: tokio::task::JoinHandle<()>,
    _parked: Parked,
    stop: watch::Sender<bool>,
}

struct Reply {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `error_id` of an error reply.
    fn error_id(&self) -> String {
        self.json()["error_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Facade {
    async fn start(cluster: &TestCluster) -> anyhow::Result<Self> {
        let client = cluster.client.clone();
        let (subscriptions, watches) =
            Caches::default().watch(client.clone(), OPERATOR_NAMESPACE)?;
        let accounts = subscriptions.sorted_accounts.clone();
        let leases = subscriptions.sorted_leases.clone();
        let usage_stores = subscriptions.usage_stores.clone();
        // No controllers here: their subscriptions are drained while the facade reads the caches.
        let parked = subscriptions.park();
        let caches = tokio::spawn(watches);
        tokio::time::timeout(WAIT, accounts.wait_until_ready()).await??;
        let state = FacadeState {
            client: client.clone(),
            accounts,
            leases,
            usage_stores,
            // Bearer tokens only: the key-pair watch is not run.
            auth: Authorizer::new(client.clone(), ApiKeys::watch(client, OPERATOR_NAMESPACE).0),
            aws: Aws::new(AwsSettings {
                sts_endpoint: Some(cluster.moto.endpoint()),
                ..AwsSettings::default()
            })
            .await,
            settings: Arc::new(FacadeSettings {
                lease_namespace: "dce-leases".into(),
                operator_namespace: OPERATOR_NAMESPACE.into(),
                policy: LeasePolicy::default(),
                principal_role_name: "DCEPrincipal".into(),
                lease_settle_timeout: Duration::from_secs(10),
                request_deadline: facade::request_deadline(Duration::from_secs(10)),
                base_path: String::new(),
                sign_in: Default::default(),
            }),
            metrics: Metrics::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, mut stopped) = watch::channel(false);
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let _ = axum::serve(listener, facade::router(state))
                .with_graceful_shutdown(shutdown)
                .await;
        });
        Ok(Self {
            base,
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
            server,
            caches,
            _parked: parked,
            stop,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        self.caches.abort();
        let _ = self.caches.await;
    }

    /// Sends a request with raw headers and body; `path` is below the API prefix.
    async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> anyhow::Result<Reply> {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(format!("{}{PREFIX}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, axum::http::HeaderValue::from_bytes(value)?);
        }
        let response = self
            .http
            .request(request.body(Full::new(Bytes::copy_from_slice(body)))?)
            .await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        let reply = Reply {
            status,
            headers,
            body,
        };
        assert_documented(method, path, &reply);
        Ok(reply)
    }

    /// Sends a request as `token` with a JSON body (if any).
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Reply> {
        let bearer = format!("Bearer {token}");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(
            method,
            path,
            &[
                ("authorization", bearer.as_bytes()),
                ("content-type", b"application/json"),
            ],
            body.as_bytes(),
        )
        .await
    }
}

/// Every reply of a documented operation has a documented status, and every error reply the
/// documented error body.
fn assert_documented(method: &str, path: &str, reply: &Reply) {
    let document: Value = serde_yaml::from_str(OPENAPI).expect("the OpenAPI document parses");
    let path_key = path.split('?').next().unwrap_or(path);
    if let Some(operation) = document["paths"][path_key].get(method.to_ascii_lowercase()) {
        assert!(
            operation["responses"]
                .get(reply.status.to_string())
                .is_some(),
            "{method} {path}: status {} is not documented",
            reply.status
        );
    }
    if reply.status >= 400 {
        let error = reply.json();
        let ids = document["components"]["schemas"]["Error"]["properties"]["error_id"]["enum"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            ids.contains(&error["error_id"]),
            "{method} {path}: undocumented error {error}"
        );
        assert!(error["error_text"].is_string(), "{error}");
    }
}

fn auth_code(acc_id: &str, access_key: &str, secret_key: &str) -> Value {
    json!({ "acc_id": acc_id, "access_key": access_key, "secret_key": secret_key })
}

async fn account_by_id(client: &Client, acc_id: &str) -> Option<Account> {
    Api::<Account>::all(client.clone())
        .list(&Default::default())
        .await
        .ok()?
        .items
        .into_iter()
        .find(|a| a.spec.id == acc_id)
}

async fn wait_ready(client: &Client, acc_id: &str) -> anyhow::Result<Account> {
    wait_for(WAIT, || async {
        account_by_id(client, acc_id)
            .await
            .filter(|a| a.phase() == Some(AccountPhase::Ready))
    })
    .await
}

fn last_sync(account: &Account) -> Option<jiff::Timestamp> {
    account
        .status
        .as_ref()?
        .last_sync_time
        .as_ref()
        .map(|t| t.0)
}

/// Sets the sync-request annotation by hand (as `kubectl annotate` would) and waits until the
/// controller has acted on it; returns the account then.
async fn request_sync_by_hand(
    client: &Client,
    account: &Account,
    value: &str,
) -> anyhow::Result<Account> {
    let api: Api<Account> = Api::all(client.clone());
    let patch = json!({ "metadata": { "annotations": { SYNC_REQUEST_ANNOTATION: value } } });
    api.patch(
        &account.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    wait_for(WAIT, || async {
        api.get(&account.name_any()).await.ok().filter(|a| {
            a.status
                .as_ref()
                .and_then(|s| s.observed_sync_request.as_deref())
                == Some(value)
        })
    })
    .await
}

/// `GET /status` until `state` is reported.
async fn wait_state(facade: &Facade, state: &str) -> anyhow::Result<Value> {
    wait_for(WAIT, || async {
        let reply = facade.call("GET", "/status", VIEWER, None).await.ok()?;
        let body = reply.json();
        (reply.status == 200 && body["state"] == state).then_some(body)
    })
    .await
}

#[tokio::test]
async fn auth_codes_round_trip_through_accounts_and_secrets() -> anyhow::Result<()> {
    let cluster = start_cluster().await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let facade = Facade::start(&cluster).await?;
    let client = cluster.client.clone();

    // An acc_id that is no Kubernetes name round-trips exactly.
    let odd = "Prod Account/EU #1";
    let put = facade
        .call(
            "PUT",
            "/auth_codes",
            EDITOR,
            Some(json!([
                auth_code(odd, "AKIDPROD", "prod-secret-1"),
                auth_code("aws2", "AKIDTWO", "two-secret"),
            ])),
        )
        .await?;
    assert_eq!(put.status, 204, "{}", put.text());
    assert!(put.body.is_empty());

    let account = wait_ready(&client, odd).await?;
    assert_eq!(account.spec.id, odd);
    assert_eq!(
        account.status.as_ref().unwrap().aws_account_id.as_deref(),
        Some("123456789012"),
        "learned from GetCallerIdentity on moto"
    );
    let reference = account.spec.credentials_secret_ref.clone().unwrap();
    assert_eq!(reference.namespace, OPERATOR_NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let secret = secrets.get(&reference.name).await?;
    let data = secret.data.clone().unwrap();
    assert_eq!(data["AWS_ACCESS_KEY_ID"].0, b"AKIDPROD");
    assert_eq!(data["AWS_SECRET_ACCESS_KEY"].0, b"prod-secret-1");
    assert_eq!(
        secret
            .labels()
            .get("dce.dev/managed-by")
            .map(String::as_str),
        Some("dce-operator")
    );
    assert_eq!(
        secret.owner_references()[0].uid,
        account.uid().unwrap(),
        "the Account owns its keys"
    );
    wait_ready(&client, "aws2").await?;

    let list = wait_for(WAIT, || async {
        let reply = facade.call("GET", "/auth_codes", VIEWER, None).await.ok()?;
        (reply.json().as_array()?.len() == 2).then_some(reply)
    })
    .await?;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.json(),
        json!([
            { "access_key": "AKIDPROD", "acc_id": odd },
            { "access_key": "AKIDTWO", "acc_id": "aws2" },
        ])
    );
    assert!(!list.text().contains("secret"), "no secret key is listed");

    // Same keys again: nothing changes. New keys: the Secret is updated and the account
    // re-validated.
    let before = account_by_id(&client, odd).await.unwrap();
    let again = facade
        .call(
            "PUT",
            "/auth_codes",
            EDITOR,
            Some(json!([auth_code(odd, "AKIDPROD", "prod-secret-1")])),
        )
        .await?;
    assert_eq!(again.status, 204);
    let unchanged = account_by_id(&client, odd).await.unwrap();
    assert_eq!(unchanged.resource_version(), before.resource_version());
    let rotated = facade
        .call(
            "PUT",
            "/auth_codes",
            EDITOR,
            Some(json!([auth_code(odd, "AKIDPROD2", "prod-secret-2")])),
        )
        .await?;
    assert_eq!(rotated.status, 204);
    let secret = secrets.get(&reference.name).await?;
    assert_eq!(
        secret.data.unwrap()["AWS_SECRET_ACCESS_KEY"].0,
        b"prod-secret-2"
    );
    wait_for(WAIT, || async {
        let account = account_by_id(&client, odd).await?;
        let requested = account.annotations().get(SYNC_REQUEST_ANNOTATION)?.clone();
        let status = account.status?;
        (status.observed_sync_request.as_deref() == Some(requested.as_str())).then_some(())
    })
    .await?;

    // DELETE with one unknown acc_id: 404, nothing deleted.
    let missing = facade
        .call(
            "DELETE",
            "/auth_codes",
            EDITOR,
            Some(json!([{ "acc_id": "aws2" }, { "acc_id": "nope" }])),
        )
        .await?;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_id(), "RESOURCE_NOT_FOUND");
    assert_eq!(missing.json()["error_info"]["acc_ids"], json!(["nope"]));
    assert!(account_by_id(&client, "aws2").await.is_some());

    let deleted = facade
        .call(
            "DELETE",
            "/auth_codes",
            EDITOR,
            Some(json!([{ "acc_id": odd }])),
        )
        .await?;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    wait_for(WAIT, || async {
        account_by_id(&client, odd).await.is_none().then_some(())
    })
    .await?;
    wait_for(WAIT, || async {
        secrets
            .get_opt(&reference.name)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("the keys are garbage-collected with the Account: {e}"))?;
    let list = wait_for(WAIT, || async {
        let reply = facade.call("GET", "/auth_codes", VIEWER, None).await.ok()?;
        (reply.json().as_array()?.len() == 1).then_some(reply)
    })
    .await?;
    assert_eq!(list.json()[0]["acc_id"], "aws2");

    facade.stop().await;
    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn sync_status_persists_and_governs_revalidation() -> anyhow::Result<()> {
    let cluster = start_cluster().await?;
    cluster.namespace("team-a").await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let facade = Facade::start(&cluster).await?;
    let client = cluster.client.clone();

    let empty = wait_state(&facade, "SYNC_NA").await?;
    assert_eq!(empty["enabled"], true);
    assert_eq!(empty["error_id"], 0);
    assert_eq!(empty["last_sync_ts"], 0);

    let put = facade
        .call(
            "PUT",
            "/auth_codes",
            EDITOR,
            Some(json!([auth_code("acc_1", "AKID1", "secret1")])),
        )
        .await?;
    assert_eq!(put.status, 204);
    let account = wait_ready(&client, "acc_1").await?;
    let synced_at = last_sync(&account).unwrap();
    let status = wait_state(&facade, "SYNC_SUCCEEDED").await?;
    assert_eq!(status["last_sync_ts"], synced_at.as_second());
    assert_eq!(status["last_success_ts"], synced_at.as_second());
    assert_eq!(
        (status["error_id"].clone(), status["error_text"].clone()),
        (json!(0), json!("OK"))
    );

    // POST /sync re-validates every account and asks every active lease for a refresh.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "team-a");
    leases
        .create(&PostParams::default(), &lease("dev", "alice"))
        .await?;
    wait_lease(&leases, "dev", LeasePhase::Active).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await; // sync times are stored to the second
    let sync = facade.call("POST", "/sync", EDITOR, None).await?;
    assert_eq!(sync.status, 204, "{}", sync.text());
    assert!(sync.body.is_empty());
    let resynced = wait_for(WAIT, || async {
        account_by_id(&client, "acc_1")
            .await
            .filter(|a| last_sync(a) > Some(synced_at))
    })
    .await?;
    let requested = resynced.annotations()[SYNC_REQUEST_ANNOTATION].clone();
    let leased = leases.get("dev").await?;
    assert_eq!(
        leased.annotations().get(CREDENTIALS_REFRESH_ANNOTATION),
        Some(&requested),
        "the active lease is asked for fresh credentials"
    );
    wait_for(WAIT, || async {
        let lease = leases.get("dev").await.ok()?;
        (lease.status?.observed_refresh_request.as_deref() == Some(requested.as_str()))
            .then_some(())
    })
    .await?;
    let status = facade.call("GET", "/status", VIEWER, None).await?.json();
    assert_eq!(
        status["last_sync_ts"],
        last_sync(&resynced).unwrap().as_second()
    );

    // DISABLED: persisted, reported, sync refused, requested re-validation ignored.
    let disable = facade
        .call(
            "PUT",
            "/sync/status",
            EDITOR,
            Some(json!({ "status": "DISABLED" })),
        )
        .await?;
    assert_eq!(disable.status, 204, "{}", disable.text());
    let stored: Api<ConfigMap> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let data = stored.get(SETTING_CONFIG_MAP).await?.data.unwrap();
    assert_eq!(data["status"], "DISABLED");
    let status = wait_state(&facade, "SYNC_DISABLED").await?;
    assert_eq!(status["enabled"], false);
    let refused = facade.call("POST", "/sync", EDITOR, None).await?;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_id(), "REQUEST_INVALID_INPUT");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ignored = request_sync_by_hand(&client, &resynced, "while-disabled").await?;
    assert_eq!(
        last_sync(&ignored),
        last_sync(&resynced),
        "no re-validation"
    );

    // The setting survives an operator restart.
    operator.stop().await;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let ignored = request_sync_by_hand(&client, &ignored, "after-restart").await?;
    assert_eq!(last_sync(&ignored), last_sync(&resynced), "still disabled");

    // ENABLED again: requests re-validate.
    let enable = facade
        .call(
            "PUT",
            "/sync/status",
            EDITOR,
            Some(json!({ "status": "ENABLED" })),
        )
        .await?;
    assert_eq!(enable.status, 204);
    wait_state(&facade, "SYNC_SUCCEEDED").await?;
    let validated = request_sync_by_hand(&client, &ignored, "enabled-again").await?;
    assert!(last_sync(&validated) > last_sync(&resynced));

    facade.stop().await;
    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn status_reports_failing_accounts_without_secrets() -> anyhow::Result<()> {
    let cluster = start_cluster().await?;
    let allow_all =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let good = cluster
        .moto
        .create_user_with_key("good", Some(allow_all))
        .await?;
    cluster.moto.enforce_auth().await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let facade = Facade::start(&cluster).await?;
    let client = cluster.client.clone();

    let put = facade
        .call(
            "PUT",
            "/auth_codes",
            EDITOR,
            Some(json!([
                auth_code("good", &good.access_key_id, &good.secret_access_key),
                auth_code("bad", "AKIDNOSUCHKEY", "wrong-secret-value"),
            ])),
        )
        .await?;
    assert_eq!(put.status, 204, "{}", put.text());
    wait_ready(&client, "good").await?;
    let status = wait_state(&facade, "SYNC_SUCCEEDED_WITH_WARNING").await?;
    assert_eq!(status["error_id"], 1);
    let text = status["error_text"].as_str().unwrap();
    assert!(
        text.starts_with("1 of 2 accounts failed to sync: bad: "),
        "{text}"
    );
    assert!(!text.contains("wrong-secret-value") && !text.contains(&good.secret_access_key));
    assert!(status["last_success_ts"].as_i64().unwrap() > 0);

    let deleted = facade
        .call(
            "DELETE",
            "/auth_codes",
            EDITOR,
            Some(json!([{ "acc_id": "good" }])),
        )
        .await?;
    assert_eq!(deleted.status, 204);
    let status = wait_state(&facade, "SYNC_FAILED").await?;
    assert_eq!(status["error_id"], 1);

    facade.stop().await;
    operator.stop().await;
    cluster.stop().await;
    Ok(())
}

#[tokio::test]
async fn rbac_methods_headers_and_bodies_are_checked_before_any_write() -> anyhow::Result<()> {
    let cluster = start_cluster().await?;
    let facade = Facade::start(&cluster).await?;
    let client = cluster.client.clone();
    let body = json!([auth_code("acc_1", "AKID1", "secret1")]);

    // Authentication.
    let anonymous = facade.raw("GET", "/status", &[], b"").await?;
    assert_eq!(
        (anonymous.status, anonymous.error_id().as_str()),
        (401, "AUTH_REQUIRED")
    );
    let unknown = facade.call("GET", "/status", "no-such-token", None).await?;
    assert_eq!(
        (unknown.status, unknown.error_id().as_str()),
        (401, "AUTH_INVALID_TOKEN")
    );
    let basic = facade
        .raw(
            "GET",
            "/status",
            &[("authorization", b"Basic dXNlcjpwYXNz")],
            b"",
        )
        .await?;
    assert_eq!(
        (basic.status, basic.error_id().as_str()),
        (400, "HTTP_INVALID_HEADER")
    );

    // Authorization: bob may do nothing, alice may only read.
    for (method, path, body) in [
        ("GET", "/status", None),
        ("GET", "/auth_codes", None),
        ("PUT", "/auth_codes", Some(body.clone())),
        (
            "DELETE",
            "/auth_codes",
            Some(json!([{ "acc_id": "acc_1" }])),
        ),
        ("POST", "/sync", None),
        ("PUT", "/sync/status", Some(json!({ "status": "DISABLED" }))),
    ] {
        let denied = facade.call(method, path, NOBODY, body.clone()).await?;
        assert_eq!(
            (denied.status, denied.error_id().as_str()),
            (403, "AUTH_FORBIDDEN"),
            "{method} {path}"
        );
        let viewer = facade.call(method, path, VIEWER, body).await?;
        let expected = if method == "GET" { 200 } else { 403 };
        assert_eq!(
            viewer.status,
            expected,
            "{method} {path}: {}",
            viewer.text()
        );
    }
    assert!(
        account_by_id(&client, "acc_1").await.is_none(),
        "nothing was written"
    );

    // Wrong methods on known paths, unknown paths.
    for (method, path) in [
        ("GET", "/sync"),
        ("PUT", "/sync"),
        ("GET", "/sync/status"),
        ("POST", "/auth_codes"),
        ("PATCH", "/auth_codes"),
        ("DELETE", "/status"),
    ] {
        let reply = facade.call(method, path, EDITOR, None).await?;
        assert_eq!(
            (reply.status, reply.error_id().as_str()),
            (405, "HTTP_INVALID_METHOD"),
            "{method} {path}"
        );
    }
    let nowhere = facade.call("GET", "/nowhere", EDITOR, None).await?;
    assert_eq!(
        (nowhere.status, nowhere.error_id().as_str()),
        (404, "RESOURCE_NOT_FOUND")
    );

    // CORS preflight needs no token.
    let preflight = facade
        .raw(
            "OPTIONS",
            "/auth_codes",
            &[
                ("origin", b"https://ui.example"),
                ("access-control-request-method", b"PUT"),
            ],
            b"",
        )
        .await?;
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.headers["access-control-allow-origin"], "*");

    // Malformed bodies and headers: 400, and not even the valid items are written.
    let editor = format!("Bearer {EDITOR}");
    let with_type = |content_type: &'static [u8]| {
        vec![
            ("authorization", editor.as_bytes().to_vec()),
            ("content-type", content_type.to_vec()),
        ]
    };
    let send = |headers: Vec<(&'static str, Vec<u8>)>,
                method: &'static str,
                path: &'static str,
                body: Vec<u8>| {
        let facade = &facade;
        async move {
            let headers: Vec<(&str, &[u8])> =
                headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            facade.raw(method, path, &headers, &body).await
        }
    };
    let half_valid = json!([
        auth_code("acc_1", "AKID1", "secret1"),
        auth_code("acc_2", "AKID2", ""),
    ]);
    let duplicate = json!([
        auth_code("acc_1", "AKID1", "secret1"),
        auth_code("acc_1", "AKID2", "secret2"),
    ]);
    for (method, path, bad) in [
        ("PUT", "/auth_codes", half_valid.to_string()),
        ("PUT", "/auth_codes", duplicate.to_string()),
        ("PUT", "/auth_codes", "[{\"acc_id\":".to_string()),
        ("PUT", "/auth_codes", "{}".to_string()),
        ("PUT", "/auth_codes", String::new()),
        ("DELETE", "/auth_codes", "[{\"acc_id\":7}]".to_string()),
        ("PUT", "/sync/status", "{\"status\":\"PAUSED\"}".to_string()),
        ("POST", "/sync", "{}".to_string()),
    ] {
        let reply = send(
            with_type(b"application/json"),
            method,
            path,
            bad.clone().into_bytes(),
        )
        .await?;
        assert_eq!(
            (reply.status, reply.error_id().as_str()),
            (400, "REQUEST_INVALID_INPUT"),
            "{method} {path} {bad}"
        );
        assert!(!reply.text().contains("secret1"), "{}", reply.text());
    }
    let text = send(
        with_type(b"text/plain"),
        "PUT",
        "/auth_codes",
        body.to_string().into_bytes(),
    )
    .await?;
    assert_eq!(
        (text.status, text.error_id().as_str()),
        (400, "HTTP_INVALID_HEADER")
    );
    let huge = vec![b' '; facade::MAX_BODY_BYTES + 1];
    let too_large = send(with_type(b"application/json"), "PUT", "/auth_codes", huge).await?;
    assert_eq!(
        (too_large.status, too_large.error_id().as_str()),
        (400, "REQUEST_INVALID_INPUT")
    );
    assert!(account_by_id(&client, "acc_1").await.is_none());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    assert!(
        secrets.list(&Default::default()).await?.items.is_empty(),
        "no Secret written"
    );

    // The OpenAPI document is served.
    let document = facade
        .http
        .get(format!("{}/openapi/aws-integration.yaml", facade.base).parse()?)
        .await?;
    assert_eq!(document.status(), 200);
    let served = document.into_body().collect().await?.to_bytes();
    assert_eq!(served.as_ref(), OPENAPI.as_bytes());

    facade.stop().await;
    cluster.stop().await;
    Ok(())
}

/// One arbitrary request: a route (or a wrong method on it), headers and a body.
#[derive(Debug, Clone)]
struct Fuzzed {
    method: &'static str,
    path: &'static str,
    authorization: Option<Vec<u8>>,
    content_type: Option<Vec<u8>>,
    body: Vec<u8>,
}

fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff], 0..48)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,24}".prop_map(Value::String),
        prop_oneof![Just("ENABLED"), Just("DISABLED"), Just("")].prop_map(Value::from),
    ];
    let key = prop_oneof![
        Just("acc_id".to_string()),
        Just("access_key".to_string()),
        Just("secret_key".to_string()),
        Just("status".to_string()),
        ".{0,8}",
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn fuzzed(admin_token: String) -> impl Strategy<Value = Fuzzed> {
    let routes = prop_oneof![
        Just(("POST", "/sync")),
        Just(("PUT", "/sync/status")),
        Just(("GET", "/auth_codes")),
        Just(("PUT", "/auth_codes")),
        Just(("DELETE", "/auth_codes")),
        Just(("GET", "/status")),
        Just(("PATCH", "/sync/status")),
        Just(("GET", "/sync")),
        Just(("DELETE", "/nowhere")),
    ];
    let bearer = format!("Bearer {admin_token}").into_bytes();
    let authorization = prop_oneof![
        3 => Just(Some(bearer)),
        1 => Just(None),
        1 => header_bytes().prop_map(Some),
        1 => "[a-z0-9]{0,16}".prop_map(|t| Some(format!("Bearer {t}").into_bytes())),
    ];
    let content_type = prop_oneof![
        3 => Just(Some(b"application/json".to_vec())),
        1 => Just(None),
        1 => header_bytes().prop_map(Some),
    ];
    let body = prop_oneof![
        3 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        1 => Just(Vec::new()),
    ];
    (routes, authorization, content_type, body).prop_map(
        |((method, path), authorization, content_type, body)| Fuzzed {
            method,
            path,
            authorization,
            content_type,
            body,
        },
    )
}

#[test]
fn arbitrary_requests_never_get_a_server_error() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let (cluster, facade) = runtime.block_on(async {
        let cluster = start_cluster().await?;
        let facade = Facade::start(&cluster).await?;
        anyhow::Ok((cluster, facade))
    })?;
    let admin = cluster.control_plane.admin_token().to_string();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let outcome = runner.run(&fuzzed(admin), |request| {
        let mut headers: Vec<(&str, &[u8])> = Vec::new();
        if let Some(value) = &request.authorization {
            headers.push(("authorization", value));
        }
        if let Some(value) = &request.content_type {
            headers.push(("content-type", value));
        }
        let reply = runtime
            .block_on(facade.raw(request.method, request.path, &headers, &request.body))
            .map_err(|e| TestCaseError::fail(format!("no response (a panic?): {e}")))?;
        prop_assert!(
            reply.status < 500,
            "{request:?} -> {} {}",
            reply.status,
            reply.text()
        );
        Ok(())
    });
    runtime.block_on(async {
        facade.stop().await;
        cluster.stop().await;
    });
    outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
