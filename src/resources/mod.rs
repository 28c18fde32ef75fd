//! The custom resources: `Account` (cluster-scoped pool member) and `Lease` (namespaced).
//!
//! These types are the CRDs; `crdgen` renders them to `crds/*.yaml`. They depend on nothing else
//! in the crate.

mod account;
mod arn;
mod free_form;
mod lease;
mod principal;
mod schema;

pub use account::{
    ACCESS_KEY_ID_KEY, Account, AccountPhase, AccountSpec, AccountStatus, LeaseHolder,
    SECRET_ACCESS_KEY_KEY, SecretReference, is_aws_account_number,
};
pub use arn::Arn;
pub use free_form::{
    MAX_FREE_FORM_BYTES, MAX_FREE_FORM_DEPTH, MAX_FREE_FORM_KEYS, check_free_form,
};
pub use lease::{DailyCost, Lease, LeasePhase, LeaseReason, LeaseSpec, LeaseStatus, LeaseUsage};
pub use principal::{MAX_PRINCIPAL_ID_CHARS, PRINCIPAL_ID_PATTERN, check_principal_id};

/// API group of both resources.
pub const GROUP: &str = "dce.dev";
/// API version of both resources.
pub const VERSION: &str = "v1alpha1";
/// Category shared by both kinds: `kubectl get dce`.
pub const CATEGORY: &str = "dce";

/// Type of the `Ready` condition both kinds carry.
pub const CONDITION_READY: &str = "Ready";

/// The CustomResourceDefinitions, in the order they are written to `crds/`.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![Account::crd(), Lease::crd()]
}
