//! Bulk deletion followed at once by new work must not leave a controller stalled (the
//! kube-runtime shared-stream stall: a controller woken for an object already gone from the
//! cache was never woken again). Reduced form for `make test`: a few cycles, each filling the
//! pool and leasing it, deleting every Lease and Account in one request each, and then
//! requiring a fresh Account to become Ready and a fresh Lease Active; the operator is killed
//! and restarted between cycles. `make soak` runs the full form and prints its figures.

mod common;

use anyhow::Context as _;
use common::{
    RunningOperator, WAIT, account, account_id, assert_pool_consistent, create_accounts, lease,
    wait_lease,
};
use dce_e2e::cluster::{TestCluster, wait_for};
use dce_operator::lifecycle::ResetMode;
use dce_operator::resources::{Account, AccountPhase, Lease, LeasePhase};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use std::time::{Duration, Instant};

/// Cycles, Accounts and Leases per cycle (`DCE_SOAK_CYCLES` raises the cycles).
const CYCLES: usize = 3;
/// The operator is killed and restarted after every this many cycles
/// (`DCE_SOAK_RESTART_EVERY`).
const RESTART_EVERY: usize = 2;
const ACCOUNTS: usize = 20;
const LEASES: usize = 40;

#[tokio::test]
async fn bulk_deletes_leave_no_controller_stalled() -> anyhow::Result<()> {
    let setting = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(default)
    };
    let cycles = setting("DCE_SOAK_CYCLES", CYCLES);
    let restart_every = setting("DCE_SOAK_RESTART_EVERY", RESTART_EVERY).max(1);
    let cluster = TestCluster::start().await?;
    cluster.namespace("soak").await?;
    let mut operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let started = Instant::now();
    let mut figures = Figures::default();
    let accounts: Api<Account> = Api::all(cluster.client.clone());
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "soak");

    for cycle in 0..cycles {
        let cycle_started = Instant::now();
        create_accounts(&cluster.client, ACCOUNTS).await?;
        for i in 0..LEASES {
            let name = format!("c{cycle}-l{i:02}");
            leases
                .create(&PostParams::default(), &lease(&name, &format!("u{i}")))
                .await?;
        }
        // Half the leases hold accounts, half wait; then everything goes at once.
        wait_for(WAIT, || async {
            let list = leases.list(&ListParams::default()).await.ok()?;
            let active = list
                .items
                .iter()
                .filter(|l| l.phase() == Some(LeasePhase::Active))
                .count();
            (active == ACCOUNTS).then_some(())
        })
        .await
        .with_context(|| format!("cycle {cycle}: the pool was not leased out"))?;
        assert_pool_consistent(&cluster)
            .await
            .with_context(|| format!("cycle {cycle}: the leased pool"))?;
        leases
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        accounts
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        wait_for(WAIT, || async {
            let gone = leases
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty()
                && accounts
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .is_empty();
            gone.then_some(())
        })
        .await
        .with_context(|| format!("cycle {cycle}: finalizers were not removed"))?;

        // At once: new work for both controllers.
        let fresh = account_id(1000 + cycle);
        let asked = Instant::now();
        accounts
            .create(&PostParams::default(), &account(&fresh))
            .await?;
        wait_for(WAIT, || async {
            let ready = accounts.get(&fresh).await.ok()?.phase() == Some(AccountPhase::Ready);
            ready.then_some(())
        })
        .await
        .with_context(|| format!("cycle {cycle}: the fresh Account never became Ready"))?;
        figures.fresh_work.push(asked.elapsed());
        let name = format!("c{cycle}-fresh");
        let asked = Instant::now();
        leases
            .create(&PostParams::default(), &lease(&name, "fresh"))
            .await?;
        wait_lease(&leases, &name, LeasePhase::Active)
            .await
            .with_context(|| format!("cycle {cycle}: the fresh Lease never became Active"))?;
        figures.fresh_work.push(asked.elapsed());
        assert_pool_consistent(&cluster)
            .await
            .with_context(|| format!("cycle {cycle}: after the bulk delete"))?;
        leases.delete(&name, &DeleteParams::default()).await?;
        accounts.delete(&fresh, &DeleteParams::default()).await?;
        wait_for(WAIT, || async {
            accounts.get_opt(&fresh).await.ok()?.is_none().then_some(())
        })
        .await?;
        figures.objects += ACCOUNTS + LEASES + 2;
        figures.cycles.push(cycle_started.elapsed());
        if (cycle + 1) % restart_every == 0 && cycle + 1 < cycles {
            operator.kill().await;
            operator = RunningOperator::start(&cluster, ResetMode::Disabled);
            figures.restarts += 1;
        }
    }
    // Work handed over a moment ago may still be in flight; stalled work never finishes.
    let pending = || {
        operator
            .metrics
            .progress
            .stalled(Instant::now(), Duration::ZERO)
    };
    let drained = wait_for(Duration::from_secs(10), || async {
        pending().is_empty().then_some(())
    })
    .await;
    assert!(
        drained.is_ok(),
        "work still waiting for a reconcile after 10 s: {:?}",
        pending()
    );
    figures.print(started.elapsed());
    Ok(())
}

/// What a soak run measured.
#[derive(Default)]
struct Figures {
    /// Accounts and Leases created and deleted.
    objects: usize,
    restarts: usize,
    cycles: Vec<Duration>,
    /// From creating a fresh Account (Lease) right after a bulk delete to it being Ready (Active).
    fresh_work: Vec<Duration>,
}

impl Figures {
    fn print(mut self, total: Duration) {
        self.cycles.sort();
        self.fresh_work.sort();
        let quantile = |sorted: &[Duration], q: f64| {
            sorted
                .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        eprintln!(
            "soak: {} cycles, {} Accounts and Leases created and deleted, {} operator restarts, \
             {:.0} s; cycle p50 {:.2} s, max {:.2} s; fresh work after a bulk delete p50 {} ms, \
             max {} ms; no stall",
            self.cycles.len(),
            self.objects,
            self.restarts,
            total.as_secs_f64(),
            quantile(&self.cycles, 0.5).as_secs_f64(),
            quantile(&self.cycles, 1.0).as_secs_f64(),
            quantile(&self.fresh_work, 0.5).as_millis(),
            quantile(&self.fresh_work, 1.0).as_millis(),
        );
    }
}
