//! The operator as its users run it, on a real node (kubelet, containerd and runc, from `make
//! kube-tools`): the chart installed with Helm from the image `make images` builds, its Pod
//! Ready through its probes, a Lease's Secret mounted by a Pod, the REST facade behind its
//! Service, accounts reset by aws-nuke itself against the local AWS endpoint, two replicas on
//! two nodes (leader election, a deleted leader, an upgrade under load), and an uninstall that
//! leaves nothing behind.
//!
//! One scenario on one cluster: nodes hold much of this machine, so the steps share them, in
//! the order a user meets them.

mod fixture;
mod install;
mod replicas;
mod reset;

use fixture::OnNode;

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_runs_on_a_node() {
    let Some(mut cluster) = fixture::start().await.unwrap() else {
        return;
    };
    if let Err(error) = scenario(&mut cluster).await {
        cluster.report().await;
        panic!("{error:#}");
    }
    cluster.stop().await;
}

async fn scenario(cluster: &mut OnNode) -> anyhow::Result<()> {
    install::installs_ready_through_its_probes(cluster).await?;
    let account = install::an_account_is_onboarded_and_reset(cluster).await?;
    install::a_leases_secret_is_mounted_by_a_pod(cluster, &account).await?;
    install::the_facade_answers_through_its_service(cluster, &account).await?;
    reset::a_released_account_is_emptied_by_aws_nuke(cluster, &account).await?;
    reset::a_failing_reset_leaves_the_account_not_ready_until_fixed(cluster, &account).await?;
    replicas::two_replicas_elect_one_leader_and_replace_a_deleted_one(cluster).await?;
    replicas::an_upgrade_rolls_out_without_a_failed_request(cluster).await?;
    install::uninstall_leaves_nothing_behind(cluster).await
}
