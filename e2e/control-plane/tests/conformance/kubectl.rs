//! kubectl against the server: apply (client- and server-side), get, wait, delete.

use std::path::Path;
use std::process::Output;

use serde_json::json;

use crate::common::*;

async fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new("/usr/bin/kubectl");
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.env("HOME", kubeconfig.parent().unwrap());
    let mut child = cmd.spawn().expect("kubectl runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    child.wait_with_output().await.unwrap()
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kubectl failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lcp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn kubectl_apply_get_wait_delete() {
    let cp = start().await;
    let dir = temp_dir("kubectl");
    let kc = dir.join("kubeconfig");
    cp.write_kubeconfig(&kc, cp.admin_token()).unwrap();
    let crd = serde_json::to_string(&account_crd()).unwrap();
    assert!(ok(&kubectl(&kc, &["apply", "-f", "-"], Some(&crd)).await).contains("created"));

    let manifest = "apiVersion: dce.dev/v1\nkind: Account\nmetadata:\n  name: a1\nspec:\n  id: \"123456789012\"\n";
    assert!(
        ok(&kubectl(&kc, &["apply", "-f", "-"], Some(manifest)).await)
            .contains("account.dce.dev/a1 created")
    );
    let changed = manifest.replace("metadata:\n", "metadata:\n  labels:\n    tier: gold\n");
    assert!(ok(&kubectl(&kc, &["apply", "-f", "-"], Some(&changed)).await).contains("configured"));
    let yaml = ok(&kubectl(&kc, &["get", "account", "a1", "-o", "yaml"], None).await);
    assert!(
        yaml.contains("kubectl.kubernetes.io/last-applied-configuration")
            && yaml.contains("tier: gold"),
        "{yaml}"
    );

    let table = ok(&kubectl(&kc, &["get", "accounts"], None).await);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("STATUS") && header.contains("AGE"),
        "{table}"
    );
    assert!(table.contains("a1"));

    let ssa = "apiVersion: dce.dev/v1\nkind: Account\nmetadata:\n  name: a2\nspec:\n  id: \"210987654321\"\n";
    assert!(
        ok(&kubectl(&kc, &["apply", "--server-side", "-f", "-"], Some(ssa)).await)
            .contains("serverside-applied")
    );

    let client = admin(&cp).await;
    let status = json!({ "status": { "conditions": [{ "type": "Ready", "status": "True", "reason": "Ok", "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z" }] } });
    let (code, body) = raw(
        &client,
        "PATCH",
        "/apis/dce.dev/v1/accounts/a1/status",
        "application/merge-patch+json",
        status,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    ok(&kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=Ready",
            "account/a1",
            "--timeout=10s",
        ],
        None,
    )
    .await);

    ok(&kubectl(&kc, &["explain", "accounts.spec"], None).await);
    assert!(ok(&kubectl(&kc, &["delete", "account", "a1"], None).await).contains("deleted"));
    let missing = kubectl(&kc, &["get", "account", "a1"], None).await;
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("NotFound"),
        "{missing:?}"
    );
    ok(&kubectl(&kc, &["get", "ns", "default", "-o", "yaml"], None).await);
    ok(&kubectl(&kc, &["describe", "account", "a2"], None).await);
    let _ = std::fs::remove_dir_all(&dir);
    cp.shutdown().await;
}
