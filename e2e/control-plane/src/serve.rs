//! The connection loop: HTTP/1.1 over TLS or plain TCP on one port (told apart by the first
//! byte of a connection), with graceful shutdown that ends every connection.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// First byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Arc<rustls::ServerConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let service = TowerToHyperService::new(router.clone());
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                connections.spawn(async move {
                    let mut first = [0u8; 1];
                    if stream.peek(&mut first).await.is_err() {
                        return;
                    }
                    let http = hyper::server::conn::http1::Builder::new();
                    if first[0] == TLS_HANDSHAKE {
                        let Ok(tls) = acceptor.accept(stream).await else { return };
                        let _ = watcher.watch(http.serve_connection(TokioIo::new(tls), service)).await;
                    } else {
                        let _ = watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await;
                    }
                });
            }
            _ = stop.wait_for(|s| *s) => break,
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    connections.shutdown().await;
}
