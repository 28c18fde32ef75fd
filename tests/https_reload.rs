//! The REST API's HTTPS: a renewed certificate (a cert-manager renewal, a rotated Secret) is
//! served without a restart, and a broken one is refused while the last good one stays.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use dce_e2e::cluster::{install_crypto_provider, wait_for};
use dce_e2e::https::HttpsClient;
use dce_e2e::process::free_port;
use dce_e2e::target::ScratchDir;
use dce_e2e::tls::TestCa;
use dce_operator::facade::server::{TlsFiles, serve};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// Longer than the server's check of the files (10 s), with room for a busy machine.
const RELOADED_WITHIN: Duration = Duration::from_secs(40);

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() -> anyhow::Result<()> {
    install_crypto_provider();
    let dir = ScratchDir::new()?;
    let ca = TestCa::new("https-reload-ca")?;
    let first = ca.issue(&["127.0.0.1"])?;
    let (cert, key) = first.write(dir.path(), "api")?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Router::new().route("/", get(|| async { "ok" }));
    let files = TlsFiles { cert, key };
    let server = tokio::spawn(serve(addr, app, Some(files), async {
        let _ = stopped.await;
    }));
    let client = HttpsClient::new(&ca, addr)?;
    let served = || async { client.served_certificate().await.ok() };
    let initial = wait_for(Duration::from_secs(10), served).await?;
    assert_eq!(initial, der(&first.cert_pem));

    // Renewed in place, as a Secret volume or cert-manager updates the files.
    let renewed = ca.issue(&["127.0.0.1"])?;
    renewed.write(dir.path(), "api")?;
    wait_for(RELOADED_WITHIN, || async {
        served()
            .await
            .filter(|cert| *cert == der(&renewed.cert_pem))
    })
    .await?;

    // A broken pair is not taken: the renewed certificate stays.
    std::fs::write(dir.path().join("api.crt"), "not a certificate")?;
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(served().await, Some(der(&renewed.cert_pem)));

    let _ = stop.send(());
    server.await??;
    Ok(())
}
