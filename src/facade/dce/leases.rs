//! `/leases`: leases as DCE shows them. A lease's REST id is the Lease object's uid, so leases
//! created with kubectl are served too. Creating one writes a Lease and waits for the
//! controller's decision; ending one asks the controller to end it (the Lease stays, Inactive,
//! as history) and waits for that.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};

use super::paging::{self, parse_query};
use super::{Caller, DceError, parse_body};
use crate::aws::TemporaryCredentials;
use crate::facade::sorted::Snapshot;
use crate::facade::{Credentials, FacadeState, Listed};
use crate::lifecycle::admission::{
    admit, already_leased_message, principal_budget_rejection, validation_error_message,
};
use crate::lifecycle::budget;
use crate::lifecycle::lease::{END_REQUESTED_ANNOTATION, FreeAccount, end_requested, first_choice};
use crate::lifecycle::usage_store::{principal_spend, store_name, stored_days};
use crate::resources::{Lease, LeasePhase, LeaseReason, LeaseSpec, check_principal_id};

/// How often `POST /leases` and lease ends look at the cache while waiting for the controller.
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// Name prefix of Leases created through the API.
const GENERATE_NAME: &str = "lease-";

/// A lease in DCE's JSON shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseView {
    id: String,
    account_id: String,
    principal_id: String,
    lease_status: &'static str,
    lease_status_reason: &'static str,
    created_on: i64,
    last_modified_on: i64,
    lease_status_modified_on: i64,
    budget_amount: f64,
    budget_currency: String,
    budget_notification_emails: Vec<String>,
    expires_on: i64,
    metadata: BTreeMap<String, serde_json::Value>,
}

impl LeaseView {
    fn of(lease: &Lease, default_budget: f64) -> Self {
        let created_on = lease
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| t.0.as_second());
        let status = lease.status.as_ref();
        let seconds = |time: Option<&Time>| time.map(|t| t.0.as_second());
        let status_modified_on =
            seconds(status.and_then(|s| s.lease_status_modified_on.as_ref())).unwrap_or(created_on);
        Self {
            id: lease.uid().unwrap_or_default(),
            account_id: status
                .and_then(|s| s.account_id.clone())
                .or_else(|| lease.spec.account_id.clone())
                .unwrap_or_default(),
            principal_id: lease.spec.principal_id.clone(),
            lease_status: status_of(lease),
            lease_status_reason: lease
                .reason()
                .unwrap_or(LeaseReason::WaitingForAccount)
                .as_str(),
            created_on,
            last_modified_on: seconds(status.and_then(|s| s.last_modified_on.as_ref()))
                .unwrap_or(status_modified_on),
            lease_status_modified_on: status_modified_on,
            budget_amount: status
                .and_then(|s| s.budget_amount)
                .or(lease.spec.budget_amount)
                .unwrap_or(default_budget),
            budget_currency: lease.spec.budget_currency.clone(),
            budget_notification_emails: lease.spec.budget_notification_emails.clone(),
            expires_on: seconds(status.and_then(|s| s.expires_on.as_ref()))
                .or_else(|| seconds(lease.spec.expires_on.as_ref()))
                .unwrap_or(0),
            metadata: lease.spec.metadata.clone().unwrap_or_default(),
        }
    }

    /// How a deleted lease is shown: ended by its deletion.
    fn destroyed(mut self, now: Timestamp) -> Self {
        self.lease_status = LeasePhase::Inactive.as_str();
        self.lease_status_reason = LeaseReason::Destroyed.as_str();
        self.last_modified_on = now.as_second();
        self.lease_status_modified_on = now.as_second();
        self
    }
}

fn view(state: &FacadeState, lease: &Lease) -> LeaseView {
    LeaseView::of(lease, state.settings.policy.max_budget)
}

/// The account a lease holds, or asked for; empty when neither.
fn account_of(lease: &Lease) -> &str {
    lease
        .status
        .as_ref()
        .and_then(|s| s.account_id.as_deref())
        .or(lease.spec.account_id.as_deref())
        .unwrap_or_default()
}

/// DCE's `leaseStatus`: a lease the controller has not looked at yet is Pending.
fn status_of(lease: &Lease) -> &'static str {
    lease.phase().unwrap_or(LeasePhase::Pending).as_str()
}

