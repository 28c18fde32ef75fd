//! The plan of every lease state, table-driven: the actions in order, and when to look again.

use super::*;
use crate::lifecycle::fixtures::{DAY, ts};
use crate::resources::{AccountPhase, AccountSpec, LeaseHolder, LeaseSpec, LeaseUsage};

const NOW: i64 = 1_000;
const EXPIRES: i64 = 7 * DAY;

fn account(name: &str, holder: Option<&str>) -> Arc<Account> {
    let spec = AccountSpec::with_admin_role(name, format!("arn:aws:iam::1:role/{name}"));
    let mut account = Account::new(name, spec);
    account.metadata.resource_version = Some("7".into());
    account.status = Some(AccountStatus {
        account_status: Some(match holder {
            Some(_) => AccountPhase::Leased,
            None => AccountPhase::Ready,
        }),
        lease: holder.map(|uid| LeaseHolder {
            namespace: "team".into(),
            name: "l".into(),
            uid: uid.into(),
        }),
        ..AccountStatus::default()
    });
    Arc::new(account)
}

fn lease(status: Option<LeaseStatus>) -> Lease {
    let mut lease = Lease::new("l", LeaseSpec::for_principal("alice"));
    lease.metadata.namespace = Some("team".into());
    lease.metadata.uid = Some("uid-l".into());
    lease.status = status;
    lease
}

fn active(reason: &str) -> Option<LeaseStatus> {
    let mut status = LeaseStatus {
        lease_status: Some(LeasePhase::Active),
        lease_status_reason: Some(LeaseReason::Active),
        lease_status_modified_on: Some(Time(ts(10))),
        expires_on: Some(Time(ts(EXPIRES))),
        budget_amount: Some(100.0),
        account_id: Some("a".into()),
        account_name: Some("a".into()),
        ..LeaseStatus::default()
    };
    conditions::set_ready(&mut status.conditions, true, reason, "", None, ts(10));
    Some(status)
}

fn inactive(reason: LeaseReason, ended: i64) -> Option<LeaseStatus> {
    Some(LeaseStatus {
        lease_status: Some(LeasePhase::Inactive),
        lease_status_reason: Some(reason),
        lease_status_modified_on: Some(Time(ts(ended))),
        ..LeaseStatus::default()
    })
}

fn owned_secret(expires_at: i64, intact: bool) -> SecretObservation {
    SecretObservation::Owned {
        labelled: true,
        recorded_hash: Some("h".into()),
        actual_hash: if intact { "h" } else { "other" }.into(),
        expires_at: Some(ts(expires_at)),
        account: Some("a".into()),
    }
}

/// The lease's own Secret, intact, but with credentials for `account`.
fn secret_for(account: &str, expires_at: i64) -> SecretObservation {
    let mut secret = owned_secret(expires_at, true);
    if let SecretObservation::Owned { account: a, .. } = &mut secret {
        *a = Some(account.into());
    }
    secret
}

/// Facts of a lease seen at `now` that holds nothing and has no rival.
fn facts(now: i64) -> LeaseFacts {
    LeaseFacts {
        step: LeaseObservation {
            now: ts(now),
            created: ts(0),
            deleting: false,
            holding: Holding::None,
            principal_has_earlier_lease: false,
            principal_period_spend: 0.0,
        },
        held: None,
        strays: Vec::new(),
        secret: SecretObservation::Absent,
        secret_version: None,
        secret_name: "l-aws-credentials".into(),
        candidates: None,
    }
}

fn held(mut facts: LeaseFacts, secret: SecretObservation) -> LeaseFacts {
    facts.step.holding = Holding::Held;
    facts.held = Some(account("a", Some("uid-l")));
    facts.secret_version = matches!(secret, SecretObservation::Owned { .. }).then(|| "3".into());
    facts.secret = secret;
    facts
}

/// `facts` with leaked claims on `strays`.
fn with_strays(mut facts: LeaseFacts, strays: &[&str]) -> LeaseFacts {
    facts.strays = strays
        .iter()
        .map(|name| account(name, Some("uid-l")))
        .collect();
    facts
}

