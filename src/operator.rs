//! Wires the controllers: one watch per kind feeds the caches and, fanned out, both controllers.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde::de::DeserializeOwned;

use crate::aws::Aws;
use crate::controllers::{self, Arrivals, Context, Settings};
use crate::facade::{Listed, SortedCache, SortedCacheWriter};
use crate::fanout::{Fanout, Subscription};
use crate::http::Observability;
use crate::lifecycle::credentials::{MANAGED_LABEL, MANAGED_VALUE};
use crate::lifecycle::usage_store::{STORE_LABEL, STORE_LABEL_VALUE};
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::resources::{Account, Lease};

/// Objects a slow controller may lag behind a watch before the watch waits for it.
const FANOUT_BUFFER: usize = 1024;
/// How often readiness asks the caches again.
const READY_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The caches the controllers, the endpoints and the REST facade read, filled by
/// [`Caches::watch`]; the facade reads them in list order.
pub struct Caches {
    pub accounts: Store<Account>,
    pub leases: Store<Lease>,
    pub sorted_accounts: SortedCache<Account>,
    pub sorted_leases: SortedCache<Lease>,
    /// The principals' usage stores (ConfigMaps in the operator's namespace).
    pub usage_stores: Store<ConfigMap>,
    arrivals: Arrivals,
    account_writer: Writer<Account>,
    usage_store_writer: Writer<ConfigMap>,
    lease_writer: Writer<Lease>,
    sorted_account_writer: SortedCacheWriter<Account>,
    sorted_lease_writer: SortedCacheWriter<Lease>,
}

impl Default for Caches {
    fn default() -> Self {
        let (accounts, account_writer) = reflector::store::<Account>();
        let (leases, lease_writer) = reflector::store::<Lease>();
        let (sorted_accounts, sorted_account_writer) = SortedCache::new(accounts.clone());
        let (sorted_leases, sorted_lease_writer) = SortedCache::new(leases.clone());
        let (usage_stores, usage_store_writer) = reflector::store::<ConfigMap>();
        Self {
            accounts,
            leases,
            sorted_accounts,
            sorted_leases,
            usage_stores,
            arrivals: Arrivals::default(),
            account_writer,
            usage_store_writer,
            lease_writer,
            sorted_account_writer,
            sorted_lease_writer,
        }
    }
}

/// The controllers' views of the watches, taken before the watches start so no event is
/// missed. While they exist they must be read: unread objects hold the watches back once
/// [`FANOUT_BUFFER`] are queued (see [`Subscriptions::park`]).
pub struct Subscriptions {
    pub accounts: Store<Account>,
    pub leases: Store<Lease>,
    pub sorted_accounts: SortedCache<Account>,
    pub sorted_leases: SortedCache<Lease>,
    pub usage_stores: Store<ConfigMap>,
    arrivals: Arrivals,
    accounts_for_account_controller: Subscription<Account>,
    accounts_for_lease_controller: Subscription<Account>,
    leases_for_lease_controller: Subscription<Lease>,
    /// Lease changes that move the queue (see `controllers::lease::leases_behind`).
    leases_for_queue: Subscription<Lease>,
    leases_for_usage_controller: Subscription<Lease>,
}

impl Caches {
    /// Subscribes the controllers, then returns the watches that fill the caches. The watches
    /// run on every replica (the REST facade reads the caches); the controllers only on the
    /// leader. The usage stores are watched in `namespace`, the operator's.
    pub fn watch(
        self,
        client: Client,
        namespace: &str,
    ) -> anyhow::Result<(Subscriptions, impl Future<Output = ()> + Send + 'static)> {
        let Caches {
            accounts,
            leases,
            sorted_accounts,
            sorted_leases,
            usage_stores,
            arrivals,
            account_writer,
            usage_store_writer,
            lease_writer,
            sorted_account_writer,
            sorted_lease_writer,
        } = self;
        let mut account_fanout = Fanout::new(FANOUT_BUFFER);
        let mut lease_fanout = Fanout::new(FANOUT_BUFFER);
        let subscriptions = Subscriptions {
            accounts,
            leases,
            sorted_accounts,
            sorted_leases,
            usage_stores,
            arrivals: arrivals.clone(),
            accounts_for_account_controller: account_fanout.subscribe(),
            accounts_for_lease_controller: account_fanout.subscribe(),
            leases_for_lease_controller: lease_fanout.subscribe(),
            leases_for_queue: lease_fanout.subscribe(),
            leases_for_usage_controller: lease_fanout.subscribe(),
        };
        let account_watch = fill(
            Api::<Account>::all(client.clone()),
            account_writer,
            sorted_account_writer,
            account_fanout,
            |_| {},
        );
        let usage_store_watch = watcher(
            Api::<ConfigMap>::namespaced(client.clone(), namespace),
            watcher::Config::default().labels(&format!("{STORE_LABEL}={STORE_LABEL_VALUE}")),
        )
        .default_backoff()
        .modify(strip_managed_fields)
        .reflect(usage_store_writer)
        .for_each(|event| {
            if let Err(error) = event {
                tracing::warn!(%error, "usage store watch error");
            }
            std::future::ready(())
        });
        let lease_watch = fill(
            Api::<Lease>::all(client),
            lease_writer,
            sorted_lease_writer,
            lease_fanout,
            move |event| arrivals.observe(event),
        );
        let watches = async move {
            futures::future::join3(account_watch, lease_watch, usage_store_watch).await;
        };
        Ok((subscriptions, watches))
    }
}

