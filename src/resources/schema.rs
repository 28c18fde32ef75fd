//! Schema fragments that schemars cannot derive in the structural form Kubernetes requires.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A free-form JSON object kept as given (DCE's `metadata` field). The schema can bound only its
/// top level; depth and size are checked by [`super::check_free_form`].
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": super::MAX_FREE_FORM_KEYS,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Conditions, merged by `type` as Kubernetes API conventions require.
pub fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let item =
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>();
    json_schema!({
        "type": "array",
        "description": "Latest observations of the object's state. `Ready` summarises it with a precise reason.",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}
