//! RBAC authorization as the API server's RBAC authorizer decides it.

use serde_json::{Value, json};

use crate::selector::LabelSelector;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The identity a service account's token authenticates as, with the groups the server adds.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        UserInfo {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            uid: uid.to_string(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }
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
    /// Empty when denied, and for `system:masters`.
    pub reason: String,
}

fn text<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Members of `system:masters` are allowed everything, as on a real server. Otherwise the
/// request is allowed by the first binding (ClusterRoleBindings, then RoleBindings of the
/// request's namespace) whose subject matches the user and whose role has a matching rule.
/// Aggregated ClusterRoles are evaluated with the rules the aggregation controller computes.
pub fn authorize(user: &UserInfo, attrs: &Attributes, rbac: &RbacObjects) -> Decision {
    if user.groups.iter().any(|g| g == "system:masters") {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let cluster_roles = aggregate_cluster_roles(&rbac.cluster_roles);
    let find_cluster_role = |name: &str| {
        cluster_roles
            .iter()
            .find(|r| text(r, "/metadata/name") == name)
    };
    for binding in &rbac.cluster_role_bindings {
        if text(binding, "/roleRef/kind") != "ClusterRole" {
            continue;
        }
        let Some(subject) = matching_subject(binding, user, "") else {
            continue;
        };
        let role_name = text(binding, "/roleRef/name");
        if find_cluster_role(role_name).is_some_and(|role| role_allows(role, attrs)) {
            let reason = format!(
                "RBAC: allowed by ClusterRoleBinding {} of ClusterRole {} to {}",
                quote(text(binding, "/metadata/name")),
                quote(role_name),
                describe_subject(subject, "")
            );
            return Decision {
                allowed: true,
                reason,
            };
        }
    }
    if !attrs.namespace.is_empty() {
        for binding in rbac
            .role_bindings
            .iter()
            .filter(|b| text(b, "/metadata/namespace") == attrs.namespace)
        {
            let namespace = attrs.namespace.as_str();
            let Some(subject) = matching_subject(binding, user, namespace) else {
                continue;
            };
            let role_kind = text(binding, "/roleRef/kind");
            let role_name = text(binding, "/roleRef/name");
            let role = match role_kind {
                "ClusterRole" => find_cluster_role(role_name),
                "Role" => rbac.roles.iter().find(|r| {
                    text(r, "/metadata/name") == role_name
                        && text(r, "/metadata/namespace") == namespace
                }),
                _ => None,
            };
            if role.is_some_and(|role| role_allows(role, attrs)) {
                let reason = format!(
                    "RBAC: allowed by RoleBinding {} of {role_kind} {} to {}",
                    quote(&format!("{}/{namespace}", text(binding, "/metadata/name"))),
                    quote(role_name),
                    describe_subject(subject, namespace)
                );
                return Decision {
                    allowed: true,
                    reason,
                };
            }
        }
    }
    Decision {
        allowed: false,
        reason: String::new(),
    }
}

fn quote(s: &str) -> String {
    crate::go_format::quote(s)
}

fn describe_subject(subject: &Value, binding_namespace: &str) -> String {
    let kind = text(subject, "/kind");
    let name = text(subject, "/name");
    if kind == "ServiceAccount" {
        let ns = Some(text(subject, "/namespace"))
            .filter(|ns| !ns.is_empty())
            .unwrap_or(binding_namespace);
        format!("{kind} {}", quote(&format!("{name}/{ns}")))
    } else {
        format!("{kind} {}", quote(name))
    }
}

fn matching_subject<'b>(
    binding: &'b Value,
    user: &UserInfo,
    binding_namespace: &str,
) -> Option<&'b Value> {
    binding.get("subjects")?.as_array()?.iter().find(|subject| {
        let name = text(subject, "/name");
        match text(subject, "/kind") {
            "User" => name == user.username,
            "Group" => user.groups.iter().any(|g| g == name),
            "ServiceAccount" => {
                let ns = Some(text(subject, "/namespace"))
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or(binding_namespace);
                !ns.is_empty() && user.username == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

fn role_allows(role: &Value, attrs: &Attributes) -> bool {
    role.get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|rule| rule_allows(rule, attrs))
}

/// `rbac.RuleAllows`.
pub fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    let verbs = strings(rule.get("verbs"));
    if !verbs.iter().any(|v| *v == "*" || *v == attrs.verb) {
        return false;
    }
    if let Some(path) = &attrs.non_resource_path {
        return strings(rule.get("nonResourceURLs")).iter().any(|url| {
            *url == "*"
                || url == path
                || (url.ends_with('*') && path.starts_with(url.trim_end_matches('*')))
        });
    }
    let groups = strings(rule.get("apiGroups"));
    if !groups.iter().any(|g| *g == "*" || *g == attrs.api_group) {
        return false;
    }
    let combined = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let resource_matches = strings(rule.get("resources")).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!attrs.subresource.is_empty()
                && r.len() == attrs.subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(attrs.subresource.as_str()))
    });
    let names = strings(rule.get("resourceNames"));
    resource_matches && (names.is_empty() || names.contains(&attrs.name.as_str()))
}

