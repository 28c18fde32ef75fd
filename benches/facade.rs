//! `make bench-facade`: the REST facade over real HTTP on loopback, against a real control
//! plane + moto, with the operator running in-process.
//!
//! 1. `POST /leases` → 201 latency (BENCH_POSTS sequential requests, one Ready account each).
//! 2. With BENCH_CACHED_LEASES (10,000) leases cached, `GET /leases?limit=100` and
//!    `GET /accounts` throughput and latency percentiles at BENCH_CLIENTS (100) concurrent
//!    keep-alive clients for BENCH_SECONDS (10) each. The clients run in the same process and
//!    share the machine's cores with the server.
//! 3. The cost of SigV4 verification: one client reads `GET /accounts` (cached) signed with
//!    sign-in session credentials (signature, session token) and with a bearer token (a cached
//!    TokenReview), BENCH_SIGNED_READS each, interleaved; the difference of their percentiles is
//!    what verifying a signature adds to a cached read.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::RunningOperator;
use dce_e2e::cluster::{OPERATOR_NAMESPACE, TestCluster, wait_for};
use dce_operator::aws::{Aws, AwsSettings, StaticKeys};
use dce_operator::facade::{self, ApiKeys, Authorizer, FacadeSettings, FacadeState};
use dce_operator::lifecycle::{LeasePolicy, ResetMode};
use dce_operator::metrics::Metrics;
use dce_operator::operator::Caches;
use dce_operator::resources::{Lease, LeaseSpec};
use futures::{StreamExt, TryStreamExt, stream};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::api::{Api, PostParams};

const LEASE_NAMESPACE: &str = "dce-leases";
const FILLER_NAMESPACE: &str = "bench-filler";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

type Http = HttpClient<HttpConnector, Body>;

struct Endpoint {
    http: Http,
    base: String,
    token: String,
}

impl Endpoint {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> (StatusCode, Vec<u8>) {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(body.map_or_else(Body::empty, Body::from))
            .expect("request");
        let response = self.http.request(request).await.expect("HTTP request");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, bytes.to_vec())
    }
}

