//! HTTPS for `make dev`, on loopback: a CA of its own, the REST API's certificate (written into
//! the state folder for the operator), and a CONNECT proxy that routes the real dce-cli's and
//! aws CLI's STS calls (to AWS's hosts) to moto. Prints the proxy URL on the first line of
//! stdout and runs until interrupted.
//!
//! Usage: dev-tls <state folder> <moto host:port>

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use dce_e2e::connect_proxy::{ConnectProxy, STS_HOSTS};
use dce_e2e::tls::TestCa;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let state = PathBuf::from(args.next().context("usage: dev-tls <state> <moto addr>")?);
    let moto: SocketAddr = args
        .next()
        .context("usage: dev-tls <state> <moto addr>")?
        .parse()?;
    dce_e2e::cluster::install_crypto_provider();
    let ca = TestCa::new("dce-dev-ca")?;
    ca.write_pem(&state)?;
    ca.issue(&["127.0.0.1", "localhost"])?
        .write(&state, "api")?;
    let proxy = ConnectProxy::start(&ca, STS_HOSTS, moto).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", proxy.url())?;
    stdout.flush()?;
    tokio::signal::ctrl_c().await?;
    proxy.shutdown().await;
    Ok(())
}
