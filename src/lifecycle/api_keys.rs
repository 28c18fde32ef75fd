//! API key pairs for the REST APIs: what DCE clients (dce-cli, scripts) sign requests with,
//! AWS Signature Version 4 style. Each key pair is a Secret in the operator's namespace,
//! labelled [`API_KEY_LABEL`], naming the Kubernetes user (and groups) it acts as; the operator
//! generates the pair into it. Whoever may create Secrets there may issue keys, so RBAC decides;
//! deleting the Secret revokes the key, [`DISABLED_ANNOTATION`] suspends it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::Rng;
use rand::distr::Alphanumeric;

/// Label selecting key-pair Secrets (value `"true"`).
pub const API_KEY_LABEL: &str = "dce.dev/api-key";
/// The Kubernetes user name requests signed with the key act as.
pub const USER_ANNOTATION: &str = "dce.dev/user";
/// Comma-separated Kubernetes groups of that user, for RBAC.
pub const GROUPS_ANNOTATION: &str = "dce.dev/groups";
/// `"true"` suspends the key without deleting it.
pub const DISABLED_ANNOTATION: &str = "dce.dev/disabled";
/// Data keys of the pair, as AWS names them in credentials files.
pub const ACCESS_KEY_ID_KEY: &str = "aws_access_key_id";
pub const SECRET_ACCESS_KEY_KEY: &str = "aws_secret_access_key";
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
        user: annotation(secret, USER_ANNOTATION)?.to_string(),
        groups,
        disabled: annotation(secret, DISABLED_ANNOTATION) == Some("true"),
    })
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
}
