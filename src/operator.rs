//! Wires the controllers: one shared watch per kind feeds the caches and both controllers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::aws::Aws;
use crate::controllers::{self, Context, Settings};
use crate::http::Observability;
use crate::lifecycle::credentials::{MANAGED_LABEL, MANAGED_VALUE};
use crate::metrics::Metrics;
use crate::resources::{Account, Lease};

/// Buffer of the shared watch streams (events a slow subscriber may lag behind).
const SHARED_STREAM_BUFFER: usize = 1024;
/// How often readiness asks the caches again.
const READY_POLL: std::time::Duration = std::time::Duration::from_millis(250);
/// Reconciles run at once per controller.
const CONCURRENCY: u16 = 32;

/// The caches the controllers (and the endpoints) read, filled by [`run`].
pub struct Caches {
    pub accounts: Store<Account>,
    pub leases: Store<Lease>,
    account_writer: Writer<Account>,
    lease_writer: Writer<Lease>,
}

impl Default for Caches {
    fn default() -> Self {
        let (accounts, account_writer) = reflector::store_shared::<Account>(SHARED_STREAM_BUFFER);
        let (leases, lease_writer) = reflector::store_shared::<Lease>(SHARED_STREAM_BUFFER);
        Self {
            accounts,
            leases,
            account_writer,
            lease_writer,
        }
    }
}

/// Runs both controllers until `shutdown` resolves.
pub async fn run(
    client: Client,
    aws: Aws,
    settings: Settings,
    metrics: Metrics,
    reporter: Reporter,
    caches: Caches,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) -> anyhow::Result<()> {
    let managed = watcher::Config::default().labels(&format!("{MANAGED_LABEL}={MANAGED_VALUE}"));
    let Caches {
        accounts,
        leases,
        account_writer,
        lease_writer,
    } = caches;
    let accounts_for_account_controller = account_writer
        .subscribe()
        .ok_or_else(|| anyhow::anyhow!("shared store"))?;
    let accounts_for_lease_controller = account_writer
        .subscribe()
        .ok_or_else(|| anyhow::anyhow!("shared store"))?;
    let account_watch = watcher(
        Api::<Account>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect_shared(account_writer)
    .for_each(|event| async move {
        if let Err(error) = event {
            tracing::warn!(%error, "account watch error");
        }
    });

    let leases_for_lease_controller = lease_writer
        .subscribe()
        .ok_or_else(|| anyhow::anyhow!("shared store"))?;
    let lease_watch = watcher(
        Api::<Lease>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect_shared(lease_writer)
    .for_each(|event| async move {
        if let Err(error) = event {
            tracing::warn!(%error, "lease watch error");
        }
    });

    let recorder = Recorder::new(client.clone(), reporter);
    let namespace = settings.namespace.clone();
    let ctx = Arc::new(Context::new(
        client.clone(),
        aws,
        metrics,
        recorder,
        settings,
        accounts.clone(),
        leases.clone(),
    ));
    let config = ControllerConfig::default().concurrency(CONCURRENCY);

    let account_controller =
        Controller::for_shared_stream(accounts_for_account_controller, accounts.clone())
            .with_config(config.clone())
            .owns(
                Api::<Job>::namespaced(client.clone(), &namespace),
                managed.clone(),
            )
            .graceful_shutdown_on(shutdown.clone())
            .run(
                controllers::account::reconcile,
                controllers::account::error_policy,
                ctx.clone(),
            )
            .for_each(|_| async {});

    let lease_store = leases.clone();
    let lease_controller =
        Controller::for_shared_stream(leases_for_lease_controller, leases.clone())
            .with_config(config)
            .owns(Api::<Secret>::all(client.clone()), managed)
            .watches_shared_stream(accounts_for_lease_controller, move |account| {
                controllers::lease::leases_for_account(&account, &lease_store)
            })
            .graceful_shutdown_on(shutdown.clone())
            .run(
                controllers::lease::reconcile,
                controllers::lease::error_policy,
                ctx,
            )
            .for_each(|_| async {});

    // The watches end with the controllers: they stop being polled once shutdown completes.
    let watches = futures::future::join(account_watch, lease_watch);
    tokio::select! {
        _ = futures::future::join(account_controller, lease_controller) => {}
        _ = watches => {}
    }
    Ok(())
}

/// Marks the endpoints ready once both caches hold their first full list.
pub fn mark_ready_when_synced(observability: &Observability) {
    let accounts = observability.accounts.clone();
    let leases = observability.leases.clone();
    let ready = observability.ready.clone();
    tokio::spawn(async move {
        // The controllers also wait on these stores, and a waiter may not be woken when it is
        // not the only one; asking again returns at once once the store is ready.
        loop {
            let both = async {
                accounts.wait_until_ready().await.is_ok() && leases.wait_until_ready().await.is_ok()
            };
            if let Ok(synced) = tokio::time::timeout(READY_POLL, both).await {
                ready.store(synced, Ordering::Relaxed);
                return;
            }
        }
    });
}
