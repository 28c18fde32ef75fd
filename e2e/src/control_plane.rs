//! A real Kubernetes control plane on loopback for tests and `make dev`: etcd, kube-apiserver
//! and kube-controller-manager, built from Go modules by `make kube-tools` (`e2e/kube/`).
//!
//! Each [`ControlPlane`] is a cluster of its own (its own etcd data), so tests never see each
//! other's objects. The API server serves TLS with a CA made here, authenticates static bearer
//! tokens (an admin in `system:masters`, plus the users a test names) and, when configured, the
//! id_tokens of an OpenID Connect issuer ([`crate::oidc`]), and authorizes with RBAC.
//! The controller-manager runs the garbage collector and the namespace, Job, ServiceAccount and
//! root-CA publisher controllers (and, on request, those of Deployments and Services). There is
//! no kubelet: Pods are created but never run, unless a test starts a [`crate::node::Node`]
//! (which starts the scheduler too).
//!
//! Processes are started from the calling thread and die with it (see
//! [`crate::process::ServerProcess`]); [`ControlPlane::shutdown`] or drop stops them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use rand::Rng as _;
use rcgen::KeyPair;
use serde::Deserialize;

use crate::moto::workspace_root;
use crate::oidc::{OidcIssuerConfig, wait_for_authenticator};
use crate::process::{ServerProcess, free_port};
use crate::target::ScratchDir;
use crate::tls::TestCa;

/// How long etcd and the API server may take to come up on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Starts tried before a port taken under a server is reported as a failure.
const PORT_TAKEN_ATTEMPTS: u32 = 3;
/// Name of the admin user (group `system:masters`) every cluster has.
pub const ADMIN_USER: &str = "admin";

/// A bearer token the API server accepts, with the identity it authenticates as.
#[derive(Debug, Clone)]
pub struct StaticToken {
    pub token: String,
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ControlPlaneConfig {
    /// The API server's port; 0 picks a free one.
    pub port: u16,
    /// Tokens besides the generated admin token.
    pub tokens: Vec<StaticToken>,
    /// Users whose every request is written to the API server's audit log with its
    /// authorization decision (see [`ControlPlane::authorization_decisions`]).
    pub audited_users: Vec<String>,
    /// Start without the controller-manager (no garbage collection, namespace deletion, Job
    /// pods or default ServiceAccounts); see [`ControlPlane::start_controller_manager`].
    pub defer_controller_manager: bool,
    /// Also run the controllers that turn workloads into running Pods and Services into
    /// endpoints (Deployments, ReplicaSets, EndpointSlices, PodDisruptionBudgets, finished Pods),
    /// for clusters with a [`crate::node::Node`].
    pub workload_controllers: bool,
    /// An OpenID Connect issuer whose id_tokens authenticate users (e.g.
    /// [`crate::oidc::OidcProvider::issuer_config`]); start the issuer first, as the API server
    /// reads its discovery document as it starts.
    pub oidc: Option<OidcIssuerConfig>,
}

/// The controllers every cluster runs.
const BASE_CONTROLLERS: &str = "garbage-collector-controller,namespace-controller,job-controller,\
     serviceaccount-controller,root-ca-certificate-publisher-controller";
/// The controllers [`ControlPlaneConfig::workload_controllers`] adds.
const WORKLOAD_CONTROLLERS: &str = "deployment-controller,replicaset-controller,\
     endpointslice-controller,disruption-controller,pod-garbage-collector-controller";

/// One authorization decision about a request of an audited user: the attributes the RBAC
/// authorizer saw and its answer, read from the audit log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuthorizationDecision {
    pub user: String,
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    /// Empty for cluster-scoped requests.
    pub namespace: String,
    /// Empty for collections.
    pub name: String,
    /// Set for non-resource requests such as `/version`.
    pub non_resource_path: Option<String>,
    pub allowed: bool,
    /// The client's `User-Agent` header.
    pub user_agent: String,
}

/// Requests of audited users, by verb (as the authorizer names them). Requests on
/// `coordination.k8s.io` Leases (leader election's lock) are counted apart, in `leader_lock`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestStats {
    pub leader_lock: u64,
    pub get: u64,
    pub list: u64,
    pub watch: u64,
    pub create: u64,
    pub update: u64,
    pub patch: u64,
    pub delete: u64,
    pub deletecollection: u64,
}

