//! Offline AWS for tests: a `moto_server` child process on loopback, and a stub of the AWS
//! console federation endpoint.
//!
//! `moto_server` comes from the project's Python virtualenv (`e2e/scripts/venv.sh`).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::Rng;
use tokio::task::JoinHandle;

use crate::process::free_port;

/// How long a fresh `moto_server` may take to answer (Python start-up on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts at starting on a free port (another process may take the port between our probe
/// and moto's bind).
const START_ATTEMPTS: usize = 3;

/// Runs moto's server and exits as soon as its stdin closes, so the server dies with the test
/// process even when that is killed without running destructors.
const LAUNCHER: &str = "\
import os, sys, threading
def exit_with_parent():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=exit_with_parent, daemon=True).start()
from moto.server import main
main()
";

/// The Python virtualenv holding `moto_server`: `$DCE_VENV`, else `<workspace>/.venv`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("DCE_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join(".venv"),
    }
}

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// An IAM user's access key pair, as created in moto.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A running `moto_server` on 127.0.0.1. Stopped (killed and reaped) on drop.
pub struct Moto {
    child: Child,
    /// Held open for the child's lifetime: closing it tells the launcher to exit.
    _stdin: ChildStdin,
    addr: SocketAddr,
    log_path: PathBuf,
}

impl Moto {
    /// Starts moto with its defaults (no authentication: any credentials are accepted).
    pub async fn start() -> anyhow::Result<Moto> {
        Self::start_with(&[]).await
    }

