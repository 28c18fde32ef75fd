//! Lease decisions: admission against the limits, account choice, and the next step.

use jiff::{SignedDuration, Timestamp};

use super::{LeasePolicy, usage};
use crate::resources::{Lease, LeasePhase, LeaseReason, check_free_form};

/// What a lease was granted at admission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Terms {
    pub expires_on: Timestamp,
    pub budget_amount: f64,
}

/// Why a lease was refused. The message starts with the offending field, as DCE's do, and is
/// shown in the lease status, its event and the REST API.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub limit: Limit,
    pub message: String,
}

/// Which limit a refused lease broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Its own terms: expiry, period, budget.
    Terms,
    /// The principal already has an unfinished lease.
    OneLeasePerPrincipal,
    /// The principal has spent more than the period budget.
    PrincipalBudget,
}

fn reject(message: String) -> Result<Terms, Rejection> {
    Err(Rejection {
        limit: Limit::Terms,
        message,
    })
}

/// Parses `duration` (`90m`, `8h`, `1d12h`, `3600s`).
pub fn parse_duration(text: &str) -> Option<SignedDuration> {
    let mut total: i64 = 0;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let value: i64 = digits.parse().ok()?;
        digits.clear();
        total = total.checked_add(value.checked_mul(unit)?)?;
    }
    (digits.is_empty() && !text.is_empty()).then(|| SignedDuration::from_secs(total))
}

/// Checks a lease against the limits and works out its terms. `created` is the lease's
/// creation time; the period is measured from it.
pub fn admit(lease: &Lease, created: Timestamp, policy: &LeasePolicy) -> Result<Terms, Rejection> {
    let spec = &lease.spec;
    if let Some(Err(message)) = spec
        .metadata
        .as_ref()
        .map(|m| check_free_form("metadata", m))
    {
        return reject(message);
    }
    let expires_on = match (&spec.expires_on, &spec.duration) {
        (Some(_), Some(_)) => {
            return reject("expiresOn: set at most one of expiresOn and duration".to_string());
        }
        (Some(at), None) => at.0,
        (None, Some(text)) => {
            match parse_duration(text).and_then(|d| created.checked_add(d).ok()) {
                Some(at) => at,
                None => {
                    return reject(format!(
                        "duration: {text:?} is not a duration such as 90m, 8h or 7d"
                    ));
                }
            }
        }
        (None, None) => created + policy.default_lease_period,
    };
    if expires_on <= created {
        return reject(format!(
            "expiresOn: Requested lease has a desired expiry date less than today: {}",
            expires_on.as_second()
        ));
    }
    if expires_on.duration_since(created) > policy.max_lease_period {
        return reject(format!(
            "expiresOn: Requested lease has a budget expires on of {}, which is greater than max lease period of {}",
            expires_on.as_second(),
            (created + policy.max_lease_period).as_second()
        ));
    }
    let budget_amount = spec.budget_amount.unwrap_or(policy.max_budget);
    if !budget_amount.is_finite() || budget_amount < 0.0 {
        return reject(format!(
            "budgetAmount: {budget_amount} must be a non-negative number"
        ));
    }
    if budget_amount > policy.max_budget {
        return reject(format!(
            "budgetAmount: Requested lease has a budget amount of {budget_amount}, which is greater than max lease budget amount of {}",
            policy.max_budget
        ));
    }
    Ok(Terms {
        expires_on,
        budget_amount,
    })
}

/// Where the lease stands with respect to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// No account records this lease as its holder.
    None,
    /// An account records this lease as its holder.
    Held,
    /// The lease's status names an account that is gone or now held by another lease.
    Lost,
}

/// Everything the lease decision looks at besides the lease itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaseObservation {
    pub now: Timestamp,
    pub created: Timestamp,
    pub deleting: bool,
    pub holding: Holding,
    /// Another unfinished lease of the same principal was created earlier.
    pub principal_has_earlier_lease: bool,
    /// What the principal has spent in the current budget period, over all their leases.
    pub principal_period_spend: f64,
}

