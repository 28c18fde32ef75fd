//! The usage store: each principal's daily spend, per lease, kept apart from the Lease objects
//! so that deleting a Lease does not erase what its principal spent.
//!
//! One ConfigMap per principal in the operator's namespace, one entry per (UTC day, lease):
//! key `<yyyy-mm-dd>.<lease uid>`, value a small JSON object. A Lease's own status stays the
//! fresher record while the Lease exists; the store speaks for leases that are gone.

use std::collections::{BTreeMap, HashSet};

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::usage::{day_start, spend_since};
use crate::resources::Lease;

/// Label (with [`STORE_LABEL_VALUE`]) that marks a principal's usage store, and selects the
/// stores for the operator's watch.
pub const STORE_LABEL: &str = "dce.dev/usage";
pub const STORE_LABEL_VALUE: &str = "principal";
/// Annotation holding the principal id (the ConfigMap's name is only a hash of it).
pub const PRINCIPAL_ANNOTATION: &str = "dce.dev/principal-id";

/// Name of `principal`'s usage store: principal ids may hold any character, names may not.
pub fn store_name(principal: &str) -> String {
    let digest = hex::encode(Sha256::digest(principal.as_bytes()));
    format!("dce-usage-{}", &digest[..32])
}

/// One stored day of one lease, as written into the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEntry {
    pub account_id: String,
    pub amount: f64,
    pub currency: String,
    /// `namespace/name` of the lease, for people reading the store.
    pub lease: String,
}

/// One stored day of one lease of a principal, as read from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDay {
    pub principal_id: String,
    pub lease_uid: String,
    pub date: Date,
    pub entry: StoredEntry,
}

/// When a day's usage record stops counting (DCE's time to live): `retention` after the day
/// starts.
pub fn time_to_live(date: Date, retention: SignedDuration) -> Timestamp {
    day_start(date) + retention
}

fn entry_key(date: Date, lease_uid: &str) -> String {
    format!("{date}.{lease_uid}")
}

fn parse_key(key: &str) -> Option<(Date, &str)> {
    let (date, uid) = key.split_once('.')?;
    Some((date.parse().ok()?, uid))
}

/// Every day held in `stores` (usage ConfigMaps); entries that do not parse are skipped.
pub fn stored_days<'a>(stores: impl IntoIterator<Item = &'a ConfigMap>) -> Vec<StoredDay> {
    let mut days = Vec::new();
    for store in stores {
        let Some(principal) = store.annotations().get(PRINCIPAL_ANNOTATION) else {
            continue;
        };
        for (key, value) in store.data.iter().flatten() {
            let (Some((date, uid)), Ok(entry)) =
                (parse_key(key), serde_json::from_str::<StoredEntry>(value))
            else {
                continue;
            };
            days.push(StoredDay {
                principal_id: principal.clone(),
                lease_uid: uid.to_string(),
                date,
                entry,
            });
        }
    }
    days
}

/// The store entries that record `lease`'s daily costs, without days past `retention`. None
/// before the lease has an account and a uid.
pub fn lease_entries(
    lease: &Lease,
    retention: SignedDuration,
    now: Timestamp,
) -> BTreeMap<String, String> {
    let status = lease.status.as_ref();
    let (Some(uid), Some(account), Some(usage)) = (
        lease.uid(),
        status.and_then(|s| s.account_id.as_ref()),
        status.and_then(|s| s.usage.as_ref()),
    ) else {
        return BTreeMap::new();
    };
    let name = format!(
        "{}/{}",
        lease.namespace().unwrap_or_default(),
        lease.name_any()
    );
    usage
        .daily
        .iter()
        .filter_map(|day| {
            let date = day.date.parse::<Date>().ok()?;
            (time_to_live(date, retention) > now).then_some(())?;
            let entry = StoredEntry {
                account_id: account.clone(),
                amount: day.amount,
                currency: usage.currency.clone(),
                lease: name.clone(),
            };
            Some((entry_key(date, &uid), serde_json::to_string(&entry).ok()?))
        })
        .collect()
}

/// What a merge patch must change in a store holding `stored` so it also holds `entries`:
/// entries added or changed (`Some`), and entries past `retention` removed (`None`). Empty
/// when the store is up to date. Other leases' current entries are never touched, so writers
/// for different leases of one principal need no coordination.
pub fn store_changes(
    stored: Option<&BTreeMap<String, String>>,
    entries: &BTreeMap<String, String>,
    retention: SignedDuration,
    now: Timestamp,
) -> BTreeMap<String, Option<String>> {
    let empty = BTreeMap::new();
    let stored = stored.unwrap_or(&empty);
    let mut changes: BTreeMap<String, Option<String>> = entries
        .iter()
        .filter(|(key, value)| stored.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), Some(value.clone())))
        .collect();
    if changes.is_empty() {
        // Pruning alone is not worth a write: it happens with the next change.
        return changes;
    }
    for key in stored.keys() {
        let expired = parse_key(key).is_none_or(|(date, _)| time_to_live(date, retention) <= now);
        if expired && !entries.contains_key(key) {
            changes.insert(key.clone(), None);
        }
    }
    changes
}

/// The stored days of leases not among `live` (by uid): the usage of deleted leases.
pub fn days_of_gone_leases<'a, 'b>(
    stored: &'b [StoredDay],
    live: impl IntoIterator<Item = &'a Lease>,
) -> impl Iterator<Item = &'b StoredDay> {
    let live: HashSet<String> = live.into_iter().filter_map(|l| l.uid()).collect();
    stored
        .iter()
        .filter(move |day| !live.contains(&day.lease_uid))
}

/// What `principal` has spent on or after `from`: the recorded usage of `leases` (any phase:
/// ended leases count; their status is the fresher record) plus the stored days of the
/// principal's leases that no longer exist.
pub fn principal_spend<'a>(
    leases: impl IntoIterator<Item = &'a Lease> + Clone,
    stored: &[StoredDay],
    principal: &str,
    from: Date,
) -> f64 {
    let live: f64 = leases
        .clone()
        .into_iter()
        .filter(|lease| lease.spec.principal_id == principal)
        .map(|lease| spend_since(lease.status.as_ref().and_then(|s| s.usage.as_ref()), from))
        .sum();
    let gone: f64 = days_of_gone_leases(stored, leases)
        .filter(|day| day.principal_id == principal && day.date >= from)
        .map(|day| day.entry.amount)
        .sum();
    live + gone
}

#[cfg(test)]
mod tests;
