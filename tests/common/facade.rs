//! The DCE API's test harness: the real router over caches of its own (as a replica that does
//! not lead would have), a real control plane with test users bound to the shipped example
//! roles, moto, the console federation stub and, optionally, the in-process operator.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use dce_e2e::cluster::{OPERATOR_NAMESPACE, TestCluster, install_crypto_provider, wait_for};
use dce_e2e::control_plane::{ControlPlaneConfig, StaticToken};
use dce_e2e::moto::FederationStub;
use dce_operator::aws::{Aws, AwsSettings, CallerIdentity, StaticKeys, TemporaryCredentials};
use dce_operator::facade::{self, ApiKeys, Authorizer, FacadeSettings, FacadeState};
use dce_operator::lifecycle::{LeasePolicy, ResetMode};
use dce_operator::metrics::Metrics;
use dce_operator::operator::Caches;
use http_body_util::BodyExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{OperatorOptions, RunningOperator, WAIT};

pub const LEASE_NAMESPACE: &str = "dce-leases";
pub const ADMIN: &str = "admin-token";
pub const ALICE: &str = "alice-token";
pub const BOB: &str = "bob-token";
pub const NOBODY: &str = "nobody-token";

/// The cluster, the operator (if any) and the facade's router.
pub struct Facade {
    pub cluster: TestCluster,
    operator: Option<RunningOperator>,
    pub federation: FederationStub,
    pub state: FacadeState,
    pub router: Router,
    pub metrics: Metrics,
    watches: tokio::task::JoinHandle<((), ())>,
}

fn token(token: &str, username: &str) -> StaticToken {
    StaticToken {
        token: token.into(),
        username: username.into(),
        uid: format!("uid-{username}"),
        groups: vec!["system:authenticated".into()],
    }
}

impl Facade {
    /// With the operator running, enforcing the same lease limits as the facade.
    pub async fn start() -> Self {
        Self::start_with(true, Duration::from_secs(10)).await
    }

    pub async fn start_with(run_operator: bool, lease_settle_timeout: Duration) -> Self {
        Self::start_with_policy(run_operator, lease_settle_timeout, LeasePolicy::default()).await
    }

    /// The operator (if it runs) and the facade enforce `policy`.
    pub async fn start_with_policy(
        run_operator: bool,
        lease_settle_timeout: Duration,
        policy: LeasePolicy,
    ) -> Self {
        install_crypto_provider();
        let cluster = TestCluster::start_with(ControlPlaneConfig {
            tokens: vec![
                token(ADMIN, "pool-admin"),
                token(ALICE, "alice"),
                token(BOB, "bob"),
                token(NOBODY, "nobody"),
            ],
            ..ControlPlaneConfig::default()
        })
        .await
        .unwrap();
        let client = cluster.client.clone();
        cluster.namespace(LEASE_NAMESPACE).await.unwrap();
        install_rbac(&client).await;

        let operator = run_operator.then(|| {
            RunningOperator::start_with(
                &cluster,
                OperatorOptions {
                    policy: policy.clone(),
                    ..OperatorOptions::new(ResetMode::Disabled)
                },
            )
        });
        let federation = FederationStub::start().await.unwrap();
        let aws = Aws::with_operator_keys(
            AwsSettings {
                sts_endpoint: Some(cluster.moto.endpoint()),
                federation_endpoint: federation.endpoint(),
                ..AwsSettings::default()
            },
            &StaticKeys {
                access_key_id: "AKIDFACADE".into(),
                secret_access_key: "facade-secret".into(),
            },
        );
        // The facade has its own caches, as a replica that does not lead would.
        let (subscriptions, watches) = Caches::default()
            .watch(client.clone(), OPERATOR_NAMESPACE)
            .unwrap();
        let (accounts, leases, usage_stores) = (
            subscriptions.sorted_accounts.clone(),
            subscriptions.sorted_leases.clone(),
            subscriptions.usage_stores.clone(),
        );
        drop(subscriptions);
        let (api_keys, api_key_watch) = ApiKeys::watch(client.clone(), OPERATOR_NAMESPACE);
        let watches = tokio::spawn(futures::future::join(watches, api_key_watch));
        api_keys.wait_until_ready().await.unwrap();
        let metrics = Metrics::default();
        let state = FacadeState {
            client: client.clone(),
            accounts,
            leases,
            usage_stores,
            auth: Authorizer::new(client, api_keys),
            aws,
            settings: Arc::new(FacadeSettings {
                lease_namespace: LEASE_NAMESPACE.into(),
                operator_namespace: OPERATOR_NAMESPACE.into(),
                policy,
                principal_role_name: "DCEPrincipal".into(),
                lease_settle_timeout,
                request_deadline: facade::request_deadline(lease_settle_timeout),
                base_path: String::new(),
                sign_in: Default::default(),
            }),
            metrics: metrics.clone(),
        };
        state.accounts.wait_until_ready().await.unwrap();
        state.leases.wait_until_ready().await.unwrap();
        Self {
            cluster,
            operator,
            federation,
            router: facade::router(state.clone()),
            state,
            metrics,
            watches,
        }
    }

