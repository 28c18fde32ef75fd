//! API credentials for the REST APIs: what DCE clients (dce-cli, scripts) sign requests with,
//! AWS Signature Version 4 style. Each credential is a Secret in the operator's namespace,
//! labelled [`API_KEY_LABEL`], naming the Kubernetes user (and groups) it acts as. Two kinds:
//!
//! - **key pairs**, long-lived, for scripts and CI: whoever may create Secrets there issues one
//!   by naming a user, and the operator generates the pair into it;
//! - **sessions**, from the sign-in page: temporary AWS credentials (AssumeRole of the API
//!   caller role, so AWS's own STS knows them, as dce-cli checks) with their session token and
//!   expiry; labelled [`SESSION_LABEL`] too, deleted by the operator once expired.
//!
//! Deleting the Secret revokes the credential at once; [`DISABLED_ANNOTATION`] suspends it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// Label selecting key-pair Secrets (value `"true"`).
pub const API_KEY_LABEL: &str = "dce.dev/api-key";
/// The Kubernetes user name requests signed with the key act as.
pub const USER_ANNOTATION: &str = "dce.dev/user";
/// Comma-separated Kubernetes groups of that user, for RBAC.
pub const GROUPS_ANNOTATION: &str = "dce.dev/groups";
/// `"true"` suspends the key without deleting it.
pub const DISABLED_ANNOTATION: &str = "dce.dev/disabled";
/// Label of session Secrets (value `"true"`), beside [`API_KEY_LABEL`].
pub const SESSION_LABEL: &str = "dce.dev/api-session";
/// When a session's credentials expire (RFC 3339), as STS said.
pub const EXPIRES_ANNOTATION: &str = "dce.dev/expires-at";
/// Data keys of the credentials, as AWS names them in credentials files.
pub const ACCESS_KEY_ID_KEY: &str = "aws_access_key_id";
pub const SECRET_ACCESS_KEY_KEY: &str = "aws_secret_access_key";
pub const SESSION_TOKEN_KEY: &str = "aws_session_token";
/// Data key of the SHA-256 of the sign-in page's cookie secret for this session.
pub const BROWSER_SECRET_KEY: &str = "browser_secret_sha256";
/// Prefix of session Secrets' names.
pub const SESSION_NAME_PREFIX: &str = "dce-api-session-";
/// Prefix of generated access key ids: tells them from AWS's own (`AKIA…`, `ASIA…`).
const ACCESS_KEY_ID_PREFIX: &str = "DCEK";
/// Length of generated ids and secrets, as AWS's.
const ACCESS_KEY_ID_LENGTH: usize = 20;
const SECRET_ACCESS_KEY_LENGTH: usize = 40;
/// Every authenticated Kubernetes user is in this group; RBAC bindings to it apply to keys too.
const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Who a key pair acts as, and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// A session's token, which every request signed with it must carry.
    pub session_token: Option<String>,
    /// When a session's credentials stop working.
    pub expires_at: Option<Timestamp>,
    /// A session's sign-in page cookie secret, hashed.
    pub browser_secret_sha256: Option<String>,
    pub user: String,
    pub groups: Vec<String>,
    pub disabled: bool,
}

impl std::fmt::Debug for ApiKey {
    /// Never shows the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("access_key_id", &self.access_key_id)
            .field("user", &self.user)
            .field("groups", &self.groups)
            .field("expires_at", &self.expires_at)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

fn annotation<'a>(secret: &'a Secret, name: &str) -> Option<&'a str> {
    secret
        .metadata
        .annotations
        .as_ref()?
        .get(name)
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
}

fn data<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    let value = secret.data.as_ref()?.get(key)?;
    std::str::from_utf8(&value.0)
        .ok()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The key pair a Secret holds, once issued and naming a user; `None` before.
pub fn api_key(secret: &Secret) -> Option<ApiKey> {
    let mut groups: Vec<String> = annotation(secret, GROUPS_ANNOTATION)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|group| !group.is_empty())
        .map(str::to_string)
        .collect();
    if !groups.iter().any(|group| group == AUTHENTICATED_GROUP) {
        groups.push(AUTHENTICATED_GROUP.to_string());
    }
    Some(ApiKey {
        access_key_id: data(secret, ACCESS_KEY_ID_KEY)?.to_string(),
        secret_access_key: data(secret, SECRET_ACCESS_KEY_KEY)?.to_string(),
        session_token: data(secret, SESSION_TOKEN_KEY).map(str::to_string),
        expires_at: annotation(secret, EXPIRES_ANNOTATION).and_then(|at| at.parse().ok()),
        browser_secret_sha256: data(secret, BROWSER_SECRET_KEY).map(str::to_string),
        user: annotation(secret, USER_ANNOTATION)?.to_string(),
        groups,
        disabled: annotation(secret, DISABLED_ANNOTATION) == Some("true"),
    })
}

