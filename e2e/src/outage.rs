//! A loopback TCP proxy that can cut its upstream off, to play an outage of an endpoint (AWS)
//! and its return.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Forwards connections to `upstream` while up; while down it closes every connection, open
/// ones included (pooled keep-alive connections would otherwise hide the outage).
pub struct OutageProxy {
    addr: SocketAddr,
    down: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl OutageProxy {
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (down, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watching.borrow() {
                    continue; // dropped: closed at once
                }
                tokio::spawn(forward(client, upstream, watching.clone()));
            }
        });
        Ok(Self { addr, down, task })
    }

    /// `http://` URL of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts the upstream off (`true`) or restores it (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

impl Drop for OutageProxy {
    fn drop(&mut self) {
        self.set_down(true);
        self.task.abort();
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut down: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = down.wait_for(|down| *down) => {}
    }
}