    /// Answers every request after `deadline` at the latest, from now on.
    pub fn use_request_deadline(&mut self, deadline: Duration) {
        let mut settings = (*self.state.settings).clone();
        settings.request_deadline = deadline;
        self.state.settings = Arc::new(settings);
        self.router = facade::router(self.state.clone());
    }

    /// Serves with `aws` as the operator's AWS identity from now on.
    pub fn use_aws(&mut self, aws: Aws) {
        self.state.aws = aws;
        self.router = facade::router(self.state.clone());
    }

    pub async fn stop(self) {
        self.watches.abort();
        if let Some(operator) = self.operator {
            operator.stop().await;
        }
        self.federation.shutdown().await;
        self.cluster.stop().await;
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, HashMap<String, String>, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .header(header::HOST, "dce.test")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, headers, value)
    }

    pub async fn get(
        &self,
        uri: &str,
        token: &str,
    ) -> (StatusCode, HashMap<String, String>, Value) {
        self.call(Method::GET, uri, Some(token), None).await
    }

    /// Whose credentials a `POST /leases/…/auth` answer holds, as moto's STS sees them.
    pub async fn identity_of(&self, auth: &Value) -> CallerIdentity {
        let text = |field: &str| auth[field].as_str().unwrap().to_string();
        let credentials = TemporaryCredentials {
            access_key_id: text("accessKeyId"),
            secret_access_key: text("secretAccessKey"),
            session_token: text("sessionToken"),
            expiration: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
        };
        let aws = Aws::with_operator_keys(
            AwsSettings {
                sts_endpoint: Some(self.cluster.moto.endpoint()),
                ..AwsSettings::default()
            },
            &StaticKeys {
                access_key_id: "AKIDCHECK".into(),
                secret_access_key: "check".into(),
            },
        );
        aws.caller_identity_of(&credentials).await.unwrap()
    }

    /// Every page of a list from `uri` on, following the `Link` header's next page.
    pub async fn pages(&self, uri: &str, token: &str) -> Vec<Value> {
        let mut uri = uri.to_string();
        let mut pages = Vec::new();
        loop {
            let (status, headers, body) = self.get(&uri, token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            pages.push(body);
            let Some(link) = headers.get("link") else {
                return pages;
            };
            let url = link.trim_start_matches('<').split('>').next().unwrap();
            uri = url.trim_start_matches("http://dce.test").to_string();
        }
    }

    pub async fn post_lease(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, "/leases", token, body).await
    }

    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let (status, _, value) = self
            .call(method, uri, Some(token), Some(&body.to_string()))
            .await;
        (status, value)
    }
}

/// The shipped example roles, bound: pool-admin is an admin, alice and bob lease users.
async fn install_rbac(client: &kube::Client) {
    let yaml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac/dce-api-roles.yaml"),
    )
    .unwrap();
    let roles: Api<ClusterRole> = Api::all(client.clone());
    for document in serde_yaml::Deserializer::from_str(&yaml) {
        let role: ClusterRole = serde::Deserialize::deserialize(document).unwrap();
        roles.create(&PostParams::default(), &role).await.unwrap();
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for (user, role) in [
        ("pool-admin", "dce-admin"),
        ("alice", "dce-lease-user"),
        ("bob", "dce-lease-user"),
    ] {
        let binding = ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(format!("{user}-{role}")),
                ..ObjectMeta::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: role.into(),
            },
            subjects: Some(vec![Subject {
                kind: "User".into(),
                name: user.into(),
                api_group: Some("rbac.authorization.k8s.io".into()),
                ..Subject::default()
            }]),
        };
        bindings
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
    }
}

pub fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or_default(),
        body["error"]["message"].as_str().unwrap_or_default(),
    )
}

pub fn account_id(n: u64) -> String {
    format!("{:012}", 200_000_000_000u64 + n)
}

pub async fn add_account(facade: &Facade, n: u64) -> Value {
    let id = account_id(n);
    let (status, body) = facade
        .send(
            Method::POST,
            "/accounts",
            ADMIN,
            json!({"id": id, "adminRoleArn": format!("arn:aws:iam::{id}:role/Admin")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

pub async fn wait_ready(facade: &Facade, id: &str) {
    wait_for(WAIT, || async {
        let (_, _, body) = facade.get(&format!("/accounts/{id}"), ADMIN).await;
        (body["accountStatus"] == "Ready").then_some(())
    })
    .await
    .unwrap();
}
