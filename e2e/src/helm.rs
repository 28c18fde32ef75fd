//! Helm, as a user runs it against a cluster: its Go library through PyPI's `helm-sdkpy` in the
//! project's Python venv (`e2e/scripts/helm.py`), since no helm binary is packaged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::moto::{venv_dir, workspace_root};

/// The longest one Helm action may take.
const ACTION_TIMEOUT: Duration = Duration::from_secs(120);

/// The repository's chart.
pub fn chart_dir() -> PathBuf {
    workspace_root().join("charts/dce-operator")
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

    /// `helm lint <chart>`: its messages (`Severity` 1 info, 2 warning, 3 error) and errors.
    pub async fn lint(chart: &Path) -> anyhow::Result<Value> {
        let chart = chart.to_string_lossy();
        run(&["lint", chart.as_ref()]).await
    }

    /// `helm install`; returns the release, its rendered `manifest` included.
    pub async fn install(
        &self,
        release: &str,
        chart: &Path,
        values: &Value,
    ) -> anyhow::Result<Value> {
        self.release_action("install", release, chart, values).await
    }

    /// `helm upgrade`; returns the new revision of the release.
    pub async fn upgrade(
        &self,
        release: &str,
        chart: &Path,
        values: &Value,
    ) -> anyhow::Result<Value> {
        self.release_action("upgrade", release, chart, values).await
    }

    pub async fn uninstall(&self, release: &str) -> anyhow::Result<Value> {
        run(&[
            "uninstall",
            release,
            "--kubeconfig",
            &self.kubeconfig.to_string_lossy(),
            "--namespace",
            &self.namespace,
        ])
        .await
    }

    async fn release_action(
        &self,
        action: &str,
        release: &str,
        chart: &Path,
        values: &Value,
    ) -> anyhow::Result<Value> {
        run(&[
            action,
            release,
            &chart.to_string_lossy(),
            "--kubeconfig",
            &self.kubeconfig.to_string_lossy(),
            "--namespace",
            &self.namespace,
            "--values",
            &values.to_string(),
        ])
        .await
    }
}

/// The objects of a release's rendered manifest, in order.
pub fn manifest_objects(release: &Value) -> anyhow::Result<Vec<Value>> {
    let manifest = release["manifest"]
        .as_str()
        .context("the release has no manifest")?;
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

async fn run(args: &[&str]) -> anyhow::Result<Value> {
    let python = venv_dir().join("bin/python");
    if !python.is_file() {
        bail!(
            "{} not found: run e2e/scripts/venv.sh (make venv) to create the venv with helm-sdkpy",
            python.display()
        );
    }
    let script = workspace_root().join("e2e/scripts/helm.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(ACTION_TIMEOUT, output)
        .await
        .with_context(|| format!("helm {} took over {ACTION_TIMEOUT:?}", args[0]))?
        .context("running e2e/scripts/helm.py")?;
    if !output.status.success() {
        // Helm logs an INFO line for the chart's symlinked CRD directory; only errors matter.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| !line.contains(" INFO "))
            .collect();
        bail!("{}", errors.join("\n"));
    }
    serde_json::from_slice(&output.stdout).context("helm.py printed no JSON")
}
