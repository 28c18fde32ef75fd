//! `auth_codes`: Accounts reached with a static key pair.
//!
//! `PUT` keeps each key pair in a Secret in the operator's namespace, named after the `acc_id`
//! ([`object_name`]), labelled as the operator's and owned by the Account (so deleting the
//! Account, by this API or kubectl, removes its keys). A new Account gets the same name and
//! `spec.id = acc_id` exactly; an existing one is found by `spec.id` whatever its name. Changed
//! keys on an existing Account request a re-validation. `DELETE` deletes the Accounts; an
//! Account held by a lease is removed, with its keys, once the lease ends (its finalizer).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::input::{AuthCode, object_name};
use super::{ApiError, FIELD_MANAGER};
use crate::facade::FacadeState;
use crate::lifecycle::account::SYNC_REQUEST_ANNOTATION;
use crate::lifecycle::credentials::{MANAGED_LABEL, MANAGED_VALUE};
use crate::resources::{
    ACCESS_KEY_ID_KEY, Account, AccountSpec, SECRET_ACCESS_KEY_KEY, SecretReference,
};

/// The validated items of a `PUT`, each with the Account it updates (`None`: create).
pub struct Plan {
    items: Vec<(AuthCode, Option<Account>)>,
}

impl Plan {
    /// RBAC verbs the `PUT` needs: `create` for new Accounts, `update` for existing ones.
    pub fn verbs(&self) -> Vec<&'static str> {
        let mut verbs = Vec::new();
        if self.items.iter().any(|(_, account)| account.is_none()) {
            verbs.push("create");
        }
        if self.items.iter().any(|(_, account)| account.is_some()) || self.items.is_empty() {
            verbs.push("update");
        }
        verbs
    }
}

/// Finds the Account of each item.
pub async fn plan(state: &FacadeState, codes: Vec<AuthCode>) -> Result<Plan, ApiError> {
    let mut items = Vec::with_capacity(codes.len());
    for code in codes {
        let account = find_account(state, &code.acc_id).await?;
        items.push((code, account));
    }
    Ok(Plan { items })
}

/// The Account whose `spec.id` is `acc_id`: from the cache, preferring the name this API gives;
/// else a live read of that name, so an Account created a moment ago is found.
async fn find_account(state: &FacadeState, acc_id: &str) -> Result<Option<Account>, ApiError> {
    let derived = object_name(acc_id);
    let mut cached: Vec<_> = state
        .accounts
        .store()
        .state()
        .into_iter()
        .filter(|a| a.spec.id == acc_id)
        .collect();
    cached.sort_by_key(|a| (a.name_any() != derived, a.name_any()));
    if let Some(account) = cached.first() {
        return Ok(Some(Account::clone(account)));
    }
    let live = Api::<Account>::all(state.client.clone())
        .get_opt(&derived)
        .await
        .map_err(|e| ApiError::kube("reading an account", &e))?;
    Ok(live.filter(|a| a.spec.id == acc_id))
}

/// Writes every item of the plan.
pub async fn put(state: &FacadeState, plan: Plan) -> Result<(), ApiError> {
    for (code, account) in plan.items {
        put_one(state, &code, account).await?;
    }
    Ok(())
}

async fn put_one(
    state: &FacadeState,
    code: &AuthCode,
    account: Option<Account>,
) -> Result<(), ApiError> {
    let namespace = &state.settings.operator_namespace;
    let secrets: Api<Secret> = Api::namespaced(state.client.clone(), namespace);
    let accounts: Api<Account> = Api::all(state.client.clone());
    let secret_name = object_name(&code.acc_id);
    let current = secrets
        .get_opt(&secret_name)
        .await
        .map_err(|e| ApiError::kube("reading a key pair Secret", &e))?;
    if let Some(secret) = &current
        && secret.labels().get(MANAGED_LABEL).map(String::as_str) != Some(MANAGED_VALUE)
    {
        return Err(ApiError::internal(format!(
            "Secret {namespace}/{secret_name} exists and is not managed by dce-operator; \
             it is left alone"
        )));
    }
    let data = key_data(code);
    let keys_changed = current.as_ref().and_then(|s| s.data.as_ref()) != Some(&data);
    let reference = SecretReference {
        name: secret_name.clone(),
        namespace: namespace.clone(),
    };

    let account = match account {
        Some(account) => {
            apply_secret(&secrets, &secret_name, &data, Some(&account)).await?;
            update_account(&accounts, &account, &reference, keys_changed).await?;
            return Ok(());
        }
        None => {
            // Keys first, so the new Account validates against them at once.
            apply_secret(&secrets, &secret_name, &data, None).await?;
            create_account(&accounts, code, &reference, keys_changed).await?
        }
    };
    apply_secret(&secrets, &secret_name, &data, Some(&account)).await
}

fn key_data(code: &AuthCode) -> BTreeMap<String, ByteString> {
    BTreeMap::from([
        (
            ACCESS_KEY_ID_KEY.to_string(),
            ByteString(code.access_key.as_bytes().to_vec()),
        ),
        (
            SECRET_ACCESS_KEY_KEY.to_string(),
            ByteString(code.secret_key.as_bytes().to_vec()),
        ),
    ])
}

