//! An in-memory Kubernetes API server on loopback: the project's local control plane.
//!
//! Tests start it in-process with [`ControlPlane::start`]; `make dev` starts the
//! `local-control-plane` binary. It implements the API machinery the operator, kubectl and Helm
//! use, and answers like a real kube-apiserver wherever it does not (404 for unknown resources,
//! 405 for unsupported verbs), never with a silent success.

mod app;
mod auth;
mod controllers;
mod convert;
mod crd;
mod discovery;
mod handlers;
mod list;
mod managed;
mod meta;
mod objects;
mod openapi;
mod protobuf;
mod registry;
mod serve;
mod status;
mod store;
mod table;
mod tls;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

use crate::app::{App, HISTORY_LIMIT, Stats};
use crate::registry::Registry;
use crate::store::{Key, Store};

/// A bearer token the server accepts, with the identity it authenticates as.
#[derive(Debug, Clone)]
pub struct StaticToken {
    pub token: String,
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ControlPlaneConfig {
    /// 0 picks a free port.
    pub port: u16,
    /// Tokens besides the generated admin token (`system:masters`).
    pub tokens: Vec<StaticToken>,
    /// Users whose every authorization decision is recorded (see
    /// [`ControlPlane::authorization_decisions`]), e.g. to derive what a workload needs.
    pub audited_users: Vec<String>,
}

/// One authorization decision about a request of an audited user: the attributes the RBAC
/// authorizer saw and its answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuthorizationDecision {
    pub user: String,
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    /// Empty for cluster-scoped requests.
    pub namespace: String,
    /// Empty for collections (a list or watch by `metadata.name` field selector names it).
    pub name: String,
    /// Set for non-resource requests such as `/version`.
    pub non_resource_path: Option<String>,
    pub allowed: bool,
}

/// Requests served, by verb.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestStats {
    pub get: u64,
    pub list: u64,
    pub watch: u64,
    pub create: u64,
    pub update: u64,
    pub patch: u64,
    pub delete: u64,
    pub deletecollection: u64,
}

/// A running server. Dropping it without [`ControlPlane::shutdown`] aborts its tasks.
pub struct ControlPlane {
    app: Arc<App>,
    addr: SocketAddr,
    admin_token: String,
    /// PEM of the CA behind the server's TLS certificate.
    ca_pem: String,
    stop: signal::Sender<bool>,
    server: Option<JoinHandle<()>>,
    controllers: Option<JoinHandle<()>>,
}

/// Namespaces every cluster starts with.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

fn random_token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The objects a new cluster has: bootstrap RBAC policy and the initial namespaces.
fn initial_objects(registry: &Registry) -> Vec<(Key, Value)> {
    let namespaces = INITIAL_NAMESPACES.iter().map(|ns| {
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": ns, "labels": { "kubernetes.io/metadata.name": ns } },
            "spec": { "finalizers": ["kubernetes"] },
            "status": { "phase": "Active" },
        })
    });
    let policy = local_apimachinery::rbac::bootstrap_policy();
    namespaces
        .chain(policy)
        .filter_map(|mut obj| {
            let api_version = obj.get("apiVersion").and_then(Value::as_str)?.to_string();
            let kind = obj.get("kind").and_then(Value::as_str)?.to_string();
            let info = registry.by_kind(&api_version, &kind)?;
            let m = meta::metadata_mut(&mut obj);
            m.insert("uid".into(), json!(meta::new_uid()));
            m.insert("creationTimestamp".into(), json!(meta::now()));
            let ns = if info.namespaced {
                meta::meta_str(&obj, "namespace").to_string()
            } else {
                String::new()
            };
            Some((Key::new(&info.storage, &ns, meta::name(&obj)), obj))
        })
        .collect()
}

impl ControlPlane {
    /// Binds `127.0.0.1:port` and starts serving.
    pub async fn start(config: ControlPlaneConfig) -> anyhow::Result<ControlPlane> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
        let addr = listener.local_addr()?;
        let admin_token = random_token();
        let mut tokens = config.tokens.clone();
        tokens.push(StaticToken {
            token: admin_token.clone(),
            username: auth::ADMIN_USER.into(),
            uid: auth::ADMIN_USER.into(),
            groups: vec!["system:masters".into()],
        });
        let registry = Registry::new();
        let store = Store::new(HISTORY_LIMIT);
        store.seed(initial_objects(&registry));
        let (stop, stopped) = signal::channel(false);
        let app = Arc::new(App {
            store,
            registry,
            auth: auth::Authenticator::new(&tokens),
            stats: Stats::default(),
            audit: app::Audit::new(&config.audited_users),
            address: addr.to_string(),
            shutdown: stopped.clone(),
        });
        let cert = tls::generate().context("generating the serving certificate")?;
        let router = axum::Router::new()
            .fallback(handlers::handle)
            .with_state(app.clone());
        let server = tokio::spawn(serve::serve(listener, router, cert.config, stopped));
        let controllers = tokio::spawn(controllers::run(app.clone()));
        Ok(ControlPlane {
            app,
            addr,
            admin_token,
            ca_pem: cert.ca_pem,
            stop,
            server: Some(server),
            controllers: Some(controllers),
        })
    }

    /// Plain-HTTP address. The same port also speaks TLS (see [`ControlPlane::https_url`]).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// TLS address, as kubeconfigs name the server: client-go sends tokens only over TLS.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// PEM of the CA that signed the server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Token of user `admin` in group `system:masters`.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A complete kubeconfig for this server (TLS, with its CA) authenticating with `token`.
    pub fn kubeconfig_yaml(&self, token: &str) -> String {
        use base64::Engine;
        let user = if token == self.admin_token {
            "admin"
        } else {
            "user"
        };
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: local\n  context:\n    cluster: local\n    user: {user}\n    namespace: default\ncurrent-context: local\npreferences: {{}}\n",
            url = self.https_url(),
        )
    }

    pub fn write_kubeconfig(&self, path: &std::path::Path, token: &str) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, self.kubeconfig_yaml(token))
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The decisions recorded for [`ControlPlaneConfig::audited_users`], oldest first.
    pub fn authorization_decisions(&self) -> Vec<AuthorizationDecision> {
        self.app.audit.decisions()
    }

    pub fn stats(&self) -> RequestStats {
        self.app.stats.snapshot()
    }

    /// Stops serving, ends every watch and the background controllers, and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        if let Some(controllers) = self.controllers.take() {
            let _ = controllers.await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in [self.server.take(), self.controllers.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}
