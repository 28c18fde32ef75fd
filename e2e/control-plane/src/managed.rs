//! Field ownership context for writes: list merge semantics from CRD schemas (or the built-in
//! kinds' well-known lists) and the field manager of a request.

use local_apimachinery::apply::{ListType, ListTypes};
use serde_json::Value;

/// List types taken from a CRD schema's `x-kubernetes-list-*` markers, falling back to the
/// well-known lists of built-in kinds and ObjectMeta.
pub struct SchemaListTypes<'a> {
    pub schema: Option<&'a Value>,
}

impl ListTypes for SchemaListTypes<'_> {
    fn list_type(&self, path: &[&str]) -> ListType {
        if let Some(found) = self.schema.and_then(|s| from_schema(s, path)) {
            return found;
        }
        builtin_list_type(path)
    }
}

fn from_schema(schema: &Value, path: &[&str]) -> Option<ListType> {
    let mut node = schema;
    for field in path {
        // Descend through array items transparently: list items are not part of the path.
        while node.get("type").and_then(Value::as_str) == Some("array") {
            node = node.get("items")?;
        }
        node = node.get("properties").and_then(|p| p.get(*field)).or_else(|| {
            node.get("additionalProperties").filter(|a| a.is_object())
        })?;
    }
    match node.get("x-kubernetes-list-type").and_then(Value::as_str)? {
        "set" => Some(ListType::Set),
        "map" => Some(ListType::Map(
            node.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|k| k.as_str().map(String::from)).collect())
                .unwrap_or_default(),
        )),
        _ => Some(ListType::Atomic),
    }
}

fn builtin_list_type(path: &[&str]) -> ListType {
    let keyed = |k: &[&str]| ListType::Map(k.iter().map(|s| s.to_string()).collect());
    match path {
        ["metadata", "finalizers"] => ListType::Set,
        ["metadata", "ownerReferences"] => keyed(&["uid"]),
        [.., "conditions"] => keyed(&["type"]),
        [.., "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "imagePullSecrets"] => keyed(&["name"]),
        [.., "volumeMounts"] => keyed(&["mountPath"]),
        ["spec", "ports"] => keyed(&["port", "protocol"]),
        [.., "ports"] => keyed(&["containerPort", "protocol"]),
        _ => ListType::Atomic,
    }
}

/// The manager a write is recorded under: `fieldManager`, else the user agent's program name.
pub fn manager_name(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let agent = user_agent.unwrap_or("unknown");
    agent.split('/').next().unwrap_or(agent).to_string()
}
