//! Bulk deletion followed at once by new work must not leave a controller stalled (the
//! kube-runtime shared-stream stall: a controller woken for an object already gone from the
//! cache was never woken again). Reduced form for `make test`: a few cycles, each filling the
//! pool and leasing it, deleting every Lease and Account in one request each, and then
//! requiring a fresh Account to become Ready and a fresh Lease Active.

mod common;

use anyhow::Context as _;
use common::{RunningOperator, WAIT, account, account_id, create_accounts, lease, wait_lease};
use dce_e2e::cluster::{TestCluster, wait_for};
use dce_operator::lifecycle::ResetMode;
use dce_operator::resources::{Account, AccountPhase, Lease, LeasePhase};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

/// Cycles, Accounts and Leases per cycle (`DCE_SOAK_CYCLES` raises the cycles).
const CYCLES: usize = 3;
const ACCOUNTS: usize = 20;
const LEASES: usize = 40;

#[tokio::test]
async fn bulk_deletes_leave_no_controller_stalled() -> anyhow::Result<()> {
    let cycles = std::env::var("DCE_SOAK_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CYCLES);
    let cluster = TestCluster::start().await?;
    cluster.namespace("soak").await?;
    let operator = RunningOperator::start(&cluster, ResetMode::Disabled);
    let accounts: Api<Account> = Api::all(cluster.client.clone());
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "soak");

    for cycle in 0..cycles {
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
        accounts
            .create(&PostParams::default(), &account(&fresh))
            .await?;
        wait_for(WAIT, || async {
            let ready = accounts.get(&fresh).await.ok()?.phase() == Some(AccountPhase::Ready);
            ready.then_some(())
        })
        .await
        .with_context(|| format!("cycle {cycle}: the fresh Account never became Ready"))?;
        let name = format!("c{cycle}-fresh");
        leases
            .create(&PostParams::default(), &lease(&name, "fresh"))
            .await?;
        wait_lease(&leases, &name, LeasePhase::Active)
            .await
            .with_context(|| format!("cycle {cycle}: the fresh Lease never became Active"))?;
        leases.delete(&name, &DeleteParams::default()).await?;
        accounts.delete(&fresh, &DeleteParams::default()).await?;
        wait_for(WAIT, || async {
            accounts.get_opt(&fresh).await.ok()?.is_none().then_some(())
        })
        .await?;
    }
    let stalled = operator
        .metrics
        .progress
        .stalled(std::time::Instant::now(), std::time::Duration::ZERO);
    assert!(
        stalled.is_empty(),
        "work still waiting for a reconcile: {stalled:?}"
    );
    Ok(())
}
