//! The invariant of the account pool, read from the cluster and from AWS (moto) at once:
//! every account is held by at most one lease and every lease by at most one account, the two
//! sides agree, and every credentials Secret holds keys for its lease's account.
//!
//! Some parts hold at every instant ([`Scope::Always`]): no two Active leases name one account,
//! and an Active lease's Secret never holds another account's keys (a Secret is written only
//! after the lease's status names its account). The rest hold once the operator is at rest
//! ([`Scope::AtRest`]): between a claim and the status that records it, an account names a lease
//! that does not name it yet, and a Secret is created just after its lease turns Active.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dce_e2e::cluster::TestCluster;
use dce_operator::aws::{Aws, AwsSettings, StaticKeys};
use dce_operator::lifecycle::credentials::{ACCOUNT_ANNOTATION, MANAGED_LABEL, MANAGED_VALUE};
use dce_operator::resources::{Account, Lease, LeasePhase};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::{WAIT, credentials_from};

/// When a part of the invariant must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// At every instant, even mid-storm.
    Always,
    /// Once the operator has caught up with every change.
    AtRest,
}

/// One way the pool breaks the invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub scope: Scope,
    pub what: String,
}

/// What a passing check saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct PoolCounts {
    pub accounts: usize,
    pub leased_accounts: usize,
    pub active_leases: usize,
    pub pending_leases: usize,
    pub secrets: usize,
}

/// Reads Accounts, Leases (every namespace), the operator's Secrets, and asks STS whose
/// credentials each Active lease's Secret holds; returns what it saw and every violation.
pub async fn check_pool(
    client: &Client,
    sts_endpoint: &str,
) -> anyhow::Result<(PoolCounts, Vec<Violation>)> {
    let accounts = Api::<Account>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let leases = Api::<Lease>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let secrets = Api::<Secret>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{MANAGED_LABEL}={MANAGED_VALUE}")))
        .await?
        .items;
    let mut violations = Vec::new();
    let mut violate = |scope: Scope, what: String| violations.push(Violation { scope, what });

    let by_uid: BTreeMap<String, &Lease> =
        leases.iter().filter_map(|l| Some((l.uid()?, l))).collect();
    let key = |l: &Lease| format!("{}/{}", l.namespace().unwrap_or_default(), l.name_any());
    let named = |l: &Lease| l.status.as_ref().and_then(|s| s.account_name.clone());

    // Accounts → leases: each holder exists and names the account back; no lease holds two.
    let mut held_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for account in &accounts {
        let Some(holder) = account.holder() else {
            continue;
        };
        held_by
            .entry(holder.uid.clone())
            .or_default()
            .push(account.name_any());
        match by_uid.get(&holder.uid) {
            None => violate(
                Scope::AtRest,
                format!(
                    "account {} is held by lease {}/{}, which does not exist",
                    account.name_any(),
                    holder.namespace,
                    holder.name
                ),
            ),
            Some(lease) if named(lease).as_deref() != Some(&account.name_any()) => violate(
                Scope::AtRest,
                format!(
                    "account {} is held by lease {}, whose status names {:?}",
                    account.name_any(),
                    key(lease),
                    named(lease)
                ),
            ),
            Some(_) => {}
        }
    }
    for (uid, held) in &held_by {
        if held.len() > 1 {
            let lease = by_uid.get(uid).map_or(uid.clone(), |l| key(l));
            violate(
                Scope::AtRest,
                format!("lease {lease} holds {} accounts: {held:?}", held.len()),
            );
        }
    }

    // Leases → accounts: no two Active leases name one account; each Active one is held.
    let accounts_by_name: BTreeMap<String, &Account> =
        accounts.iter().map(|a| (a.name_any(), a)).collect();
    let mut named_by: BTreeMap<String, String> = BTreeMap::new();
    let active: Vec<&Lease> = leases
        .iter()
        .filter(|l| l.phase() == Some(LeasePhase::Active))
        .collect();
    for lease in &active {
        let Some(account) = named(lease) else {
            violate(
                Scope::Always,
                format!("Active lease {} names no account", key(lease)),
            );
            continue;
        };
        if let Some(other) = named_by.insert(account.clone(), key(lease)) {
            violate(
                Scope::Always,
                format!(
                    "account {account} is named by two Active leases: {other} and {}",
                    key(lease)
                ),
            );
        }
        let holder = accounts_by_name
            .get(&account)
            .and_then(|a| a.holder())
            .map(|h| h.uid.clone());
        if holder != lease.uid() {
            violate(
                Scope::AtRest,
                format!(
                    "Active lease {} names account {account}, which does not record it as holder",
                    key(lease)
                ),
            );
        }
    }

    // Secrets: one per Active lease, holding that lease's account's credentials.
    let aws = Aws::with_operator_keys(
        AwsSettings {
            sts_endpoint: Some(sts_endpoint.to_string()),
            ..AwsSettings::default()
        },
        &StaticKeys {
            access_key_id: "AKIDINVARIANT".into(),
            secret_access_key: "invariant".into(),
        },
    );
    let mut secret_of: BTreeMap<String, &Secret> = BTreeMap::new();
    for secret in &secrets {
        let controller = secret
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true));
        // A reset Job's Secret belongs to its Account, not to a lease.
        if controller.is_some_and(|o| o.kind != "Lease") {
            continue;
        }
        let owner = controller.map(|o| o.uid.clone());
        match owner.as_ref().and_then(|uid| by_uid.get(uid)) {
            Some(lease) if lease.phase() == Some(LeasePhase::Active) => {
                secret_of.insert(lease.uid().unwrap_or_default(), secret);
            }
            _ => violate(
                Scope::AtRest,
                format!(
                    "Secret {}/{} belongs to no Active lease",
                    secret.namespace().unwrap_or_default(),
                    secret.name_any()
                ),
            ),
        }
    }
    for lease in &active {
        let status = lease.status.clone().unwrap_or_default();
        let Some(secret) = secret_of.get(&lease.uid().unwrap_or_default()) else {
            violate(
                Scope::AtRest,
                format!("Active lease {} has no credentials Secret", key(lease)),
            );
            continue;
        };
        let account_id = status.account_id.clone().unwrap_or_default();
        let recorded = secret.annotations().get(ACCOUNT_ANNOTATION).cloned();
        if recorded.as_deref() != Some(account_id.as_str()) {
            violate(
                Scope::Always,
                format!(
                    "the Secret of lease {} records account {recorded:?}, the lease {account_id}",
                    key(lease)
                ),
            );
        }
        match aws.caller_identity_of(&credentials_from(secret)).await {
            Ok(identity) => {
                let role = format!(":assumed-role/DCEPrincipal/{}", lease.spec.principal_id);
                if identity.account != account_id || !identity.arn.contains(&role) {
                    violate(
                        Scope::Always,
                        format!(
                            "the Secret of lease {} (account {account_id}, principal {}) holds credentials of {}",
                            key(lease),
                            lease.spec.principal_id,
                            identity.arn
                        ),
                    );
                }
            }
            // Refreshed between the read and the call: the check is repeated.
            Err(error) => violate(
                Scope::AtRest,
                format!(
                    "STS does not accept the credentials of lease {}: {error}",
                    key(lease)
                ),
            ),
        }
    }

    let counts = PoolCounts {
        accounts: accounts.len(),
        leased_accounts: accounts.iter().filter(|a| a.holder().is_some()).count(),
        active_leases: active.len(),
        pending_leases: leases
            .iter()
            .filter(|l| matches!(l.phase(), None | Some(LeasePhase::Pending)))
            .count(),
        secrets: secret_of.len(),
    };
    Ok((counts, violations))
}

