//! The resources the server serves: built-in kinds and every established CRD version.

use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::status::Target;

/// Behaviour that is not plain storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    None,
    Namespace,
    Crd,
    /// Create-only review resources that are answered, not stored.
    TokenReview,
    SubjectAccessReview,
    SelfSubjectAccessReview,
    LocalSubjectAccessReview,
}

#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    /// Storage resource, shared by kinds served under two groups (core and events.k8s.io Events).
    pub storage: String,
    /// Kinds whose strategy maintains `metadata.generation`.
    pub has_generation: bool,
    /// A delete that completes answers with the object instead of a Status.
    pub return_deleted_object: bool,
    /// Deleting without a propagationPolicy orphans dependents (batch/v1 Jobs, for compatibility).
    pub orphan_by_default: bool,
    /// Updates must carry a resourceVersion (custom resources).
    pub requires_resource_version: bool,
    pub special: Special,
    /// The CRD version's `openAPIV3Schema`, for custom resources.
    pub schema: Option<Value>,
    pub printer_columns: Vec<Value>,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn target(&self) -> Target<'_> {
        Target {
            group: &self.group,
            resource: &self.plural,
        }
    }

    pub fn is_custom(&self) -> bool {
        self.schema.is_some()
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        match self.special {
            Special::TokenReview
            | Special::SubjectAccessReview
            | Special::SelfSubjectAccessReview
            | Special::LocalSubjectAccessReview => vec!["create"],
            Special::Namespace => vec![
                "create", "delete", "get", "list", "patch", "update", "watch",
            ],
            _ => vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ],
        }
    }

    pub fn is_review(&self) -> bool {
        !matches!(
            self.special,
            Special::None | Special::Namespace | Special::Crd
        )
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    status: bool,
    generation: bool,
    special: Special,
}

const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        kind,
        namespaced,
        short_names: &[],
        status: false,
        generation: false,
        special: Special::None,
    }
}

impl Builtin {
    const fn short(mut self, s: &'static [&'static str]) -> Self {
        self.short_names = s;
        self
    }
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
    const fn special(mut self, s: Special) -> Self {
        self.special = s;
        self
    }
}

const BUILTINS: &[Builtin] = &[
    b("", "v1", "namespaces", "Namespace", false)
        .short(&["ns"])
        .status()
        .special(Special::Namespace),
    b("", "v1", "secrets", "Secret", true),
    b("", "v1", "configmaps", "ConfigMap", true).short(&["cm"]),
    b("", "v1", "serviceaccounts", "ServiceAccount", true).short(&["sa"]),
    b("", "v1", "services", "Service", true)
        .short(&["svc"])
        .status(),
    b("", "v1", "events", "Event", true).short(&["ev"]),
    // Stored only (nothing schedules them), so manifests that include Pods can be applied.
    b("", "v1", "pods", "Pod", true).short(&["po"]).status(),
    b("events.k8s.io", "v1", "events", "Event", true).short(&["ev"]),
    b("coordination.k8s.io", "v1", "leases", "Lease", true),
    b("apps", "v1", "deployments", "Deployment", true)
        .short(&["deploy"])
        .status()
        .generation(),
    b("batch", "v1", "jobs", "Job", true).status().generation(),
    b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
    )
    .short(&["pdb"])
    .status()
    .generation(),
    b(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
    )
    .short(&["netpol"])
    .generation(),
    b("networking.k8s.io", "v1", "ingresses", "Ingress", true)
        .short(&["ing"])
        .status()
        .generation(),
    b("rbac.authorization.k8s.io", "v1", "roles", "Role", true),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    )
    .short(&["crd", "crds"])
    .status()
    .generation()
    .special(Special::Crd),
    b(
        "authentication.k8s.io",
        "v1",
        "tokenreviews",
        "TokenReview",
        false,
    )
    .special(Special::TokenReview),
    b(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
    )
    .special(Special::SubjectAccessReview),
    b(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
    )
    .special(Special::SelfSubjectAccessReview),
    b(
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        true,
    )
    .special(Special::LocalSubjectAccessReview),
];

fn builtin_info(x: &Builtin) -> ResourceInfo {
    // Kinds kubectl groups under `all`.
    let categories = match x.plural {
        "pods" | "services" | "deployments" | "jobs" => vec!["all".to_string()],
        _ => vec![],
    };
    ResourceInfo {
        group: x.group.into(),
        version: x.version.into(),
        plural: x.plural.into(),
        singular: x.kind.to_lowercase(),
        kind: x.kind.into(),
        namespaced: x.namespaced,
        short_names: x.short_names.iter().map(|s| s.to_string()).collect(),
        categories,
        status_subresource: x.status,
        // Both Event APIs read and write the same objects.
        storage: if x.plural == "events" {
            "/events".into()
        } else {
            format!("{}/{}", x.group, x.plural)
        },
        has_generation: x.generation,
        return_deleted_object: x.plural == "serviceaccounts",
        orphan_by_default: x.plural == "jobs",
        requires_resource_version: false,
        special: x.special,
        schema: None,
        printer_columns: vec![],
    }
}

/// The served resources; CRD-backed entries are replaced whenever CRDs change.
pub struct Registry {
    builtins: Vec<Arc<ResourceInfo>>,
    custom: RwLock<Vec<Arc<ResourceInfo>>>,
}

impl Registry {
    pub fn new() -> Self {
        Registry {
            builtins: BUILTINS.iter().map(|x| Arc::new(builtin_info(x))).collect(),
            custom: RwLock::new(vec![]),
        }
    }

    pub fn set_custom(&self, custom: Vec<Arc<ResourceInfo>>) {
        *self.custom.write().unwrap_or_else(|e| e.into_inner()) = custom;
    }

    pub fn all(&self) -> Vec<Arc<ResourceInfo>> {
        let custom = self.custom.read().unwrap_or_else(|e| e.into_inner());
        self.builtins.iter().chain(custom.iter()).cloned().collect()
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.all()
            .into_iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// Any served version of a group-resource (for authorization of references, GC, kinds).
    pub fn by_storage(&self, storage: &str) -> Option<Arc<ResourceInfo>> {
        self.all().into_iter().find(|r| r.storage == storage)
    }

    /// The resource serving `apiVersion`/`kind`, for ownerReferences and review requests.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.all()
            .into_iter()
            .find(|r| r.api_version() == api_version && r.kind == kind)
    }

    /// `(group, versions)` in the order discovery lists them.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = vec![];
        for r in self.all() {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version.clone());
                    }
                }
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out
    }
}
