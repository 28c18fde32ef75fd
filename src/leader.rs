//! Leader election on a coordination.k8s.io Lease, so two replicas are safe: only the holder
//! reconciles.

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

/// Blocks until this replica leads, then returns a receiver that turns `false` when leadership
/// is lost (the caller must then stop reconciling) and the task that keeps renewing the lock.
pub async fn acquire(
    client: Client,
    namespace: &str,
    lease_name: &str,
    identity: &str,
    duration_seconds: u64,
) -> anyhow::Result<(
    watch::Receiver<bool>,
    tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
)> {
    let manager = LeaseManagerBuilder::new(client, lease_name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(duration_seconds)
        .with_grace(duration_seconds.div_ceil(3).max(1))
        .with_field_manager(format!("{}-leader", crate::controllers::FIELD_MANAGER))
        .build()
        .await?;
    let (mut leading, task) = manager.watch().await;
    tracing::info!(
        lease = lease_name,
        namespace,
        identity,
        "waiting for leadership"
    );
    while !*leading.borrow_and_update() {
        leading.changed().await?;
    }
    tracing::info!(identity, "became leader");
    Ok((leading, task))
}
