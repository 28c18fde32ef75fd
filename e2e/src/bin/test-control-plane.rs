//! The test control plane as a process, for `make dev`: etcd, kube-apiserver and
//! kube-controller-manager on loopback with the CRDs installed, an admin kubeconfig written out,
//! until SIGINT or SIGTERM. Its files live in a temporary directory removed on exit.

use std::path::PathBuf;

use clap::Parser;
use dce_e2e::cluster::{install_crds, install_crypto_provider};
use dce_e2e::control_plane::{ControlPlane, ControlPlaneConfig};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(about = "A real Kubernetes control plane on 127.0.0.1 (no kubelet)")]
struct Args {
    /// The API server's port (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Where to write the admin kubeconfig.
    #[arg(long)]
    kubeconfig: PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    install_crypto_provider();
    let mut control_plane = ControlPlane::start(ControlPlaneConfig {
        port: args.port,
        defer_controller_manager: true,
        ..ControlPlaneConfig::default()
    })
    .await?;
    install_crds(&control_plane.admin_client().await?).await?;
    control_plane.start_controller_manager().await?;
    control_plane.write_kubeconfig(&args.kubeconfig, control_plane.admin_token())?;
    println!("control plane ready at {}", control_plane.https_url());
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    control_plane.shutdown().await;
    Ok(())
}