/// ClusterRoles with the rules the clusterrole-aggregation controller would have written: an
/// aggregated role gets the rules of every other ClusterRole whose labels match one of its
/// `aggregationRule.clusterRoleSelectors` (in name order, without duplicates), transitively.
pub fn aggregate_cluster_roles(cluster_roles: &[Value]) -> Vec<Value> {
    let mut by_name: Vec<&Value> = cluster_roles.iter().collect();
    by_name.sort_by(|a, b| text(a, "/metadata/name").cmp(text(b, "/metadata/name")));
    cluster_roles
        .iter()
        .map(|role| {
            if role.get("aggregationRule").is_none_or(Value::is_null) {
                return role.clone();
            }
            let mut out = role.clone();
            out["rules"] = Value::Array(effective_rules(role, &by_name, &mut vec![]));
            out
        })
        .collect()
}

fn effective_rules<'v>(
    role: &'v Value,
    all: &[&'v Value],
    visiting: &mut Vec<&'v str>,
) -> Vec<Value> {
    let name = text(role, "/metadata/name");
    let Some(rule) = role.get("aggregationRule").filter(|r| !r.is_null()) else {
        return role
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
    };
    if visiting.contains(&name) {
        return vec![];
    }
    visiting.push(name);
    let selectors: Vec<LabelSelector> = rule
        .get("clusterRoleSelectors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| LabelSelector::from_label_selector(s).ok())
        .collect();
    let mut rules: Vec<Value> = Vec::new();
    for other in all.iter().filter(|o| text(o, "/metadata/name") != name) {
        let labels = other.pointer("/metadata/labels");
        if selectors.iter().any(|s| s.matches(labels)) {
            for r in effective_rules(other, all, visiting) {
                if !rules.contains(&r) {
                    rules.push(r);
                }
            }
        }
    }
    visiting.pop();
    rules
}

// ---------------------------------------------------------------------------------------------
// Bootstrap policy
// ---------------------------------------------------------------------------------------------

const AGGREGATE_PREFIX: &str = "rbac.authorization.k8s.io/aggregate-to-";
const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

fn bootstrap_metadata(name: &str, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert(
        "kubernetes.io/bootstrapping".into(),
        Value::from("rbac-defaults"),
    );
    for (k, v) in extra_labels {
        labels.insert((*k).into(), Value::from(*v));
    }
    json!({
        "name": name,
        "labels": labels,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}
    })
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": bootstrap_metadata(name, labels), "rules": rules})
}

fn aggregated_cluster_role(name: &str, labels: &[(&str, &str)], aggregate_from: &str) -> Value {
    let mut role = cluster_role(name, labels, json!([]));
    role["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {format!("{AGGREGATE_PREFIX}{aggregate_from}"): "true"}}]});
    role
}

fn cluster_role_binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": bootstrap_metadata(name, &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects
    })
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

/// ClusterRoles a real server bootstraps (`cluster-admin`, `admin`, `edit`, `view`, discovery
/// roles) and their bindings, as JSON objects to seed the store with. `admin`, `edit` and `view`
/// are aggregated (from `system:aggregate-to-*` and anything labelled
/// `rbac.authorization.k8s.io/aggregate-to-*`); their `rules` are filled by
/// [`aggregate_cluster_roles`].
pub fn bootstrap_policy() -> Vec<Value> {
    let admin_label = [(TO_ADMIN, "true")];
    let edit_label = [(TO_EDIT, "true")];
    let view_label = [(TO_VIEW, "true")];
    let roles = vec![
        cluster_role(
            "cluster-admin",
            &[],
            json!([rule(&["*"], &["*"], &["*"]), {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        ),
        aggregated_cluster_role("admin", &[], "admin"),
        aggregated_cluster_role("edit", &admin_label, "edit"),
        aggregated_cluster_role("view", &edit_label, "view"),
        cluster_role(
            "system:aggregate-to-admin",
            &admin_label,
            json!([
                rule(
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                    &["create"]
                ),
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                    &[WRITE, READ].concat()
                ),
            ]),
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &edit_label,
            json!([
                rule(
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy"
                    ],
                    READ
                ),
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy"
                    ],
                    WRITE
                ),
                rule(
                    &[""],
                    &["pods/eviction", "serviceaccounts/token"],
                    &["create"]
                ),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy"
                    ],
                    WRITE,
                ),
                rule(
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale"
                    ],
                    WRITE,
                ),
                rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
                rule(&["batch"], &["cronjobs", "jobs"], WRITE),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                    WRITE
                ),
                rule(&["policy"], &["poddisruptionbudgets"], WRITE),
                rule(&["discovery.k8s.io"], &["endpointslices"], WRITE),
            ]),
        ),
        cluster_role(
            "system:aggregate-to-view",
            &view_label,
            json!([
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status"
                    ],
                    READ,
                ),
                rule(
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status"
                    ],
                    READ,
                ),
                rule(&[""], &["namespaces"], READ),
                rule(
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status"
                    ],
                    READ,
                ),
                rule(
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status"
                    ],
                    READ
                ),
                rule(
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    READ
                ),
                rule(
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                    READ
                ),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                    READ
                ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
            ]),
        ),
        cluster_role(
            "system:discovery",
            &[],
            json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
        cluster_role(
            "system:basic-user",
            &[],
            json!([
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"]
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"]
                ),
            ]),
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
    ];
    let mut objects = aggregate_cluster_roles(&roles);
    objects.extend([
        cluster_role_binding("cluster-admin", "cluster-admin", &["system:masters"]),
        cluster_role_binding(
            "system:discovery",
            "system:discovery",
            &["system:authenticated"],
        ),
        cluster_role_binding(
            "system:basic-user",
            "system:basic-user",
            &["system:authenticated"],
        ),
        cluster_role_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]);
    objects
}

#[cfg(test)]
mod tests;
