//! An HTTPS proxy on loopback that stands in for AWS's STS hosts, so that unmodified clients (dce-cli
//! checks its credentials with STS `GetCallerIdentity` at `https://sts.amazonaws.com`; the `aws`
//! CLI calls the regional host) reach moto instead, without leaving the machine.
//!
//! A client with `HTTPS_PROXY=http://127.0.0.1:<port>` asks for `CONNECT sts.amazonaws.com:443`.
//! For a host on the proxy's list it answers 200, terminates TLS itself with a certificate for
//! that host issued by the test's CA (the client trusts that CA alone), and forwards the
//! decrypted requests, Host header included, to a plain-HTTP upstream such as
//! [`Moto::addr`](crate::moto::Moto::addr). Any other target gets 403 and no connection is made.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::tls::TestCa;
use crate::tls_front::{ForwardedRequest, RequestLog, ServerTask, serve_forwarding};

/// AWS's STS hosts: the global endpoint and those of the regions dce-cli offers (its
/// `configs.Regions`), which the AWS SDKs and CLI choose by region.
pub const STS_HOSTS: &[&str] = &[
    "sts.amazonaws.com",
    "sts.us-east-1.amazonaws.com",
    "sts.us-east-2.amazonaws.com",
    "sts.us-west-1.amazonaws.com",
    "sts.us-west-2.amazonaws.com",
];

/// The longest CONNECT request head the proxy reads.
const MAX_HEAD: usize = 8 * 1024;

/// A `CONNECT` the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// The target as asked, e.g. `sts.amazonaws.com:443`.
    pub target: String,
    /// Whether the proxy opened it (the host is on its list and the port is 443).
    pub allowed: bool,
}

/// A running proxy on 127.0.0.1 (a free port). Stopped by [`ConnectProxy::shutdown`] or on drop,
/// with every tunnel it opened.
pub struct ConnectProxy {
    server: ServerTask,
    tunnels: Arc<Mutex<Vec<Tunnel>>>,
    requests: RequestLog,
}

impl ConnectProxy {
    /// Opens tunnels to `hosts` (port 443) only, presents a certificate for them issued by `ca`
    /// and forwards their requests to `upstream`, a plain-HTTP server on loopback.
    pub async fn start(
        ca: &TestCa,
        hosts: &[&str],
        upstream: SocketAddr,
    ) -> anyhow::Result<ConnectProxy> {
        anyhow::ensure!(upstream.ip().is_loopback(), "{upstream} is not on loopback");
        let certificate = ca.issue(hosts)?;
        let acceptor = TlsAcceptor::from(certificate.server_config()?);
        let hosts: Arc<[String]> = hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let requests = RequestLog::default();
        let (tunnel_log, request_log) = (Arc::clone(&tunnels), Arc::clone(&requests));
        let server = ServerTask::start(move |stream| {
            let proxy = Connection {
                hosts: Arc::clone(&hosts),
                acceptor: acceptor.clone(),
                upstream,
                tunnels: Arc::clone(&tunnel_log),
                requests: Arc::clone(&request_log),
            };
            proxy.serve(stream)
        })
        .await?;
        Ok(ConnectProxy {
            server,
            tunnels,
            requests,
        })
    }

    /// The value of `HTTPS_PROXY` for clients, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Every `CONNECT` received so far, oldest first, refused ones included.
    pub fn tunnels(&self) -> Vec<Tunnel> {
        self.tunnels.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// The requests forwarded through its tunnels so far, oldest first.
    pub fn requests(&self) -> Vec<ForwardedRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Stops the proxy and every tunnel.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// What one client connection needs.
struct Connection {
    hosts: Arc<[String]>,
    acceptor: TlsAcceptor,
    upstream: SocketAddr,
    tunnels: Arc<Mutex<Vec<Tunnel>>>,
    requests: RequestLog,
}

impl Connection {
    async fn serve(self, mut stream: TcpStream) {
        let Ok(head) = read_head(&mut stream).await else {
            return;
        };
        let mut request_line = head.lines().next().unwrap_or_default().split(' ');
        let (method, target) = (request_line.next(), request_line.next().unwrap_or_default());
        if method != Some("CONNECT") {
            let _ = stream.write_all(&reply("405 Method Not Allowed")).await;
            return;
        }
        let allowed = target
            .rsplit_once(':')
            .is_some_and(|(host, port)| port == "443" && self.allows(host));
        if let Ok(mut tunnels) = self.tunnels.lock() {
            tunnels.push(Tunnel {
                target: target.to_string(),
                allowed,
            });
        }
        if !allowed {
            let _ = stream.write_all(&reply("403 Forbidden")).await;
            return;
        }
        if stream
            .write_all(&reply("200 Connection established"))
            .await
            .is_err()
        {
            return;
        }
        if let Ok(tls) = self.acceptor.accept(stream).await {
            serve_forwarding(tls, self.upstream, self.requests).await;
        }
    }

    fn allows(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

/// The request head, read a byte at a time: the client sends its TLS handshake only after the
/// proxy's answer, and nothing of it may be consumed here.
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(head.len() < MAX_HEAD, "request head over {MAX_HEAD} bytes");
        head.push(stream.read_u8().await.context("reading the request head")?);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// A response head; a refusal closes the connection.
fn reply(status: &str) -> Vec<u8> {
    let headers = if status.starts_with("200") {
        ""
    } else {
        "Content-Length: 0\r\nConnection: close\r\n"
    };
    format!("HTTP/1.1 {status}\r\n{headers}\r\n").into_bytes()
}
