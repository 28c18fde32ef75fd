//! TLS in front of a plain-HTTP test server. DCE's client speaks only HTTPS, to its API and to
//! AWS, while the servers the tests run (moto, the operator's REST API, stubs) speak plain HTTP
//! on loopback: a [`TlsFront`] terminates TLS with a certificate of the test's CA and forwards
//! every request, Host header included, to the plain server, recording what it forwarded. The
//! CONNECT proxy ([`crate::connect_proxy`]) serves its tunnels the same way.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::tls::ServingCertificate;

/// One request a TLS front or a proxy tunnel forwarded, and the upstream's answer.
#[derive(Debug, Clone)]
pub struct ForwardedRequest {
    /// The Host header the client sent (kept when forwarding).
    pub host: String,
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: http::HeaderMap,
    /// The upstream's status; 502 when it could not be reached.
    pub status: u16,
}

pub(crate) type RequestLog = Arc<Mutex<Vec<ForwardedRequest>>>;

/// A server's accept loop on 127.0.0.1. Its connections are tasks of the loop's own `JoinSet`, so
/// aborting the loop (shutdown or drop) ends them too: nothing keeps serving after the test.
pub(crate) struct ServerTask {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl ServerTask {
    /// Listens on a free loopback port and runs `handle` for every connection.
    pub(crate) async fn start<F, Fut>(handle: F) -> anyhow::Result<ServerTask>
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        connections.spawn(handle(stream));
                    }
                    // Out of descriptors or similar: wait rather than spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(ServerTask { addr, task })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends every connection and waits until the port is released.
    pub(crate) async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// HTTPS on 127.0.0.1 (a free port) in front of a plain-HTTP server. Stopped by
/// [`TlsFront::shutdown`] or on drop.
pub struct TlsFront {
    server: ServerTask,
    requests: RequestLog,
}

impl TlsFront {
    /// Serves HTTPS with `certificate` (issued for the names clients use, e.g. `127.0.0.1`) and
    /// forwards each request to `upstream`, a plain-HTTP server on loopback.
    pub async fn start(
        certificate: &ServingCertificate,
        upstream: SocketAddr,
    ) -> anyhow::Result<TlsFront> {
        anyhow::ensure!(upstream.ip().is_loopback(), "{upstream} is not on loopback");
        let acceptor = TlsAcceptor::from(certificate.server_config()?);
        let requests = RequestLog::default();
        let log = Arc::clone(&requests);
        let server = ServerTask::start(move |stream| {
            let (acceptor, log) = (acceptor.clone(), Arc::clone(&log));
            async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_forwarding(tls, upstream, log).await;
                }
            }
        })
        .await?;
        Ok(TlsFront { server, requests })
    }

    /// The address clients connect to, e.g. `127.0.0.1:41234` (dce-cli's `api.host`).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The requests forwarded so far, oldest first.
    pub fn requests(&self) -> Vec<ForwardedRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Stops the server and its connections.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Serves HTTP/1.1 on an accepted TLS connection, forwarding every request to `upstream`.
pub(crate) async fn serve_forwarding<S>(tls: S, upstream: SocketAddr, log: RequestLog)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let log = Arc::clone(&log);
        async move { Ok::<_, Infallible>(forward(request, upstream, &log).await) }
    });
    // A client that goes away mid-request is no concern of the test's.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn forward(
    request: Request<Incoming>,
    upstream: SocketAddr,
    log: &RequestLog,
) -> Response<Full<Bytes>> {
    let header = |name| {
        let value = request.headers().get(name);
        value.and_then(|v| v.to_str().ok()).unwrap_or_default()
    };
    let mut record = ForwardedRequest {
        host: header(http::header::HOST).to_string(),
        method: request.method().to_string(),
        path: request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        headers: request.headers().clone(),
        status: 0,
    };
    let response = exchange(request, upstream).await.unwrap_or_else(|error| {
        let mut response = Response::new(Full::from(format!("upstream {upstream}: {error:#}")));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        response
    });
    record.status = response.status().as_u16();
    if let Ok(mut log) = log.lock() {
        log.push(record);
    }
    response
}

/// One request on a fresh connection to `upstream`, its response read whole (the answers of
/// test servers are small); the connection is closed afterwards.
async fn exchange(
    request: Request<Incoming>,
    upstream: SocketAddr,
) -> anyhow::Result<Response<Full<Bytes>>> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let mut exchange = pin!(async move {
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        anyhow::Ok(Response::from_parts(parts, Full::new(body)))
    });
    // The connection is driven until the response has been read; when the upstream closes it
    // first, what it delivered is still read (or its error reported) by the exchange.
    tokio::select! {
        response = &mut exchange => response,
        _ = connection => exchange.await,
    }
}
