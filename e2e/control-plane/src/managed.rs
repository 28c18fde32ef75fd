//! Field ownership context for writes: list merge semantics and the field manager of a request.

use local_apimachinery::apply::{BuiltinListTypes, ListType, ListTypes, SchemaListTypes};
use serde_json::Value;

/// List merge semantics of a kind: its CRD schema's markers, with ObjectMeta's lists (and
/// built-in kinds' lists) from the built-in table.
pub struct KindListTypes<'a> {
    pub schema: Option<&'a Value>,
}

impl ListTypes for KindListTypes<'_> {
    fn list_type(&self, path: &[&str]) -> ListType {
        match self.schema {
            Some(schema) if path.first() != Some(&"metadata") => {
                SchemaListTypes(schema).list_type(path)
            }
            _ => BuiltinListTypes.list_type(path),
        }
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
