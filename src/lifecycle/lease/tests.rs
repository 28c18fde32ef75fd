use super::*;
use crate::lifecycle::fixtures::{DAY, lease, spec, ts};
use crate::resources::LeaseStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn with_phase(
    phase: LeasePhase,
    reason: LeaseReason,
    expires: Option<i64>,
    modified: i64,
) -> Option<LeaseStatus> {
    Some(LeaseStatus {
        lease_status: Some(phase),
        lease_status_reason: Some(reason),
        expires_on: expires.map(|s| Time(ts(s))),
        // Terms are recorded together at activation.
        budget_amount: expires.map(|_| 10.0),
        lease_status_modified_on: Some(Time(ts(modified))),
        ..LeaseStatus::default()
    })
}

fn obs(now: i64) -> LeaseObservation {
    LeaseObservation {
        now: ts(now),
        created: ts(0),
        deleting: false,
        holding: Holding::None,
        principal_has_earlier_lease: false,
        principal_period_spend: 0.0,
    }
}

// --- steps of a new or pending lease ---

#[test]
fn new_valid_lease_claims() {
    let step = next_step(&lease(spec(), None), &obs(10), &LeasePolicy::default());
    assert_eq!(
        step,
        LeaseStep::Claim(Terms {
            expires_on: ts(7 * DAY),
            budget_amount: 1000.0
        })
    );
}

#[test]
fn pending_lease_keeps_claiming() {
    let l = lease(
        spec(),
        with_phase(LeasePhase::Pending, LeaseReason::WaitingForAccount, None, 0),
    );
    assert!(matches!(
        next_step(&l, &obs(10), &LeasePolicy::default()),
        LeaseStep::Claim(_)
    ));
}

#[test]
fn invalid_lease_is_rejected() {
    let mut s = spec();
    s.budget_amount = Some(5000.0);
    assert!(matches!(
        next_step(&lease(s, None), &obs(10), &LeasePolicy::default()),
        LeaseStep::Reject(_)
    ));
}

#[test]
fn second_lease_of_a_principal_is_rejected_unless_allowed() {
    let o = LeaseObservation {
        principal_has_earlier_lease: true,
        ..obs(10)
    };
    let step = next_step(&lease(spec(), None), &o, &LeasePolicy::default());
    assert_eq!(
        step,
        LeaseStep::Reject(Rejection {
            limit: Limit::OneLeasePerPrincipal,
            message: "principal \"alice\" already has an active lease".into()
        })
    );
    let relaxed = LeasePolicy {
        one_active_lease_per_principal: false,
        ..LeasePolicy::default()
    };
    assert!(matches!(
        next_step(&lease(spec(), None), &o, &relaxed),
        LeaseStep::Claim(_)
    ));
}

#[test]
fn pending_lease_expires_if_never_served() {
    let mut s = spec();
    s.duration = Some("1h".into());
    let l = lease(
        s,
        with_phase(LeasePhase::Pending, LeaseReason::WaitingForAccount, None, 0),
    );
    assert!(matches!(
        next_step(&l, &obs(3599), &LeasePolicy::default()),
        LeaseStep::Claim(_)
    ));
    assert_eq!(
        next_step(&l, &obs(3600), &LeasePolicy::default()),
        LeaseStep::Expire { at: ts(3600) }
    );
}

#[test]
fn deleting_a_pending_lease_destroys_it() {
    let o = LeaseObservation {
        deleting: true,
        ..obs(10)
    };
    assert_eq!(
        next_step(&lease(spec(), None), &o, &LeasePolicy::default()),
        LeaseStep::End(LeaseReason::Destroyed)
    );
}

// --- account choice ---

fn key(created: i64, uid: &str) -> QueueKey {
    QueueKey {
        created: ts(created),
        arrival: 0,
        uid: uid.into(),
    }
}
fn free(names: &[&str]) -> Vec<FreeAccount> {
    names
        .iter()
        .map(|n| FreeAccount {
            name: n.to_string(),
            id: format!("id-{n}"),
        })
        .collect()
}

#[test]
fn oldest_waiting_lease_gets_first_account() {
    let queue = [key(3, "c"), key(1, "a"), key(2, "b")];
    let accounts = free(&["y", "x"]);
    assert_eq!(
        choose_account(&key(1, "a"), None, &queue, &accounts)
            .unwrap()
            .name,
        "x"
    );
    assert_eq!(
        choose_account(&key(2, "b"), None, &queue, &accounts)
            .unwrap()
            .name,
        "y"
    );
    assert_eq!(choose_account(&key(3, "c"), None, &queue, &accounts), None);
}

#[test]
fn equal_creation_times_are_ordered_by_uid() {
    let queue = [key(1, "b"), key(1, "a")];
    let accounts = free(&["x", "y"]);
    assert_eq!(
        choose_account(&key(1, "a"), None, &queue, &accounts)
            .unwrap()
            .name,
        "x"
    );
    assert_eq!(
        choose_account(&key(1, "b"), None, &queue, &accounts)
            .unwrap()
            .name,
        "y"
    );
}

