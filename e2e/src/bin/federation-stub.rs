//! The console federation stand-in as a process, for `make dev`: serves on a free loopback port,
//! prints its endpoint URL on the first line of stdout, and runs until interrupted.

use std::io::Write;

use dce_e2e::moto::FederationStub;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stub = FederationStub::start().await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", stub.endpoint())?;
    stdout.flush()?;
    tokio::signal::ctrl_c().await?;
    stub.shutdown().await;
    Ok(())
}
