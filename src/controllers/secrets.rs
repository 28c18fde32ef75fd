//! Secret I/O: the lease credentials Secret, and static key pairs referenced by Accounts.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::{Api, Resource, ResourceExt};

use super::Error;
use super::error::is_status;
use crate::aws::{StaticKeys, TemporaryCredentials};
use crate::lifecycle::credentials::{
    self, ACCOUNT_ANNOTATION, DATA_HASH_ANNOTATION, LEASE_ANNOTATION, MANAGED_LABEL, MANAGED_VALUE,
    SecretObservation,
};
use crate::resources::{ACCESS_KEY_ID_KEY, Lease, SECRET_ACCESS_KEY_KEY, SecretReference};

/// Name of a lease's credentials Secret.
pub fn credentials_secret_name(lease: &Lease) -> String {
    lease
        .spec
        .secret_name
        .clone()
        .unwrap_or_else(|| format!("{}-aws-credentials", lease.name_any()))
}

/// Ownership is the controller owner reference the operator set: a label a user can drop (or
/// copy onto their own Secret) does not decide it.
fn is_owned_by(secret: &Secret, owner_uid: &str) -> bool {
    secret
        .owner_references()
        .iter()
        .any(|o| o.uid == owner_uid && o.controller == Some(true))
}

fn is_labelled(secret: &Secret) -> bool {
    secret.labels().get(MANAGED_LABEL).map(String::as_str) == Some(MANAGED_VALUE)
}

fn hash_of(secret: &Secret) -> String {
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    credentials::data_hash(data.iter().map(|(k, v)| (k, v.0.as_slice())))
}

/// Whether a managed credentials Secret is as the operator wrote it: data matching its hash, and
/// the account recorded. A change to one that stays intact is the operator's own write.
pub fn is_intact(secret: &Secret) -> bool {
    is_labelled(secret)
        && secret.annotations().get(DATA_HASH_ANNOTATION) == Some(&hash_of(secret))
        && secret.annotations().contains_key(ACCOUNT_ANNOTATION)
}

/// The Lease that controls `secret`, if any.
pub fn owning_lease(secret: &Secret) -> Option<kube::runtime::reflector::ObjectRef<Lease>> {
    let owner = secret
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Lease")?;
    Some(kube::runtime::reflector::ObjectRef::new(&owner.name).within(&secret.namespace()?))
}

/// Reads the Secret with the lease's credentials name and classifies it; with the
/// resourceVersion of the lease's own Secret, which guards its overwrite.
pub async fn observe(
    api: &Api<Secret>,
    name: &str,
    lease_uid: &str,
) -> Result<(SecretObservation, Option<String>), Error> {
    let Some(secret) = api.get_opt(name).await.map_err(Error::Kube)? else {
        return Ok((SecretObservation::Absent, None));
    };
    if !is_owned_by(&secret, lease_uid) {
        return Ok((SecretObservation::NotOwned, None));
    }
    let expires_at = secret
        .data
        .as_ref()
        .and_then(|d| d.get("AWS_CREDENTIAL_EXPIRATION"))
        .and_then(|v| std::str::from_utf8(&v.0).ok())
        .and_then(|s| s.parse::<Timestamp>().ok());
    let observation = SecretObservation::Owned {
        labelled: is_labelled(&secret),
        recorded_hash: secret.annotations().get(DATA_HASH_ANNOTATION).cloned(),
        actual_hash: hash_of(&secret),
        expires_at,
        account: secret.annotations().get(ACCOUNT_ANNOTATION).cloned(),
    };
    Ok((observation, secret.resource_version()))
}

/// The credentials a lease's Secret is written with: for which account, and the region.
pub struct SecretContent<'a> {
    pub creds: &'a TemporaryCredentials,
    /// The AWS account (12-digit id) they are for.
    pub account: &'a str,
    pub region: &'a str,
}

/// Creates or overwrites the lease's credentials Secret. `replace_version` is the resourceVersion
/// of the operator's own Secret, guarding the overwrite; `None` creates, failing if the name is
/// taken.
pub async fn write(
    api: &Api<Secret>,
    lease: &Lease,
    name: &str,
    replace_version: Option<&str>,
    content: SecretContent<'_>,
) -> Result<(), Error> {
    let SecretContent {
        creds,
        account,
        region,
    } = content;
    let data: BTreeMap<String, ByteString> = credentials::secret_data(
        &creds.access_key_id,
        &creds.secret_access_key,
        &creds.session_token,
        creds.expiration,
        region,
    )
    .into_iter()
    .map(|(k, v)| (k, ByteString(v.into_bytes())))
    .collect();
    let hash = credentials::data_hash(data.iter().map(|(k, v)| (k, v.0.as_slice())));
    let owner = lease
        .controller_owner_ref(&())
        .ok_or_else(|| Error::Invalid("lease has no uid yet".into()))?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: lease.namespace(),
            labels: Some(BTreeMap::from([(
                MANAGED_LABEL.to_string(),
                MANAGED_VALUE.to_string(),
            )])),
            annotations: Some(BTreeMap::from([
                (DATA_HASH_ANNOTATION.to_string(), hash),
                (ACCOUNT_ANNOTATION.to_string(), account.to_string()),
                (
                    LEASE_ANNOTATION.to_string(),
                    format!(
                        "{}/{}",
                        lease.namespace().unwrap_or_default(),
                        lease.name_any()
                    ),
                ),
            ])),
            owner_references: Some(vec![owner]),
            resource_version: replace_version.map(str::to_string),
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: Some("Opaque".to_string()),
        ..Secret::default()
    };
    match replace_version {
        None => api.create(&PostParams::default(), &secret).await?,
        Some(_) => api.replace(name, &PostParams::default(), &secret).await?,
    };
    Ok(())
}

/// Deletes the lease's credentials Secret if it is the operator's own for this lease.
pub async fn delete_if_owned(api: &Api<Secret>, name: &str, lease_uid: &str) -> Result<(), Error> {
    let Some(secret) = api.get_opt(name).await.map_err(Error::Kube)? else {
        return Ok(());
    };
    if !is_owned_by(&secret, lease_uid) {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reads a static key pair from the Secret an Account references.
pub async fn read_static_keys(
    client: &kube::Client,
    reference: &SecretReference,
) -> Result<StaticKeys, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &reference.namespace);
    let secret = api
        .get_opt(&reference.name)
        .await
        .map_err(Error::Kube)?
        .ok_or_else(|| {
            Error::Invalid(format!(
                "credentials Secret {}/{} not found",
                reference.namespace, reference.name
            ))
        })?;
    let field = |key: &str| -> Result<String, Error> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "credentials Secret {}/{} has no key {key}",
                    reference.namespace, reference.name
                ))
            })?;
        String::from_utf8(bytes.0.clone())
            .map(|s| s.trim().to_string())
            .map_err(|_| {
                Error::Invalid(format!(
                    "credentials Secret {}/{} key {key} is not UTF-8",
                    reference.namespace, reference.name
                ))
            })
    };
    Ok(StaticKeys {
        access_key_id: field(ACCESS_KEY_ID_KEY)?,
        secret_access_key: field(SECRET_ACCESS_KEY_KEY)?,
    })
}