/// Fails at once if a part of the invariant that holds at every instant is broken.
pub async fn assert_pool_safe(cluster: &TestCluster) -> anyhow::Result<PoolCounts> {
    let (counts, violations) = check_pool(&cluster.client, &cluster.moto.endpoint()).await?;
    let broken: Vec<&Violation> = violations
        .iter()
        .filter(|v| v.scope == Scope::Always)
        .collect();
    anyhow::ensure!(broken.is_empty(), "pool invariant broken: {broken:#?}");
    Ok(counts)
}

/// Waits (up to [`WAIT`]) for the whole invariant to hold, as it must once the operator is at
/// rest; fails with what is still broken. Parts that hold at every instant fail at once.
pub async fn assert_pool_consistent(cluster: &TestCluster) -> anyhow::Result<PoolCounts> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (counts, violations) = check_pool(&cluster.client, &cluster.moto.endpoint()).await?;
        let always: Vec<&Violation> = violations
            .iter()
            .filter(|v| v.scope == Scope::Always)
            .collect();
        anyhow::ensure!(always.is_empty(), "pool invariant broken: {always:#?}");
        if violations.is_empty() {
            return Ok(counts);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("pool not consistent after {WAIT:?}: {violations:#?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Names of the leases in `namespace` that are Active, sorted.
pub async fn active_lease_names(
    client: &Client,
    namespace: &str,
) -> anyhow::Result<BTreeSet<String>> {
    Ok(Api::<Lease>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|l| l.phase() == Some(LeasePhase::Active))
        .map(|l| l.name_any())
        .collect())
}
