//! Shared server state: the store, the served resources, identities and request counters.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use local_apimachinery::rbac::{Attributes, RbacObjects, UserInfo};
use serde_json::Value;
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::registry::Registry;
use crate::status::ApiResult;
use crate::store::{Key, Mutation, Objects, Store};
use crate::{AuthorizationDecision, RequestStats, crd};

/// Changes the history keeps for watches and consistent list snapshots.
pub const HISTORY_LIMIT: usize = 10_000;

pub const CRD_STORAGE: &str = "apiextensions.k8s.io/customresourcedefinitions";

pub struct App {
    pub store: Store,
    pub registry: Registry,
    pub auth: Authenticator,
    pub stats: Stats,
    pub audit: Audit,
    /// `host:port` the server listens on, for discovery.
    pub address: String,
    /// Flips to true when the server shuts down; long-running requests end.
    pub shutdown: watch::Receiver<bool>,
}

impl App {
    /// Commits a mutation of one object and keeps the served CRD resources in step.
    pub fn write<F>(&self, key: &Key, dry_run: bool, f: F) -> ApiResult<Option<Arc<Value>>>
    where
        F: FnOnce(&Objects, Option<&Arc<Value>>) -> ApiResult<Mutation>,
    {
        let out = self.store.mutate(key, dry_run, f)?;
        if key.resource == CRD_STORAGE && !dry_run {
            self.refresh_crds();
        }
        Ok(out)
    }

    pub fn refresh_crds(&self) {
        let crds = self
            .store
            .list(CRD_STORAGE, None, None)
            .map(|(l, _)| l)
            .unwrap_or_default();
        let infos = crds
            .iter()
            .flat_map(|(_, crd)| crd::served_resources(crd))
            .map(Arc::new)
            .collect();
        self.registry.set_custom(infos);
    }

    /// The RBAC objects currently stored, for the authorizer.
    pub fn rbac_objects(&self) -> RbacObjects {
        let all = |plural: &str| {
            self.store
                .list(&format!("rbac.authorization.k8s.io/{plural}"), None, None)
                .map(|(l, _)| l.into_iter().map(|(_, v)| (*v).clone()).collect())
                .unwrap_or_default()
        };
        RbacObjects {
            roles: all("roles"),
            role_bindings: all("rolebindings"),
            cluster_roles: all("clusterroles"),
            cluster_role_bindings: all("clusterrolebindings"),
        }
    }
}

/// Request counts by verb.
#[derive(Default)]
pub struct Stats {
    counters: [AtomicU64; 8],
}

const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

impl Stats {
    pub fn count(&self, verb: &str) {
        if let Some(i) = VERBS.iter().position(|v| *v == verb) {
            self.counters[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> RequestStats {
        let c = |i: usize| self.counters[i].load(Ordering::Relaxed);
        RequestStats {
            get: c(0),
            list: c(1),
            watch: c(2),
            create: c(3),
            update: c(4),
            patch: c(5),
            delete: c(6),
            deletecollection: c(7),
        }
    }
}

/// The authorization decisions of the audited users, in the order they were made.
pub struct Audit {
    users: BTreeSet<String>,
    decisions: Mutex<Vec<AuthorizationDecision>>,
}

impl Audit {
    pub fn new(users: &[String]) -> Self {
        Audit {
            users: users.iter().cloned().collect(),
            decisions: Mutex::default(),
        }
    }

    pub fn record(&self, user: &UserInfo, attrs: &Attributes, allowed: bool) {
        if !self.users.contains(&user.username) {
            return;
        }
        let decision = AuthorizationDecision {
            user: user.username.clone(),
            verb: attrs.verb.clone(),
            api_group: attrs.api_group.clone(),
            resource: attrs.resource.clone(),
            subresource: attrs.subresource.clone(),
            namespace: attrs.namespace.clone(),
            name: attrs.name.clone(),
            non_resource_path: attrs.non_resource_path.clone(),
            allowed,
        };
        self.decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(decision);
    }

    pub fn decisions(&self) -> Vec<AuthorizationDecision> {
        self.decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