impl Subscriptions {
    /// Reads and drops events in the background until [`Parked::resume`] (e.g. while waiting
    /// for leadership), so the watches keep filling the caches. The controllers reconcile
    /// everything when they start, so nothing dropped here is lost.
    pub fn park(mut self) -> Parked {
        let (resume, resumed) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let discard = futures::future::join5(
                (&mut self.accounts_for_account_controller).for_each(|_| async {}),
                (&mut self.accounts_for_lease_controller).for_each(|_| async {}),
                (&mut self.leases_for_lease_controller).for_each(|_| async {}),
                (&mut self.leases_for_queue).for_each(|_| async {}),
                (&mut self.leases_for_usage_controller).for_each(|_| async {}),
            );
            tokio::select! {
                _ = resumed => {}
                _ = discard => {}
            }
            self
        });
        Parked { resume, task }
    }
}

/// [`Subscriptions`] being read and dropped in the background.
pub struct Parked {
    resume: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Subscriptions>,
}

impl Parked {
    /// Stops dropping events and hands the subscriptions back.
    pub async fn resume(self) -> anyhow::Result<Subscriptions> {
        let _ = self.resume.send(());
        Ok(self.task.await?)
    }
}

/// Runs both controllers and the watches that feed them until `shutdown` resolves.
pub async fn run(
    client: Client,
    aws: Aws,
    settings: Settings,
    metrics: Metrics,
    reporter: Reporter,
    caches: Caches,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) -> anyhow::Result<()> {
    let (subscriptions, watches) = caches.watch(client.clone(), &settings.namespace)?;
    // The watches end with the controllers: they stop being polled once shutdown completes.
    tokio::select! {
        result = run_controllers(client, aws, settings, metrics, reporter, subscriptions, shutdown) => result,
        _ = watches => Ok(()),
    }
}

/// Runs the controllers (accounts, leases, usage) on the watches of [`Caches::watch`], and the REST API key issuer,
/// until `shutdown` resolves.
pub async fn run_controllers(
    client: Client,
    aws: Aws,
    settings: Settings,
    metrics: Metrics,
    reporter: Reporter,
    subscriptions: Subscriptions,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) -> anyhow::Result<()> {
    let managed = watcher::Config::default().labels(&format!("{MANAGED_LABEL}={MANAGED_VALUE}"));
    let Subscriptions {
        accounts,
        leases,
        usage_stores,
        arrivals,
        accounts_for_account_controller,
        accounts_for_lease_controller,
        leases_for_lease_controller,
        leases_for_queue,
        leases_for_usage_controller,
        ..
    } = subscriptions;
    // A principal's period spend counts the stored usage of deleted leases: budgets are not
    // decided on a store that has not been read yet.
    // (A waiter may not be woken when it is not the only one: ask again until it answers.)
    while tokio::time::timeout(READY_POLL, usage_stores.wait_until_ready())
        .await
        .is_err()
    {}

    // Every object a controller is handed starts its stall clock (see `crate::progress`);
    // each request the controller finishes stops it: a reconcile that succeeded or failed, or
    // one dropped because its object is gone.
    let progress = metrics.progress.clone();
    let accounts_for_account_controller = accounts_for_account_controller
        .inspect(delivered(&progress, controllers::account::CONTROLLER));
    let mut changed_inputs = controllers::lease::changed_inputs();
    let leases_for_lease_controller = leases_for_lease_controller
        .filter(move |lease| std::future::ready(changed_inputs(lease)))
        .inspect(delivered(&progress, controllers::lease::CONTROLLER));
    let leases_for_usage_controller =
        leases_for_usage_controller.inspect(delivered(&progress, controllers::usage::CONTROLLER));
    let recorder = Recorder::new(client.clone(), reporter);
    let namespace = settings.namespace.clone();
    let config = ControllerConfig::default().concurrency(settings.concurrency);
    let (sync_setting, sync_setting_changes) =
        controllers::account::watch_sync_setting(client.clone(), &namespace);
    let ctx = Arc::new(Context::new(
        client.clone(),
        aws,
        metrics,
        recorder,
        settings,
        accounts.clone(),
        leases.clone(),
        usage_stores,
        arrivals,
        sync_setting,
    ));
    // Events read before the controllers started (see `Subscriptions::park`) are
    // made up for by reconciling every cached object once at start.
    let at_start = || futures::stream::once(std::future::ready(()));

    let account_controller =
        Controller::for_shared_stream(accounts_for_account_controller, accounts.clone())
            .with_config(config.clone())
            .owns(
                Api::<Job>::namespaced(client.clone(), &namespace),
                managed.clone(),
            )
            .reconcile_all_on(at_start())
            .reconcile_all_on(sync_setting_changes)
            .graceful_shutdown_on(shutdown.clone())
            .run(
                controllers::account::reconcile,
                controllers::account::error_policy,
                ctx.clone(),
            )
            .for_each(finished(&progress, controllers::account::CONTROLLER));

    let blocked_store = leases.clone();
    let (account_ctx, queue_ctx) = (ctx.clone(), ctx.clone());
    let lease_controller =
        Controller::for_shared_stream(leases_for_lease_controller, leases.clone())
            .with_config(config.clone())
            .watches_stream(
                controllers::lease::credentials_secret_changes(client.clone(), managed),
                |secret| controllers::lease::lease_of_secret(&secret),
            )
            .watches_shared_stream(accounts_for_lease_controller, move |account| {
                controllers::lease::leases_for_account(&account, &account_ctx)
            })
            .watches_shared_stream(leases_for_queue, move |lease| {
                controllers::lease::leases_behind(&lease, &queue_ctx)
            })
            .watches_stream(secret_deletions(client.clone()), move |secret| {
                controllers::lease::leases_blocked_by_secret(
                    secret.metadata.namespace.as_deref(),
                    &secret.name_any(),
                    &blocked_store,
                )
            })
            .reconcile_all_on(at_start())
            .graceful_shutdown_on(shutdown.clone())
            .run(
                controllers::lease::reconcile,
                controllers::lease::error_policy,
                ctx.clone(),
            )
            .for_each(finished(&progress, controllers::lease::CONTROLLER));

    let usage_controller =
        Controller::for_shared_stream(leases_for_usage_controller, leases.clone())
            .with_config(config)
            .reconcile_all_on(at_start())
            .graceful_shutdown_on(shutdown.clone())
            .run(
                controllers::usage::reconcile,
                controllers::usage::error_policy,
                ctx,
            )
            .for_each(finished(&progress, controllers::usage::CONTROLLER));

    let api_key_issuer = controllers::api_keys::run(client.clone(), &namespace, shutdown.clone());
    futures::future::join4(
        account_controller,
        lease_controller,
        usage_controller,
        api_key_issuer,
    )
    .await;
    Ok(())
}

