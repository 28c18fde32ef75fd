//! Manifests, credential checks and pool invariants shared by the e2e tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context as _, bail, ensure};
use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use dce_e2e::kubectl::text;
use dce_e2e::target::E2e;
use serde_json::Value;

/// The Account ids in `config/samples/accounts.yaml`.
pub const SAMPLE_ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];

pub fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config/samples")
        .join(name)
}

/// An Account manifest shaped like the samples, for account `id`.
pub fn account_manifest(id: &str) -> String {
    format!(
        "apiVersion: dce.dev/v1alpha1\nkind: Account\nmetadata:\n  name: \"{id}\"\nspec:\n  id: \"{id}\"\n  adminRoleArn: arn:aws:iam::{id}:role/OrganizationAccountAccessRole\n---\n"
    )
}

/// The 12-digit id of the `n`th generated pool account.
pub fn account_id(n: usize) -> String {
    format!("{:012}", 500_000_000_000u64 + n as u64)
}

/// `config/samples/lease.yaml` renamed into `namespace` for `principal`, with `spec` fields
/// replaced by `overrides` (a JSON object; null removes a field).
pub fn sample_lease(name: &str, namespace: &str, principal: &str, overrides: Value) -> String {
    let text = std::fs::read_to_string(sample("lease.yaml")).expect("config/samples/lease.yaml");
    let mut lease: Value = serde_yaml::from_str(&text).expect("the sample lease parses");
    lease["metadata"]["name"] = name.into();
    lease["metadata"]["namespace"] = namespace.into();
    lease["spec"]["principalId"] = principal.into();
    if let (Some(spec), Value::Object(overrides)) = (lease["spec"].as_object_mut(), overrides) {
        for (field, value) in overrides {
            if value.is_null() {
                spec.remove(&field);
            } else {
                spec.insert(field, value);
            }
        }
    }
    serde_json::to_string(&lease).expect("JSON")
}

/// The decoded `data` of a Secret object.
pub fn secret_data(secret: &Value) -> anyhow::Result<BTreeMap<String, String>> {
    let data = secret["data"].as_object().context("Secret has no data")?;
    data.iter()
        .map(|(key, value)| {
            let bytes = BASE64.decode(value.as_str().unwrap_or_default())?;
            Ok((key.clone(), String::from_utf8(bytes)?))
        })
        .collect()
}

/// The AWS identity the credentials in a lease's Secret have: a signed GetCallerIdentity
/// against the operator's STS endpoint. Returns (account, arn).
pub async fn caller_identity(e2e: &E2e, secret: &Value) -> anyhow::Result<(String, String)> {
    let data = secret_data(secret)?;
    let key = |name: &str| {
        data.get(name)
            .cloned()
            .with_context(|| format!("Secret lacks {name}"))
    };
    let credentials = Credentials::new(
        key("AWS_ACCESS_KEY_ID")?,
        key("AWS_SECRET_ACCESS_KEY")?,
        Some(key("AWS_SESSION_TOKEN")?),
        None,
        "lease-secret",
    );
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(
            data.get("AWS_DEFAULT_REGION")
                .cloned()
                .unwrap_or_else(|| "us-east-1".into()),
        ))
        .endpoint_url(&e2e.sts_endpoint)
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https(),
        )
        .credentials_provider(credentials)
        .build();
    let identity = aws_sdk_sts::Client::from_conf(config)
        .get_caller_identity()
        .send()
        .await
        .context("GetCallerIdentity with the lease's credentials")?;
    Ok((
        identity.account().unwrap_or_default().to_string(),
        identity.arn().unwrap_or_default().to_string(),
    ))
}

/// Leases in `namespace` by name.
pub async fn leases(e2e: &E2e, namespace: &str) -> anyhow::Result<BTreeMap<String, Value>> {
    Ok(e2e
        .kubectl
        .list("leases.dce.dev", Some(namespace))
        .await?
        .into_iter()
        .map(|lease| (text(&lease, "/metadata/name").to_string(), lease))
        .collect())
}

/// Names of the leases in `namespace` whose `leaseStatus` is `phase`.
pub async fn leases_in(e2e: &E2e, namespace: &str, phase: &str) -> anyhow::Result<Vec<String>> {
    Ok(leases(e2e, namespace)
        .await?
        .into_iter()
        .filter(|(_, lease)| text(lease, "/status/leaseStatus") == phase)
        .map(|(name, _)| name)
        .collect())
}

/// The pool invariant: every Active lease in `namespace` holds exactly one account, that account
/// names it back, and no account is held twice or by a lease that is not Active. Returns the
/// Active leases' account ids by lease name.
pub async fn assert_exclusive(
    e2e: &E2e,
    namespace: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let accounts = e2e.kubectl.list("accounts.dce.dev", None).await?;
    let mut holder_of = BTreeMap::new();
    for account in &accounts {
        let holder = text(account, "/status/lease/uid");
        if holder.is_empty() {
            continue;
        }
        if let Some(other) = holder_of.insert(holder.to_string(), text(account, "/spec/id")) {
            bail!(
                "lease {holder} holds two accounts: {other} and {}",
                text(account, "/spec/id")
            );
        }
    }
    let mut assigned = BTreeMap::new();
    let mut used = BTreeSet::new();
    for (name, lease) in leases(e2e, namespace).await? {
        let uid = text(&lease, "/metadata/uid");
        if text(&lease, "/status/leaseStatus") != "Active" {
            ensure!(
                !holder_of.contains_key(uid),
                "lease {name} is not Active but holds an account"
            );
            continue;
        }
        let account = text(&lease, "/status/accountId").to_string();
        ensure!(!account.is_empty(), "Active lease {name} names no account");
        ensure!(
            used.insert(account.clone()),
            "account {account} is assigned to two Active leases"
        );
        ensure!(
            holder_of.get(uid).copied() == Some(account.as_str()),
            "account {account} does not record lease {name} as its holder"
        );
        assigned.insert(name, account);
    }
    Ok(assigned)
}

/// Applies `manifests` (JSON objects) split over `parallel` concurrent `kubectl apply` runs, so
/// the operator sees them arrive at once. Each run gets one `v1` `List`: every kubectl reads
/// that, while JSON documents joined by `---` only newer ones do.
pub async fn apply_concurrently(
    e2e: &E2e,
    manifests: &[String],
    parallel: usize,
) -> anyhow::Result<()> {
    let chunk = manifests.len().div_ceil(parallel.max(1)).max(1);
    let applies = manifests.chunks(chunk).map(|part| {
        let items: Result<Vec<serde_json::Value>, _> =
            part.iter().map(|m| serde_json::from_str(m)).collect();
        async move {
            let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items? });
            e2e.apply(&list.to_string()).await
        }
    });
    for result in futures::future::join_all(applies).await {
        result?;
    }
    Ok(())
}

/// Waits until every listed Account is Ready (and, with reset Jobs, completes their resets).
pub async fn accounts_ready(e2e: &E2e, ids: &[String]) -> anyhow::Result<()> {
    let readies = ids.iter().map(|id| e2e.account_ready(id));
    for result in futures::future::join_all(readies).await {
        result?;
    }
    Ok(())
}
