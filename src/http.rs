//! The operator's own endpoints: `/healthz`, `/readyz`, `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::metrics::{ControllerLabels, LeaseLabels, Metrics, StatusLabels};
use crate::progress::STALL_AFTER;
use crate::resources::{Account, Lease, LeasePhase};

/// What the endpoints read.
#[derive(Clone)]
pub struct Observability {
    pub metrics: Metrics,
    pub accounts: Store<Account>,
    pub leases: Store<Lease>,
    /// The principals' usage stores: the REST API's usage and budget answers need them.
    pub usage_stores: Store<ConfigMap>,
    /// True once the caches have their first full list.
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: Observability) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

pub async fn serve(
    addr: SocketAddr,
    state: Observability,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "health and metrics endpoints listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Liveness: fails while a controller has stalled (see [`crate::progress`]), so the process
/// is restarted.
async fn healthz(State(state): State<Observability>) -> impl IntoResponse {
    let stalled = state
        .metrics
        .progress
        .stalled(std::time::Instant::now(), STALL_AFTER);
    if stalled.is_empty() {
        return (StatusCode::OK, "ok".to_string());
    }
    let detail: Vec<String> = stalled
        .iter()
        .map(|(controller, waited)| {
            format!(
                "{controller} controller stalled: work waiting {} s with no request finished",
                waited.as_secs()
            )
        })
        .collect();
    (StatusCode::SERVICE_UNAVAILABLE, detail.join("; "))
}

async fn readyz(State(state): State<Observability>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

async fn metrics(State(state): State<Observability>) -> impl IntoResponse {
    refresh_gauges(&state);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Gauges derived from the caches, computed at scrape time so they are never stale.
fn refresh_gauges(state: &Observability) {
    let metrics = &state.metrics;
    for (controller, stalled) in metrics
        .progress
        .states(std::time::Instant::now(), STALL_AFTER)
    {
        metrics
            .controller_stalled
            .get_or_create(&ControllerLabels { controller })
            .set(i64::from(stalled));
    }
    metrics.accounts.clear();
    for account in state.accounts.state() {
        let status = account
            .phase()
            .map(|p| p.as_str())
            .unwrap_or("Unknown")
            .to_string();
        metrics
            .accounts
            .get_or_create(&StatusLabels { status })
            .inc();
    }
    metrics.leases.clear();
    metrics.credentials_expiry.clear();
    metrics.lease_cost.clear();
    let now = Timestamp::now();
    for lease in state.leases.state() {
        let status = lease
            .phase()
            .map(|p| p.as_str())
            .unwrap_or("Unknown")
            .to_string();
        metrics.leases.get_or_create(&StatusLabels { status }).inc();
        if lease.phase() != Some(LeasePhase::Active) {
            continue;
        }
        let labels = LeaseLabels {
            namespace: lease.namespace().unwrap_or_default(),
            lease: lease.name_any(),
        };
        let status = lease.status.as_ref();
        if let Some(at) = status.and_then(|s| s.credentials_expire_at.as_ref()) {
            metrics
                .credentials_expiry
                .get_or_create(&labels)
                .set(at.0.duration_since(now).as_secs_f64());
        }
        if let Some(usage) = status.and_then(|s| s.usage.as_ref()) {
            metrics.lease_cost.get_or_create(&labels).set(usage.total);
        }
    }
}
