//! RBAC authorization as the API server's RBAC authorizer decides it.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// What a request asks to do (authorization.k8s.io ResourceAttributes / NonResourceAttributes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// Set for non-resource requests such as `/healthz`; then the resource fields are empty.
    pub non_resource_path: Option<String>,
}

/// The RBAC objects in force, as stored JSON objects.
#[derive(Debug, Clone, Default)]
pub struct RbacObjects {
    pub roles: Vec<Value>,
    pub role_bindings: Vec<Value>,
    pub cluster_roles: Vec<Value>,
    pub cluster_role_bindings: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Like the real authorizer's reason, e.g. `RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "z"`.
    pub reason: String,
}

/// Members of `system:masters` are allowed everything, as on a real server.
pub fn authorize(user: &UserInfo, attrs: &Attributes, rbac: &RbacObjects) -> Decision {
    let _ = (user, attrs, rbac);
    todo!()
}

/// ClusterRoles a real server bootstraps (`cluster-admin`, `admin`, `edit`, `view`, discovery
/// roles) and their bindings, as JSON objects to seed the store with.
pub fn bootstrap_policy() -> Vec<Value> {
    todo!()
}