/// Deletions of Secrets anywhere, metadata only and kept in no cache: a deleted Secret whose
/// name a lease wants frees the name (the operator's own Secrets are watched by label).
fn secret_deletions(
    client: Client,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static
{
    watcher(
        Api::<PartialObjectMeta<Secret>>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .try_filter_map(|event| {
        std::future::ready(Ok(match event {
            watcher::Event::Delete(secret) => Some(secret),
            _ => None,
        }))
    })
}

/// Records in `progress` each request `controller` finishes, whatever its outcome.
fn finished<T>(
    progress: &Progress,
    controller: &'static str,
) -> impl FnMut(T) -> std::future::Ready<()> + use<T> {
    let progress = progress.clone();
    move |_| {
        progress.reconciled(controller);
        std::future::ready(())
    }
}

/// Records in `progress` each object handed to `controller`.
fn delivered<K>(progress: &Progress, controller: &'static str) -> impl FnMut(&Arc<K>) + use<K> {
    let progress = progress.clone();
    move |_| progress.delivered(controller, std::time::Instant::now())
}

/// Watches every object of `api` into the store, then its sorted view, `observe` and the
/// controllers subscribed to `fanout`.
fn fill<K: Listed + Debug + DeserializeOwned>(
    api: Api<K>,
    writer: Writer<K>,
    sorted: SortedCacheWriter<K>,
    fanout: Fanout<K>,
    observe: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(strip_managed_fields)
        .reflect(writer);
    fanout.run(events, move |event| match event {
        Ok(event) => {
            sorted.apply(event);
            observe(event);
        }
        Err(error) => tracing::warn!(kind = %K::kind(&()), %error, "watch error"),
    })
}

/// The caches keep no managedFields: nothing reads them (status is written by server-side
/// apply, which needs none on the client), and they are most of a cached object's size.
fn strip_managed_fields<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Marks the endpoints ready once the caches hold their first full list.
pub fn mark_ready_when_synced(observability: &Observability) {
    let accounts = observability.accounts.clone();
    let leases = observability.leases.clone();
    let usage_stores = observability.usage_stores.clone();
    let ready = observability.ready.clone();
    tokio::spawn(async move {
        // The controllers also wait on these stores, and a waiter may not be woken when it is
        // not the only one; asking again returns at once once the store is ready.
        loop {
            let all = async {
                accounts.wait_until_ready().await.is_ok()
                    && leases.wait_until_ready().await.is_ok()
                    && usage_stores.wait_until_ready().await.is_ok()
            };
            if let Ok(synced) = tokio::time::timeout(READY_POLL, all).await {
                ready.store(synced, Ordering::Relaxed);
                return;
            }
        }
    });
}
