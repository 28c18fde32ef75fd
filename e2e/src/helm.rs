//! Helm, as a user runs it: the real Helm CLI, built from `helm.sh/helm/v4` by
//! `make kube-tools` (`e2e/kube/helm/`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::control_plane::kube_binary;
use crate::moto::workspace_root;
use crate::target::ScratchDir;

/// The longest one Helm command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// The repository's chart.
pub fn chart_dir() -> PathBuf {
    workspace_root().join("charts/dce-operator")
}

/// What `helm lint` printed, and whether it passed.
#[derive(Debug)]
pub struct Lint {
    pub passed: bool,
    pub output: String,
}

/// Helm bound to one kubeconfig and namespace.
#[derive(Debug, Clone)]
pub struct Helm {
    kubeconfig: PathBuf,
    namespace: String,
}

impl Helm {
    pub fn new(kubeconfig: &Path, namespace: &str) -> Self {
        Self {
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.to_string(),
        }
    }

    /// `helm lint --strict <chart>` (warnings fail it too).
    pub async fn lint(chart: &Path) -> anyhow::Result<Lint> {
        let output = run_helm(&["lint", "--strict", &chart.to_string_lossy()], None).await?;
        Ok(Lint {
            passed: output.success,
            output: format!("{}{}", output.stdout, output.stderr),
        })
    }

    /// `helm template`: the chart's objects for `values`, rendered offline.
    pub async fn template(
        release: &str,
        namespace: &str,
        chart: &Path,
        values: &Value,
    ) -> anyhow::Result<Vec<Value>> {
        let manifest = run_ok(
            &[
                "template",
                release,
                &chart.to_string_lossy(),
                "--namespace",
                namespace,
            ],
            Some(values),
        )
        .await?;
        parse_manifest(&manifest)
    }

    /// `helm install`; returns the release (`-o json`), its rendered `manifest` included.
    pub async fn install(
        &self,
        release: &str,
        chart: &Path,
        values: &Value,
    ) -> anyhow::Result<Value> {
        self.release_action(&["install", release, &chart.to_string_lossy()], values)
            .await
    }

    /// `helm upgrade --reset-values`: the release gets exactly `values` over the chart's
    /// defaults; returns the new revision.
    pub async fn upgrade(
        &self,
        release: &str,
        chart: &Path,
        values: &Value,
    ) -> anyhow::Result<Value> {
        self.release_action(
            &[
                "upgrade",
                release,
                &chart.to_string_lossy(),
                "--reset-values",
            ],
            values,
        )
        .await
    }

    /// `helm rollback <release> <revision>`.
    pub async fn rollback(&self, release: &str, revision: u32) -> anyhow::Result<()> {
        let revision = revision.to_string();
        self.run(&["rollback", release, &revision]).await?;
        Ok(())
    }

    /// `helm uninstall`.
    pub async fn uninstall(&self, release: &str) -> anyhow::Result<()> {
        self.run(&["uninstall", release]).await?;
        Ok(())
    }

    /// `helm get manifest`: the objects of the release's current revision.
    pub async fn manifest(&self, release: &str) -> anyhow::Result<Vec<Value>> {
        parse_manifest(&self.run(&["get", "manifest", release]).await?)
    }

    async fn release_action(&self, args: &[&str], values: &Value) -> anyhow::Result<Value> {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let printed = self.run_with(&args, Some(values)).await?;
        serde_json::from_str(&printed).with_context(|| format!("helm printed no JSON: {printed}"))
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run_with(args, None).await
    }

    async fn run_with(&self, args: &[&str], values: Option<&Value>) -> anyhow::Result<String> {
        let kubeconfig = self.kubeconfig.to_string_lossy();
        let mut args = args.to_vec();
        args.extend(["--kubeconfig", &kubeconfig, "--namespace", &self.namespace]);
        run_ok(&args, values).await
    }
}

/// The objects of a rendered manifest, in order.
pub fn manifest_objects(release: &Value) -> anyhow::Result<Vec<Value>> {
    let manifest = release["manifest"]
        .as_str()
        .context("the release has no manifest")?;
    parse_manifest(manifest)
}

fn parse_manifest(manifest: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = vec![];
    for document in serde_yaml::Deserializer::from_str(manifest) {
        let object = serde_json::to_value(
            <serde_yaml::Value as serde::Deserialize>::deserialize(document)
                .context("parsing the rendered manifest")?,
        )?;
        if !object.is_null() {
            objects.push(object);
        }
    }
    Ok(objects)
}

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs helm and returns its stdout, or an error with what it printed on stderr.
async fn run_ok(args: &[&str], values: Option<&Value>) -> anyhow::Result<String> {
    let output = run_helm(args, values).await?;
    if !output.success {
        bail!("helm {}: {}", args[0], output.stderr.trim());
    }
    Ok(output.stdout)
}

/// Runs helm with its caches and configuration in a scratch directory, and `values` (if any)
/// passed as a values file.
async fn run_helm(args: &[&str], values: Option<&Value>) -> anyhow::Result<Output> {
    let binary = kube_binary("helm")?;
    let home = ScratchDir::new()?;
    let mut command = tokio::process::Command::new(&binary);
    command.args(args);
    if let Some(values) = values {
        let file = home.path().join("values.json");
        std::fs::write(&file, values.to_string())?;
        command.arg("--values").arg(file);
    }
    for (variable, dir) in [
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
    ] {
        command.env(variable, home.path().join(dir));
    }
    let output = command.kill_on_drop(true).output();
    let output = tokio::time::timeout(COMMAND_TIMEOUT, output)
        .await
        .with_context(|| format!("helm {} took over {COMMAND_TIMEOUT:?}", args[0]))?
        .with_context(|| format!("running {}", binary.display()))?;
    Ok(Output {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
