use super::*;
use crate::resources::{DailyCost, LeaseSpec, LeaseStatus, LeaseUsage};

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}
fn day(text: &str) -> Date {
    text.parse().unwrap()
}
const MONTH: SignedDuration = SignedDuration::from_hours(24 * 30);

fn lease(uid: &str, principal: &str, days: &[(&str, f64)]) -> Lease {
    let mut lease = Lease::new(uid, LeaseSpec::for_principal(principal));
    lease.metadata.namespace = Some("team-a".into());
    lease.metadata.uid = Some(uid.into());
    lease.status = Some(LeaseStatus {
        account_id: Some("111111111111".into()),
        usage: Some(LeaseUsage {
            daily: days
                .iter()
                .map(|(d, a)| DailyCost {
                    date: d.to_string(),
                    amount: *a,
                })
                .collect(),
            total: days.iter().map(|(_, a)| a).sum(),
            currency: "USD".into(),
            ..LeaseUsage::default()
        }),
        ..LeaseStatus::default()
    });
    lease
}

fn store(principal: &str, leases: &[&Lease]) -> ConfigMap {
    let mut data = BTreeMap::new();
    for lease in leases {
        data.extend(lease_entries(lease, MONTH, at("2026-11-23T00:00:00Z")));
    }
    let mut store = ConfigMap {
        data: Some(data),
        ..ConfigMap::default()
    };
    store.metadata.name = Some(store_name(principal));
    store
        .annotations_mut()
        .insert(PRINCIPAL_ANNOTATION.into(), principal.into());
    store
}

#[test]
fn store_names_are_valid_stable_and_distinct() {
    let name = store_name("system:serviceaccount:team:bot");
    assert_eq!(name, store_name("system:serviceaccount:team:bot"));
    assert_ne!(name, store_name("alice"));
    assert!(name.len() <= 63);
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
}

#[test]
fn a_lease_is_stored_per_day_and_read_back() {
    let l = lease(
        "uid-1",
        "alice",
        &[("2026-11-21", 2.5), ("2026-11-22", 1.0)],
    );
    let entries = lease_entries(&l, MONTH, at("2026-11-23T00:00:00Z"));
    assert_eq!(
        entries.keys().collect::<Vec<_>>(),
        ["2026-11-21.uid-1", "2026-11-22.uid-1"]
    );
    let read = stored_days([&store("alice", &[&l])]);
    assert_eq!(
        read[0],
        StoredDay {
            principal_id: "alice".into(),
            lease_uid: "uid-1".into(),
            date: day("2026-11-21"),
            entry: StoredEntry {
                account_id: "111111111111".into(),
                amount: 2.5,
                currency: "USD".into(),
                lease: "team-a/uid-1".into(),
            },
        }
    );
    assert_eq!(read.len(), 2);
}

#[test]
fn nothing_is_stored_before_the_lease_has_an_account() {
    let mut l = lease("uid-1", "alice", &[("2026-11-21", 2.5)]);
    l.status.as_mut().unwrap().account_id = None;
    assert!(lease_entries(&l, MONTH, at("2026-11-23T00:00:00Z")).is_empty());
}

#[test]
fn days_past_the_retention_are_not_stored() {
    let l = lease(
        "uid-1",
        "alice",
        &[("2026-11-20", 1.0), ("2026-11-22", 1.0)],
    );
    let entries = lease_entries(
        &l,
        SignedDuration::from_hours(48),
        at("2026-11-23T12:00:00Z"),
    );
    assert_eq!(entries.keys().collect::<Vec<_>>(), ["2026-11-22.uid-1"]);
}

#[test]
fn changes_add_new_and_revised_days_only() {
    let now = at("2026-11-23T00:00:00Z");
    let before = lease("uid-1", "alice", &[("2026-11-21", 2.5)]);
    let stored = store("alice", &[&before]).data.unwrap();
    let same = lease_entries(&before, MONTH, now);
    assert!(store_changes(Some(&stored), &same, MONTH, now).is_empty());

    let after = lease(
        "uid-1",
        "alice",
        &[("2026-11-21", 3.0), ("2026-11-22", 1.0)],
    );
    let changes = store_changes(
        Some(&stored),
        &lease_entries(&after, MONTH, now),
        MONTH,
        now,
    );
    assert_eq!(
        changes.keys().collect::<Vec<_>>(),
        ["2026-11-21.uid-1", "2026-11-22.uid-1"]
    );
    assert!(changes.values().all(Option::is_some));
    // A store that does not exist yet gets everything.
    assert_eq!(
        store_changes(None, &lease_entries(&after, MONTH, now), MONTH, now).len(),
        2
    );
}

#[test]
fn a_write_prunes_entries_past_the_retention_and_keeps_other_leases() {
    let old = lease("uid-old", "alice", &[("2026-10-01", 9.0)]);
    let other = lease("uid-other", "alice", &[("2026-11-20", 4.0)]);
    let mut stored = store("alice", &[&other]).data.unwrap();
    stored.extend(lease_entries(&old, MONTH, at("2026-10-02T00:00:00Z")));
    stored.insert("not-a-day.uid-x".into(), "{}".into());
    let now = at("2026-11-23T00:00:00Z");
    let new = lease("uid-new", "alice", &[("2026-11-23", 1.0)]);
    let changes = store_changes(Some(&stored), &lease_entries(&new, MONTH, now), MONTH, now);
    assert_eq!(
        changes,
        BTreeMap::from([
            ("2026-10-01.uid-old".to_string(), None),
            (
                "2026-11-23.uid-new".to_string(),
                lease_entries(&new, MONTH, now).into_values().next()
            ),
            ("not-a-day.uid-x".to_string(), None),
        ])
    );
}

#[test]
fn principal_spend_sums_live_leases_and_the_stored_days_of_deleted_ones() {
    let from = day("2026-11-22");
    let kept = lease("uid-kept", "alice", &[("2026-11-22", 2.0)]);
    let deleted = lease(
        "uid-deleted",
        "alice",
        &[("2026-11-21", 100.0), ("2026-11-22", 30.0)],
    );
    let bobs = lease("uid-bob", "bob", &[("2026-11-23", 50.0)]);
    // The store is older than the kept lease's status, which wins while the lease exists.
    let stale_kept = lease("uid-kept", "alice", &[("2026-11-22", 1.0)]);
    let stored = stored_days([
        &store("alice", &[&deleted, &stale_kept]),
        &store("bob", &[&bobs]),
    ]);
    let live = [kept.clone(), bobs.clone()];
    assert_eq!(principal_spend(&live, &stored, "alice", from), 32.0);
    assert_eq!(principal_spend(&live, &stored, "bob", from), 50.0);
    assert_eq!(principal_spend(&live, &stored, "carol", from), 0.0);
    // Without the store, deleting the lease would have erased its spend.
    assert_eq!(principal_spend(&live, &[], "alice", from), 2.0);
    // A lease that has not spent yet counts nothing.
    let fresh = Lease::new("new", LeaseSpec::for_principal("alice"));
    assert_eq!(
        principal_spend([&kept, &fresh], &stored, "alice", from),
        32.0
    );
}