/// The lease with REST id `id`.
fn find(state: &FacadeState, id: &str) -> Result<Arc<Lease>, DceError> {
    state
        .leases
        .get_by_uid(id)
        .ok_or_else(|| DceError::not_found("lease", id))
}

/// The lease with REST id `id`, if the caller may act on it: DCE's 401 for another's lease.
fn find_own(state: &FacadeState, caller: &Caller, id: &str) -> Result<Arc<Lease>, DceError> {
    let lease = find(state, id)?;
    caller.may_act_for(&lease.spec.principal_id)?;
    Ok(lease)
}

/// Query parameters of lease lists, which are also the names of the indexed fields.
const PRINCIPAL_ID: &str = "principalId";
const ACCOUNT_ID: &str = "accountId";
const STATUS: &str = "status";
/// The cursor parameters of lease lists: the parts of the last item's sort key and its uid. A
/// cursor needs `nextPrincipalId` or `nextAccountId`; the others default to empty.
const CURSOR: [&str; 3] = ["nextPrincipalId", "nextAccountId", "nextId"];

impl Listed for Lease {
    /// Principal, then the account asked for (empty for any), as in [`CURSOR`]. The assigned account is left out because assignment
    /// would move a lease past a cursor and a pager would see it twice.
    fn sort_key(&self) -> Vec<String> {
        vec![
            self.spec.principal_id.clone(),
            self.spec.account_id.clone().unwrap_or_default(),
        ]
    }

    fn indexed_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            (PRINCIPAL_ID, self.spec.principal_id.clone()),
            (ACCOUNT_ID, account_of(self).to_string()),
            (STATUS, status_of(self).to_string()),
        ]
    }
}

/// How recent a lease is, to pick the newest of one principal and account: created later; in the
/// same second, the one not ended; then by uid, so the choice is stable.
fn recency(lease: &Lease) -> (Option<Timestamp>, bool, Option<&str>) {
    (
        lease.metadata.creation_timestamp.as_ref().map(|t| t.0),
        lease.phase() != Some(LeasePhase::Inactive),
        lease.metadata.uid.as_deref(),
    )
}

/// Whether a newer lease of the same principal on the same account exists. DCE keeps one lease
/// record per principal and account, so the REST API shows only the newest; the Lease objects
/// keep the history. A lease with no account yet is a lease of its own.
fn is_superseded(lease: &Lease, leases: &Snapshot<'_, Lease>) -> bool {
    let account = account_of(lease);
    !account.is_empty()
        && leases
            .find(
                &[
                    (PRINCIPAL_ID, lease.spec.principal_id.as_str()),
                    (ACCOUNT_ID, account),
                ],
                |other| recency(other) > recency(lease),
            )
            .is_some()
}

