//! The DCE API: `/accounts`, `/leases`, `/leases/{id}/auth`, `/leases/auth`, `/usage`, in
//! DCE's JSON shapes, status codes and error bodies.

mod accounts;
pub mod error;
mod leases;
mod paging;
mod usage;

pub(crate) use leases::console_access;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::header;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::facade::{Access, Credentials, FacadeState, User};

pub use error::DceError;

/// The OpenAPI 3 document of the DCE API.
pub const OPENAPI: &str = include_str!("../openapi/dce.yaml");

pub fn routes() -> Router<FacadeState> {
    Router::new()
        .route("/accounts", get(accounts::list).post(accounts::create))
        .route(
            "/accounts/{id}",
            get(accounts::get)
                .put(accounts::update)
                .delete(accounts::delete),
        )
        .route(
            "/leases",
            get(leases::list)
                .post(leases::create)
                .delete(leases::delete_by_body),
        )
        .route("/leases/auth", post(leases::auth_own))
        .route("/leases/{id}", get(leases::get).delete(leases::delete))
        .route("/leases/{id}/auth", post(leases::auth))
        .route("/usage", get(usage::list))
        .route(
            "/openapi/dce.yaml",
            get(|| async { ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI) }),
        )
}

/// The authenticated caller and whether they administer the pool (may list accounts).
struct Caller {
    user: User,
    admin: bool,
}

/// `verb` on leases, checked in the namespace of the Leases the REST API creates, whichever
/// lease a request is about: so one RoleBinding there grants a lease user the whole lease API.
fn lease_access(state: &FacadeState, verb: &'static str) -> Access {
    Access::new(verb, "leases").in_namespace(&state.settings.lease_namespace)
}

impl Caller {
    /// Authenticates the request and checks `access`: 403 without credentials (as DCE), 401
    /// with invalid ones, 403 when RBAC does not allow it.
    async fn authorize(
        state: &FacadeState,
        credentials: &Credentials,
        access: &Access,
    ) -> Result<Caller, DceError> {
        let user = state.auth.authenticate(credentials).await?;
        if !state.auth.allowed(&user, access).await? {
            return Err(DceError::forbidden(&user.username));
        }
        Self::with_role(state, user).await
    }

    /// Authenticates the request and checks `verb` on the REST API's leases (see
    /// [`lease_access`]). The right to lease (`create`) includes reading and ending one's own
    /// leases: which leases a caller sees is decided by principal, which RBAC cannot express, so
    /// a lease user needs no read grant that would show them everyone's Leases through kubectl.
    async fn authorize_leases(
        state: &FacadeState,
        credentials: &Credentials,
        verb: &'static str,
    ) -> Result<Caller, DceError> {
        let user = state.auth.authenticate(credentials).await?;
        let caller = Self::with_role(state, user).await?;
        caller.check_leases(state, verb).await?;
        Ok(caller)
    }

    /// 403 unless the caller may `verb` the REST API's leases, or lease at all.
    async fn check_leases(&self, state: &FacadeState, verb: &'static str) -> Result<(), DceError> {
        let allowed = state
            .auth
            .allowed(&self.user, &lease_access(state, verb))
            .await?
            || (verb != "create"
                && state
                    .auth
                    .allowed(&self.user, &lease_access(state, "create"))
                    .await?);
        if allowed {
            Ok(())
        } else {
            Err(DceError::forbidden(&self.user.username))
        }
    }

    /// The caller, an admin if they may `list accounts`.
    async fn with_role(state: &FacadeState, user: User) -> Result<Caller, DceError> {
        let admin = state
            .auth
            .allowed(&user, &Access::new("list", "accounts"))
            .await?;
        Ok(Caller { user, admin })
    }

    /// Whether the caller may see leases of `principal_id`: admins see all, others their own.
    fn sees(&self, principal_id: &str) -> bool {
        self.admin || self.user.username == principal_id
    }

    /// DCE's 401 for acting on a lease of a principal the caller may not see.
    fn may_act_for(&self, principal_id: &str) -> Result<(), DceError> {
        if self.sees(principal_id) {
            return Ok(());
        }
        let role = if self.admin { "Admin" } else { "User" };
        Err(DceError::unauthorized(format!(
            "User [{}] with role: [{role}] attempted to act on a lease for [{principal_id}], but was not authorized",
            self.user.username
        )))
    }
}

/// A JSON request body, in DCE's words when it is missing (blank), oversized or malformed.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, DceError> {
    let body = body.map_err(|rejection| {
        DceError::with_status(rejection.status(), "ClientError", rejection.body_text())
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DceError::client("invalid request parameters"));
    }
    serde_json::from_slice(&body).map_err(|_| DceError::unparsable_body())
}