impl RequestStats {
    /// Requests that change state.
    pub fn writes(&self) -> u64 {
        self.create + self.update + self.patch + self.delete + self.deletecollection
    }

    pub fn total(&self) -> u64 {
        self.writes() + self.get + self.list + self.watch
    }
}

/// Where the project's build of the Kubernetes binaries lives: `$DCE_KUBE_BIN_DIR`, else
/// `e2e/kube/bin`.
pub fn kube_bin_dir() -> PathBuf {
    match std::env::var_os("DCE_KUBE_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("e2e/kube/bin"),
    }
}

/// The path of one of the Kubernetes binaries, or an error saying how to build them.
pub fn kube_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = kube_bin_dir().join(name);
    if !path.is_file() {
        bail!(
            "{} not found: build the test control plane with `make kube-tools`",
            path.display()
        );
    }
    Ok(path)
}

/// A running control plane. Dropping it kills its processes and removes its files.
pub struct ControlPlane {
    // Field order is drop order: scheduler, controller-manager, API server, etcd, then the
    // files.
    scheduler: Option<ServerProcess>,
    controller_manager: Option<ServerProcess>,
    apiserver: ServerProcess,
    etcd: ServerProcess,
    port: u16,
    admin_token: String,
    ca_pem: String,
    audit_log: Option<PathBuf>,
    /// The controller-manager's `--controllers`.
    controllers: String,
    dir: ScratchDir,
}