/// `GET /leases?principalId&accountId&status&limit&nextPrincipalId&nextAccountId&nextId`: the
/// newest lease of each principal and account (see [`is_superseded`]).
pub async fn list(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    credentials: Credentials,
    RawQuery(raw): RawQuery,
) -> Result<Response, DceError> {
    let caller = Caller::authorize_leases(&state, &credentials, "list").await?;
    let query = parse_query(raw.as_deref());
    let limit = paging::limit(&query)?;
    let mut fields: Vec<(&'static str, &str)> = [PRINCIPAL_ID, ACCOUNT_ID, STATUS]
        .into_iter()
        .filter_map(|field| Some((field, query.get(field)?.as_str())))
        .collect();
    if !caller.admin {
        // Narrows the walk to the caller's own leases; `sees` below is the rule itself.
        fields.push((PRINCIPAL_ID, caller.user.username.as_str()));
    }
    let cursor = CURSOR[..2]
        .iter()
        .any(|name| query.contains_key(*name))
        .then(|| CURSOR.map(|name| query.get(name).cloned().unwrap_or_default()));
    let (page, more) = state.leases.page_among(
        cursor.as_ref().map(|cursor| &cursor[..]),
        &fields,
        |lease, leases| caller.sees(&lease.spec.principal_id) && !is_superseded(lease, leases),
        limit,
    );
    let body: Vec<LeaseView> = page.iter().map(|lease| view(&state, lease)).collect();
    let next = page
        .last()
        .filter(|_| more)
        .map(|last| paging::cursor(&CURSOR, &**last));
    Ok(paging::page_response(
        body,
        &headers,
        "/leases",
        &query,
        next.as_deref(),
    ))
}

/// `GET /leases/{id}`.
pub async fn get(
    State(state): State<FacadeState>,
    credentials: Credentials,
    Path(id): Path<String>,
) -> Result<Json<LeaseView>, DceError> {
    let caller = Caller::authorize_leases(&state, &credentials, "get").await?;
    let lease = find_own(&state, &caller, &id)?;
    Ok(Json(view(&state, &lease)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateLease {
    principal_id: String,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    budget_amount: Option<f64>,
    #[serde(default)]
    budget_currency: Option<String>,
    #[serde(default)]
    budget_notification_emails: Option<Vec<String>>,
    /// Epoch seconds; 0 or absent means the default lease period.
    #[serde(default)]
    expires_on: Option<i64>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, serde_json::Value>>,
}

impl CreateLease {
    /// The Lease spec asked for, or why the request is invalid.
    fn into_spec(self) -> Result<LeaseSpec, DceError> {
        let invalid =
            |detail: &str| DceError::validation(format!("invalid request parameters: {detail}"));
        let principal_id = self.principal_id.trim().to_string();
        check_principal_id(&principal_id).map_err(|rule| invalid(&rule))?;
        let mut spec = LeaseSpec::for_principal(principal_id);
        spec.account_id = self.account_id.filter(|a| !a.is_empty());
        if spec.account_id.as_ref().is_some_and(|a| a.len() > 256) {
            return Err(invalid("accountId must be at most 256 characters"));
        }
        if let Some(currency) = self.budget_currency {
            if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(
                    "budgetCurrency must be an ISO 4217 code such as USD",
                ));
            }
            spec.budget_currency = currency;
        }
        spec.budget_amount = self.budget_amount;
        let emails = self.budget_notification_emails.unwrap_or_default();
        if emails.len() > 64 {
            return Err(invalid("at most 64 budgetNotificationEmails"));
        }
        spec.budget_notification_emails = emails;
        spec.expires_on = match self.expires_on {
            None | Some(0) => None,
            Some(seconds) => Some(Time(
                Timestamp::from_second(seconds)
                    .map_err(|_| invalid("expiresOn must be epoch seconds"))?,
            )),
        };
        spec.metadata = self.metadata;
        Ok(spec)
    }
}

/// Whether `principal` has an unfinished lease other than `except`, the one-lease-per-principal
/// rule as the controller applies it (a lease it has not looked at yet counts).
fn has_unfinished_lease(state: &FacadeState, principal: &str, except: Option<&str>) -> bool {
    state
        .leases
        .find(&[(PRINCIPAL_ID, principal)], |other| {
            other.metadata.deletion_timestamp.is_none()
                && other.phase() != Some(LeasePhase::Inactive)
                && other.metadata.uid.as_deref() != except
        })
        .is_some()
}

/// DCE's answer to a request of `principal`, who already has a lease: DCE first picks the Ready
/// account the request would get (500 when there is none) and then refuses the principal with a
/// 409 that names that account, not the one the principal holds.
fn already_leased(state: &FacadeState, principal: &str, requested: Option<&str>) -> DceError {
    // The account cache may not show a claim the lease cache shows already: they are fed by
    // separate watches.
    let active_lease_of = |account: &str| {
        let fields = [(ACCOUNT_ID, account), (STATUS, LeasePhase::Active.as_str())];
        state.leases.find(&fields, |_| true).is_some()
    };
    let free: Vec<FreeAccount> = state
        .accounts
        .store()
        .state()
        .iter()
        .filter(|account| account.is_free() && !active_lease_of(&account.spec.id))
        .map(|account| FreeAccount {
            name: account.name_any(),
            id: account.spec.id.clone(),
        })
        .collect();
    match first_choice(requested, &free) {
        Some(account) => DceError::already_exists(already_leased_message(principal, &account.id)),
        None => DceError::pool_exhausted(),
    }
}

/// `POST /leases`: 201 with the Active lease, once the controller assigned it an account.
pub async fn create(
    State(state): State<FacadeState>,
    credentials: Credentials,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, DceError> {
    let namespace = state.settings.lease_namespace.clone();
    let caller = Caller::authorize_leases(&state, &credentials, "create").await?;
    let request: CreateLease = parse_body(body)?;
    let spec = request.into_spec()?;
    caller.may_act_for(&spec.principal_id)?;
    let mut lease = Lease::new("", spec);
    // The controller applies the same rules; checking first answers with DCE's errors and
    // writes nothing.
    let policy = &state.settings.policy;
    if let Err(rejection) = admit(&lease, Timestamp::now(), policy) {
        return Err(DceError::validation(rejection.api_message()));
    }
    let principal = lease.spec.principal_id.clone();
    let cached = state.leases.store().state();
    let store = state
        .usage_stores
        .get(&ObjectRef::new(&store_name(&principal)).within(&state.settings.operator_namespace));
    let spent = principal_spend(
        cached.iter().map(|l| l.as_ref()),
        &stored_days(store.as_deref()),
        &principal,
        budget::period_start(Timestamp::now(), policy.principal_budget_period),
    );
    if let Some(rejection) = principal_budget_rejection(&principal, spent, policy) {
        return Err(DceError::validation(rejection.api_message()));
    }
    if policy.one_active_lease_per_principal && has_unfinished_lease(&state, &principal, None) {
        return Err(already_leased(
            &state,
            &principal,
            lease.spec.account_id.as_deref(),
        ));
    }

    lease.metadata.name = None;
    lease.metadata.generate_name = Some(GENERATE_NAME.to_string());
    let api = Api::<Lease>::namespaced(state.client.clone(), &namespace);
    let created = api.create(&PostParams::default(), &lease).await?;
    tracing::info!(lease = %created.name_any(), namespace, user = %caller.user.username, "lease requested through the DCE API");
    // Its own task, so a client that hangs up does not stop the clean-up of a failed lease.
    let outcome = tokio::spawn(settle(state.clone(), api, created))
        .await
        .map_err(|_| DceError::server("The lease request failed; try again"))?;
    outcome.map(|lease| (StatusCode::CREATED, Json(view(&state, &lease))).into_response())
}

/// Waits, at most the settle timeout, for the controller's decision on `created`: the Active
/// lease, or the error to answer once the lease is deleted again.
async fn settle(
    state: FacadeState,
    api: Api<Lease>,
    created: Lease,
) -> Result<Arc<Lease>, DceError> {
    let uid = created.uid().unwrap_or_default();
    let name = created.name_any();
    let timeout = state.settings.lease_settle_timeout;
    let decided = tokio::time::timeout(timeout, async {
        loop {
            if let Some(current) = state.leases.get_by_uid(&uid)
                && current.phase().is_some()
            {
                return current;
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    })
    .await;
    let error = match decided {
        Ok(lease) if lease.phase() == Some(LeasePhase::Active) => return Ok(lease),
        Ok(lease) if lease.phase() == Some(LeasePhase::Pending) => DceError::pool_exhausted(),
        // Refused: a concurrent request for the same principal got there first, or a limit.
        Ok(lease)
            if state.settings.policy.one_active_lease_per_principal
                && has_unfinished_lease(&state, &lease.spec.principal_id, Some(&uid)) =>
        {
            already_leased(
                &state,
                &lease.spec.principal_id,
                lease.spec.account_id.as_deref(),
            )
        }
        Ok(lease) => DceError::validation(validation_error_message(
            lease
                .status
                .as_ref()
                .and_then(|s| s.message.as_deref())
                .unwrap_or("the lease was refused"),
        )),
        Err(_) => {
            tracing::warn!(lease = %name, timeout_seconds = timeout.as_secs(), "no decision on a lease requested through the DCE API; is the operator leading?");
            DceError::server(format!(
                "No account was assigned to the lease within {} s; try again",
                timeout.as_secs()
            ))
        }
    };
    // Leave nothing behind: the request failed, so its Lease goes.
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    if let Err(error) = api.delete(&name, &params).await {
        tracing::warn!(lease = %name, %error, "could not remove a lease whose creation failed");
    }
    Err(error)
}

/// Ends `lease` if the caller may: asks the controller to end it and waits, at most the
/// settle timeout, for it to be Inactive. It answers as the ended lease.
async fn end(
    state: &FacadeState,
    caller: &Caller,
    lease: &Lease,
) -> Result<Json<LeaseView>, DceError> {
    let id = lease.uid().unwrap_or_default();
    if lease.phase() != Some(LeasePhase::Active)
        || lease.metadata.deletion_timestamp.is_some()
        || end_requested(lease)
    {
        return Err(DceError::conflict(format!(
            "operation cannot be fulfilled on lease {id:?}: leaseStatus: must be active lease."
        )));
    }
    let namespace = lease.namespace().unwrap_or_default();
    caller.check_leases(state, "delete").await?;
    // The uid makes the patch apply to this lease only, not a namesake created since.
    let patch = serde_json::json!({
        "metadata": {
            "uid": id,
            "annotations": {END_REQUESTED_ANNOTATION: Timestamp::now().to_string()},
        },
    });
    match Api::<Lease>::namespaced(state.client.clone(), &namespace)
        .patch(
            &lease.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            return Err(DceError::not_found("lease", &id));
        }
        Err(error) => return Err(error.into()),
    }
    tracing::info!(lease = %lease.name_any(), namespace, user = %caller.user.username, "lease end requested through the DCE API");
    let ended = tokio::time::timeout(state.settings.lease_settle_timeout, async {
        loop {
            match state.leases.get_by_uid(&id) {
                Some(current) if current.phase() == Some(LeasePhase::Inactive) => {
                    return Some(current);
                }
                None => return None,
                Some(_) => tokio::time::sleep(SETTLE_POLL).await,
            }
        }
    })
    .await;
    Ok(Json(match ended {
        Ok(Some(current)) => view(state, &current),
        // Deleted meanwhile, or the controller is slow: the end is recorded and will happen.
        _ => view(state, lease).destroyed(Timestamp::now()),
    }))
}

/// `DELETE /leases/{id}`.
pub async fn delete(
    State(state): State<FacadeState>,
    credentials: Credentials,
    Path(id): Path<String>,
) -> Result<Json<LeaseView>, DceError> {
    let caller = Caller::authorize_leases(&state, &credentials, "get").await?;
    let lease = find_own(&state, &caller, &id)?;
    end(&state, &caller, &lease).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteLease {
    principal_id: String,
    account_id: String,
}

/// `DELETE /leases` with `{principalId, accountId}`: ends that principal's active lease of
/// that account.
pub async fn delete_by_body(
    State(state): State<FacadeState>,
    credentials: Credentials,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LeaseView>, DceError> {
    let caller = Caller::authorize_leases(&state, &credentials, "list").await?;
    let request: DeleteLease = parse_body(body)?;
    caller.may_act_for(&request.principal_id)?;
    let fields = [
        (PRINCIPAL_ID, request.principal_id.as_str()),
        (ACCOUNT_ID, request.account_id.as_str()),
    ];
    // The Active lease if there is one, else the newest, as listed (an ended one answers 409).
    let lease = state
        .leases
        .find(&fields, |lease| lease.phase() == Some(LeasePhase::Active))
        .or_else(|| {
            let (newest, _) = state.leases.page_among(
                None,
                &fields,
                |lease, leases| !is_superseded(lease, leases),
                1,
            );
            newest.into_iter().next()
        })
        .ok_or_else(|| {
            DceError::not_found(
                "lease",
                &format!(
                    "with Principal ID {} and Account ID {}",
                    request.principal_id, request.account_id
                ),
            )
        })?;
    end(&state, &caller, &lease).await
}

/// Credentials for a lease, as `POST /leases/{id}/auth` returns them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseAuth {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    console_url: String,
}

/// `POST /leases/{id}/auth`: credentials for that lease (see [`issue_credentials`]); DCE's 404
/// for someone else's lease, 401 unless it is Active.
pub async fn auth(
    State(state): State<FacadeState>,
    credentials: Credentials,
    Path(id): Path<String>,
) -> Result<Response, DceError> {
    let caller = Caller::authorize_leases(&state, &credentials, "get").await?;
    // Unlike the other lease operations, DCE answers 404 here for someone else's lease.
    let lease = find(&state, &id)?;
    if !caller.sees(&lease.spec.principal_id) {
        return Err(DceError::not_found("lease", &id));
    }
    if lease.phase() != Some(LeasePhase::Active) || lease.metadata.deletion_timestamp.is_some() {
        return Err(DceError::unauthorized(format!(
            "lease {id:?} is not active"
        )));
    }
    issue_credentials(&state, &caller, &lease).await
}

/// `POST /leases/auth`, what `dce leases login` calls without a lease id: as
/// `POST /leases/{id}/auth` for the caller's own Active lease (an admin's too), else DCE's 404.
pub async fn auth_own(
    State(state): State<FacadeState>,
    credentials: Credentials,
) -> Result<Response, DceError> {
    let caller = Caller::authorize_leases(&state, &credentials, "get").await?;
    let username = caller.user.username.as_str();
    let active = [
        (PRINCIPAL_ID, username),
        (STATUS, LeasePhase::Active.as_str()),
    ];
    let lease = state
        .leases
        .find(&active, |lease| lease.metadata.deletion_timestamp.is_none())
        .ok_or_else(|| DceError::not_found("lease for user", username))?;
    issue_credentials(&state, &caller, &lease).await
}

/// 201 with fresh credentials in the account of `lease`, an Active lease the caller may use,
/// with the caller as the role session name, and a console sign-in URL.
async fn issue_credentials(
    state: &FacadeState,
    caller: &Caller,
    lease: &Lease,
) -> Result<Response, DceError> {
    let (credentials, console_url) = console_access(state, lease, &caller.user.username).await?;
    let body = LeaseAuth {
        access_key_id: credentials.access_key_id.clone(),
        secret_access_key: credentials.secret_access_key.clone(),
        session_token: credentials.session_token.clone(),
        console_url,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Fresh credentials in the account of `lease` for `user` (the role session name), and a
/// console sign-in URL with them. The caller has checked that `user` may use the lease.
pub(crate) async fn console_access(
    state: &FacadeState,
    lease: &Lease,
    user: &str,
) -> Result<(TemporaryCredentials, String), DceError> {
    let id = lease.uid().unwrap_or_default();
    let account_name = lease.status.as_ref().and_then(|s| s.account_name.clone());
    let account = account_name
        .and_then(|name| state.accounts.store().get(&ObjectRef::new(&name)))
        .ok_or_else(|| DceError::server(format!("the account of lease {id:?} is not known")))?;
    let credentials = crate::controllers::lease::principal_credentials(
        &state.client,
        &state.aws,
        &state.metrics,
        &account,
        &state.settings.principal_role_name,
        state.settings.policy.credentials_lifetime,
        user,
    )
    .await
    .map_err(|error| {
        tracing::warn!(lease = %lease.name_any(), %error, "lease credentials could not be issued");
        DceError::server("Credentials could not be issued for the lease; try again")
    })?;
    let console_url = state
        .aws
        .console_sign_in_url(&credentials, "dce-operator")
        .await
        .map_err(|error| {
            tracing::warn!(lease = %lease.name_any(), %error, "console sign-in URL could not be built");
            DceError::server("A console sign-in URL could not be built; try again")
        })?;
    Ok((credentials, console_url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::LeaseStatus;

    fn lease(uid: &str, created: i64, phase: LeasePhase) -> Lease {
        let mut lease = Lease::new(uid, LeaseSpec::for_principal("alice"));
        lease.metadata.uid = Some(uid.into());
        lease.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        lease.status = Some(LeaseStatus {
            lease_status: Some(phase),
            ..LeaseStatus::default()
        });
        lease
    }

    #[test]
    fn the_newest_lease_is_the_last_created_then_the_one_not_ended() {
        let ended = lease("b", 100, LeasePhase::Inactive);
        let later = lease("a", 101, LeasePhase::Inactive);
        let same_second = lease("a", 100, LeasePhase::Active);
        assert!(recency(&later) > recency(&ended));
        assert!(recency(&same_second) > recency(&ended));
        assert!(recency(&later) > recency(&same_second));
    }
}
