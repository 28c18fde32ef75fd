//! `/accounts`: the pool, as DCE shows it. An Account's REST id is `spec.id`; accounts created
//! here are named after their 12-digit id.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};

use super::paging::{self, parse_query};
use super::{Caller, DceError, parse_body};
use crate::aws::{account_of_role_arn, principal_role_arn};
use crate::facade::{Access, Credentials, FacadeState, Listed};
use crate::resources::{
    Account, AccountPhase, AccountSpec, check_free_form, is_aws_account_number,
};

/// An account in DCE's JSON shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    id: String,
    account_status: &'static str,
    admin_role_arn: String,
    principal_role_arn: String,
    principal_policy_hash: String,
    created_on: i64,
    last_modified_on: i64,
    metadata: BTreeMap<String, serde_json::Value>,
}

/// Annotation recording when the account was last changed through the REST API (epoch
/// seconds): DCE's `lastModifiedOn` moves on every update.
const MODIFIED_ANNOTATION: &str = "dce.dev/last-modified-on";
/// How long `POST /accounts` and `PUT /accounts/{id}` try to assume a new admin role before
/// refusing it.
const ADMIN_ROLE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Role session name of that check.
const ADMIN_ROLE_CHECK_SESSION: &str = "dce-operator-admin-role-check";
/// Shortest session STS grants; the credentials are thrown away at once.
const ADMIN_ROLE_CHECK_SECONDS: i32 = 900;

impl AccountView {
    fn of(account: &Account, principal_role_name: &str) -> Self {
        let created_on = account
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| t.0.as_second());
        let status = account.status.as_ref();
        let last_modified_on = status
            .into_iter()
            .flat_map(|s| {
                s.conditions
                    .iter()
                    .map(|c| c.last_transition_time.0.as_second())
            })
            .chain(
                status
                    .and_then(|s| s.last_sync_time.as_ref())
                    .map(|t| t.0.as_second()),
            )
            .chain(
                account
                    .annotations()
                    .get(MODIFIED_ANNOTATION)
                    .and_then(|seconds| seconds.parse::<i64>().ok()),
            )
            .fold(created_on, i64::max);
        let principal_role_arn = account.spec.principal_role_arn.clone().or_else(|| {
            account
                .aws_account_number()
                .map(|number| principal_role_arn(number, principal_role_name))
        });
        Self {
            id: account.spec.id.clone(),
            account_status: status_of(account),
            admin_role_arn: account.spec.admin_role_arn.clone().unwrap_or_default(),
            principal_role_arn: principal_role_arn.unwrap_or_default(),
            principal_policy_hash: status
                .and_then(|s| s.principal_policy_hash.clone())
                .unwrap_or_default(),
            created_on,
            last_modified_on,
            metadata: account.spec.metadata.clone().unwrap_or_default(),
        }
    }
}

/// The account with REST id `id`: from the cache, or, for one created a moment ago and not
/// cached yet, from the API server (accounts created here are named after their id). An
/// account being deleted is gone already.
async fn find(state: &FacadeState, id: &str) -> Result<Arc<Account>, DceError> {
    let not_found = || DceError::not_found("account", id);
    if let Some(account) = state.accounts.store().find(|account| account.spec.id == id) {
        return match account.metadata.deletion_timestamp {
            Some(_) => Err(not_found()),
            None => Ok(account),
        };
    }
    let fresh = if is_aws_account_number(id) {
        Api::<Account>::all(state.client.clone())
            .get_opt(id)
            .await?
    } else {
        None
    };
    fresh
        .filter(|account| account.spec.id == id && account.metadata.deletion_timestamp.is_none())
        .map(Arc::new)
        .ok_or_else(not_found)
}

fn view(state: &FacadeState, account: &Account) -> AccountView {
    AccountView::of(account, &state.settings.principal_role_name)
}

/// The status filter of account lists, also the name of the indexed field.
const ACCOUNT_STATUS: &str = "accountStatus";
/// The cursor parameter of account lists: the last item's id.
const CURSOR: [&str; 1] = ["nextId"];

/// DCE's `accountStatus`: an account not validated yet is NotReady.
fn status_of(account: &Account) -> &'static str {
    account.phase().unwrap_or(AccountPhase::NotReady).as_str()
}