fn waiting(mut facts: LeaseFacts, ahead: usize, free: &[&str]) -> LeaseFacts {
    let key = |n: usize| QueueKey {
        created: ts(0),
        arrival: n as u64,
        uid: format!("uid-{n}"),
    };
    let me = key(ahead);
    facts.candidates = Some(Candidates {
        queue: (0..=ahead).map(key).collect(),
        me,
        free: free.iter().map(|name| account(name, None)).collect(),
    });
    facts
}

/// Each action in a few words.
fn summary(plan: &LeasePlan) -> Vec<String> {
    plan.actions
        .iter()
        .map(|action| match action {
            LeaseAction::ClaimAccount(claim) => format!("claim {}", claim.account.name_any()),
            LeaseAction::ObtainCredentials(request) => {
                format!("obtain {}", request.account.name_any())
            }
            LeaseAction::WriteSecret(write) => match write.refresh {
                Some(cause) => format!("refresh ({})", cause.as_str()),
                None => "issue".to_string(),
            },
            LeaseAction::TakeFinalReading(_) => "final reading".to_string(),
            LeaseAction::WriteStatus(status) => format!(
                "status {}/{} {}",
                status.lease_status.map_or("-", |p| p.as_str()),
                status.lease_status_reason.map_or("-", |r| r.as_str()),
                conditions::ready_reason(&status.conditions).unwrap_or("-"),
            ),
            LeaseAction::ReleaseAccount(release) => {
                format!("release {}", release.account.name_any())
            }
            LeaseAction::DeleteSecret => "delete secret".to_string(),
            LeaseAction::Publish(notice) => format!("event {}", notice.reason),
            LeaseAction::CountBudgetAction { action, reason } => {
                format!("count {action} {}", reason.as_str())
            }
            LeaseAction::DeleteLease => "delete lease".to_string(),
            LeaseAction::ReleaseStray(release, notice) => {
                format!(
                    "release stray {} ({})",
                    release.account.name_any(),
                    notice.reason
                )
            }
        })
        .collect()
}

fn policy() -> LeasePolicy {
    LeasePolicy {
        history_retention: SignedDuration::from_secs(600),
        ..LeasePolicy::default()
    }
}

const HISTORY: Requeue = Requeue::After(Duration::from_secs(600));

