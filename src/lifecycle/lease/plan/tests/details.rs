//! Single properties of plans, beside the table of every lease state.

use super::*;
use crate::lifecycle::lease::reason;

#[test]
fn a_claim_records_the_lease_as_holder_on_the_copy_seen_free() {
    let decided = plan(&lease(None), &waiting(facts(NOW), 0, &["a"]), &policy());
    let LeaseAction::ClaimAccount(claim) = &decided.actions[0] else {
        panic!("{:?}", summary(&decided));
    };
    assert_eq!(claim.account.resource_version().as_deref(), Some("7"));
    let holder = claim.status.lease.as_ref().unwrap();
    assert_eq!(
        (holder.namespace.as_str(), holder.uid.as_str()),
        ("team", "uid-l")
    );
    assert_eq!(claim.status.account_status, Some(AccountPhase::Leased));
    assert_eq!(
        conditions::ready_reason(&claim.status.conditions),
        Some("Leased")
    );
}

#[test]
fn a_release_sends_the_account_to_reset() {
    let decided = plan(
        &lease(active("CredentialsIssued")),
        &held(facts(EXPIRES), owned_secret(EXPIRES, true)),
        &policy(),
    );
    let release = decided
        .actions
        .iter()
        .find_map(|a| match a {
            LeaseAction::ReleaseAccount(release) => Some(release),
            _ => None,
        })
        .unwrap();
    assert!(release.status.lease.is_none());
    assert!(release.status.reset_required);
    assert_eq!(release.status.account_status, Some(AccountPhase::NotReady));
}

#[test]
fn an_ended_lease_records_its_expiry_as_the_end_however_late_seen() {
    let decided = plan(
        &lease(active("CredentialsIssued")),
        &held(facts(EXPIRES + 3_600), owned_secret(EXPIRES, true)),
        &policy(),
    );
    let status = decided
        .actions
        .iter()
        .find_map(|a| match a {
            LeaseAction::WriteStatus(status) => Some(status),
            _ => None,
        })
        .unwrap();
    assert_eq!(status.lease_status_modified_on, Some(Time(ts(EXPIRES))));
    assert_eq!(status.credentials_secret_name, None);
}

#[test]
fn credentials_issued_after_a_failure_are_announced_and_a_repeat_failure_is_not() {
    let parts = |decided: &LeasePlan| {
        let request = decided.actions.iter().find_map(|a| match a {
            LeaseAction::ObtainCredentials(request) => Some(request.clone()),
            _ => None,
        });
        let write = decided.actions.iter().find_map(|a| match a {
            LeaseAction::WriteSecret(write) => Some(write.clone()),
            _ => None,
        });
        (request.unwrap(), write.unwrap())
    };
    let decided = plan(
        &lease(active(reason::CREDENTIALS_PENDING)),
        &held(facts(NOW), SecretObservation::Absent),
        &policy(),
    );
    let (request, write) = parts(&decided);
    assert_eq!(
        request.stored_reason.as_deref(),
        Some(reason::CREDENTIALS_PENDING)
    );
    assert_eq!(
        write.announce.as_ref().map(|n| n.reason.as_str()),
        Some(reason::CREDENTIALS_ISSUED)
    );
    assert_eq!(write.replace_version, None);
    assert_eq!(write.account_id, "a");

    let decided = plan(
        &lease(active(reason::CREDENTIALS_ISSUED)),
        &held(facts(NOW), owned_secret(NOW, false)),
        &policy(),
    );
    let (_, write) = parts(&decided);
    assert!(write.announce.is_none());
    // The lease's own Secret is overwritten only as the version that was read.
    assert_eq!(write.replace_version.as_deref(), Some("3"));
}

#[test]
fn a_lease_whose_cost_was_just_read_ends_without_another_reading() {
    let mut status = active("CredentialsIssued");
    if let Some(s) = status.as_mut() {
        s.usage = Some(LeaseUsage {
            last_attempt_at: Some(Time(ts(EXPIRES + 5))),
            ..LeaseUsage::default()
        });
    }
    let decided = plan(
        &lease(status),
        &held(facts(EXPIRES + 5), owned_secret(EXPIRES, true)),
        &policy(),
    );
    assert!(!summary(&decided).contains(&"final reading".to_string()));
}

/// The status a plan writes, once stored, is planned again unchanged and announced no more:
/// a lease at rest costs no write and no Event.
#[test]
fn a_planned_status_once_stored_is_a_fixed_point() {
    let written = |plan: &LeasePlan| {
        plan.actions.iter().find_map(|a| match a {
            LeaseAction::WriteStatus(status) => Some((**status).clone()),
            _ => None,
        })
    };
    let lifetime = policy().credentials_lifetime.as_secs();
    let cases: Vec<(&str, Lease, LeaseFacts)> = vec![
        ("waiting", lease(None), waiting(facts(NOW), 0, &[])),
        (
            "active, credentials intact",
            lease(active("CredentialsIssued")),
            held(facts(NOW), owned_secret(NOW + lifetime, true)),
        ),
        (
            "someone else's Secret",
            lease(active("CredentialsIssued")),
            held(facts(NOW), SecretObservation::NotOwned),
        ),
    ];
    for (name, mut lease, facts) in cases {
        let first = written(&plan(&lease, &facts, &policy())).unwrap();
        lease.status = Some(first.clone());
        let mut later = facts.clone();
        later.step.now = facts.step.now + SignedDuration::from_secs(1);
        let again = plan(&lease, &later, &policy());
        assert_eq!(written(&again), Some(first), "{name}");
        assert!(
            !again
                .actions
                .iter()
                .any(|a| matches!(a, LeaseAction::Publish(_))),
            "{name}: {:?}",
            summary(&again)
        );
    }
}

/// However the actions of a plan are ordered otherwise, credentials reach the Secret only after
/// the status that names their account, and a stray is released only after that status too.
#[test]
fn the_secret_and_stray_releases_come_after_the_status_that_names_the_account() {
    let lifetime = policy().credentials_lifetime.as_secs();
    let cases: Vec<(&str, Lease, LeaseFacts)> = vec![
        ("claim", lease(None), waiting(facts(NOW), 0, &["a"])),
        (
            "adoption with a stray",
            lease(None),
            with_strays(held(facts(NOW), SecretObservation::Absent), &["b"]),
        ),
        (
            "refresh",
            lease(active("CredentialsIssued")),
            held(facts(NOW + lifetime), owned_secret(NOW + lifetime, true)),
        ),
        (
            "other account's Secret with a stray",
            lease(active("CredentialsIssued")),
            with_strays(held(facts(NOW), secret_for("b", NOW + lifetime)), &["b"]),
        ),
    ];
    for (name, lease, facts) in cases {
        let decided = summary(&plan(&lease, &facts, &policy()));
        let position = |prefix: &str| decided.iter().position(|a| a.starts_with(prefix));
        let status = position("status Active").unwrap_or_else(|| panic!("{name}: {decided:?}"));
        for later in ["issue", "refresh", "release stray"] {
            if let Some(at) = position(later) {
                assert!(at > status, "{name}: {decided:?}");
            }
        }
    }
}
