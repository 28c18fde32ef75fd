//! Credentials Secret decisions: what it holds, when to refresh it, whether it needs a write.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

/// Label on every Secret the operator manages; its watch selects on it.
pub const MANAGED_LABEL: &str = "dce.dev/managed-by";
/// Value of [`MANAGED_LABEL`].
pub const MANAGED_VALUE: &str = "dce-operator";
/// Annotation holding the hash of the data the operator wrote, so tampering is detected.
pub const DATA_HASH_ANNOTATION: &str = "dce.dev/data-hash";
/// Annotation naming the lease (namespace/name) a Secret belongs to.
pub const LEASE_ANNOTATION: &str = "dce.dev/lease";
/// Annotation naming the AWS account (its 12-digit id) whose credentials a Secret holds, so
/// credentials for any other account than the lease's are noticed and replaced.
pub const ACCOUNT_ANNOTATION: &str = "dce.dev/account";

/// Fraction of a credential's life after which it is refreshed.
const REFRESH_AT_FRACTION: f64 = 0.8;
/// Never refresh later than this before expiry, however short-lived the credential.
const MIN_HEADROOM: SignedDuration = SignedDuration::from_secs(60);

/// When to refresh credentials issued at `issued_at` that expire at `expires_at`: at 80 % of
/// their life, but at least a minute before they expire, and never before issue.
pub fn refresh_at(issued_at: Timestamp, expires_at: Timestamp) -> Timestamp {
    let life = expires_at.duration_since(issued_at);
    if life <= SignedDuration::ZERO {
        return issued_at;
    }
    let by_fraction = issued_at + life.mul_f64(REFRESH_AT_FRACTION);
    let by_headroom = expires_at - MIN_HEADROOM;
    by_fraction.min(by_headroom).max(issued_at)
}

/// How long before credentials of `lifetime` expire they are due for refresh (see
/// [`refresh_at`]).
pub fn refresh_lead(lifetime: SignedDuration) -> SignedDuration {
    let expires_at = Timestamp::UNIX_EPOCH + lifetime;
    expires_at.duration_since(refresh_at(Timestamp::UNIX_EPOCH, expires_at))
}

/// The issue time of credentials, recovered from their expiry and the requested lifetime.
pub fn issued_at(expires_at: Timestamp, lifetime: SignedDuration) -> Timestamp {
    expires_at - lifetime
}

/// The key/value data of a lease's credentials Secret.
pub fn secret_data(
    access_key_id: &str,
    secret_access_key: &str,
    session_token: &str,
    expires_at: Timestamp,
    region: &str,
) -> BTreeMap<String, String> {
    let credentials_file = format!(
        "[default]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {secret_access_key}\naws_session_token = {session_token}\n"
    );
    BTreeMap::from([
        ("AWS_ACCESS_KEY_ID".to_string(), access_key_id.to_string()),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            secret_access_key.to_string(),
        ),
        ("AWS_SESSION_TOKEN".to_string(), session_token.to_string()),
        (
            "AWS_CREDENTIAL_EXPIRATION".to_string(),
            expires_at.to_string(),
        ),
        ("AWS_DEFAULT_REGION".to_string(), region.to_string()),
        ("credentials".to_string(), credentials_file),
    ])
}

/// Hash of Secret data as stored (bytes), independent of key order.
pub fn data_hash<'a>(data: impl IntoIterator<Item = (&'a String, &'a [u8])>) -> String {
    let mut entries: Vec<_> = data.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = Sha256::new();
    for (key, value) in entries {
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value);
    }
    hex::encode(hasher.finalize())
}

/// What is known of the Secret with the lease's credentials name.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretObservation {
    Absent,
    /// Exists but is not controlled (owner reference) by this lease: never touched.
    NotOwned,
    /// Controlled by this lease: the operator's own, whatever a user did to its labels.
    Owned {
        /// Carries the managed label (without it the operator's watch no longer sees it).
        labelled: bool,
        /// The hash annotation the operator wrote.
        recorded_hash: Option<String>,
        /// Hash of the data actually in the Secret.
        actual_hash: String,
        /// Expiry of the credentials in it, if readable.
        expires_at: Option<Timestamp>,
        /// The account its credentials are for, as recorded when they were written.
        account: Option<String>,
    },
}

