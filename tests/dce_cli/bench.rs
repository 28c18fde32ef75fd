//! `make bench-cli`: the wall time of dce-cli commands against this local deployment, beside
//! the client's own start-up measured in the same run (`dce version`, which calls nothing). An
//! API command also checks its credentials with STS first (through the proxy, at moto), as it
//! does against DCE. BENCH_CLI_RUNS (default 20) runs of each, interleaved, so that load from
//! elsewhere on the machine falls on all of them alike.

use std::time::{Duration, Instant};

use crate::fixture::{ADMIN, ALICE, Deployment, Tools, alices_lease};

const ACCOUNT: &str = "123412341234";

#[tokio::test]
#[ignore = "a benchmark: make bench-cli"]
async fn dce_cli_command_times() -> anyhow::Result<()> {
    let Some(tools) = Tools::find()? else {
        return Ok(());
    };
    let runs: usize = match std::env::var("BENCH_CLI_RUNS") {
        Ok(runs) => runs.parse()?,
        Err(_) => 20,
    };
    let deployment = Deployment::start(tools).await?;
    let admin = deployment.signed_in(&ADMIN).await?;
    deployment.add_account(&admin, ACCOUNT).await?;
    let user = deployment.signed_in(&ALICE).await?;
    let created = deployment.dce(&user, &alices_lease()).await?;
    assert!(created.success(), "{created}");

    let commands = [
        ("dce version", &user, &["version"][..]),
        (
            "dce accounts list (admin, 1 account)",
            &admin,
            &["accounts", "list"],
        ),
        (
            "dce leases list (user, 1 lease)",
            &user,
            &["leases", "list"],
        ),
    ];
    let mut times = vec![Vec::with_capacity(runs); commands.len()];
    for _ in 0..runs {
        for ((_, home, args), times) in commands.iter().zip(&mut times) {
            let started = Instant::now();
            let output = deployment.dce(home, args).await?;
            times.push(started.elapsed());
            assert!(output.success(), "{output}");
        }
    }

    println!("dce-cli wall time, {runs} runs each (ms):");
    println!(
        "{:<40} {:>7} {:>7} {:>16}",
        "command", "p50", "p90", "p50 - version's"
    );
    let baseline = percentile(&mut times[0], 50);
    for ((name, _, _), times) in commands.iter().zip(&mut times) {
        let (p50, p90) = (percentile(times, 50), percentile(times, 90));
        let over = p50.as_secs_f64() - baseline.as_secs_f64();
        println!(
            "{name:<40} {:>7.1} {:>7.1} {:>16.1}",
            ms(p50),
            ms(p90),
            over * 1e3
        );
    }
    deployment.stop().await;
    Ok(())
}

/// The `p`-th percentile of `times` (nearest rank).
fn percentile(times: &mut [Duration], p: usize) -> Duration {
    times.sort_unstable();
    let rank = (times.len() * p).div_ceil(100).max(1);
    times[rank - 1]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
