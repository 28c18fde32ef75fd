//! Leader election on a coordination.k8s.io Lease, so two replicas are safe: only the holder
//! reconciles.

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// How a replica takes part in leader election.
#[derive(Debug, Clone)]
pub struct Election {
    /// Namespace of the coordination.k8s.io Lease used as the lock.
    pub namespace: String,
    /// Name of that Lease.
    pub lease_name: String,
    /// This replica's identity, recorded as the lock's holder.
    pub identity: String,
    /// Seconds the holder keeps the lock without renewing it.
    pub lease_seconds: u64,
}

/// Resolves when the controllers must stop.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// The lock, held by this replica. Dropping it releases the lock.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    /// Renews the lock; it releases the lock and ends once `leading` is dropped.
    _renewal: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
}

impl Leadership {
    /// Resolves once the lock is lost, or can no longer be renewed.
    fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut leading = self.leading.clone();
        async move {
            // An error means the renewal task ended: the lock is no longer renewed either.
            let _ = leading.wait_for(|leading| !*leading).await;
        }
    }
}

/// Blocks until this replica holds the lock.
pub async fn acquire(client: Client, election: &Election) -> anyhow::Result<Leadership> {
    let manager = LeaseManagerBuilder::new(client, &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(election.lease_seconds)
        .with_grace(election.lease_seconds.div_ceil(3).max(1))
        .with_field_manager(format!("{}-leader", crate::controllers::FIELD_MANAGER))
        .build()
        .await?;
    let (mut leading, renewal) = manager.watch().await;
    tracing::info!(
        lease = election.lease_name,
        namespace = election.namespace,
        identity = election.identity,
        "waiting for leadership"
    );
    while !*leading.borrow_and_update() {
        leading.changed().await?;
    }
    tracing::info!(identity = election.identity, "became leader");
    Ok(Leadership {
        leading,
        _renewal: renewal,
    })
}

/// Runs `controllers` while this replica leads — at once when `election` is `None` — until
/// `stopped` resolves; `controllers` gets the future that tells it to stop.
///
/// Losing the lock stops the controllers and returns an error: a replica that no longer leads
/// must not reconcile, and exiting lets it restart as a candidate.
pub async fn run_while_leading<Run, Fut>(
    client: Client,
    election: Option<&Election>,
    metrics: &Metrics,
    stopped: impl Future<Output = ()> + Send + 'static,
    controllers: Run,
) -> anyhow::Result<()>
where
    Run: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let stopped = stopped.boxed().shared();
    let Some(election) = election else {
        metrics.leader.set(1);
        let result = controllers(stopped).await;
        metrics.leader.set(0);
        return result;
    };
    let leadership = tokio::select! {
        acquired = acquire(client, election) => acquired?,
        () = stopped.clone() => return Ok(()),
    };
    metrics.leader.set(1);
    let lost = leadership.lost().boxed().shared();
    let shutdown = futures::future::select(stopped.clone(), lost.clone())
        .map(|_| ())
        .boxed()
        .shared();
    let result = controllers(shutdown).await;
    metrics.leader.set(0);
    if lost.now_or_never().is_some() && stopped.now_or_never().is_none() {
        tracing::error!(identity = election.identity, "lost leadership; stopping");
        anyhow::bail!(
            "lost leadership of {}/{}",
            election.namespace,
            election.lease_name
        );
    }
    // Dropping `leadership` releases the lock, so a successor need not wait for it to expire.
    drop(leadership);
    result
}
