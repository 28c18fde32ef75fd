use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use kube::Client;
use kube::runtime::events::Reporter;
use tokio::sync::watch;

use dce_operator::aws::{Aws, AwsSettings};
use dce_operator::config::Config;
use dce_operator::controllers::Settings;
use dce_operator::http::{self, Observability};
use dce_operator::metrics::Metrics;
use dce_operator::{leader, operator, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    // kube uses ring and the AWS SDK aws-lc-rs: both are compiled in, so pick one explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let client = Client::try_default().await?;
    let aws = Aws::new(AwsSettings {
        sts_endpoint: config.sts_endpoint.clone(),
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

    let caches = operator::Caches::default();
    let observability = Observability {
        metrics: metrics.clone(),
        accounts: caches.accounts.clone(),
        leases: caches.leases.clone(),
        ready: Arc::new(AtomicBool::new(false)),
    };
    operator::mark_ready_when_synced(&observability);

    let settings = Settings {
        namespace: config.namespace.clone(),
        principal_role_name: config.principal_role_name.clone(),
        region: config.aws_region.clone(),
        policy: config.lease_policy(),
        reset_mode: config.reset_mode(),
        reset_image: config.reset_image.clone(),
        reset_command: config.reset_command.clone(),
        reset_deadline_seconds: config.reset_deadline_seconds,
        sync_interval: config.sync_interval(),
    };
    let reporter = Reporter {
        controller: "dce-operator".into(),
        instance: Some(identity.clone()),
    };

    let metrics_addr = config.metrics_addr;
    let mut leader_stop = stop_rx.clone();
    let controllers = {
        let client = client.clone();
        let metrics = metrics.clone();
        let stopped = stopped.clone();
        async move {
            let mut lost_leadership: Option<watch::Receiver<bool>> = None;
            if config.leader_election {
                let acquire = leader::acquire(
                    client.clone(),
                    &config.namespace,
                    &config.leader_lease_name,
                    &identity,
                    config.leader_lease_seconds,
                );
                let (leading, _renewal) = tokio::select! {
                    acquired = acquire => acquired?,
                    _ = leader_stop.wait_for(|s| *s) => return anyhow::Ok(()),
                };
                lost_leadership = Some(leading);
            }
            metrics.leader.set(1);
            let shutdown = {
                let stopped = stopped.clone();
                let lost = lost_leadership.clone();
                async move {
                    match lost {
                        Some(mut leading) => {
                            tokio::select! {
                                _ = stopped() => {}
                                _ = leading.wait_for(|l| !*l) => tracing::error!("lost leadership; stopping"),
                            }
                        }
                        None => stopped().await,
                    }
                }
                .shared()
            };
            operator::run(client, aws, settings, metrics, reporter, caches, shutdown).await
        }
    };
    let endpoints = http::serve(metrics_addr, observability, stopped());
    let (controllers, endpoints) = tokio::join!(controllers, endpoints);
    controllers?;
    endpoints
}

use futures::FutureExt;

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