/// The next step for a lease.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseStep {
    /// Refuse it: Inactive/Invalid with the message.
    Reject(Rejection),
    /// Try to take an account (the controller chooses with [`choose_account`]); Pending if none.
    Claim(Terms),
    /// Keep it Active on these terms: credentials Secret in place, wake up at expiry.
    Run(Terms),
    /// End it: release the account, delete the Secret, Inactive with the reason. Idempotent.
    End(LeaseReason),
    /// End it as [`LeaseStep::End`] with reason Expired, recording `at` (its expiry) as when
    /// it ended, however late the operator saw it.
    Expire { at: Timestamp },
    /// Ended and deleted: remove the finalizer.
    Finalize,
    /// Ended: keep as history, then delete it at `at`.
    Retire { at: Timestamp },
}

/// Decides the next step for `lease`.
pub fn decide(lease: &Lease, obs: &LeaseObservation, policy: &LeasePolicy) -> LeaseStep {
    let status = lease.status.as_ref();
    let phase = lease.phase();
    if phase == Some(LeasePhase::Inactive) {
        if obs.holding == Holding::Held {
            // A release was interrupted: finish it.
            return LeaseStep::End(lease.reason().unwrap_or(LeaseReason::Destroyed));
        }
        if obs.deleting {
            return LeaseStep::Finalize;
        }
        let ended = status
            .and_then(|s| s.lease_status_modified_on.as_ref())
            .map(|t| t.0)
            .unwrap_or(obs.created);
        let history_until = ended + policy.history_retention;
        let usage = status.and_then(|s| s.usage.as_ref());
        return LeaseStep::Retire {
            at: usage::usage_kept_until(usage, policy.usage_retention)
                .map_or(history_until, |until| until.max(history_until)),
        };
    }
    if obs.deleting {
        return LeaseStep::End(LeaseReason::Destroyed);
    }
    match obs.holding {
        Holding::Lost => return LeaseStep::End(LeaseReason::AccountOrphaned),
        Holding::Held => {
            // Terms were fixed when the account was claimed; a claim whose status write was
            // lost (or is not yet in the cache) is re-admitted to recover them.
            let recorded = status.and_then(|s| Some((s.expires_on.as_ref()?.0, s.budget_amount?)));
            let terms = match recorded {
                Some((expires_on, budget_amount)) => Terms {
                    expires_on,
                    budget_amount,
                },
                None => match admit(lease, obs.created, policy) {
                    Ok(terms) => terms,
                    Err(_) => return LeaseStep::End(LeaseReason::Invalid),
                },
            };
            if obs.now >= terms.expires_on {
                return LeaseStep::Expire {
                    at: terms.expires_on,
                };
            }
            let spend = usage::lease_spend(status.and_then(|s| s.usage.as_ref()));
            if let Some(reason) =
                usage::over_budget(&terms, spend, obs.principal_period_spend, policy)
            {
                return LeaseStep::End(reason);
            }
            return LeaseStep::Run(terms);
        }
        Holding::None => {}
    }
    if phase == Some(LeasePhase::Active) {
        // Active yet holding nothing: the account was taken from it.
        return LeaseStep::End(LeaseReason::AccountOrphaned);
    }
    let terms = match admit(lease, obs.created, policy) {
        Ok(terms) => terms,
        Err(rejection) => return LeaseStep::Reject(rejection),
    };
    if obs.now >= terms.expires_on {
        return LeaseStep::Expire {
            at: terms.expires_on,
        };
    }
    if let Some(rejection) = usage::principal_budget_rejection(
        &lease.spec.principal_id,
        obs.principal_period_spend,
        policy,
    ) {
        return LeaseStep::Reject(rejection);
    }
    if policy.one_active_lease_per_principal && obs.principal_has_earlier_lease {
        return LeaseStep::Reject(Rejection {
            limit: Limit::OneLeasePerPrincipal,
            message: format!(
                "principal {:?} already has an active lease",
                lease.spec.principal_id
            ),
        });
    }
    LeaseStep::Claim(terms)
}

