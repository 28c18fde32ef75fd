//! `kubectl` as a user runs it: the e2e suite drives a cluster only through it (and the
//! operator's public surfaces), so the same tests run against any cluster a kubeconfig names.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt};

/// The longest a single kubectl invocation may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// What one kubectl run printed.
#[derive(Debug)]
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// kubectl bound to one kubeconfig. The binary is `$KUBECTL`, else the project's build
/// (`make kube-tools`, the control plane's release), else `kubectl` on `PATH`.
#[derive(Debug, Clone)]
pub struct Kubectl {
    kubeconfig: PathBuf,
    /// kubectl keeps its discovery cache under `$HOME/.kube`: one per cluster, beside the
    /// kubeconfig, so runs never share or pollute a user's cache.
    home: PathBuf,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Self {
        let home = kubeconfig
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        Self {
            kubeconfig: kubeconfig.to_path_buf(),
            home,
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs `kubectl args…` with `stdin` as its input; a non-zero exit is returned, not an error.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Outcome> {
        let binary = kubectl_binary();
        let mut child = tokio::process::Command::new(&binary)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.to_string_lossy()))?;
        if let (Some(mut input), Some(text)) = (child.stdin.take(), stdin) {
            input.write_all(text.as_bytes()).await?;
        }
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| {
                format!("kubectl {} took over {COMMAND_TIMEOUT:?}", args.join(" "))
            })??;
        Ok(Outcome {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs kubectl and fails unless it succeeds; returns its standard output.
    pub async fn ok(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let outcome = self.run(args, stdin).await?;
        if !outcome.success {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                outcome.stderr.trim()
            );
        }
        Ok(outcome.stdout)
    }

    /// `kubectl port-forward -n <namespace> <target> :<port>` (e.g. `service/<name>`: kubectl
    /// picks a Pod the Service selects and its target port, and the kubelet connects inside the
    /// Pod), until the returned forward is dropped.
    pub async fn port_forward(
        &self,
        namespace: &str,
        target: &str,
        port: &str,
    ) -> anyhow::Result<PortForward> {
        let binary = kubectl_binary();
        let mut child = tokio::process::Command::new(&binary)
            .args([
                "port-forward",
                "-n",
                namespace,
                "--address=127.0.0.1",
                target,
            ])
            .arg(format!(":{port}"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.to_string_lossy()))?;
        let stdout = child.stdout.take().context("kubectl's stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        // "Forwarding from 127.0.0.1:<local> -> <remote>"
        let first = tokio::time::timeout(COMMAND_TIMEOUT, lines.next_line())
            .await
            .context("kubectl port-forward did not start")??;
        let addr = first
            .as_deref()
            .and_then(|line| line.strip_prefix("Forwarding from "))
            .and_then(|rest| rest.split(" -> ").next())
            .and_then(|local| local.parse().ok());
        let Some(addr) = addr else {
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::io::AsyncReadExt::read_to_string(&mut err, &mut stderr),
                )
                .await;
            }
            bail!("kubectl port-forward {target}: {first:?} {}", stderr.trim());
        };
        // Keep reading its output, or kubectl blocks once the pipe fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(PortForward {
            addr,
            _child: child,
        })
    }

    /// `kubectl apply -f <file>`.
    pub async fn apply_file(&self, path: &Path) -> anyhow::Result<String> {
        let path = path.to_string_lossy();
        self.ok(&["apply", "-f", &path], None).await
    }

    /// `kubectl apply -f -` with `manifests` (YAML or JSON) on standard input.
    pub async fn apply(&self, manifests: &str) -> anyhow::Result<Outcome> {
        self.run(&["apply", "-f", "-"], Some(manifests)).await
    }

    /// `kubectl get <resource> [name] -o json` in `namespace` (None: cluster-scoped or all).
    pub async fn get_json(
        &self,
        resource: &str,
        name: Option<&str>,
        namespace: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut args = vec!["get", resource];
        args.extend(name);
        if let Some(namespace) = namespace {
            args.extend(["-n", namespace]);
        }
        args.extend(["-o", "json"]);
        let stdout = self.ok(&args, None).await?;
        serde_json::from_str(&stdout).context("kubectl printed no JSON")
    }

    /// The `items` of `kubectl get <resource> -o json`.
    pub async fn list(
        &self,
        resource: &str,
        namespace: Option<&str>,
    ) -> anyhow::Result<Vec<Value>> {
        let list = self.get_json(resource, None, namespace).await?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// Whether `kubectl get <resource> <name>` finds the object.
    pub async fn exists(
        &self,
        resource: &str,
        name: &str,
        namespace: Option<&str>,
    ) -> anyhow::Result<bool> {
        let mut args = vec!["get", resource, name, "--ignore-not-found", "-o", "name"];
        if let Some(namespace) = namespace {
            args.extend(["-n", namespace]);
        }
        Ok(!self.ok(&args, None).await?.trim().is_empty())
    }

    /// `kubectl wait --for=<condition> <target>` (e.g. `condition=Ready`,
    /// `jsonpath={.status.accountStatus}=Ready`, `delete`).
    pub async fn wait(
        &self,
        condition: &str,
        target: &str,
        namespace: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let condition = format!("--for={condition}");
        let timeout = format!("--timeout={}s", timeout.as_secs());
        let mut args = vec!["wait", condition.as_str(), target, timeout.as_str()];
        if let Some(namespace) = namespace {
            args.extend(["-n", namespace]);
        }
        self.ok(&args, None).await.map(|_| ())
    }

    /// Creates namespace `name` with `kubectl apply` (JSON on the wire everywhere).
    pub async fn create_namespace(&self, name: &str) -> anyhow::Result<()> {
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": name },
        });
        self.ok(&["apply", "-f", "-"], Some(&manifest.to_string()))
            .await
            .map(|_| ())
    }
}

/// `Value` at a JSON pointer, as a string ("" when absent).
pub fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A running `kubectl port-forward`, stopped when dropped.
pub struct PortForward {
    /// The local end, on loopback.
    pub addr: std::net::SocketAddr,
    _child: tokio::process::Child,
}

/// The kubectl the tests run (see [`Kubectl`]).
pub fn kubectl_binary() -> std::ffi::OsString {
    if let Some(binary) = std::env::var_os("KUBECTL") {
        return binary;
    }
    let built = crate::control_plane::kube_bin_dir().join("kubectl");
    if built.is_file() {
        return built.into_os_string();
    }
    "kubectl".into()
}
