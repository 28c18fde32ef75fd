//! Many leases at once: each gets its own account, never one twice.

use std::collections::BTreeSet;

use dce_e2e::target::{E2e, OperatorOptions};
use serde_json::json;

use crate::common::*;

const LEASES: usize = 50;
/// A few more accounts than leases, so every lease can be served and two stay free.
const ACCOUNTS: usize = 52;

#[tokio::test]
async fn fifty_leases_applied_at_once_never_share_an_account() -> anyhow::Result<()> {
    let e2e = E2e::start(OperatorOptions::default()).await?;
    let namespace = e2e.namespace("concurrency").await?;
    let ids: Vec<String> = (0..ACCOUNTS).map(account_id).collect();
    let accounts: String = ids.iter().map(|id| account_manifest(id)).collect();
    e2e.apply(&accounts).await?;
    accounts_ready(&e2e, &ids).await?;

    let leases: Vec<String> = (0..LEASES)
        .map(|i| {
            sample_lease(
                &format!("l{i:02}"),
                &namespace,
                &format!("user{i:02}"),
                json!({}),
            )
        })
        .collect();
    apply_concurrently(&e2e, &leases, 5).await?;
    e2e.eventually("all leases Active", || async {
        (leases_in(&e2e, &namespace, "Active").await.ok()?.len() == LEASES).then_some(())
    })
    .await?;
    let assigned = assert_exclusive(&e2e, &namespace).await?;
    assert_eq!(assigned.len(), LEASES);

    // Every Secret's credentials name its own lease's account.
    let mut keys = BTreeSet::new();
    for (lease, account) in &assigned {
        let secret_name = format!("{lease}-aws-credentials");
        let secret = e2e
            .eventually(&format!("Secret {secret_name}"), || async {
                e2e.kubectl
                    .get_json("secret", Some(&secret_name), Some(&namespace))
                    .await
                    .ok()
            })
            .await?;
        let (caller_account, _) = caller_identity(&e2e, &secret).await?;
        assert_eq!(&caller_account, account, "credentials of {lease}");
        assert!(keys.insert(secret_data(&secret)?["AWS_ACCESS_KEY_ID"].clone()));
    }
    e2e.finish().await;
    Ok(())
}
