//! HTTPS to a server on loopback as a user's browser or script reaches it: a client that trusts
//! the test's CA alone, and with it the operator's sign-in page (`<base>/auth`), driven as a
//! user does in the browser `dce auth` opens, for the token `dce auth` asks for.

use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::moto::form_encode;
use crate::tls::{TestCa, client_config_trusting};

/// How long one exchange may take (a loaded test server can be slow).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The sign-in page's cookies: the CSRF token its forms repeat, and the signed-in session.
const CSRF_COOKIE: &str = "dce_csrf";
const SESSION_COOKIE: &str = "dce_session";

/// An answer, read whole.
#[derive(Debug)]
pub struct HttpsResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl HttpsResponse {
    /// The value of the cookie `name` it sets, as a browser would store it.
    fn cookie(&self, name: &str) -> anyhow::Result<String> {
        let set_cookies = self.headers.get_all(http::header::SET_COOKIE).iter();
        set_cookies
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| value.split(';').next()?.trim().split_once('='))
            .find(|(cookie, _)| *cookie == name)
            .map(|(_, value)| value.to_string())
            .with_context(|| format!("no cookie {name} set: {:?}", self.headers))
    }
}

/// HTTP/1.1 over TLS to one server on loopback, a fresh connection per request.
pub struct HttpsClient {
    connector: TlsConnector,
    addr: SocketAddr,
}

impl HttpsClient {
    /// A client of the server at `addr`, whose certificate `ca` issued for its IP address.
    pub fn new(ca: &TestCa, addr: SocketAddr) -> anyhow::Result<HttpsClient> {
        Self::trusting(&ca.pem(), addr)
    }

    /// A client of the server at `addr`, trusting the CAs of `ca_pem` alone.
    pub fn trusting(ca_pem: &str, addr: SocketAddr) -> anyhow::Result<HttpsClient> {
        let connector = TlsConnector::from(client_config_trusting(ca_pem)?);
        Ok(HttpsClient { connector, addr })
    }

    /// The certificate (DER) the server presents, checked against the trusted CAs.
    pub async fn served_certificate(&self) -> anyhow::Result<Vec<u8>> {
        let stream = TcpStream::connect(self.addr).await?;
        let tls = (self.connector)
            .connect(ServerName::from(self.addr.ip()), stream)
            .await?;
        let (_, session) = tls.get_ref();
        let chain = session
            .peer_certificates()
            .context("the server presented no certificate")?;
        Ok(chain[0].to_vec())
    }

    /// `method path` with `headers` and `body`; the answer whatever its status.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl AsRef<[u8]>,
    ) -> anyhow::Result<HttpsResponse> {
        let exchange = self.exchange(method, path, headers, body.as_ref());
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .with_context(|| format!("{method} {path}: no answer within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("{method} {path}"))
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<HttpsResponse> {
        let stream = TcpStream::connect(self.addr).await?;
        // The certificate is checked for the IP address, as dce-cli checks it for its api.host.
        let tls = (self.connector)
            .connect(ServerName::from(self.addr.ip()), stream)
            .await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::copy_from_slice(body)))?;
        let mut exchange = pin!(async move {
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok(HttpsResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        });
        // The connection is driven until the response has been read.
        tokio::select! {
            response = &mut exchange => response,
            _ = connection => exchange.await,
        }
    }
}

/// Signs in on the operator's sign-in page under `base_path` with the Kubernetes bearer token
/// `kube_token`, as a user does in a browser: the form (and its CSRF cookie), the token posted
/// with it, the page it redirects to with the session cookie. Returns the API token that page
/// shows for `dce auth`.
pub async fn dce_auth_token(
    client: &HttpsClient,
    base_path: &str,
    kube_token: &str,
) -> anyhow::Result<String> {
    let page = format!("{base_path}/auth");
    let (signed_in, csrf_cookie) = post_sign_in_form(client, base_path, kube_token).await?;
    let location = signed_in.headers.get(http::header::LOCATION);
    ensure!(
        signed_in.status == 303 && location.is_some_and(|l| l == page.as_str()),
        "signing in did not lead back to {page}: {signed_in:?}"
    );
    let session = signed_in.cookie(SESSION_COOKIE)?;
    let cookies = format!("{csrf_cookie}; {SESSION_COOKIE}={session}");
    let shown = client
        .request("GET", &page, &[("cookie", &cookies)], "")
        .await?;
    ensure!(shown.status == 200, "GET {page} signed in: {shown:?}");
    let token = between(
        &shown.body,
        "<textarea id=\"dce-token\" readonly rows=\"5\">",
        "</textarea>",
    )?;
    Ok(token.to_string())
}

/// The sign-in page's form under `base_path` filled with `kube_token` and posted, as a browser
/// does: the answer, and the CSRF cookie (`name=value`) the form came with.
pub async fn post_sign_in_form(
    client: &HttpsClient,
    base_path: &str,
    kube_token: &str,
) -> anyhow::Result<(HttpsResponse, String)> {
    let page = format!("{base_path}/auth");
    let form = client.request("GET", &page, &[], "").await?;
    ensure!(form.status == 200, "GET {page}: {form:?}");
    let csrf_cookie = format!("{CSRF_COOKIE}={}", form.cookie(CSRF_COOKIE)?);
    let csrf = between(&form.body, "name=\"csrf\" value=\"", "\"")?;
    let posted = format!(
        "csrf={}&token={}",
        form_encode(csrf),
        form_encode(kube_token)
    );
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("cookie", csrf_cookie.as_str()),
    ];
    let answer = client
        .request("POST", &format!("{page}/token"), &headers, &posted)
        .await?;
    Ok((answer, csrf_cookie))
}

/// The text of `html` between `start` and the next `end`.
fn between<'a>(html: &'a str, start: &str, end: &str) -> anyhow::Result<&'a str> {
    let from = html
        .find(start)
        .with_context(|| format!("no {start} in {html}"))?
        + start.len();
    let length = html[from..]
        .find(end)
        .with_context(|| format!("no {end} after {start}"))?;
    Ok(&html[from..from + length])
}