#[test]
fn within_a_second_arrival_order_comes_before_uid() {
    let arrived = |arrival, uid: &str| QueueKey {
        arrival,
        ..key(1, uid)
    };
    let accounts = free(&["x", "y", "z"]);
    // "b" was seen first; "a" arrives later with a smaller uid and must not overtake it.
    let before = [arrived(1, "b")];
    let after = [arrived(1, "b"), arrived(2, "a")];
    let choice = |me: &QueueKey, queue: &[QueueKey]| {
        choose_account(me, None, queue, &accounts).map(|a| a.name.clone())
    };
    assert_eq!(choice(&arrived(1, "b"), &before), Some("x".into()));
    assert_eq!(choice(&arrived(1, "b"), &after), Some("x".into()));
    assert_eq!(choice(&arrived(2, "a"), &after), Some("y".into()));
    // An earlier second still comes first, whatever the arrival.
    let older = QueueKey {
        arrival: 9,
        ..key(0, "c")
    };
    assert_eq!(
        choice(&older, &[older.clone(), arrived(1, "b")]),
        Some("x".into())
    );
}

#[test]
fn requested_account_only_if_free() {
    let accounts = free(&["x", "y"]);
    assert_eq!(
        choose_account(&key(1, "a"), Some("id-y"), &[], &accounts)
            .unwrap()
            .name,
        "y"
    );
    assert_eq!(
        choose_account(&key(1, "a"), Some("id-z"), &[], &accounts),
        None
    );
}

#[test]
fn first_choice_is_what_a_lease_alone_in_the_queue_takes() {
    let accounts = free(&["y", "x"]);
    let name = |choice: Option<&FreeAccount>| choice.map(|a| a.name.clone());
    assert_eq!(name(first_choice(None, &accounts)), Some("x".into()));
    assert_eq!(
        name(first_choice(None, &accounts)),
        name(choose_account(
            &key(1, "a"),
            None,
            &[key(1, "a")],
            &accounts
        ))
    );
    assert_eq!(
        name(first_choice(Some("id-y"), &accounts)),
        Some("y".into())
    );
    assert_eq!(first_choice(Some("id-z"), &accounts), None);
    assert_eq!(first_choice(None, &[]), None);
}

#[test]
fn no_free_account_means_wait() {
    assert_eq!(
        choose_account(&key(1, "a"), None, &[key(1, "a")], &[]),
        None
    );
}

mod running;

// --- the accounts that record a lease as holder ---

#[test]
fn claims_are_sorted_out_by_the_account_the_status_names() {
    let naming = |phase: LeasePhase, account: Option<&str>| {
        let mut status = with_phase(phase, LeaseReason::Active, Some(DAY), 0);
        if let Some(s) = status.as_mut() {
            s.account_name = account.map(str::to_string);
        }
        lease(spec(), status)
    };
    let claims = |names: &[&'static str]| -> Vec<(String, &'static str)> {
        names.iter().map(|n| (n.to_string(), *n)).collect()
    };
    // (case, lease, accounts recording it as holder, holding, held, strays)
    type Case = (
        &'static str,
        Lease,
        &'static [&'static str],
        Holding,
        Option<&'static str>,
        &'static [&'static str],
    );
    let cases: Vec<Case> = vec![
        (
            "new, no claim: claims one",
            lease(spec(), None),
            &[],
            Holding::None,
            None,
            &[],
        ),
        (
            "new, a claim (crash before its status): adopts it",
            lease(spec(), None),
            &["a"],
            Holding::Held,
            Some("a"),
            &[],
        ),
        (
            "new, two claims: adopts the first, the other is a stray",
            lease(spec(), None),
            &["a", "b"],
            Holding::Held,
            Some("a"),
            &["b"],
        ),
        (
            "active on a",
            naming(LeasePhase::Active, Some("a")),
            &["a"],
            Holding::Held,
            Some("a"),
            &[],
        ),
        (
            "active on b, a also claimed: a is a stray",
            naming(LeasePhase::Active, Some("b")),
            &["a", "b"],
            Holding::Held,
            Some("b"),
            &["a"],
        ),
        (
            "active on a, a not claimed, b claimed: lost, b a stray",
            naming(LeasePhase::Active, Some("a")),
            &["b"],
            Holding::Lost,
            None,
            &["b"],
        ),
        (
            "ended on a, release interrupted",
            naming(LeasePhase::Inactive, Some("a")),
            &["a"],
            Holding::Held,
            Some("a"),
            &[],
        ),
        (
            "ended without an account: every claim a stray",
            naming(LeasePhase::Inactive, None),
            &["a"],
            Holding::None,
            None,
            &["a"],
        ),
        (
            "ended on a, released",
            naming(LeasePhase::Inactive, Some("a")),
            &[],
            Holding::None,
            None,
            &[],
        ),
    ];
    for (name, lease, found, holding, held, strays) in cases {
        let sorted = sort_claims(&lease, claims(found));
        assert_eq!(sorted.holding, holding, "{name}");
        assert_eq!(sorted.held, held, "{name}");
        assert_eq!(sorted.strays, strays, "{name}");
    }
}