impl ControlPlane {
    /// Starts etcd, the API server (waiting until `/readyz` passes) and, unless deferred, the
    /// controller-manager. A port found free can be taken before a server binds it (by another
    /// test's server, or an outgoing connection's ephemeral port): that start is thrown away
    /// and tried again on other ports.
    pub async fn start(config: ControlPlaneConfig) -> anyhow::Result<ControlPlane> {
        let mut attempt = 1;
        loop {
            match Self::start_once(&config).await {
                Err(error)
                    if attempt < PORT_TAKEN_ATTEMPTS
                        && format!("{error:#}").contains("address already in use") =>
                {
                    eprintln!("control plane: a port was taken before it was bound; trying again");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(config: &ControlPlaneConfig) -> anyhow::Result<ControlPlane> {
        let apiserver_bin = kube_binary("kube-apiserver")?;
        let etcd_bin = kube_binary("etcd")?;
        kube_binary("kube-controller-manager")?;
        let dir = ScratchDir::new()?;
        let files = Files::write(dir.path(), config)?;

        let (etcd_port, peer_port) = (free_port()?, free_port()?);
        let mut etcd_cmd = Command::new(etcd_bin);
        etcd_cmd
            .arg(format!("--data-dir={}", dir.path().join("etcd").display()))
            .arg(format!("--client-port={etcd_port}"))
            .arg(format!("--peer-port={peer_port}"));
        let mut etcd = ServerProcess::spawn("etcd", etcd_cmd, &dir.path().join("etcd.log"))?;

        let port = match config.port {
            0 => free_port()?,
            port => port,
        };
        let mut apiserver_cmd = Command::new(apiserver_bin);
        apiserver_cmd.args(apiserver_args(&files, etcd_port, port));
        if let Some(policy) = &files.audit_policy {
            apiserver_cmd
                .arg(format!("--audit-policy-file={}", policy.display()))
                .arg(format!(
                    "--audit-log-path={}",
                    dir.path().join("audit.log").display()
                ))
                .arg("--audit-log-format=json")
                .arg("--audit-log-mode=blocking");
        }
        let apiserver = ServerProcess::spawn(
            "kube-apiserver",
            apiserver_cmd,
            &dir.path().join("apiserver.log"),
        )?;
        let audit_log = files
            .audit_policy
            .as_ref()
            .map(|_| dir.path().join("audit.log"));
        let mut control_plane = ControlPlane {
            scheduler: None,
            controller_manager: None,
            apiserver,
            etcd: {
                etcd.check_running()?;
                etcd
            },
            port,
            admin_token: files.admin_token.clone(),
            ca_pem: files.ca_pem.clone(),
            audit_log,
            controllers: if config.workload_controllers {
                format!("{BASE_CONTROLLERS},{WORKLOAD_CONTROLLERS}")
            } else {
                BASE_CONTROLLERS.to_string()
            },
            dir,
        };
        control_plane.wait_ready().await?;
        if let Some(oidc) = &config.oidc {
            let client = control_plane.admin_client().await?;
            wait_for_authenticator(&client, &oidc.issuer_url).await?;
        }
        if !config.defer_controller_manager {
            control_plane.start_controller_manager().await?;
        }
        Ok(control_plane)
    }

    /// Polls `/readyz` until every check passes.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = self.admin_client().await?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            self.etcd.check_running()?;
            self.apiserver.check_running()?;
            let request = http::Request::get("/readyz").body(Vec::new())?;
            if client.request_text(request).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready within {START_TIMEOUT:?}:\n{}",
                    self.apiserver.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts the controller-manager (once) and waits until it has created the `default`
    /// namespace's ServiceAccount, its first visible work. Start it after installing CRDs to
    /// spare the garbage collector its discovery resync (about 30 s) for their objects.
    pub async fn start_controller_manager(&mut self) -> anyhow::Result<()> {
        if self.controller_manager.is_some() {
            return Ok(());
        }
        let mut process = self.spawn_component(
            "kube-controller-manager",
            vec![
                format!("--controllers={}", self.controllers),
                format!(
                    "--root-ca-file={}",
                    self.dir.path().join("ca.crt").display()
                ),
                "--use-service-account-credentials=false".into(),
            ],
        )?;
        let accounts: Api<ServiceAccount> = Api::namespaced(self.admin_client().await?, "default");
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while accounts.get_opt("default").await?.is_none() {
            process.check_running()?;
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "kube-controller-manager made no default ServiceAccount within {START_TIMEOUT:?}:\n{}",
                    process.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.controller_manager = Some(process);
        Ok(())
    }

    /// Starts kube-scheduler (once), which binds Pods to the nodes of [`crate::node::Node`].
    pub async fn start_scheduler(&mut self) -> anyhow::Result<()> {
        if self.scheduler.is_some() {
            return Ok(());
        }
        let mut process = self.spawn_component("kube-scheduler", Vec::new())?;
        process.check_running()?;
        self.scheduler = Some(process);
        Ok(())
    }

    /// Starts the control-plane component `binary` as the admin, with `args`: one instance (no
    /// leader election), no health or metrics listener (nothing reads them), its log beside
    /// the cluster's files.
    fn spawn_component(&self, binary: &str, args: Vec<String>) -> anyhow::Result<ServerProcess> {
        let kubeconfig = self.dir.path().join(format!("{binary}.kubeconfig"));
        self.write_kubeconfig(&kubeconfig, &self.admin_token)?;
        let mut command = Command::new(kube_binary(binary)?);
        command
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(["--leader-elect=false", "--secure-port=0", "--v=1"])
            .args(args);
        ServerProcess::spawn(
            binary,
            command,
            &self.dir.path().join(format!("{binary}.log")),
        )
    }

    /// A kube client authenticated as the admin.
    pub async fn admin_client(&self) -> anyhow::Result<Client> {
        let kubeconfig = Kubeconfig::from_yaml(&self.kubeconfig_yaml(&self.admin_token))?;
        let config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// The API server's address, as kubeconfigs name it.
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The API server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Token of user `admin` in group `system:masters`.
    /// Freezes the API server (it accepts connections and answers nothing), or thaws it.
    pub fn set_apiserver_frozen(&self, frozen: bool) {
        self.apiserver.set_frozen(frozen);
    }

    /// The kube-apiserver's process id (to read its CPU time).
    pub fn apiserver_pid(&self) -> u32 {
        self.apiserver.pid()
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A complete kubeconfig for this server (TLS, with its CA) authenticating with `token`.
    pub fn kubeconfig_yaml(&self, token: &str) -> String {
        let user = if token == self.admin_token {
            ADMIN_USER
        } else {
            "user"
        };
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: local\n  context:\n    cluster: local\n    user: {user}\n    namespace: default\ncurrent-context: local\npreferences: {{}}\n",
            url = self.https_url(),
        )
    }

    pub fn write_kubeconfig(&self, path: &Path, token: &str) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Written whole, then renamed: a reader never sees half a kubeconfig.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, self.kubeconfig_yaml(token))
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))
    }

    /// Every authorization decision the audit log holds for
    /// [`ControlPlaneConfig::audited_users`], oldest first.
    pub fn authorization_decisions(&self) -> anyhow::Result<Vec<AuthorizationDecision>> {
        let Some(path) = &self.audit_log else {
            bail!("no user is audited on this control plane");
        };
        let log =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        parse_audit_log(&log)
    }

    /// Requests of the audited users so far, by verb.
    pub fn request_stats(&self) -> anyhow::Result<RequestStats> {
        let mut stats = RequestStats::default();
        for decision in self.authorization_decisions()? {
            if decision.api_group == "coordination.k8s.io" && decision.resource == "leases" {
                stats.leader_lock += 1;
                continue;
            }
            let counter = match decision.verb.as_str() {
                "get" => &mut stats.get,
                "list" => &mut stats.list,
                "watch" => &mut stats.watch,
                "create" => &mut stats.create,
                "update" => &mut stats.update,
                "patch" => &mut stats.patch,
                "delete" => &mut stats.delete,
                "deletecollection" => &mut stats.deletecollection,
                _ => continue,
            };
            *counter += 1;
        }
        Ok(stats)
    }

    /// Stops the controller-manager, the API server and etcd, and removes their files.
    pub async fn shutdown(self) {
        drop(self);
    }
}

/// Flags of the API server.
fn apiserver_args(files: &Files, etcd_port: u16, port: u16) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    let mut args = vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--tls-cert-file={}", path(&files.serving_cert)),
        format!("--tls-private-key-file={}", path(&files.serving_key)),
        format!("--token-auth-file={}", path(&files.tokens)),
        "--authorization-mode=RBAC".into(),
        format!(
            "--service-account-key-file={}",
            path(&files.service_account_public_key)
        ),
        format!(
            "--service-account-signing-key-file={}",
            path(&files.service_account_key)
        ),
        "--service-account-issuer=https://kubernetes.default.svc".into(),
        "--service-cluster-ip-range=10.96.0.0/24".into(),
        // Nothing here is a node: no endpoints for the `kubernetes` Service.
        "--endpoint-reconciler-type=none".into(),
        // A test node's kubelet is reached at its loopback address, never by a name to resolve.
        "--kubelet-preferred-address-types=InternalIP".into(),
        "--profiling=false".into(),
    ];
    // Structured authentication configuration: the legacy `--oidc-*` flags cannot be combined
    // with it; the static token file can.
    if let Some(config) = &files.authentication_config {
        args.push(format!("--authentication-config={}", path(config)));
    }
    args
}