/// What to do about a lease's credentials Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretAction {
    /// Issue new credentials and create the Secret.
    Create,
    /// Issue new credentials and overwrite the Secret (tampered, or due for refresh).
    Refresh(RefreshCause),
    /// Nothing to do until `next` (the scheduled refresh).
    Keep { next: Timestamp },
    /// Someone else's Secret holds the name: report, never overwrite.
    Conflict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshCause {
    Tampered,
    Due,
    /// Asked for through the refresh annotation ("sync all").
    Requested,
    /// The credentials are for another account than the lease's (or do not say which).
    OtherAccount,
}

impl RefreshCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tampered => "tampered",
            Self::Due => "due",
            Self::Requested => "requested",
            Self::OtherAccount => "other-account",
        }
    }
}

/// A requested refresh turns keeping intact credentials into refreshing them now; creating,
/// repairing and conflicts are decided as before.
pub fn with_refresh_request(action: SecretAction, requested: bool) -> SecretAction {
    match action {
        SecretAction::Keep { .. } if requested => SecretAction::Refresh(RefreshCause::Requested),
        other => other,
    }
}

/// Decides the Secret action for an Active lease holding `account` (its 12-digit id).
pub fn secret_action(
    observed: &SecretObservation,
    account: &str,
    lifetime: SignedDuration,
    now: Timestamp,
) -> SecretAction {
    match observed {
        SecretObservation::Absent => SecretAction::Create,
        SecretObservation::NotOwned => SecretAction::Conflict,
        SecretObservation::Owned {
            labelled,
            recorded_hash,
            actual_hash,
            expires_at,
            account: recorded_account,
        } => {
            if !labelled || recorded_hash.as_deref() != Some(actual_hash.as_str()) {
                return SecretAction::Refresh(RefreshCause::Tampered);
            }
            if recorded_account.as_deref() != Some(account) {
                return SecretAction::Refresh(RefreshCause::OtherAccount);
            }
            let Some(expires_at) = *expires_at else {
                return SecretAction::Refresh(RefreshCause::Tampered);
            };
            let due = refresh_at(issued_at(expires_at, lifetime), expires_at);
            if now >= due {
                SecretAction::Refresh(RefreshCause::Due)
            } else {
                SecretAction::Keep { next: due }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::fixtures::ts;

    const HOUR: SignedDuration = SignedDuration::from_hours(1);

    #[test]
    fn refresh_at_eighty_percent_of_life() {
        assert_eq!(refresh_at(ts(0), ts(3600)), ts(2880));
        assert_eq!(refresh_at(ts(1000), ts(1000 + 43_200)), ts(1000 + 34_560));
    }

    #[test]
    fn refresh_keeps_a_minute_of_headroom_for_short_credentials() {
        // 80 % of 200 s is 160 s, but that leaves only 40 s: refresh at expiry - 60 s.
        assert_eq!(refresh_at(ts(0), ts(200)), ts(140));
        // Shorter than the headroom: refresh immediately, never before issue.
        assert_eq!(refresh_at(ts(100), ts(130)), ts(100));
        assert_eq!(refresh_at(ts(100), ts(50)), ts(100));
    }

    #[test]
    fn secret_data_has_env_and_credentials_file() {
        let data = secret_data("AKIA1", "s3cr3t", "tok", ts(3600), "us-east-1");
        assert_eq!(data["AWS_ACCESS_KEY_ID"], "AKIA1");
        assert_eq!(data["AWS_SECRET_ACCESS_KEY"], "s3cr3t");
        assert_eq!(data["AWS_SESSION_TOKEN"], "tok");
        assert_eq!(data["AWS_CREDENTIAL_EXPIRATION"], "1970-01-01T01:00:00Z");
        assert!(data["credentials"].starts_with("[default]\naws_access_key_id = AKIA1\n"));
        assert!(data["credentials"].contains("aws_session_token = tok\n"));
    }

    #[test]
    fn hash_is_order_independent_and_sensitive_to_any_change() {
        let a = [
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ];
        let b = [
            ("b".to_string(), b"2".to_vec()),
            ("a".to_string(), b"1".to_vec()),
        ];
        let h = |d: &[(String, Vec<u8>)]| data_hash(d.iter().map(|(k, v)| (k, v.as_slice())));
        assert_eq!(h(&a), h(&b));
        assert_ne!(
            h(&a),
            h(&[
                ("a".to_string(), b"1".to_vec()),
                ("b".to_string(), b"3".to_vec())
            ])
        );
        // Boundaries between key and value are part of the hash.
        assert_ne!(
            h(&[("ab".to_string(), b"c".to_vec())]),
            h(&[("a".to_string(), b"bc".to_vec())])
        );
    }

    const ACCOUNT: &str = "111111111111";

    fn owned(recorded: &str, actual: &str, expires: Option<i64>) -> SecretObservation {
        SecretObservation::Owned {
            labelled: true,
            recorded_hash: Some(recorded.to_string()),
            actual_hash: actual.to_string(),
            expires_at: expires.map(ts),
            account: Some(ACCOUNT.to_string()),
        }
    }

    #[test]
    fn absent_secret_is_created() {
        assert_eq!(
            secret_action(&SecretObservation::Absent, ACCOUNT, HOUR, ts(0)),
            SecretAction::Create
        );
    }

    #[test]
    fn foreign_secret_is_never_touched() {
        assert_eq!(
            secret_action(&SecretObservation::NotOwned, ACCOUNT, HOUR, ts(0)),
            SecretAction::Conflict
        );
    }

    #[test]
    fn tampered_secret_is_repaired() {
        assert_eq!(
            secret_action(&owned("h1", "h2", Some(3600)), ACCOUNT, HOUR, ts(0)),
            SecretAction::Refresh(RefreshCause::Tampered)
        );
        let unlabelled = SecretObservation::Owned {
            labelled: false,
            recorded_hash: Some("h".into()),
            actual_hash: "h".into(),
            expires_at: Some(ts(3600)),
            account: Some(ACCOUNT.to_string()),
        };
        assert_eq!(
            secret_action(&unlabelled, ACCOUNT, HOUR, ts(0)),
            SecretAction::Refresh(RefreshCause::Tampered)
        );
        let no_annotation = SecretObservation::Owned {
            labelled: true,
            recorded_hash: None,
            actual_hash: "h".into(),
            expires_at: Some(ts(3600)),
            account: Some(ACCOUNT.to_string()),
        };
        assert_eq!(
            secret_action(&no_annotation, ACCOUNT, HOUR, ts(0)),
            SecretAction::Refresh(RefreshCause::Tampered)
        );
        assert_eq!(
            secret_action(&owned("h", "h", None), ACCOUNT, HOUR, ts(0)),
            SecretAction::Refresh(RefreshCause::Tampered)
        );
    }

    #[test]
    fn credentials_for_another_account_or_for_none_recorded_are_replaced() {
        let mut secret = owned("h", "h", Some(3600));
        if let SecretObservation::Owned { account, .. } = &mut secret {
            *account = Some("222222222222".into());
        }
        assert_eq!(
            secret_action(&secret, ACCOUNT, HOUR, ts(0)),
            SecretAction::Refresh(RefreshCause::OtherAccount)
        );
        if let SecretObservation::Owned { account, .. } = &mut secret {
            *account = None;
        }
        assert_eq!(
            secret_action(&secret, ACCOUNT, HOUR, ts(0)),
            SecretAction::Refresh(RefreshCause::OtherAccount)
        );
    }

    #[test]
    fn a_refresh_request_refreshes_intact_credentials_only() {
        let keep = SecretAction::Keep { next: ts(100) };
        assert_eq!(
            with_refresh_request(keep, true),
            SecretAction::Refresh(RefreshCause::Requested)
        );
        assert_eq!(with_refresh_request(keep, false), keep);
        for action in [
            SecretAction::Create,
            SecretAction::Conflict,
            SecretAction::Refresh(RefreshCause::Tampered),
        ] {
            assert_eq!(with_refresh_request(action, true), action);
        }
    }

    #[test]
    fn intact_secret_is_kept_until_refresh_time_then_refreshed() {
        let secret = owned("h", "h", Some(3600));
        assert_eq!(
            secret_action(&secret, ACCOUNT, HOUR, ts(0)),
            SecretAction::Keep { next: ts(2880) }
        );
        assert_eq!(
            secret_action(&secret, ACCOUNT, HOUR, ts(2879)),
            SecretAction::Keep { next: ts(2880) }
        );
        assert_eq!(
            secret_action(&secret, ACCOUNT, HOUR, ts(2880)),
            SecretAction::Refresh(RefreshCause::Due)
        );
        assert_eq!(
            secret_action(&secret, ACCOUNT, HOUR, ts(4000)),
            SecretAction::Refresh(RefreshCause::Due)
        );
    }
}
