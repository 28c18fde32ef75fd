//! Leader election on a coordination.k8s.io Lease, so two replicas are safe: only the holder
//! reconciles.

use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease as LeaderLock;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
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

/// How long a stopping leader tries to release the lock before leaving it to expire.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// The lock, held by this replica.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    /// Renews the lock until aborted.
    renewal: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
    client: Client,
    election: Election,
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

    /// Stops renewing and clears the lock's holder, so a waiting replica takes over at once
    /// instead of after the lock's duration. A lock this replica no longer holds is left alone.
    pub async fn release(self) {
        self.renewal.abort();
        let release = async {
            lock_manager(self.client.clone(), &self.election)
                .await?
                .release()
                .await
        };
        match tokio::time::timeout(RELEASE_TIMEOUT, release).await {
            Ok(Ok(())) => tracing::info!(identity = self.election.identity, "released leadership"),
            Ok(Err(error)) => tracing::warn!(
                %error,
                "could not release the leader lock; it expires on its own"
            ),
            Err(_) => tracing::warn!(
                timeout = ?RELEASE_TIMEOUT,
                "could not release the leader lock in time; it expires on its own"
            ),
        }
    }
}

async fn lock_manager(
    client: Client,
    election: &Election,
) -> kube_lease_manager::Result<LeaseManager> {
    LeaseManagerBuilder::new(client, &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(election.lease_seconds)
        .with_grace(election.lease_seconds.div_ceil(3).max(1))
        .with_field_manager(format!("{}-leader", crate::controllers::FIELD_MANAGER))
        .build()
        .await
}

/// What the watch of the lock reports: `false` once the watch is established, `true` whenever
/// the lock is seen free (released by its holder, or deleted).
fn lock_freed(client: Client, election: &Election) -> impl Stream<Item = bool> + Send + 'static {
    let locks: Api<LeaderLock> = Api::namespaced(client, &election.namespace);
    let by_name =
        watcher::Config::default().fields(&format!("metadata.name={}", election.lease_name));
    watcher(locks, by_name)
        .default_backoff()
        .filter_map(|event| {
            futures::future::ready(match event {
                Ok(Event::InitDone) => Some(false),
                Ok(Event::Apply(lock) | Event::InitApply(lock)) => {
                    let holder = lock.spec.and_then(|spec| spec.holder_identity);
                    holder
                        .is_none_or(|holder| holder.is_empty())
                        .then_some(true)
                }
                Ok(Event::Delete(_)) => Some(true),
                _ => None,
            })
        })
}

/// Blocks until this replica holds the lock.
///
/// The lock manager alone re-checks a held lock only when it would expire; watching the lock
/// as well lets a replica take over the moment a stopping leader releases it.
pub async fn acquire(client: Client, election: &Election) -> anyhow::Result<Leadership> {
    tracing::info!(
        lease = election.lease_name,
        namespace = election.namespace,
        identity = election.identity,
        "waiting for leadership"
    );
    let mut freed = std::pin::pin!(lock_freed(client.clone(), election));
    // Established before the first look at the lock, so no release after it can be missed.
    while let Some(true) = freed.next().await {}
    let manager = loop {
        // A fresh manager reads the lock anew: a released lock is taken at once.
        let manager = lock_manager(client.clone(), election).await?;
        tokio::select! {
            leading = manager.changed() => if leading? { break manager },
            Some(true) = freed.next() => {}
        }
    };
    let (leading, renewal) = manager.watch().await;
    tracing::info!(identity = election.identity, "became leader");
    Ok(Leadership {
        leading,
        renewal,
        client,
        election: election.clone(),
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
    leadership.release().await;
    result
}