/// The files the API server reads: certificates, keys, tokens, the audit policy and the
/// authentication configuration.
struct Files {
    admin_token: String,
    ca_pem: String,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    service_account_key: PathBuf,
    service_account_public_key: PathBuf,
    tokens: PathBuf,
    audit_policy: Option<PathBuf>,
    authentication_config: Option<PathBuf>,
}

impl Files {
    fn write(dir: &Path, config: &ControlPlaneConfig) -> anyhow::Result<Files> {
        let write = |name: &str, contents: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, contents)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        let ca = TestCa::new("dce-test-control-plane-ca")?;
        let serving = ca.issue(&["localhost", "127.0.0.1"])?;
        let ca_pem = ca.pem();
        write("ca.crt", &ca_pem)?;
        let admin_token = random_token();
        let mut tokens = String::new();
        let admin = StaticToken {
            token: admin_token.clone(),
            username: ADMIN_USER.into(),
            uid: ADMIN_USER.into(),
            groups: vec!["system:masters".into()],
        };
        for token in config.tokens.iter().chain([&admin]) {
            // token,user,uid,"group1,group2"
            writeln!(
                tokens,
                "{},{},{},\"{}\"",
                token.token,
                token.username,
                token.uid,
                token.groups.join(",")
            )?;
        }
        let audit_policy = if config.audited_users.is_empty() {
            None
        } else {
            Some(write(
                "audit-policy.yaml",
                &audit_policy(&config.audited_users),
            )?)
        };
        let authentication_config = match &config.oidc {
            Some(oidc) => Some(write(
                "authentication-config.yaml",
                &oidc.authentication_config()?,
            )?),
            None => None,
        };
        let service_account_key = KeyPair::generate()?;
        Ok(Files {
            admin_token,
            serving_cert: write("apiserver.crt", &serving.cert_pem)?,
            serving_key: write("apiserver.key", &serving.key_pem)?,
            service_account_key: write(
                "service-account.key",
                &service_account_key.serialize_pem(),
            )?,
            service_account_public_key: write(
                "service-account.pub",
                &service_account_key.public_key_pem(),
            )?,
            tokens: write("tokens.csv", &tokens)?,
            ca_pem,
            audit_policy,
            authentication_config,
        })
    }
}