    /// Starts moto with extra environment, e.g. `("INITIAL_NO_AUTH_ACTION_COUNT", "0")` to
    /// enforce SigV4 and IAM policies.
    pub async fn start_with(env: &[(&str, &str)]) -> anyhow::Result<Moto> {
        let venv = venv_dir();
        let python = venv.join("bin/python");
        if !venv.join("bin/moto_server").is_file() || !python.is_file() {
            let script = workspace_root().join("e2e/scripts/venv.sh");
            let command = match std::env::var_os("DCE_VENV") {
                Some(_) => format!("DCE_VENV={} {}", venv.display(), script.display()),
                None => script.display().to_string(),
            };
            bail!(
                "moto_server not found in the Python virtualenv {}; create it with: {command}",
                venv.display()
            );
        }
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&python, env).await {
                Ok(moto) => return Ok(moto),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("moto_server did not start")))
    }

    async fn start_once(python: &Path, env: &[(&str, &str)]) -> anyhow::Result<Moto> {
        let port = free_port()?;
        let log_path = std::env::temp_dir().join(format!("moto-{}-{port}.log", std::process::id()));
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Command::new(python)
            .arg("-c")
            .arg(LAUNCHER)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", python.display()))?;
        let Some(stdin) = child.stdin.take() else {
            // Unreachable with Stdio::piped; stop the child rather than leak it.
            let _ = child.kill();
            let _ = child.wait();
            bail!("moto_server started without a stdin pipe");
        };
        let moto = Moto {
            child,
            _stdin: stdin,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            log_path,
        };
        moto.wait_until_ready().await
    }

    /// Polls until the server answers. On failure `self` is dropped, which stops the child.
    async fn wait_until_ready(mut self) -> anyhow::Result<Self> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "moto_server exited during start-up ({status}):\n{}",
                    self.log_tail()
                );
            }
            // Any HTTP answer means the server is up; reset is harmless on a fresh server.
            if let Ok((200, _)) = http_request(self.addr, "POST", "/moto-api/reset", b"").await {
                // Our probe might have reached another server on a port that was taken
                // between probe and bind: make sure ours is still running.
                if self.child.try_wait()?.is_none() {
                    return Ok(self);
                }
                continue;
            }
            if Instant::now() > deadline {
                bail!(
                    "moto_server did not answer within {START_TIMEOUT:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// moto_server's process id (to read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Base URL for AWS SDK clients, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wipes all state (users, queued results, …).
    pub async fn reset(&self) -> anyhow::Result<()> {
        self.expect_success("POST", "/moto-api/reset", b"").await
    }

    /// Queues Cost Explorer `GetCostAndUsage` results; each later call returns the next one.
    /// `results` is moto's format: `{"results": [{"ResultsByTime": [...], ...}, ...]}`.
    pub async fn queue_cost_and_usage(&self, results: &serde_json::Value) -> anyhow::Result<()> {
        let body = serde_json::to_vec(results)?;
        self.expect_success("POST", "/moto-api/static/ce/cost-and-usage-results", &body)
            .await
    }

    /// Creates IAM user `name` with an access key and, if given, an inline policy.
    ///
    /// Uses unsigned IAM calls: with authentication enforced, start moto with
    /// `INITIAL_NO_AUTH_ACTION_COUNT` at least 3 per user created this way (CreateUser,
    /// CreateAccessKey, PutUserPolicy) before any signed request.
    pub async fn create_user_with_key(
        &self,
        name: &str,
        policy_document: Option<&str>,
    ) -> anyhow::Result<AccessKey> {
        self.iam(&[("Action", "CreateUser"), ("UserName", name)])
            .await?;
        let created = self
            .iam(&[("Action", "CreateAccessKey"), ("UserName", name)])
            .await?;
        let key = AccessKey {
            access_key_id: xml_text(&created, "AccessKeyId")
                .context("CreateAccessKey: no AccessKeyId")?,
            secret_access_key: xml_text(&created, "SecretAccessKey")
                .context("CreateAccessKey: no SecretAccessKey")?,
        };
        if let Some(policy) = policy_document {
            self.iam(&[
                ("Action", "PutUserPolicy"),
                ("UserName", name),
                ("PolicyName", "test"),
                ("PolicyDocument", policy),
            ])
            .await?;
        }
        Ok(key)
    }

    /// Makes moto enforce SigV4 and IAM policies from now on, as `INITIAL_NO_AUTH_ACTION_COUNT`
    /// does from start-up, e.g. once users have been set up with [`Moto::create_user_with_key`].
    pub async fn enforce_auth(&self) -> anyhow::Result<()> {
        self.expect_success("POST", "/moto-api/reset-auth", b"0")
            .await
    }

    /// Replaces IAM user `name`'s inline policy (the one [`Moto::create_user_with_key`] sets)
    /// while authentication is enforced: the unsigned call goes through a window of exactly one
    /// unauthenticated request, which closes behind it. Another client (an operator retrying)
    /// can take that window first; then the window is opened again, a few times at most.
    pub async fn replace_user_policy(
        &self,
        name: &str,
        policy_document: &str,
    ) -> anyhow::Result<()> {
        const ATTEMPTS: usize = 5;
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            self.expect_success("POST", "/moto-api/reset-auth", b"1")
                .await?;
            match self
                .iam(&[
                    ("Action", "PutUserPolicy"),
                    ("UserName", name),
                    ("PolicyName", "test"),
                    ("PolicyDocument", policy_document),
                ])
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
            .context(format!(
                "moto's one unauthenticated request was taken by another client {ATTEMPTS} times"
            )))
    }

    async fn iam(&self, params: &[(&str, &str)]) -> anyhow::Result<String> {
        let mut form: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        form.push("Version=2010-05-08".to_string());
        let body = form.join("&");
        // moto routes query-protocol calls by the service in the credential scope.
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAMOTOSETUP/20200101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            ),
        ];
        let (status, response) =
            crate::http::request(self.addr, "POST", "/", &headers, body.as_bytes()).await?;
        let response = String::from_utf8_lossy(&response).into_owned();
        if status != 200 {
            bail!("IAM {}: HTTP {status}: {response}", params[0].1);
        }
        Ok(response)
    }

    async fn expect_success(&self, method: &str, path: &str, body: &[u8]) -> anyhow::Result<()> {
        let (status, response) = http_request(self.addr, method, path, body).await?;
        if !(200..300).contains(&status) {
            bail!(
                "{method} {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&response)
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        crate::process::log_tail(&self.log_path, 30)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Kill and reap: no orphaned or zombie servers once the test is done.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<(u16, Vec<u8>)> {
    crate::http::request(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        body,
    )
    .await
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub(crate) fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Text of the first `<tag>…</tag>` in an XML document (enough for moto's flat responses).
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].to_string())
}

/// One request the federation stub received.
#[derive(Debug, Clone)]
pub struct FederationRequest {
    /// Query parameters, decoded.
    pub params: BTreeMap<String, String>,
    /// The sign-in token answered, if the request was a valid `getSigninToken`.
    pub signin_token: Option<String>,
}

/// Stand-in for the AWS console federation endpoint: answers `Action=getSigninToken` (with a
/// `Session` JSON holding `sessionId`, `sessionKey` and `sessionToken`) with a fresh random
/// `{"SigninToken": …}`, anything else with 400, and records every request.
pub struct FederationStub {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<FederationRequest>>>,
    server: JoinHandle<()>,
}

impl FederationStub {
    pub async fn start() -> anyhow::Result<FederationStub> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/federation", get(federation))
            .with_state(Arc::clone(&requests));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FederationStub {
            addr,
            requests,
            server,
        })
    }

    /// The federation endpoint URL, e.g. `http://127.0.0.1:41234/federation`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/federation", self.addr)
    }

    /// Requests received so far, oldest first.
    pub fn requests(&self) -> Vec<FederationRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Stops the server and waits until it has let go of its port.
    pub async fn shutdown(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }
}