/// Runs `clients` loops of `GET path` for `seconds`; prints throughput and percentiles.
async fn load(endpoint: Arc<Endpoint>, path: &str, clients: usize, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let endpoint = endpoint.clone();
            let path = path.to_string();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let (status, _) = endpoint.call(Method::GET, &path, None).await;
                    assert_eq!(status, StatusCode::OK, "GET {path}");
                    latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    println!(
        "GET {path}: {clients} clients, {} requests in {elapsed:.1} s = {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let posts = env_usize("BENCH_POSTS", 20);
    let cached = env_usize("BENCH_CACHED_LEASES", 10_000);
    let clients = env_usize("BENCH_CLIENTS", 100);
    let seconds = env_usize("BENCH_SECONDS", 10) as u64;

    let cluster = TestCluster::start().await?;
    cluster.namespace(LEASE_NAMESPACE).await?;
    cluster.namespace(FILLER_NAMESPACE).await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let (subscriptions, watches) =
        Caches::default().watch(cluster.client.clone(), OPERATOR_NAMESPACE)?;
    let (accounts, leases, usage_stores) = (
        subscriptions.sorted_accounts.clone(),
        subscriptions.sorted_leases.clone(),
        subscriptions.usage_stores.clone(),
    );
    drop(subscriptions);
    let watches = tokio::spawn(watches);
    let (api_keys, api_key_watch) = ApiKeys::watch(cluster.client.clone(), OPERATOR_NAMESPACE);
    let api_key_watch = tokio::spawn(api_key_watch);
    let state = FacadeState {
        client: cluster.client.clone(),
        accounts,
        leases,
        usage_stores,
        auth: Authorizer::new(cluster.client.clone(), api_keys.clone()),
        aws: Aws::with_operator_keys(
            AwsSettings {
                sts_endpoint: Some(cluster.moto.endpoint()),
                ..AwsSettings::default()
            },
            &StaticKeys {
                access_key_id: "AKIDBENCH".into(),
                secret_access_key: "bench".into(),
            },
        ),
        settings: Arc::new(FacadeSettings {
            lease_namespace: LEASE_NAMESPACE.into(),
            operator_namespace: OPERATOR_NAMESPACE.into(),
            policy: LeasePolicy::default(),
            principal_role_name: "DCEPrincipal".into(),
            lease_settle_timeout: Duration::from_secs(30),
            request_deadline: facade::request_deadline(Duration::from_secs(30)),
            base_path: String::new(),
            sign_in: Default::default(),
        }),
        metrics: Metrics::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, facade::router(state))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let http: Http = HttpClient::builder(TokioExecutor::new())
        .pool_max_idle_per_host(clients)
        .build(connector);
    let endpoint = Arc::new(Endpoint {
        http,
        base: format!("http://{addr}"),
        token: cluster.control_plane.admin_token().to_string(),
    });

    // 1. POST /leases → 201, one account per lease.
    let ids = common::create_accounts(&cluster.client, posts).await?;
    common::wait_accounts_ready(&cluster.client, &ids).await?;
    wait_for(common::WAIT, || async {
        let (_, body) = endpoint
            .call(
                Method::GET,
                "/accounts?accountStatus=Ready&limit=1000",
                None,
            )
            .await;
        let ready: Vec<serde_json::Value> = serde_json::from_slice(&body).ok()?;
        (ready.len() == posts).then_some(())
    })
    .await?;
    let mut latencies = Vec::new();
    for i in 0..posts {
        let body = serde_json::json!({"principalId": format!("bench-{i}")}).to_string();
        let started = Instant::now();
        let (status, answer) = endpoint.call(Method::POST, "/leases", Some(body)).await;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "POST /leases -> 201: {posts} sequential leases; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
    // The filler leases are read, not reconciled.
    operator.stop().await;

    // 2. Reads with many leases cached.
    let filler: Api<Lease> = Api::namespaced(cluster.client.clone(), FILLER_NAMESPACE);
    stream::iter(0..cached)
        .map(|i| {
            let filler = filler.clone();
            async move {
                let lease = Lease::new(
                    &format!("filler-{i}"),
                    LeaseSpec::for_principal(format!("user-{}", i % 500)),
                );
                filler.create(&PostParams::default(), &lease).await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    wait_for(common::WAIT, || async {
        let (_, body) = endpoint
            .call(Method::GET, "/leases?limit=1000&principalId=user-0", None)
            .await;
        let page: Vec<serde_json::Value> = serde_json::from_slice(&body).ok()?;
        (page.len() == cached.div_ceil(500)).then_some(())
    })
    .await?;
    println!("{} leases cached", cached + posts);
    load(endpoint.clone(), "/leases?limit=100", clients, seconds).await;
    load(endpoint.clone(), "/accounts", clients, seconds).await;

    // 3. What SigV4 verification adds to a cached read.
    let reads = env_usize("BENCH_SIGNED_READS", 2000);
    let signed = signed_request(&cluster.client, &api_keys, &endpoint.base).await?;
    let (mut bearer_ms, mut signed_ms) = (Vec::new(), Vec::new());
    for _ in 0..reads {
        let started = Instant::now();
        let (status, _) = endpoint.call(Method::GET, "/accounts", None).await;
        bearer_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, StatusCode::OK);
        let started = Instant::now();
        let response = endpoint.http.request(signed()).await?;
        assert_eq!(response.status(), StatusCode::OK, "signed GET /accounts");
        response.into_body().collect().await?;
        signed_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    bearer_ms.sort_by(f64::total_cmp);
    signed_ms.sort_by(f64::total_cmp);
    let at = |ms: &[f64], p| percentile(ms, p);
    println!(
        "GET /accounts, 1 client, {reads} each: bearer p50 {:.3} ms p99 {:.3} ms; SigV4 (session) p50 {:.3} ms p99 {:.3} ms; verification adds p50 {:+.3} ms, p99 {:+.3} ms",
        at(&bearer_ms, 50.0),
        at(&bearer_ms, 99.0),
        at(&signed_ms, 50.0),
        at(&signed_ms, 99.0),
        at(&signed_ms, 50.0) - at(&bearer_ms, 50.0),
        at(&signed_ms, 99.0) - at(&bearer_ms, 99.0),
    );

    api_key_watch.abort();
    let _ = stop.send(());
    let _ = server.await;
    watches.abort();
    cluster.stop().await;
    Ok(())
}

/// A `GET /accounts` signed with sign-in session credentials of a cluster admin, stored as the
/// sign-in page stores them; signed once (a read may be sent again while its time is valid), so
/// the client spends nothing per request.
async fn signed_request(
    client: &kube::Client,
    api_keys: &ApiKeys,
    base: &str,
) -> anyhow::Result<impl Fn() -> Request<Body> + use<>> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use dce_operator::lifecycle::api_keys::*;
    use k8s_openapi::api::core::v1::Secret;
    let (id, secret, token) = (
        "ASIABENCHSESSION0001",
        "bench-secret",
        "bench-session-token",
    );
    let text = |value: &str| k8s_openapi::ByteString(value.as_bytes().to_vec());
    let mut session = Secret::default();
    session.metadata.name = Some("dce-api-session-bench".into());
    session.metadata.labels = Some(
        [
            (API_KEY_LABEL.to_string(), "true".to_string()),
            (SESSION_LABEL.to_string(), "true".to_string()),
        ]
        .into(),
    );
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    session.metadata.annotations = Some(
        [
            (USER_ANNOTATION.to_string(), "bench-admin".to_string()),
            (GROUPS_ANNOTATION.to_string(), "system:masters".to_string()),
            (EXPIRES_ANNOTATION.to_string(), expires.to_string()),
        ]
        .into(),
    );
    session.data = Some(
        [
            (ACCESS_KEY_ID_KEY.to_string(), text(id)),
            (SECRET_ACCESS_KEY_KEY.to_string(), text(secret)),
            (SESSION_TOKEN_KEY.to_string(), text(token)),
        ]
        .into(),
    );
    Api::<Secret>::namespaced(client.clone(), OPERATOR_NAMESPACE)
        .create(&PostParams::default(), &session)
        .await?;
    wait_for(common::WAIT, || async { api_keys.find(id) }).await?;
    let identity =
        aws_credential_types::Credentials::new(id, secret, Some(token.into()), None, "bench")
            .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()?
        .into();
    let url = format!("{base}/accounts");
    let signable = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(b""))?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    let headers: Vec<(String, String)> = instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    Ok(move || {
        let mut request = Request::builder().method(Method::GET).uri(url.clone());
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        request.body(Body::empty()).expect("request")
    })
}
