//! `config/`: the kustomize base is the chart rendered with its defaults (so RBAC and the
//! Deployment have one source), `kubectl apply -k config/` works, and the samples reconcile.

use std::path::PathBuf;

use dce_e2e::cluster::wait_for;
use dce_e2e::moto::{Moto, workspace_root};
use dce_e2e::operator_process::{OperatorLaunch, OperatorProcess};
use dce_operator::resources::{Lease, LeasePhase};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;
use serde_json::{Value, json};

use crate::common::{WAIT, wait_lease};
use crate::rbac::reset_until_ready;
use crate::{Cluster, render};
use dce_e2e::chart_cluster::deployment_env;

/// The chart values config/ is rendered with: its CRDs come from crds/ instead.
fn config_values() -> Value {
    json!({ "crds": { "install": false } })
}

/// Labels that say Helm manages an object; kubectl manages config/'s.
const HELM_LABELS: [&str; 2] = ["helm.sh/chart", "app.kubernetes.io/managed-by"];

const HEADER: &str = "# Generated from charts/dce-operator by `make manifests`; do not edit.\n";

fn config_file(name: &str) -> PathBuf {
    workspace_root().join("config").join(name)
}

fn to_yaml(objects: &[Value]) -> String {
    let documents: Vec<String> = objects
        .iter()
        .map(|o| serde_yaml::to_string(o).expect("objects serialize"))
        .collect();
    format!("{HEADER}{}", documents.join("---\n"))
}

/// config/'s generated files and their contents, from the chart.
async fn generated() -> Vec<(PathBuf, String)> {
    let mut objects = render(&config_values()).await.expect("the chart renders");
    for object in &mut objects {
        if let Some(labels) = object["metadata"]["labels"].as_object_mut() {
            for label in HELM_LABELS {
                labels.remove(label);
            }
        }
    }
    let (roles, operator): (Vec<Value>, Vec<Value>) = objects.into_iter().partition(|o| {
        o["kind"] == "ClusterRole"
            && matches!(
                o["metadata"]["name"].as_str(),
                Some("dce-admin" | "dce-lease-user" | "dce-namespace-lease-user")
            )
    });
    vec![
        (config_file("operator/operator.yaml"), to_yaml(&operator)),
        (config_file("rbac/dce-api-roles.yaml"), to_yaml(&roles)),
    ]
}

#[tokio::test]
async fn config_is_the_rendered_chart() {
    let update = std::env::var_os("DCE_UPDATE_CONFIG").is_some();
    for (path, contents) in generated().await {
        if update {
            std::fs::write(&path, &contents).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == contents,
            "{} differs from the chart; run `make manifests`",
            path.display()
        );
    }
}

#[tokio::test]
async fn apply_k_config_then_the_samples_reconcile() {
    let cluster = Cluster::start().await.unwrap();
    let applied = cluster
        .kubectl
        .ok(&["apply", "-k", "config/"], None)
        .await
        .expect("kubectl apply -k config/");
    for expected in [
        "customresourcedefinition.apiextensions.k8s.io/accounts.dce.dev",
        "namespace/dce-leases",
        "serviceaccount/dce-operator",
        "deployment.apps/dce-operator",
        "clusterrole.rbac.authorization.k8s.io/dce-admin",
    ] {
        assert!(applied.contains(expected), "{expected} not in:\n{applied}");
    }

    // The operator as config/'s Deployment configures it, authenticated as its ServiceAccount.
    let deployment = cluster
        .kubectl
        .get_json("deployment", Some("dce-operator"), Some(crate::NAMESPACE))
        .await
        .unwrap();
    let moto = Moto::start().await.unwrap();
    let kubeconfig = cluster.operator_kubeconfig().await.unwrap();
    let launch = OperatorLaunch {
        kubeconfig,
        sts_endpoint: moto.endpoint(),
        args: vec![],
        env: deployment_env(std::slice::from_ref(&deployment)),
        log_dir: cluster.dir.path().to_path_buf(),
    };
    let operator = OperatorProcess::start(&launch, 0).await.unwrap();

    let kubectl = &cluster.kubectl;
    kubectl
        .ok(&["apply", "-f", "config/samples/accounts.yaml"], None)
        .await
        .unwrap();
    for id in ["111111111111", "222222222222", "333333333333"] {
        reset_until_ready(&cluster.client, id).await;
    }
    for sample in ["lease.yaml", "pod.yaml"] {
        let path = format!("config/samples/{sample}");
        kubectl.ok(&["apply", "-f", &path], None).await.unwrap();
    }
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "default");
    let lease = wait_lease(&leases, "alice-sandbox", LeasePhase::Active)
        .await
        .expect("the sample lease becomes Active");
    let secret_name = lease
        .status
        .and_then(|s| s.credentials_secret_name)
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "default");
    wait_for(WAIT, || async { secrets.get_opt(&secret_name).await.ok()? })
        .await
        .expect("the lease's credentials Secret exists");
    // The sample Pod takes its environment from that Secret.
    let pod = Api::<Pod>::namespaced(cluster.client.clone(), "default")
        .get("aws-cli")
        .await
        .unwrap();
    let container = &pod.spec.unwrap().containers[0];
    let from = container.env_from.as_ref().unwrap()[0]
        .secret_ref
        .as_ref()
        .unwrap();
    assert_eq!(from.name, secret_name);

    drop(operator);
    drop(moto);
    cluster.stop().await;
}