/// Creates or updates the key pair Secret, owned by `owner` when it is known.
async fn apply_secret(
    api: &Api<Secret>,
    name: &str,
    data: &BTreeMap<String, ByteString>,
    owner: Option<&Account>,
) -> Result<(), ApiError> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some([(MANAGED_LABEL.to_string(), MANAGED_VALUE.to_string())].into()),
            owner_references: owner.and_then(owner_reference).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(data.clone()),
        type_: Some("Opaque".to_string()),
        ..Secret::default()
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await
    .map_err(|e| ApiError::kube("saving a key pair Secret", &e))?;
    Ok(())
}

fn owner_reference(account: &Account) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: Account::api_version(&()).to_string(),
        kind: Account::kind(&()).to_string(),
        name: account.name_any(),
        uid: account.uid()?,
        ..OwnerReference::default()
    })
}

/// Creates the Account; if a concurrent request created it first, updates that one instead.
async fn create_account(
    api: &Api<Account>,
    code: &AuthCode,
    reference: &SecretReference,
    keys_changed: bool,
) -> Result<Account, ApiError> {
    let account = Account::new(
        &object_name(&code.acc_id),
        AccountSpec {
            id: code.acc_id.clone(),
            aws_account_id: None,
            admin_role_arn: None,
            credentials_secret_ref: Some(reference.clone()),
            principal_role_arn: None,
            metadata: None,
        },
    );
    match api.create(&PostParams::default(), &account).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = api
                .get(&account.name_any())
                .await
                .map_err(|e| ApiError::kube("reading an account", &e))?;
            if existing.spec.id != code.acc_id {
                return Err(ApiError::internal(format!(
                    "Account {} belongs to another acc_id",
                    account.name_any()
                )));
            }
            update_account(api, &existing, reference, keys_changed).await?;
            Ok(existing)
        }
        Err(error) => Err(ApiError::kube("creating an account", &error)),
    }
}

/// Points the Account at the key pair Secret (a spec change, which re-validates it), or, when it
/// already does and the keys changed, requests a re-validation.
async fn update_account(
    api: &Api<Account>,
    account: &Account,
    reference: &SecretReference,
    keys_changed: bool,
) -> Result<(), ApiError> {
    let patch = if account.spec.credentials_secret_ref.as_ref() != Some(reference) {
        json!({ "spec": { "credentialsSecretRef": reference } })
    } else if keys_changed {
        let request = jiff::Timestamp::now().to_string();
        json!({ "metadata": { "annotations": { SYNC_REQUEST_ANNOTATION: request } } })
    } else {
        return Ok(());
    };
    api.patch(
        &account.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| ApiError::kube("updating an account", &e))?;
    Ok(())
}

/// `[{access_key, acc_id}]` of every Account with a key pair Secret, by `acc_id`. A Secret that
/// is missing or lacks the key shows an empty `access_key`. Secret keys are never read out.
pub async fn list(state: &FacadeState) -> Result<Vec<Value>, ApiError> {
    let mut accounts: Vec<_> = state
        .accounts
        .store()
        .state()
        .into_iter()
        .filter_map(|a| {
            let reference = a.spec.credentials_secret_ref.clone()?;
            Some((a.spec.id.clone(), reference))
        })
        .collect();
    accounts.sort_by(|a, b| a.0.cmp(&b.0));
    let namespaces: BTreeSet<&str> = accounts.iter().map(|(_, r)| r.namespace.as_str()).collect();
    let mut access_keys = BTreeMap::new();
    for namespace in namespaces {
        let secrets = Api::<Secret>::namespaced(state.client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map_err(|e| ApiError::kube("listing key pair Secrets", &e))?;
        for secret in secrets {
            let access_key = secret
                .data
                .as_ref()
                .and_then(|d| d.get(ACCESS_KEY_ID_KEY))
                .map(|v| String::from_utf8_lossy(&v.0).into_owned());
            if let Some(access_key) = access_key {
                access_keys.insert((namespace, secret.name_any()), access_key);
            }
        }
    }
    Ok(accounts
        .iter()
        .map(|(acc_id, reference)| {
            let access_key = access_keys
                .get(&(reference.namespace.as_str(), reference.name.clone()))
                .cloned()
                .unwrap_or_default();
            json!({ "access_key": access_key, "acc_id": acc_id })
        })
        .collect())
}

/// Deletes the Accounts of `ids`, after checking that every one exists.
pub async fn delete(state: &FacadeState, ids: &[String]) -> Result<(), ApiError> {
    let mut found = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    for id in ids {
        match find_account(state, id).await? {
            Some(account) => found.push(account),
            None => missing.push(id.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::not_found(format!(
            "no account with acc_id {}",
            missing
                .iter()
                .map(|id| format!("{id:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_info(json!({ "acc_ids": missing })));
    }
    let api: Api<Account> = Api::all(state.client.clone());
    for account in found {
        match api
            .delete(&account.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(ApiError::kube("deleting an account", &error)),
        }
    }
    Ok(())
}
