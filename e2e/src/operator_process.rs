//! The operator binary as a child process, configured like a deployment would configure it:
//! a kubeconfig, flags, and AWS credentials in its environment.
//!
//! The binary is `dce-operator` in the Cargo profile directory the running test binary was built
//! into (`<target>/<profile>/deps/<test>` → `<target>/<profile>/dce-operator`), so it follows
//! `CARGO_TARGET_DIR` and the profile. `cargo test --workspace --tests` builds it (the operator
//! crate's own integration tests need it); with `-p dce-e2e` alone, run
//! `cargo build --bin dce-operator` first. `$DCE_OPERATOR_BIN` overrides the path.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::free_port;

/// How long a fresh operator may take to sync its caches and report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The operator binary this test run uses.
pub fn operator_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("DCE_OPERATOR_BIN") {
        return Ok(PathBuf::from(path));
    }
    let test_binary = std::env::current_exe()?;
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .context("test binary is not in <target>/<profile>/deps")?;
    let binary = profile_dir.join("dce-operator");
    if !binary.is_file() {
        bail!(
            "{} not found: build it with `cargo build --bin dce-operator` (or set DCE_OPERATOR_BIN)",
            binary.display()
        );
    }
    Ok(binary)
}

/// How to run the operator.
#[derive(Debug, Clone)]
pub struct OperatorLaunch {
    pub kubeconfig: PathBuf,
    pub sts_endpoint: String,
    /// Extra flags, e.g. `--reset-mode=job`.
    pub args: Vec<String>,
    /// Extra environment, e.g. the settings of a rendered Deployment (flags win over it).
    pub env: Vec<(String, String)>,
    /// Directory for the process's log file.
    pub log_dir: PathBuf,
}

/// A running operator process. Dropping it kills it (SIGKILL) and reaps it.
pub struct OperatorProcess {
    child: Child,
    instance: usize,
    health_addr: SocketAddr,
    api_addr: SocketAddr,
    log_path: PathBuf,
}

impl OperatorProcess {
    /// Starts the operator and waits until `/readyz` answers 200.
    pub async fn start(launch: &OperatorLaunch, instance: usize) -> anyhow::Result<Self> {
        let binary = operator_binary()?;
        let health_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        // A test that must know the address before the start (an OIDC redirect URI) names it.
        let api_addr = match launch
            .args
            .iter()
            .find_map(|a| a.strip_prefix("--api-addr="))
        {
            Some(addr) => addr.parse().context("--api-addr")?,
            None => SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)),
        };
        let log_path = launch.log_dir.join(format!("operator-{instance}.log"));
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(&binary)
            .arg(format!("--metrics-addr={health_addr}"))
            .arg(format!("--api-addr={api_addr}"))
            .arg(format!("--sts-endpoint={}", launch.sts_endpoint))
            .arg(format!("--cost-explorer-endpoint={}", launch.sts_endpoint))
            .arg(format!("--iam-endpoint={}", launch.sts_endpoint))
            .arg(format!("--identity=e2e-operator-{instance}"))
            .args(launch.args.iter().filter(|a| !a.starts_with("--api-addr=")))
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env("KUBECONFIG", &launch.kubeconfig)
            // Any key pair works against moto without authentication; the operator assumes each
            // account's admin role with it.
            .env("AWS_ACCESS_KEY_ID", "AKIDE2EOPERATOR")
            .env("AWS_SECRET_ACCESS_KEY", "e2e-operator-secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let process = Self {
            child,
            instance,
            health_addr,
            api_addr,
            log_path,
        };
        process.wait_until_ready().await
    }

    /// Polls `/readyz`; on failure `self` is dropped, which kills the child.
    async fn wait_until_ready(mut self) -> anyhow::Result<Self> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "operator exited during start-up ({status}):\n{}",
                    self.log_tail()
                );
            }
            if http_status(self.health_addr, "/readyz").await == Some(200) {
                return Ok(self);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "operator not ready within {READY_TIMEOUT:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Base URL of the REST API.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// The REST API's address (host and port; dce-cli's `api.host`, whose scheme is always
    /// https).
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The instance number it was started as.
    pub fn instance(&self) -> usize {
        self.instance
    }

    /// The identity it takes part in leader election with.
    pub fn identity(&self) -> String {
        format!("e2e-operator-{}", self.instance)
    }

    /// Whether the process has exited (a replica that lost the leader lock exits, to be
    /// restarted as a candidate).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends `signal` (e.g. SIGSTOP, SIGCONT) to the process.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) only sends a signal to our own child, which has not been reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// Kills the process with SIGKILL, as a node failure or OOM kill would.
    pub fn kill(mut self) {
        self.stop();
    }

    /// Sends SIGTERM, as the kubelet does when a pod is deleted, and waits up to `grace` for
    /// the process to exit (killing it after that); returns whether it exited in time.
    pub async fn terminate(mut self, grace: Duration) -> bool {
        self.signal(libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop();
        false
    }

    /// The last lines the operator logged.
    pub fn log_tail(&self) -> String {
        crate::process::log_tail(&self.log_path, 40)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("operator log tail:\n{}", self.log_tail());
        }
    }
}

/// Status code of `GET path` on a loopback HTTP server, if it answers.
async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let head = String::from_utf8_lossy(&response);
        head.split(' ').nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}
