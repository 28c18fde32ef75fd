//! The operator killed mid-run and restarted converges: no lease lost, no account assigned
//! twice, no credentials Secret left without an Active lease.

use std::collections::BTreeSet;

use dce_e2e::kubectl::text;
use dce_e2e::target::{E2e, OperatorOptions};
use serde_json::json;

use crate::common::*;

const ACCOUNTS: usize = 12;
const LEASES: usize = 16;
/// Leases deleted while the operator is down.
const DELETED_WHILE_DOWN: usize = 2;

#[tokio::test]
async fn operator_killed_mid_run_and_restarted_converges() -> anyhow::Result<()> {
    let mut e2e = E2e::start(OperatorOptions {
        leader_election: true,
        ..OperatorOptions::default()
    })
    .await?;
    let namespace = e2e.namespace("restart").await?;
    let ids: Vec<String> = (0..ACCOUNTS).map(account_id).collect();
    let accounts: String = ids.iter().map(|id| account_manifest(id)).collect();
    e2e.apply(&accounts).await?;
    accounts_ready(&e2e, &ids).await?;

    let manifests: Vec<String> = (0..LEASES)
        .map(|i| {
            sample_lease(
                &format!("r{i:02}"),
                &namespace,
                &format!("user{i:02}"),
                json!({}),
            )
        })
        .collect();
    apply_concurrently(&e2e, &manifests, 4).await?;
    // Kill it while it is handing out accounts.
    let active = e2e
        .eventually("the first Active leases", || async {
            let active = leases_in(&e2e, &namespace, "Active").await.ok()?;
            (active.len() >= DELETED_WHILE_DOWN).then_some(active)
        })
        .await?;
    e2e.crash_operator().await?;

    // Users go on while it is down: two leases are deleted (their finalizer waits for it).
    let gone: Vec<String> = active.into_iter().take(DELETED_WHILE_DOWN).collect();
    for name in &gone {
        e2e.kubectl
            .ok(
                &[
                    "delete",
                    "leases.dce.dev",
                    name,
                    "-n",
                    &namespace,
                    "--wait=false",
                ],
                None,
            )
            .await?;
    }
    e2e.recover_operator().await?;

    let remaining = LEASES - DELETED_WHILE_DOWN;
    e2e.eventually("the pool to settle", || async {
        let all = leases(&e2e, &namespace).await.ok()?;
        let active = all
            .values()
            .filter(|l| text(l, "/status/leaseStatus") == "Active")
            .count();
        let pending = all
            .values()
            .filter(|l| text(l, "/status/leaseStatus") == "Pending")
            .count();
        (all.len() == remaining && active == ACCOUNTS && pending == remaining - ACCOUNTS)
            .then_some(())
    })
    .await?;
    let all = leases(&e2e, &namespace).await?;
    for name in &gone {
        assert!(!all.contains_key(name), "deleted lease {name} still there");
    }
    let assigned = assert_exclusive(&e2e, &namespace).await?;
    assert_eq!(assigned.len(), ACCOUNTS);

    // Exactly the Active leases have credentials Secrets.
    let want: BTreeSet<String> = assigned
        .keys()
        .map(|lease| format!("{lease}-aws-credentials"))
        .collect();
    e2e.eventually("one Secret per Active lease and no other", || async {
        let secrets = e2e.kubectl.list("secrets", Some(&namespace)).await.ok()?;
        let names: BTreeSet<String> = secrets
            .iter()
            .filter(|s| text(s, "/metadata/name").ends_with("-aws-credentials"))
            .map(|s| text(s, "/metadata/name").to_string())
            .collect();
        (names == want).then_some(())
    })
    .await?;
    e2e.finish().await;
    Ok(())
}