impl Drop for FederationStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn federation(
    State(requests): State<Arc<Mutex<Vec<FederationRequest>>>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let valid = params.get("Action").map(String::as_str) == Some("getSigninToken")
        && params
            .get("Session")
            .is_some_and(|session| is_valid_session(session));
    let signin_token = valid.then(|| format!("{:032x}", rand::rng().random::<u128>()));
    if let Ok(mut log) = requests.lock() {
        log.push(FederationRequest {
            params,
            signin_token: signin_token.clone(),
        });
    }
    match signin_token {
        Some(token) => Json(serde_json::json!({ "SigninToken": token })).into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            "expected Action=getSigninToken with a valid Session",
        )
            .into_response(),
    }
}

fn is_valid_session(session: &str) -> bool {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(session) else {
        return false;
    };
    ["sessionId", "sessionKey", "sessionToken"]
        .iter()
        .all(|key| {
            fields
                .get(*key)
                .and_then(serde_json::Value::as_str)
                .is_some_and(|v| !v.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_reserved_characters() {
        assert_eq!(
            form_encode(r#"{"a": "b/c"}"#),
            "%7B%22a%22%3A%20%22b%2Fc%22%7D"
        );
        assert_eq!(form_encode("plain-name_1.x~"), "plain-name_1.x~");
    }

    #[test]
    fn xml_text_reads_the_first_element() {
        let xml = "<R><AccessKeyId>AKIA1</AccessKeyId><SecretAccessKey>s/k</SecretAccessKey></R>";
        assert_eq!(xml_text(xml, "AccessKeyId").as_deref(), Some("AKIA1"));
        assert_eq!(xml_text(xml, "SecretAccessKey").as_deref(), Some("s/k"));
        assert_eq!(xml_text(xml, "Missing"), None);
    }

    #[test]
    fn sessions_need_all_three_fields() {
        assert!(is_valid_session(
            r#"{"sessionId":"a","sessionKey":"b","sessionToken":"c"}"#
        ));
        assert!(!is_valid_session(r#"{"sessionId":"a","sessionKey":"b"}"#));
        assert!(!is_valid_session("not json"));
    }
}
