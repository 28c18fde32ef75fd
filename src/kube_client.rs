//! The operator's Kubernetes client: named, capped and with a deadline on every call.

use std::time::Duration;

use kube::Client;

/// How long a Kubernetes API call may take to start answering.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// `User-Agent` of the operator's requests (the API server's audit log and request metrics).
pub const USER_AGENT: &str = concat!("dce-operator/", env!("CARGO_PKG_VERSION"));

/// A client for `config` that names the operator, runs at most `concurrency` requests at once
/// (every one past the cap would hold its own connection and TLS buffers for no gain in
/// throughput), and gives every call `deadline` to start answering, its retries and its wait for
/// a slot included: one hung request must not hold a slot, and a reconcile waiting on it, for
/// good. A watch's stream of events is not cut, only its start.
pub fn build(
    mut config: kube::Config,
    concurrency: usize,
    deadline: Duration,
) -> kube::Result<Client> {
    config.headers.push((
        axum::http::header::USER_AGENT,
        axum::http::HeaderValue::from_static(USER_AGENT),
    ));
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&tower::limit::GlobalConcurrencyLimitLayer::new(concurrency))
        .with_layer(&tower::timeout::TimeoutLayer::new(deadline))
        .build())
}