/// An audit policy recording, at level Metadata (who, what, the decision), every request of
/// `users` once, when its response is complete (a watch: when it starts).
fn audit_policy(users: &[String]) -> String {
    let users = serde_json::to_string(users).expect("strings serialize");
    format!(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  users: {users}\n- level: None\n"
    )
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line of the API server's JSON audit log (the fields read here).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditEvent {
    #[serde(rename = "auditID")]
    audit_id: String,
    verb: String,
    #[serde(rename = "requestURI")]
    request_uri: String,
    user: AuditUser,
    #[serde(default)]
    object_ref: Option<AuditObjectRef>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    user_agent: String,
}

#[derive(Deserialize)]
struct AuditUser {
    username: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditObjectRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    api_group: String,
}

/// The decisions of a JSON audit log, one per request (a watch logs two stages).
fn parse_audit_log(log: &str) -> anyhow::Result<Vec<AuthorizationDecision>> {
    let mut seen = BTreeSet::new();
    let mut decisions = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let event: AuditEvent =
            serde_json::from_str(line).with_context(|| format!("audit log line {line}"))?;
        if !seen.insert(event.audit_id.clone()) {
            continue;
        }
        let allowed = match event.annotations.get("authorization.k8s.io/decision") {
            Some(decision) => decision == "allow",
            // Rejected before authorization (e.g. unauthenticated): not a decision.
            None => continue,
        };
        let user_agent = event.user_agent;
        let decision = match event.object_ref {
            Some(object) => AuthorizationDecision {
                user: event.user.username,
                verb: event.verb,
                api_group: object.api_group,
                resource: object.resource,
                subresource: object.subresource,
                namespace: object.namespace,
                name: object.name,
                non_resource_path: None,
                allowed,
                user_agent,
            },
            None => AuthorizationDecision {
                user: event.user.username,
                verb: event.verb,
                api_group: String::new(),
                resource: String::new(),
                subresource: String::new(),
                namespace: String::new(),
                name: String::new(),
                non_resource_path: Some(
                    event
                        .request_uri
                        .split('?')
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                ),
                allowed,
                user_agent,
            },
        };
        decisions.push(decision);
    }
    Ok(decisions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_log_yields_one_decision_per_request() {
        let log = r#"{"kind":"Event","auditID":"a","stage":"ResponseStarted","verb":"watch","requestURI":"/apis/dce.dev/v1alpha1/leases?watch=1","user":{"username":"op"},"objectRef":{"resource":"leases","apiGroup":"dce.dev","apiVersion":"v1alpha1"},"annotations":{"authorization.k8s.io/decision":"allow"}}
{"kind":"Event","auditID":"a","stage":"ResponseComplete","verb":"watch","requestURI":"/apis/dce.dev/v1alpha1/leases?watch=1","user":{"username":"op"},"objectRef":{"resource":"leases","apiGroup":"dce.dev","apiVersion":"v1alpha1"},"annotations":{"authorization.k8s.io/decision":"allow"}}
{"kind":"Event","auditID":"b","stage":"ResponseComplete","verb":"get","requestURI":"/version?timeout=5s","user":{"username":"op"},"annotations":{"authorization.k8s.io/decision":"forbid"}}
{"kind":"Event","auditID":"c","stage":"ResponseComplete","verb":"patch","requestURI":"/api/v1/namespaces/x/secrets/s","user":{"username":"op"},"objectRef":{"resource":"secrets","namespace":"x","name":"s","apiVersion":"v1"},"annotations":{"authorization.k8s.io/decision":"allow"}}
"#;
        let decisions = parse_audit_log(log).unwrap();
        assert_eq!(decisions.len(), 3);
        assert_eq!(decisions[0].resource, "leases");
        assert_eq!(decisions[0].api_group, "dce.dev");
        assert!(decisions[0].allowed);
        assert_eq!(decisions[1].non_resource_path.as_deref(), Some("/version"));
        assert!(!decisions[1].allowed);
        assert_eq!(decisions[2].namespace, "x");
        assert_eq!(decisions[2].name, "s");
    }

    #[test]
    fn audit_policy_names_the_users() {
        let policy = audit_policy(&["system:serviceaccount:dce-system:dce-operator".into()]);
        assert!(policy.contains("users: [\"system:serviceaccount:dce-system:dce-operator\"]"));
        assert!(policy.trim_end().ends_with("- level: None"));
    }
}