#[test]
fn every_lease_state_has_its_plan() {
    let refresh_due = EXPIRES - 100;
    let mut over_budget = active("CredentialsIssued");
    if let Some(s) = over_budget.as_mut() {
        s.usage = Some(LeaseUsage {
            total: 150.0,
            ..LeaseUsage::default()
        });
    }
    let mut requested_refresh = lease(active("CredentialsIssued"));
    requested_refresh.metadata.annotations = Some(
        [(CREDENTIALS_REFRESH_ANNOTATION.to_string(), "1".to_string())]
            .into_iter()
            .collect(),
    );
    let mut invalid = lease(None);
    invalid.spec.duration = Some("soon".into());
    let mut end_requested = lease(active("CredentialsIssued"));
    end_requested.metadata.annotations = Some(
        [(
            super::super::END_REQUESTED_ANNOTATION.to_string(),
            "x".to_string(),
        )]
        .into_iter()
        .collect(),
    );

    let deleting = |mut f: LeaseFacts| {
        f.step.deleting = true;
        f
    };
    let over_principal_budget = |mut f: LeaseFacts| {
        f.step.principal_period_spend = 5_000.0;
        f
    };
    let lost = |mut f: LeaseFacts| {
        f.step.holding = Holding::Lost;
        f
    };
    let lifetime = policy().credentials_lifetime.as_secs();
    let intact_until = NOW + lifetime;

    let cases: Vec<(&str, Lease, LeaseFacts, Vec<&str>, Requeue)> = vec![
        (
            "new lease, an account free",
            lease(None),
            waiting(facts(NOW), 0, &["a"]),
            vec![
                "claim a",
                "obtain a",
                "status Active/Active CredentialsIssued",
                "issue",
                "event Active",
            ],
            Requeue::At(ts(EXPIRES)),
        ),
        (
            "new lease, no account free",
            lease(None),
            waiting(facts(NOW), 0, &[]),
            vec![
                "status Pending/WaitingForAccount WaitingForAccount",
                "event WaitingForAccount",
            ],
            Requeue::At(ts(EXPIRES)),
        ),
        (
            "new lease, the free account goes to an older lease",
            lease(None),
            waiting(facts(NOW), 1, &["a"]),
            vec![
                "status Pending/WaitingForAccount WaitingForAccount",
                "event WaitingForAccount",
            ],
            Requeue::At(ts(EXPIRES)),
        ),
        (
            "new lease with bad terms",
            invalid,
            waiting(facts(NOW), 0, &["a"]),
            vec!["status Inactive/Invalid Invalid", "event Invalid"],
            HISTORY,
        ),
        (
            "new lease of a principal over the period budget",
            lease(None),
            over_principal_budget(waiting(facts(NOW), 0, &["a"])),
            vec![
                "status Inactive/Invalid Invalid",
                "event Invalid",
                "count refused OverPrincipalBudget",
            ],
            HISTORY,
        ),
        (
            "active, credentials intact",
            lease(active("CredentialsIssued")),
            held(facts(NOW), owned_secret(intact_until, true)),
            vec!["status Active/Active CredentialsIssued"],
            Requeue::At(
                ts(intact_until)
                    - crate::lifecycle::credentials::refresh_lead(policy().credentials_lifetime),
            ),
        ),
        (
            "active, credentials due for refresh",
            lease(active("CredentialsIssued")),
            held(facts(refresh_due), owned_secret(refresh_due + 30, true)),
            vec![
                "obtain a",
                "status Active/Active CredentialsIssued",
                "refresh (due)",
            ],
            Requeue::At(ts(EXPIRES)),
        ),
        (
            "active, Secret tampered with",
            lease(active("CredentialsIssued")),
            held(facts(NOW), owned_secret(intact_until, false)),
            vec![
                "obtain a",
                "status Active/Active CredentialsIssued",
                "refresh (tampered)",
            ],
            Requeue::At(ts(EXPIRES)),
        ),
        (
            "active, Secret gone",
            lease(active("CredentialsIssued")),
            held(facts(NOW), SecretObservation::Absent),
            vec![
                "obtain a",
                "status Active/Active CredentialsIssued",
                "issue",
            ],
            Requeue::At(ts(EXPIRES)),
        ),
        (
            "active, refresh requested",
            requested_refresh,
            held(facts(NOW), owned_secret(intact_until, true)),
            vec![
                "obtain a",
                "status Active/Active CredentialsIssued",
                "refresh (requested)",
            ],
            Requeue::At(ts(EXPIRES)),
        ),
        (
            "active, someone else's Secret holds the name",
            lease(active("CredentialsIssued")),
            held(facts(NOW), SecretObservation::NotOwned),
            vec![
                "status Active/Active SecretNameConflict",
                "event SecretNameConflict",
            ],
            Requeue::At(ts(NOW + 60)),
        ),
        (
            "active, expired",
            lease(active("CredentialsIssued")),
            held(facts(EXPIRES + 5), owned_secret(intact_until, true)),
            vec![
                "final reading",
                "status Inactive/Expired Expired",
                "event Expired",
                "release a",
                "delete secret",
            ],
            HISTORY,
        ),
        (
            "active, over its budget",
            lease(over_budget),
            held(facts(NOW), owned_secret(intact_until, true)),
            vec![
                "final reading",
                "status Inactive/OverBudget OverBudget",
                "event OverBudget",
                "count ended OverBudget",
                "release a",
                "delete secret",
            ],
            HISTORY,
        ),
        (
            "active, principal over the period budget",
            lease(active("CredentialsIssued")),
            over_principal_budget(held(facts(NOW), owned_secret(intact_until, true))),
            vec![
                "final reading",
                "status Inactive/OverPrincipalBudget OverPrincipalBudget",
                "event OverPrincipalBudget",
                "count ended OverPrincipalBudget",
                "release a",
                "delete secret",
            ],
            HISTORY,
        ),
        (
            "active, end requested through the REST API",
            end_requested,
            held(facts(NOW), owned_secret(intact_until, true)),
            vec![
                "final reading",
                "status Inactive/Destroyed Destroyed",
                "event Destroyed",
                "release a",
                "delete secret",
            ],
            HISTORY,
        ),
        (
            "active, being deleted",
            lease(active("CredentialsIssued")),
            deleting(held(facts(NOW), owned_secret(intact_until, true))),
            vec![
                "final reading",
                "status Inactive/Destroyed Destroyed",
                "event Destroyed",
                "release a",
                "delete secret",
            ],
            Requeue::OnChange,
        ),
        (
            "active, its account taken away",
            lease(active("CredentialsIssued")),
            lost(facts(NOW)),
            vec![
                "status Inactive/AccountOrphaned AccountOrphaned",
                "event AccountOrphaned",
                "delete secret",
            ],
            HISTORY,
        ),
        (
            "pending, being deleted",
            lease(Some(LeaseStatus {
                lease_status: Some(LeasePhase::Pending),
                lease_status_reason: Some(LeaseReason::WaitingForAccount),
                ..LeaseStatus::default()
            })),
            deleting(facts(NOW)),
            vec!["delete secret"],
            Requeue::OnChange,
        ),
        (
            "ended, release interrupted",
            lease(inactive(LeaseReason::Expired, NOW)),
            held(facts(NOW), owned_secret(intact_until, true)),
            vec!["release a", "delete secret"],
            HISTORY,
        ),
        (
            "ended, kept as history",
            lease(inactive(LeaseReason::Expired, NOW)),
            facts(NOW + 10),
            vec![],
            Requeue::At(ts(NOW + 600)),
        ),
        (
            "ended, history retention over",
            lease(inactive(LeaseReason::Expired, NOW)),
            facts(NOW + 600),
            vec!["delete lease"],
            Requeue::OnChange,
        ),
        (
            "active, its Secret holds another account's credentials",
            lease(active("CredentialsIssued")),
            held(facts(NOW), secret_for("b", intact_until)),
            vec![
                "obtain a",
                "status Active/Active CredentialsIssued",
                "refresh (other-account)",
            ],
            Requeue::At(ts(EXPIRES)),
        ),
        (
            "pending, a claim of its own found (a crash before its status): adopted",
            lease(None),
            held(facts(NOW), SecretObservation::Absent),
            vec![
                "claim a",
                "obtain a",
                "status Active/Active CredentialsIssued",
                "issue",
                "event Active",
            ],
            Requeue::At(ts(EXPIRES)),
        ),
        (
            "pending, two claims of its own found: one adopted, then the other released",
            lease(None),
            with_strays(held(facts(NOW), SecretObservation::Absent), &["b"]),
            vec![
                "claim a",
                "obtain a",
                "status Active/Active CredentialsIssued",
                "issue",
                "event Active",
                "release stray b (StrayClaimReleased)",
            ],
            Requeue::At(ts(EXPIRES)),
        ),
        (
            "active, another account also records it as holder",
            lease(active("CredentialsIssued")),
            with_strays(held(facts(NOW), owned_secret(intact_until, true)), &["b"]),
            vec![
                "status Active/Active CredentialsIssued",
                "release stray b (StrayClaimReleased)",
            ],
            Requeue::At(
                ts(intact_until)
                    - crate::lifecycle::credentials::refresh_lead(policy().credentials_lifetime),
            ),
        ),
        (
            "ended, an account still records it as holder",
            lease(inactive(LeaseReason::Expired, NOW)),
            with_strays(facts(NOW + 10), &["b"]),
            vec!["release stray b (StrayClaimReleased)"],
            Requeue::At(ts(NOW + 600)),
        ),
        (
            "ended, history over, an account still records it as holder",
            lease(inactive(LeaseReason::Expired, NOW)),
            with_strays(facts(NOW + 600), &["b"]),
            vec!["release stray b (StrayClaimReleased)", "delete lease"],
            Requeue::OnChange,
        ),
        (
            "ended, being deleted",
            lease(inactive(LeaseReason::Expired, NOW)),
            deleting(facts(NOW)),
            vec![],
            Requeue::OnChange,
        ),
    ];
    for (name, lease, facts, actions, then) in cases {
        let decided = plan(&lease, &facts, &policy());
        assert_eq!(summary(&decided), actions, "{name}");
        assert_eq!(decided.then, then, "{name}");
    }
}

mod details;
