//! Runs the local control plane until SIGINT or SIGTERM, with an admin kubeconfig written out.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use local_control_plane::{ControlPlane, ControlPlaneConfig, StaticToken};

#[derive(Parser)]
#[command(about = "In-memory Kubernetes API server on 127.0.0.1")]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "LOCAL_CONTROL_PLANE_PORT", default_value_t = 6443)]
    port: u16,
    /// Where to write the admin kubeconfig.
    #[arg(long, env = "LOCAL_CONTROL_PLANE_KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Static token file in kube-apiserver's format: `token,user,uid,"group1,group2"` per line.
    #[arg(long, env = "LOCAL_CONTROL_PLANE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

/// Splits one CSV line, honouring double quotes.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("fields starts non-empty").push(c),
        }
    }
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

fn read_tokens(path: &PathBuf) -> anyhow::Result<Vec<StaticToken>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut tokens = vec![];
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    {
        let f = csv_fields(line);
        if f.len() < 3 {
            anyhow::bail!(
                "{}:{}: expected token,user,uid[,\"groups\"]",
                path.display(),
                i + 1
            );
        }
        let groups = f
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        tokens.push(StaticToken {
            token: f[0].clone(),
            username: f[1].clone(),
            uid: f[2].clone(),
            groups,
        });
    }
    Ok(tokens)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tokens = match &args.token_file {
        Some(p) => read_tokens(p)?,
        None => vec![],
    };
    let cp = ControlPlane::start(ControlPlaneConfig {
        port: args.port,
        tokens,
        ..ControlPlaneConfig::default()
    })
    .await?;
    cp.write_kubeconfig(&args.kubeconfig, cp.admin_token())?;
    println!(
        "local control plane listening on {} (plain HTTP: {})",
        cp.https_url(),
        cp.url()
    );
    println!("admin kubeconfig written to {}", args.kubeconfig.display());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    cp.shutdown().await;
    Ok(())
}