/// A lease's place in the first-come-first-served queue: creation time (to the second), then
/// the order the operator first saw leases in, then uid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueKey {
    pub created: Timestamp,
    pub arrival: u64,
    pub uid: String,
}

/// An account free to be claimed (Ready, no holder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeAccount {
    /// Kubernetes name.
    pub name: String,
    /// REST id (`spec.id`).
    pub id: String,
}

/// Picks the account a lease should claim. A lease asking for a specific account gets it if it
/// is free. Otherwise leases are served in queue order: the lease at position `n` among the
/// waiting leases (`queue`, any order, including this one) takes the `n`-th free account by name,
/// so concurrent reconciles of different leases aim at different accounts and the oldest
/// waiting lease is served first.
pub fn choose_account<'a>(
    lease: &QueueKey,
    requested: Option<&str>,
    queue: &[QueueKey],
    free: &'a [FreeAccount],
) -> Option<&'a FreeAccount> {
    if let Some(id) = requested {
        return free.iter().find(|a| a.id == id);
    }
    let mut sorted_free: Vec<&FreeAccount> = free.iter().collect();
    sorted_free.sort_by(|a, b| a.name.cmp(&b.name));
    let rank = queue.iter().filter(|other| *other < lease).count();
    sorted_free.get(rank).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{LeaseSpec, LeaseStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }
    const DAY: i64 = 86_400;

    fn spec() -> LeaseSpec {
        LeaseSpec::for_principal("alice")
    }

    fn lease(spec: LeaseSpec, status: Option<LeaseStatus>) -> Lease {
        let mut lease = Lease::new("l", spec);
        lease.status = status;
        lease
    }

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

    // --- admission ---

    #[test]
    fn defaults_give_seven_days_and_max_budget() {
        let terms = admit(&lease(spec(), None), ts(100), &LeasePolicy::default()).unwrap();
        assert_eq!(
            terms,
            Terms {
                expires_on: ts(100 + 7 * DAY),
                budget_amount: 1000.0
            }
        );
    }

    #[test]
    fn explicit_expiry_and_budget_are_kept() {
        let mut s = spec();
        s.expires_on = Some(Time(ts(5000)));
        s.budget_amount = Some(25.5);
        let terms = admit(&lease(s, None), ts(100), &LeasePolicy::default()).unwrap();
        assert_eq!(
            terms,
            Terms {
                expires_on: ts(5000),
                budget_amount: 25.5
            }
        );
    }

    #[test]
    fn duration_counts_from_creation() {
        let mut s = spec();
        s.duration = Some("1d2h30m5s".into());
        let terms = admit(&lease(s, None), ts(100), &LeasePolicy::default()).unwrap();
        assert_eq!(terms.expires_on, ts(100 + DAY + 2 * 3600 + 30 * 60 + 5));
    }

    #[test]
    fn expiry_at_or_before_creation_is_rejected_with_dce_message() {
        for at in [100, 50] {
            let mut s = spec();
            s.expires_on = Some(Time(ts(at)));
            let err = admit(&lease(s, None), ts(100), &LeasePolicy::default()).unwrap_err();
            assert_eq!(
                err.message,
                format!(
                    "expiresOn: Requested lease has a desired expiry date less than today: {at}"
                )
            );
        }
    }

    #[test]
    fn metadata_deeper_than_the_bound_is_refused() {
        let mut s = spec();
        let deep = (0..9).fold(
            serde_json::json!("leaf"),
            |v, _| serde_json::json!({ "a": v }),
        );
        s.metadata = serde_json::from_value(deep).ok();
        let err = admit(&lease(s, None), ts(0), &LeasePolicy::default()).unwrap_err();
        assert_eq!(err.message, "metadata: nested deeper than 8 levels");
    }

    #[test]
    fn period_limit_is_inclusive() {
        let policy = LeasePolicy::default();
        let mut s = spec();
        s.expires_on = Some(Time(ts(7 * DAY)));
        assert!(admit(&lease(s.clone(), None), ts(0), &policy).is_ok());
        s.expires_on = Some(Time(ts(7 * DAY + 1)));
        let err = admit(&lease(s, None), ts(0), &policy).unwrap_err();
        assert!(
            err.message
                .contains("greater than max lease period of 604800"),
            "{}",
            err.message
        );
    }

    #[test]
    fn budget_limit_is_inclusive_and_message_matches_dce() {
        let policy = LeasePolicy::default();
        let mut s = spec();
        s.budget_amount = Some(1000.0);
        assert!(admit(&lease(s.clone(), None), ts(0), &policy).is_ok());
        s.budget_amount = Some(1000.5);
        let err = admit(&lease(s, None), ts(0), &policy).unwrap_err();
        assert_eq!(
            err.message,
            "budgetAmount: Requested lease has a budget amount of 1000.5, which is greater than max lease budget amount of 1000"
        );
    }

    #[test]
    fn negative_or_nan_budget_is_rejected() {
        for amount in [-1.0, f64::NAN, f64::INFINITY] {
            let mut s = spec();
            s.budget_amount = Some(amount);
            assert!(
                admit(&lease(s, None), ts(0), &LeasePolicy::default()).is_err(),
                "{amount}"
            );
        }
    }

    #[test]
    fn expiry_and_duration_together_are_rejected() {
        let mut s = spec();
        s.expires_on = Some(Time(ts(5000)));
        s.duration = Some("1h".into());
        assert_eq!(
            admit(&lease(s, None), ts(0), &LeasePolicy::default())
                .unwrap_err()
                .message,
            "expiresOn: set at most one of expiresOn and duration"
        );
    }

    #[test]
    fn bad_or_overflowing_duration_is_rejected() {
        for text in ["", "h", "5", "5x", "99999999999999999999d"] {
            let mut s = spec();
            s.duration = Some(text.into());
            assert!(
                admit(&lease(s, None), ts(0), &LeasePolicy::default()).is_err(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn parse_duration_units() {
        assert_eq!(parse_duration("90m"), Some(SignedDuration::from_secs(5400)));
        assert_eq!(
            parse_duration("7d"),
            Some(SignedDuration::from_secs(604_800))
        );
        assert_eq!(parse_duration("0s"), Some(SignedDuration::ZERO));
        assert_eq!(
            parse_duration("1h1h"),
            Some(SignedDuration::from_secs(7200))
        );
        assert_eq!(parse_duration("1.5h"), None);
    }

    // --- steps of a new or pending lease ---

    #[test]
    fn new_valid_lease_claims() {
        let step = decide(&lease(spec(), None), &obs(10), &LeasePolicy::default());
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
            decide(&l, &obs(10), &LeasePolicy::default()),
            LeaseStep::Claim(_)
        ));
    }

    #[test]
    fn invalid_lease_is_rejected() {
        let mut s = spec();
        s.budget_amount = Some(5000.0);
        assert!(matches!(
            decide(&lease(s, None), &obs(10), &LeasePolicy::default()),
            LeaseStep::Reject(_)
        ));
    }

    #[test]
    fn second_lease_of_a_principal_is_rejected_unless_allowed() {
        let o = LeaseObservation {
            principal_has_earlier_lease: true,
            ..obs(10)
        };
        let step = decide(&lease(spec(), None), &o, &LeasePolicy::default());
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
            decide(&lease(spec(), None), &o, &relaxed),
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
            decide(&l, &obs(3599), &LeasePolicy::default()),
            LeaseStep::Claim(_)
        ));
        assert_eq!(
            decide(&l, &obs(3600), &LeasePolicy::default()),
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
            decide(&lease(spec(), None), &o, &LeasePolicy::default()),
            LeaseStep::End(LeaseReason::Destroyed)
        );
    }

    // --- active leases ---

    fn active(expires: i64) -> Lease {
        lease(
            spec(),
            with_phase(LeasePhase::Active, LeaseReason::Active, Some(expires), 0),
        )
    }

    #[test]
    fn active_lease_runs_until_expiry_to_the_second() {
        let o = LeaseObservation {
            holding: Holding::Held,
            ..obs(999)
        };
        assert_eq!(
            decide(&active(1000), &o, &LeasePolicy::default()),
            LeaseStep::Run(Terms {
                expires_on: ts(1000),
                budget_amount: 10.0
            })
        );
        let o = LeaseObservation { now: ts(1000), ..o };
        assert_eq!(
            decide(&active(1000), &o, &LeasePolicy::default()),
            LeaseStep::Expire { at: ts(1000) }
        );
    }

    #[test]
    fn a_lease_seen_expired_late_ended_at_its_expiry() {
        // e.g. the operator was down when it expired
        let o = LeaseObservation {
            holding: Holding::Held,
            ..obs(5000)
        };
        assert_eq!(
            decide(&active(1000), &o, &LeasePolicy::default()),
            LeaseStep::Expire { at: ts(1000) }
        );
    }

    fn with_spend(mut l: Lease, amount: f64) -> Lease {
        let status = l.status.get_or_insert_with(LeaseStatus::default);
        status.usage = Some(crate::resources::LeaseUsage {
            daily: vec![crate::resources::DailyCost {
                date: "1970-01-01".into(),
                amount,
            }],
            total: amount,
            currency: "USD".into(),
            ..Default::default()
        });
        l
    }

    #[test]
    fn active_lease_over_its_budget_ends_over_budget() {
        // `active` has a budget of 10.
        let o = LeaseObservation {
            holding: Holding::Held,
            principal_period_spend: 10.5,
            ..obs(999)
        };
        assert!(matches!(
            decide(&with_spend(active(1000), 10.0), &o, &LeasePolicy::default()),
            LeaseStep::Run(_)
        ));
        assert_eq!(
            decide(&with_spend(active(1000), 10.5), &o, &LeasePolicy::default()),
            LeaseStep::End(LeaseReason::OverBudget)
        );
    }

    #[test]
    fn active_lease_of_a_principal_over_the_period_budget_ends() {
        let policy = LeasePolicy {
            principal_budget: 50.0,
            ..LeasePolicy::default()
        };
        let o = LeaseObservation {
            holding: Holding::Held,
            principal_period_spend: 50.01,
            ..obs(999)
        };
        assert_eq!(
            decide(&with_spend(active(1000), 1.0), &o, &policy),
            LeaseStep::End(LeaseReason::OverPrincipalBudget)
        );
    }

    #[test]
    fn expiry_takes_precedence_over_budgets_and_lease_budget_over_principal() {
        let policy = LeasePolicy {
            principal_budget: 5.0,
            ..LeasePolicy::default()
        };
        let over_both = LeaseObservation {
            holding: Holding::Held,
            principal_period_spend: 100.0,
            ..obs(1000)
        };
        assert_eq!(
            decide(&with_spend(active(1000), 100.0), &over_both, &policy),
            LeaseStep::Expire { at: ts(1000) }
        );
        let before_expiry = LeaseObservation {
            now: ts(999),
            ..over_both
        };
        assert_eq!(
            decide(&with_spend(active(1000), 100.0), &before_expiry, &policy),
            LeaseStep::End(LeaseReason::OverBudget)
        );
    }

    #[test]
    fn new_lease_of_a_principal_over_the_period_budget_is_refused() {
        let o = LeaseObservation {
            principal_period_spend: 1000.5,
            ..obs(10)
        };
        match decide(&lease(spec(), None), &o, &LeasePolicy::default()) {
            LeaseStep::Reject(rejection) => assert!(
                rejection.limit == Limit::PrincipalBudget
                    && rejection.message.starts_with(
                        "Unable to create lease: User principal alice has already spent"
                    ),
                "{}",
                rejection.message
            ),
            other => panic!("expected a rejection, got {other:?}"),
        }
        let at_budget = LeaseObservation {
            principal_period_spend: 1000.0,
            ..obs(10)
        };
        assert!(matches!(
            decide(&lease(spec(), None), &at_budget, &LeasePolicy::default()),
            LeaseStep::Claim(_)
        ));
    }

    #[test]
    fn ended_lease_is_kept_while_its_usage_is_retained() {
        let l = with_spend(
            lease(
                spec(),
                with_phase(
                    LeasePhase::Inactive,
                    LeaseReason::OverBudget,
                    Some(1000),
                    1000,
                ),
            ),
            20.0,
        );
        // Usage of 1970-01-01 is kept until 1970-01-02 + 2 days.
        let policy = LeasePolicy {
            history_retention: SignedDuration::from_secs(60),
            usage_retention: SignedDuration::from_hours(48),
            ..LeasePolicy::default()
        };
        assert_eq!(
            decide(&l, &obs(1010), &policy),
            LeaseStep::Retire { at: ts(3 * DAY) }
        );
        let long_history = LeasePolicy {
            history_retention: SignedDuration::from_hours(24 * 10),
            ..policy
        };
        assert_eq!(
            decide(&l, &obs(1010), &long_history),
            LeaseStep::Retire {
                at: ts(1000 + 10 * DAY)
            }
        );
    }

    #[test]
    fn claim_without_status_is_recovered_as_active() {
        // The operator died between claiming the account and writing the lease status.
        let o = LeaseObservation {
            holding: Holding::Held,
            ..obs(10)
        };
        assert_eq!(
            decide(&lease(spec(), None), &o, &LeasePolicy::default()),
            LeaseStep::Run(Terms {
                expires_on: ts(7 * DAY),
                budget_amount: LeasePolicy::default().max_budget
            })
        );
    }

    #[test]
    fn recovered_claim_that_no_longer_admits_is_ended_invalid() {
        let mut s = spec();
        s.budget_amount = Some(1e9);
        let o = LeaseObservation {
            holding: Holding::Held,
            ..obs(10)
        };
        assert_eq!(
            decide(&lease(s, None), &o, &LeasePolicy::default()),
            LeaseStep::End(LeaseReason::Invalid)
        );
    }

    #[test]
    fn deleting_an_active_lease_destroys_it() {
        let o = LeaseObservation {
            holding: Holding::Held,
            deleting: true,
            ..obs(10)
        };
        assert_eq!(
            decide(&active(1000), &o, &LeasePolicy::default()),
            LeaseStep::End(LeaseReason::Destroyed)
        );
    }

    #[test]
    fn active_lease_that_lost_its_account_is_orphaned() {
        for holding in [Holding::Lost, Holding::None] {
            let o = LeaseObservation { holding, ..obs(10) };
            assert_eq!(
                decide(&active(1000), &o, &LeasePolicy::default()),
                LeaseStep::End(LeaseReason::AccountOrphaned)
            );
        }
    }

    // --- inactive leases ---

    #[test]
    fn inactive_lease_is_retired_after_retention() {
        let l = lease(
            spec(),
            with_phase(LeasePhase::Inactive, LeaseReason::Expired, Some(1000), 1000),
        );
        let policy = LeasePolicy {
            history_retention: SignedDuration::from_secs(60),
            ..LeasePolicy::default()
        };
        assert_eq!(
            decide(&l, &obs(1010), &policy),
            LeaseStep::Retire { at: ts(1060) }
        );
    }

    #[test]
    fn inactive_lease_still_holding_finishes_release() {
        let l = lease(
            spec(),
            with_phase(LeasePhase::Inactive, LeaseReason::Expired, Some(1000), 1000),
        );
        let o = LeaseObservation {
            holding: Holding::Held,
            ..obs(1010)
        };
        assert_eq!(
            decide(&l, &o, &LeasePolicy::default()),
            LeaseStep::End(LeaseReason::Expired)
        );
    }

    #[test]
    fn deleted_inactive_lease_is_finalized() {
        let l = lease(
            spec(),
            with_phase(LeasePhase::Inactive, LeaseReason::Invalid, None, 5),
        );
        let o = LeaseObservation {
            deleting: true,
            ..obs(10)
        };
        assert_eq!(decide(&l, &o, &LeasePolicy::default()), LeaseStep::Finalize);
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
    fn no_free_account_means_wait() {
        assert_eq!(
            choose_account(&key(1, "a"), None, &[key(1, "a")], &[]),
            None
        );
    }
}