impl Listed for Account {
    /// By id, the `nextId` cursor.
    fn sort_key(&self) -> Vec<String> {
        vec![self.spec.id.clone()]
    }

    fn indexed_fields(&self) -> Vec<(&'static str, String)> {
        vec![(ACCOUNT_STATUS, status_of(self).to_string())]
    }
}

/// `GET /accounts?id&status&accountStatus&limit&nextId`, sorted by id. `status` is DCE's
/// name of the status filter, `accountStatus` this API's earlier one.
pub async fn list(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    credentials: Credentials,
    RawQuery(raw): RawQuery,
) -> Result<Response, DceError> {
    Caller::authorize(&state, &credentials, &Access::new("list", "accounts")).await?;
    let query = parse_query(raw.as_deref());
    let limit = paging::limit(&query)?;
    let status = query.get("status").or_else(|| query.get(ACCOUNT_STATUS));
    let fields: Vec<(&'static str, &str)> = status
        .map(|status| (ACCOUNT_STATUS, status.as_str()))
        .into_iter()
        .collect();
    if let Some(id) = query.get("id") {
        // At most one account has an id: no paging.
        let found: Vec<AccountView> = state
            .accounts
            .store()
            .find(|account| {
                account.spec.id == *id
                    && account.metadata.deletion_timestamp.is_none()
                    && status.is_none_or(|status| status_of(account) == status)
            })
            .map(|account| view(&state, &account))
            .into_iter()
            .collect();
        return Ok(paging::page_response(
            found,
            &headers,
            "/accounts",
            &query,
            None,
        ));
    }
    let cursor = query.get(CURSOR[0]).map(|id| vec![id.clone()]);
    let (page, more) = state.accounts.page(
        cursor.as_deref(),
        &fields,
        |account| account.metadata.deletion_timestamp.is_none(),
        limit,
    );
    let body: Vec<AccountView> = page.iter().map(|a| view(&state, a)).collect();
    let next = page
        .last()
        .filter(|_| more)
        .map(|last| paging::cursor(&CURSOR, &**last));
    Ok(paging::page_response(
        body,
        &headers,
        "/accounts",
        &query,
        next.as_deref(),
    ))
}

/// `GET /accounts/{id}`.
pub async fn get(
    State(state): State<FacadeState>,
    credentials: Credentials,
    Path(id): Path<String>,
) -> Result<Json<AccountView>, DceError> {
    Caller::authorize(&state, &credentials, &Access::new("get", "accounts")).await?;
    let account = find(&state, &id).await?;
    Ok(Json(view(&state, &account)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAccount {
    id: String,
    admin_role_arn: String,
    #[serde(default)]
    principal_role_arn: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, serde_json::Value>>,
}

fn check_role_arn(field: &str, arn: &str) -> Result<(), DceError> {
    if account_of_role_arn(arn).is_none() {
        return Err(DceError::validation(format!(
            "invalid request parameters: {field} must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
        )));
    }
    Ok(())
}

/// `POST /accounts`: adds an account whose admin role can be assumed; it is NotReady until
/// validated (and reset).
pub async fn create(
    State(state): State<FacadeState>,
    credentials: Credentials,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, DceError> {
    let caller =
        Caller::authorize(&state, &credentials, &Access::new("create", "accounts")).await?;
    let request: CreateAccount = parse_body(body)?;
    if !is_aws_account_number(&request.id) {
        return Err(DceError::validation(
            "invalid request parameters: id must be a 12-digit AWS account number",
        ));
    }
    check_role_arn("adminRoleArn", &request.admin_role_arn)?;
    if let Some(arn) = &request.principal_role_arn {
        check_role_arn("principalRoleArn", arn)?;
    }
    check_metadata(request.metadata.as_ref())?;
    let already_exists =
        || DceError::already_exists(format!("account {:?} already exists", request.id));
    if state
        .accounts
        .store()
        .find(|account| account.spec.id == request.id)
        .is_some()
    {
        return Err(already_exists());
    }
    check_admin_role_can_be_assumed(&state, &request.admin_role_arn).await?;
    let mut spec = AccountSpec::with_admin_role(&request.id, &request.admin_role_arn);
    spec.principal_role_arn = request.principal_role_arn.clone();
    spec.metadata = request.metadata.clone();
    let account = Account::new(&request.id, spec);
    let created = match Api::<Account>::all(state.client.clone())
        .create(&PostParams::default(), &account)
        .await
    {
        Ok(created) => created,
        Err(kube::Error::Api(status)) if status.code == 409 => return Err(already_exists()),
        Err(error) => return Err(error.into()),
    };
    tracing::info!(account = %request.id, user = %caller.user.username, "account added through the DCE API");
    Ok((StatusCode::CREATED, Json(view(&state, &created))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAccount {
    #[serde(default)]
    admin_role_arn: Option<String>,
    #[serde(default)]
    principal_role_arn: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, serde_json::Value>>,
}

/// Refuses an admin role the operator cannot assume, as DCE does before it saves one.
/// (The account controller validates the role again, and keeps doing so.)
async fn check_admin_role_can_be_assumed(state: &FacadeState, arn: &str) -> Result<(), DceError> {
    let attempt = state.aws.assume_role(
        None,
        arn,
        ADMIN_ROLE_CHECK_SESSION,
        ADMIN_ROLE_CHECK_SECONDS,
    );
    let failure = match tokio::time::timeout(ADMIN_ROLE_CHECK_TIMEOUT, attempt).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {} s", ADMIN_ROLE_CHECK_TIMEOUT.as_secs()),
    };
    tracing::info!(role = arn, %failure, "new admin role refused: it cannot be assumed");
    Err(DceError::validation(
        "account validation error: adminRoleArn: must be an admin role arn that can be assumed.",
    ))
}

/// `PUT /accounts/{id}`: changes `adminRoleArn` (once it can be assumed), `principalRoleArn`
/// and/or `metadata`, and `lastModifiedOn`. It writes only those fields, so it never conflicts
/// with the controller's status writes. Of two concurrent updates, each field keeps the value
/// written last; `metadata` keys only the other update set may remain.
pub async fn update(
    State(state): State<FacadeState>,
    credentials: Credentials,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AccountView>, DceError> {
    Caller::authorize(&state, &credentials, &Access::new("update", "accounts")).await?;
    let request: UpdateAccount = parse_body(body)?;
    if let Some(arn) = &request.admin_role_arn {
        check_role_arn("adminRoleArn", arn)?;
    }
    if let Some(arn) = &request.principal_role_arn {
        check_role_arn("principalRoleArn", arn)?;
    }
    check_metadata(request.metadata.as_ref())?;
    let account = find(&state, &id).await?;
    if let Some(arn) = &request.admin_role_arn
        && account.spec.admin_role_arn.as_ref() != Some(arn)
    {
        check_admin_role_can_be_assumed(&state, arn).await?;
    }
    // Read again from the API server: the cache may not show an update just made yet, and the
    // keys `metadata` replaces must be those stored.
    let api = Api::<Account>::all(state.client.clone());
    let current = api
        .get_opt(&account.name_any())
        .await?
        .filter(|fresh| fresh.uid() == account.uid() && fresh.metadata.deletion_timestamp.is_none())
        .ok_or_else(|| DceError::not_found("account", &id))?;
    let modified_on = jiff::Timestamp::now().as_second().to_string();
    match api
        .patch(
            &current.name_any(),
            &PatchParams::default(),
            &Patch::Merge(update_patch(&current, &request, &modified_on)),
        )
        .await
    {
        Ok(patched) => Ok(Json(view(&state, &patched))),
        Err(error) => Err(write_failed(error, &id)),
    }
}

/// The merge patch that applies `request` to `account`: the fields it changes and
/// `lastModifiedOn`, for this very object (its uid), whatever its resourceVersion, so that the
/// controller's status writes never make it fail.
fn update_patch(
    account: &Account,
    request: &UpdateAccount,
    modified_on: &str,
) -> serde_json::Value {
    let mut spec = serde_json::Map::new();
    if let Some(arn) = &request.admin_role_arn {
        spec.insert("adminRoleArn".into(), arn.clone().into());
    }
    if let Some(arn) = &request.principal_role_arn {
        spec.insert("principalRoleArn".into(), arn.clone().into());
    }
    if let Some(metadata) = &request.metadata {
        // Replaced as a whole, as DCE does: a merge patch merges objects key by key, so the keys
        // `account` has that are gone are removed explicitly.
        let mut replaced: serde_json::Map<String, serde_json::Value> = account
            .spec
            .metadata
            .iter()
            .flatten()
            .map(|(key, _)| (key.clone(), serde_json::Value::Null))
            .collect();
        replaced.extend(metadata.clone());
        spec.insert("metadata".into(), replaced.into());
    }
    serde_json::json!({
        "metadata": {
            "uid": account.uid(),
            "annotations": {MODIFIED_ANNOTATION: modified_on},
        },
        "spec": spec,
    })
}

/// A failed write of the account `id`: gone (404), or changed since it was read (409).
fn write_failed(error: kube::Error, id: &str) -> DceError {
    match error {
        kube::Error::Api(status) if status.code == 404 => DceError::not_found("account", id),
        kube::Error::Api(status) if status.code == 409 => DceError::conflict(format!(
            "operation cannot be fulfilled on account {id:?}: it changed meanwhile; try again."
        )),
        error => error.into(),
    }
}

/// `DELETE /accounts/{id}`: 204; 409 while leased.
pub async fn delete(
    State(state): State<FacadeState>,
    credentials: Credentials,
    Path(id): Path<String>,
) -> Result<StatusCode, DceError> {
    let caller =
        Caller::authorize(&state, &credentials, &Access::new("delete", "accounts")).await?;
    let api = Api::<Account>::all(state.client.clone());
    let mut account = find(&state, &id).await?;
    // The cache may trail the API server (an account that just became Ready): a stale copy is
    // read again from the API server before the caller is told to retry.
    for fresh in [false, true] {
        if account.phase() == Some(AccountPhase::Leased) || account.holder().is_some() {
            return Err(DceError::conflict(format!(
                "operation cannot be fulfilled on account {id:?}: accountStatus: must not be leased."
            )));
        }
        let params = DeleteParams {
            // Only the object that was checked: a lease may have claimed it since.
            preconditions: Some(kube::api::Preconditions {
                uid: account.uid(),
                resource_version: account.resource_version(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(&account.name_any(), &params).await {
            Ok(_) => break,
            Err(kube::Error::Api(status)) if status.code == 409 && !fresh => {
                account = match api.get_opt(&account.name_any()).await? {
                    Some(current) => std::sync::Arc::new(current),
                    None => return Err(DceError::not_found("account", &id)),
                };
            }
            Err(error) => return Err(write_failed(error, &id)),
        }
    }
    tracing::info!(account = %id, user = %caller.user.username, "account removed through the DCE API");
    Ok(StatusCode::NO_CONTENT)
}

/// The free-form `metadata` within the bounds every way in shares.
fn check_metadata(metadata: Option<&BTreeMap<String, serde_json::Value>>) -> Result<(), DceError> {
    match metadata.map(|m| check_free_form("metadata", m)) {
        Some(Err(message)) => Err(DceError::validation(format!(
            "account validation error: {message}."
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::AccountStatus;

    #[test]
    fn an_update_patch_carries_only_what_changes() {
        let mut account = Account::new(
            "123456789012",
            AccountSpec::with_admin_role("123456789012", "arn:aws:iam::123456789012:role/Admin"),
        );
        account.metadata.uid = Some("uid-1".into());
        account.spec.metadata = Some([("old".to_string(), "x".into())].into());
        let request: UpdateAccount = serde_json::from_str(r#"{"metadata": {"new": 1}}"#).unwrap();
        assert_eq!(
            update_patch(&account, &request, "1700000000"),
            serde_json::json!({
                "metadata": {
                    "uid": "uid-1",
                    "annotations": {MODIFIED_ANNOTATION: "1700000000"},
                },
                "spec": {"metadata": {"old": null, "new": 1}},
            })
        );
    }

    #[test]
    fn principal_policy_hash_comes_from_status() {
        let mut account = Account::new(
            "123456789012",
            AccountSpec::with_admin_role("123456789012", "arn:aws:iam::123456789012:role/Admin"),
        );
        let view = serde_json::to_value(AccountView::of(&account, "DCEPrincipal")).unwrap();
        assert_eq!(view["principalPolicyHash"], "");
        account.status = Some(AccountStatus {
            principal_policy_hash: Some("ab12".into()),
            ..AccountStatus::default()
        });
        let view = serde_json::to_value(AccountView::of(&account, "DCEPrincipal")).unwrap();
        assert_eq!(view["principalPolicyHash"], "ab12");
    }
}
