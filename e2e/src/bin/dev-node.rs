//! `make dev-node`: the operator as users run it, for a person to try — a control plane with two
//! real nodes, moto as AWS, the chart installed with Helm from the image `make images` built,
//! accounts reset by aws-nuke — until Ctrl-C, which removes everything. Needs root.
//!
//! Usage: dev-node <operator image tag> <state dir> (the admin kubeconfig is written there).

use anyhow::Context as _;
use dce_e2e::aws_account::AwsAccount;
use dce_e2e::helm::chart_dir;
use dce_e2e::node_cluster::{NodeCluster, REGION, RELEASE};
use serde_json::json;

/// The sample pool: accounts whose admin role exists on the local AWS endpoint.
const SAMPLE_ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
const ADMIN_ROLE: &str = "OrganizationAccountAccessRole";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(tag), Some(state)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: dev-node <operator image tag> <state dir>");
    };
    eprintln!("dev-node: starting a control plane, two nodes and moto");
    let cluster = NodeCluster::start(&tag).await?;
    let values = cluster.values(&cluster.moto.endpoint());
    cluster.helm.install(RELEASE, &chart_dir(), &values).await?;
    cluster.wait_rolled_out().await?;
    for id in SAMPLE_ACCOUNTS {
        let role = format!("arn:aws:iam::{id}:role/{ADMIN_ROLE}");
        AwsAccount::assuming(&cluster.moto.endpoint(), REGION, &role)
            .create_role(ADMIN_ROLE)
            .await?;
        let account = json!({
            "apiVersion": "dce.dev/v1alpha1",
            "kind": "Account",
            "metadata": { "name": id },
            "spec": { "id": id, "adminRoleArn": role },
        });
        cluster
            .kubectl
            .ok(
                &["apply", "--server-side", "-f", "-"],
                Some(&account.to_string()),
            )
            .await?;
    }
    let kubeconfig = std::path::Path::new(&state).join("kubeconfig");
    std::fs::copy(&cluster.kubeconfig, &kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    println!(
        "
dce-operator runs on two nodes (Pods on 127.0.0.1 and 127.0.0.2); accounts are reset by
aws-nuke Jobs against moto at {moto}.

  export KUBECONFIG={kubeconfig}
  kubectl get pods -n dce-system -o wide            # the operator, and reset Jobs' Pods
  kubectl get dce                                   # the sample accounts, Ready after a reset
  kubectl apply -f config/samples/lease.yaml        # a lease; its Secret in namespace default
  kubectl port-forward -n dce-system service/{RELEASE} 8000:api   # the REST API on :8000

Ctrl-C stops and removes everything.",
        moto = cluster.moto.endpoint(),
        kubeconfig = kubeconfig.display(),
    );
    tokio::signal::ctrl_c().await?;
    eprintln!("dev-node: stopping");
    cluster.stop().await;
    Ok(())
}
