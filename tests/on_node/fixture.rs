//! The cluster of the node tests ([`dce_e2e::node_cluster`]), or a reason to skip.

use dce_e2e::node_cluster::node_cluster_support;
pub use dce_e2e::node_cluster::{
    LEADER_LOCK, NAMESPACE, NUKE_IMAGE, NodeCluster as OnNode, PAUSE_IMAGE, REGION, RELEASE,
    RELEASE_SELECTOR, eventually,
};

/// The cluster, or `None` (after saying why) where no node can run: a skip on a developer's
/// machine, a failure in CI (where `make test` builds and installs everything the nodes need).
pub async fn start() -> anyhow::Result<Option<OnNode>> {
    if let Err(why) = node_cluster_support() {
        if std::env::var_os("CI").is_some() {
            anyhow::bail!("the node test cannot run in CI: {why}");
        }
        eprintln!("skipped: {why}");
        return Ok(None);
    }
    OnNode::start(env!("CARGO_PKG_VERSION")).await.map(Some)
}
