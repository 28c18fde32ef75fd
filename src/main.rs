use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use kube::runtime::events::Reporter;
use tokio::sync::watch;

use dce_operator::aws::{Aws, AwsSettings};
use dce_operator::config::Config;
use dce_operator::controllers::Settings;
use dce_operator::facade::{self, ApiKeys, Authorizer, FacadeSettings, FacadeState};
use dce_operator::http::{self, Observability};
use dce_operator::metrics::Metrics;
use dce_operator::{kube_client, leader, operator, telemetry};

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

/// glibc gives each thread that allocates its own arena, and memory freed into one arena is
/// not reused by the others: after a burst of reconciles that kept about 10 MiB more resident.
/// With per-thread caches for small blocks, one arena costs nothing measurable in throughput
/// here. (The container image links musl, whose allocator has no per-thread arenas.)
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

async fn run() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    // kube and the AWS SDK both use ring; a build that also carries another provider (a test
    // build may) would otherwise refuse to choose.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let client = kube_client::build(
        kube::Config::infer().await?,
        usize::from(config.api_request_concurrency),
        kube_client::CALL_DEADLINE,
    )?;
    let aws = Aws::new(AwsSettings {
        sts_endpoint: config.sts_endpoint.clone(),
        cost_explorer_endpoint: config.cost_explorer_endpoint.clone(),
        iam_endpoint: config.iam_endpoint.clone(),
        region: config.aws_region.clone(),
        federation_endpoint: config.federation_endpoint.clone(),
        ..AwsSettings::default()
    })
    .await;
    let metrics = Metrics::default();
    let identity = config.identity.clone().unwrap_or_else(hostname);

    // One signal fans out to every task that must stop.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = {
        let rx = stop_rx.clone();
        move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        }
    };

    // The watches fill the caches on every replica: the REST facade serves from them whether
    // or not this replica leads.
    let (subscriptions, watches) =
        operator::Caches::default().watch(client.clone(), &config.namespace)?;
    let (api_keys, api_key_watch) = ApiKeys::watch(client.clone(), &config.namespace);
    let watches = {
        let stopped = stopped.clone();
        async move {
            tokio::select! {
                _ = futures::future::join(watches, api_key_watch) => {}
                _ = stopped() => {}
            }
        }
    };
    let observability = Observability {
        metrics: metrics.clone(),
        accounts: subscriptions.accounts.clone(),
        leases: subscriptions.leases.clone(),
        usage_stores: subscriptions.usage_stores.clone(),
        ready: Arc::new(AtomicBool::new(false)),
    };
    operator::mark_ready_when_synced(&observability);
    let facade_state = FacadeState {
        client: client.clone(),
        accounts: subscriptions.sorted_accounts.clone(),
        leases: subscriptions.sorted_leases.clone(),
        usage_stores: subscriptions.usage_stores.clone(),
        auth: Authorizer::new(client.clone(), api_keys),
        aws: aws.clone(),
        settings: Arc::new(FacadeSettings {
            lease_namespace: config.api_lease_namespace.clone(),
            operator_namespace: config.namespace.clone(),
            policy: config.lease_policy(),
            principal_role_name: config.principal_role_name.clone(),
            lease_settle_timeout: std::time::Duration::from_secs(config.api_lease_settle_seconds),
            request_deadline: facade::request_deadline(std::time::Duration::from_secs(
                config.api_lease_settle_seconds,
            )),
            base_path: config.api_base_path.clone(),
            sign_in: config.sign_in()?,
        }),
        metrics: metrics.clone(),
    };
    // Until this replica leads, the controllers' subscriptions are drained, not read.
    let parked = subscriptions.park();
    let api = {
        let addr = config.api_addr.0;
        let tls = config.api_tls_files();
        let shutdown = stopped();
        async move {
            match addr {
                Some(addr) => facade::serve(addr, facade_state, tls, shutdown).await,
                None => anyhow::Ok(()),
            }
        }
    };

    let settings = Settings {
        namespace: config.namespace.clone(),
        principal_role_name: config.principal_role_name.clone(),
        allowed_regions: config.allowed_regions.clone(),
        principal_policy_template: config.principal_policy_template()?,
        nuke_extra_filters: config.nuke_extra_filters()?,
        nuke_endpoint: config
            .reset_aws_endpoint
            .as_ref()
            .map(|url| url.as_str().trim_end_matches('/').to_string()),
        nuke_resource_types: config.reset_resource_types.clone(),
        region: config.aws_region.clone(),
        policy: config.lease_policy(),
        reset_mode: config.reset_mode(),
        reset_image: config.reset_image.clone(),
        reset_command: config.reset_command.clone(),
        reset_host_network: config.reset_host_network,
        reset_deadline_seconds: config.reset_deadline_seconds,
        sync_interval: config.sync_interval(),
        concurrency: config.reconcile_concurrency,
        budget_webhook: config.budget_notification_webhook_url.clone(),
    };
    let reporter = Reporter {
        controller: "dce-operator".into(),
        instance: Some(identity.clone()),
    };

    let metrics_addr = config.metrics_addr;
    let election = config.leader_election.then(|| leader::Election {
        namespace: config.namespace.clone(),
        lease_name: config.leader_lease_name.clone(),
        identity: identity.clone(),
        lease_seconds: config.leader_lease_seconds,
    });
    let controllers = leader::run_while_leading(
        client.clone(),
        election.as_ref(),
        &metrics,
        stopped(),
        |shutdown| {
            let client = client.clone();
            let metrics = metrics.clone();
            async move {
                let subscriptions = parked.resume().await?;
                operator::run_controllers(
                    client,
                    aws,
                    settings,
                    metrics,
                    reporter,
                    subscriptions,
                    shutdown,
                )
                .await
            }
        },
    );
    let endpoints = http::serve(metrics_addr, observability, stopped());
    // Either ending in error ends the process; losing leadership does, so that the replica
    // restarts as a candidate instead of staying up without reconciling.
    tokio::try_join!(controllers, endpoints, api, async {
        watches.await;
        anyhow::Ok(())
    })?;
    Ok(())
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| format!("dce-operator-{}", std::process::id()))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return ctrl_c.await.unwrap_or_default(),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or_default();
}