impl ApiKey {
    /// Whether a session's credentials have expired at `now` (key pairs never do).
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// When a session Secret's credentials expire, if it is one (its [`EXPIRES_ANNOTATION`]); a
/// session whose expiry cannot be read counts as expired.
pub fn session_expiry(secret: &Secret) -> Option<Timestamp> {
    let labels = secret.metadata.labels.as_ref()?;
    if labels.get(SESSION_LABEL).map(String::as_str) != Some("true") {
        return None;
    }
    Some(
        annotation(secret, EXPIRES_ANNOTATION)
            .and_then(|at| at.parse().ok())
            .unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

/// The hex SHA-256 of a sign-in page cookie secret, as a session Secret stores it.
pub fn browser_secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether the operator still has to generate the pair into `secret`: it names a user and
/// lacks an id or a secret. A pair the issuer wrote themselves is left alone.
pub fn needs_issuing(secret: &Secret) -> bool {
    annotation(secret, USER_ANNOTATION).is_some()
        && (data(secret, ACCESS_KEY_ID_KEY).is_none()
            || data(secret, SECRET_ACCESS_KEY_KEY).is_none())
}

/// A fresh key pair's Secret data: an upper-case id and a 40-character secret.
pub fn generate(rng: &mut impl Rng) -> BTreeMap<String, ByteString> {
    let id: String = ACCESS_KEY_ID_PREFIX
        .chars()
        .chain(
            (&mut *rng)
                .sample_iter(Alphanumeric)
                .map(|b| char::from(b).to_ascii_uppercase())
                .take(ACCESS_KEY_ID_LENGTH - ACCESS_KEY_ID_PREFIX.len()),
        )
        .collect();
    let secret: String = rng
        .sample_iter(Alphanumeric)
        .map(char::from)
        .take(SECRET_ACCESS_KEY_LENGTH)
        .collect();
    BTreeMap::from([
        (ACCESS_KEY_ID_KEY.to_string(), ByteString(id.into_bytes())),
        (
            SECRET_ACCESS_KEY_KEY.to_string(),
            ByteString(secret.into_bytes()),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn secret(annotations: &[(&str, &str)], data: Option<BTreeMap<String, ByteString>>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            data,
            ..Secret::default()
        }
    }

    #[test]
    fn generated_pairs_look_like_aws_keys_and_differ() {
        let mut rng = rand::rng();
        let (a, b) = (generate(&mut rng), generate(&mut rng));
        assert_ne!(a, b);
        let id = std::str::from_utf8(&a[ACCESS_KEY_ID_KEY].0).unwrap();
        assert_eq!(id.len(), 20);
        assert!(
            id.starts_with("DCEK")
                && id
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        assert_eq!(a[SECRET_ACCESS_KEY_KEY].0.len(), 40);
    }

    #[test]
    fn a_secret_is_issued_once_it_names_a_user() {
        assert!(!needs_issuing(&secret(&[], None)));
        let requested = secret(&[(USER_ANNOTATION, "alice")], None);
        assert!(needs_issuing(&requested));
        assert_eq!(api_key(&requested), None);
        let issued = secret(
            &[
                (USER_ANNOTATION, "alice"),
                (GROUPS_ANNOTATION, "team-a, team-b,"),
            ],
            Some(generate(&mut rand::rng())),
        );
        assert!(!needs_issuing(&issued));
        let key = api_key(&issued).unwrap();
        assert_eq!(key.user, "alice");
        assert_eq!(key.groups, ["team-a", "team-b", "system:authenticated"]);
        assert!(!key.disabled);
        assert!(!format!("{key:?}").contains(&key.secret_access_key));
    }

    #[test]
    fn the_disabled_annotation_suspends_a_key() {
        let disabled = secret(
            &[(USER_ANNOTATION, "alice"), (DISABLED_ANNOTATION, "true")],
            Some(generate(&mut rand::rng())),
        );
        assert!(api_key(&disabled).unwrap().disabled);
    }

    #[test]
    fn a_session_carries_its_token_and_expiry_and_expires() {
        let mut data = generate(&mut rand::rng());
        data.insert(SESSION_TOKEN_KEY.into(), ByteString(b"token".to_vec()));
        let mut session = secret(
            &[
                (USER_ANNOTATION, "alice"),
                (EXPIRES_ANNOTATION, "2026-12-08T10:00:00Z"),
            ],
            Some(data),
        );
        let at = |text: &str| text.parse::<Timestamp>().unwrap();
        let key = api_key(&session).unwrap();
        assert_eq!(key.session_token.as_deref(), Some("token"));
        assert!(!key.expired(at("2026-12-08T09:59:59Z")));
        assert!(key.expired(at("2026-12-08T10:00:00Z")));
        assert!(!format!("{key:?}").contains("token\""));
        // Only labelled sessions are swept, and an unreadable expiry counts as expired.
        assert_eq!(session_expiry(&session), None);
        session.metadata.labels = Some(BTreeMap::from([(SESSION_LABEL.into(), "true".into())]));
        assert_eq!(session_expiry(&session), Some(at("2026-12-08T10:00:00Z")));
        session
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(EXPIRES_ANNOTATION.into(), "soon".into());
        assert_eq!(session_expiry(&session), Some(Timestamp::UNIX_EPOCH));
    }

    #[test]
    fn key_pairs_never_expire() {
        let pair = secret(&[(USER_ANNOTATION, "ci")], Some(generate(&mut rand::rng())));
        let key = api_key(&pair).unwrap();
        assert_eq!((key.session_token, key.expires_at), (None, None));
    }
}
