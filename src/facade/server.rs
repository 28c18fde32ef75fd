//! Serving the REST API: plain HTTP, or HTTPS from certificate files that are re-read when
//! they change (a renewed cert-manager Certificate, a rotated Secret), without a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

/// How often the certificate files are checked for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(10);
/// How long open connections may finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(20);

/// How the REST API is reached, as far as this server knows it.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Whether this server terminates TLS itself.
    pub https: bool,
    /// The path the API is nested under.
    pub base_path: String,
}

/// Tells the handlers how the request came in, in the headers proxies use for it
/// (`X-Forwarded-Proto`, `X-Forwarded-Prefix`), so links they build point back the same way.
/// What this server knows itself replaces what the client claimed. An HTTP/2 request (what
/// browsers and Go clients negotiate over TLS) names its host in the URI, not in `Host`: it
/// is copied there, for the handlers that read it.
pub async fn as_served(State(origin): State<Origin>, mut request: Request, next: Next) -> Response {
    let authority = request
        .uri()
        .authority()
        .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok());
    let headers = request.headers_mut();
    if let Some(authority) = authority
        && !headers.contains_key(axum::http::header::HOST)
    {
        headers.insert(axum::http::header::HOST, authority);
    }
    if origin.https {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    }
    if !origin.base_path.is_empty()
        && let Ok(prefix) = HeaderValue::from_str(&origin.base_path)
    {
        headers.insert("x-forwarded-prefix", prefix);
    }
    next.run(request).await
}

/// The certificate and key the REST API serves HTTPS with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Serves `app` on `addr` until `shutdown` resolves: HTTPS when `tls` is given.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    tls: Option<TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Some(tls) = tls else {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(%addr, "REST API listening (HTTP)");
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        return Ok(());
    };
    let config = RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "cannot load the REST API's TLS certificate {} and key {}: {error}",
                tls.cert.display(),
                tls.key.display()
            )
        })?;
    let reload = tokio::spawn(reload_on_change(config.clone(), tls));
    let handle = Handle::new();
    let draining = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        draining.graceful_shutdown(Some(DRAIN));
    });
    tracing::info!(%addr, "REST API listening (HTTPS)");
    let served = axum_server::bind_rustls(addr, config)
        .handle(handle)
        .serve(app.into_make_service())
        .await;
    reload.abort();
    Ok(served?)
}

/// Re-reads the certificate and key whenever either file's modification time changes. A pair
/// that fails to load is reported and the one in use is kept.
async fn reload_on_change(config: RustlsConfig, tls: TlsFiles) {
    let mut loaded = modified(&tls);
    loop {
        tokio::time::sleep(RELOAD_CHECK).await;
        let now = modified(&tls);
        if now == loaded {
            continue;
        }
        match config.reload_from_pem_file(&tls.cert, &tls.key).await {
            Ok(()) => {
                tracing::info!(cert = %tls.cert.display(), "REST API TLS certificate reloaded");
                loaded = now;
            }
            Err(error) => tracing::warn!(
                cert = %tls.cert.display(),
                %error,
                "REST API TLS certificate changed but cannot be loaded; serving the previous one"
            ),
        }
    }
}

fn modified(tls: &TlsFiles) -> (Option<SystemTime>, Option<SystemTime>) {
    let at = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    (at(&tls.cert), at(&tls.key))
}
