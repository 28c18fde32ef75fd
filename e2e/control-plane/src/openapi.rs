//! OpenAPI documents of the custom resources (v2 and v3), as `kubectl explain` and kubectl's
//! field-validation check read them. Built-in kinds are not published: kubectl then uses its
//! compiled-in types for them, as it does against servers without a document.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceInfo};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// `dce.dev`, `v1`, `Account` → `dev.dce.v1.Account`.
fn definition_name(r: &ResourceInfo) -> String {
    let reversed: Vec<&str> = r.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), r.version, r.kind)
}

fn gvk(r: &ResourceInfo) -> Value {
    json!([{ "group": r.group, "version": r.version, "kind": r.kind }])
}

fn object_meta() -> Value {
    let s = |d: &str| json!({ "type": "string", "description": d });
    json!({
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "type": "object",
        "properties": {
            "name": s("Name must be unique within a namespace."),
            "generateName": s("GenerateName is an optional prefix, used by the server, to generate a unique name."),
            "namespace": s("Namespace defines the space within which each name must be unique."),
            "uid": s("UID is the unique in time and space value for this object."),
            "resourceVersion": s("An opaque value that represents the internal version of this object."),
            "generation": { "type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state." },
            "creationTimestamp": { "type": "string", "format": "date-time", "description": "CreationTimestamp is a timestamp representing the server time when this object was created." },
            "deletionTimestamp": { "type": "string", "format": "date-time", "description": "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted." },
            "labels": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Map of string keys and values that can be used to organize and categorize objects." },
            "annotations": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Annotations is an unstructured key value map stored with a resource." },
            "finalizers": { "type": "array", "items": { "type": "string" }, "description": "Must be empty before the object is deleted from the registry." },
            "ownerReferences": { "type": "array", "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }, "description": "List of objects depended by this object." },
            "managedFields": { "type": "array", "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }, "description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow." },
        },
    })
}

/// The published schema of a custom resource: its CRD schema with typed metadata.
fn resource_schema(r: &ResourceInfo, ref_prefix: &str) -> Value {
    let mut schema = r.schema.clone().unwrap_or(json!({ "type": "object" }));
    if !schema.is_object() {
        schema = json!({ "type": "object" });
    }
    if !schema.get("properties").is_some_and(Value::is_object) {
        schema["properties"] = json!({});
    }
    schema["properties"]["metadata"] = json!({
        "allOf": [{ "$ref": format!("{ref_prefix}{OBJECT_META}") }],
        "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    });
    schema["properties"]["apiVersion"] = json!({ "type": "string", "description": "APIVersion defines the versioned schema of this representation of an object." });
    schema["properties"]["kind"] = json!({ "type": "string", "description": "Kind is a string value representing the REST resource this object represents." });
    schema["x-kubernetes-group-version-kind"] = gvk(r);
    schema
}

/// Path items of one resource: enough operations for clients to find the GVK and the
/// query parameters the server honours.
fn paths(r: &ResourceInfo, v3: bool, ref_prefix: &str) -> Vec<(String, Value)> {
    let base = if r.namespaced {
        format!(
            "/apis/{}/{}/namespaces/{{namespace}}/{}",
            r.group, r.version, r.plural
        )
    } else {
        format!("/apis/{}/{}/{}", r.group, r.version, r.plural)
    };
    let schema_ref = json!({ "$ref": format!("{ref_prefix}{}", definition_name(r)) });
    let query = |name: &str| json!({ "name": name, "in": "query", "uniqueItems": true, "schema": { "type": "string" } });
    let mut params = vec![
        json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }),
    ];
    if r.namespaced {
        params.push(json!({ "name": "namespace", "in": "path", "required": true, "schema": { "type": "string" } }));
    }
    let response = if v3 {
        json!({ "200": { "description": "OK", "content": { "application/json": { "schema": schema_ref } } } })
    } else {
        json!({ "200": { "description": "OK", "schema": schema_ref } })
    };
    let op = |action: &str, id: &str, extra: Vec<Value>| {
        json!({
            "operationId": format!("{id}{}", r.kind),
            "parameters": extra,
            "responses": response,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk(r)[0],
        })
    };
    let write_params = || {
        vec![
            query("dryRun"),
            query("fieldManager"),
            query("fieldValidation"),
        ]
    };
    let mut patch_params = write_params();
    patch_params.push(query("force"));
    let item = json!({
        "get": op("get", "read", vec![]),
        "put": op("put", "replace", write_params()),
        "patch": op("patch", "patch", patch_params),
        "delete": op("delete", "delete", vec![query("dryRun"), query("propagationPolicy")]),
        "parameters": params,
    });
    let collection = json!({
        "get": op("list", "list", vec![query("labelSelector"), query("fieldSelector"), query("limit"), query("continue"), query("watch")]),
        "post": op("post", "create", write_params()),
    });
    vec![(format!("{base}/{{name}}"), item), (base, collection)]
}

fn custom(registry: &Registry) -> Vec<std::sync::Arc<ResourceInfo>> {
    registry
        .all()
        .into_iter()
        .filter(|r| r.is_custom())
        .collect()
}

/// The OpenAPI v3 document of one group-version, or None when it serves no custom resource.
pub fn v3_group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<_> = custom(registry)
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let prefix = "#/components/schemas/";
    let mut schemas = BTreeMap::new();
    let mut all_paths = BTreeMap::new();
    schemas.insert(OBJECT_META.to_string(), object_meta());
    for r in &resources {
        schemas.insert(definition_name(r), resource_schema(r, prefix));
        all_paths.extend(paths(r, true, prefix));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes CRD Swagger", "version": "v0.1.0" },
        "paths": all_paths,
        "components": { "schemas": schemas },
    }))
}

/// The `/openapi/v3` index of group-version documents.
pub fn v3_index(registry: &Registry) -> Value {
    let mut index = BTreeMap::new();
    for r in custom(registry) {
        let key = format!("apis/{}/{}", r.group, r.version);
        if index.contains_key(&key) {
            continue;
        }
        if let Some(doc) = v3_group_version(registry, &r.group, &r.version) {
            let mut h = DefaultHasher::new();
            doc.to_string().hash(&mut h);
            index.insert(key.clone(), json!({ "serverRelativeURL": format!("/openapi/v3/{key}?hash={:016X}", h.finish()) }));
        }
    }
    json!({ "paths": index })
}

/// The Swagger 2.0 document (`/openapi/v2`) of every custom resource.
pub fn v2(registry: &Registry) -> Value {
    let prefix = "#/definitions/";
    let mut definitions = BTreeMap::new();
    let mut all_paths = BTreeMap::new();
    definitions.insert(OBJECT_META.to_string(), object_meta());
    for r in custom(registry) {
        definitions.insert(definition_name(&r), resource_schema(&r, prefix));
        all_paths.extend(paths(&r, false, prefix).into_iter().map(|(p, mut item)| {
            // Swagger 2.0 parameters carry their type inline.
            for params in item
                .as_object_mut()
                .into_iter()
                .flat_map(|m| m.values_mut())
                .filter_map(|op| {
                    if op.is_array() {
                        Some(op)
                    } else {
                        op.get_mut("parameters")
                    }
                })
            {
                for p in params.as_array_mut().into_iter().flatten() {
                    if let Some(o) = p.as_object_mut() {
                        o.remove("schema");
                        o.insert("type".into(), json!("string"));
                    }
                }
            }
            (p, item)
        }));
    }
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": "v1.33.0" },
        "paths": all_paths,
        "definitions": definitions,
    })
}

/// Media type of the protobuf form of the Swagger 2.0 document.
const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The protobuf form of `/openapi/v2` that clients such as kubectl insist on: an empty
/// (valid) document, so they find no schemas there and use their compiled-in types and the
/// OpenAPI v3 documents instead.
pub fn v2_protobuf() -> axum::response::Response {
    let mut r = axum::response::Response::new(axum::body::Body::empty());
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(V2_PROTOBUF),
    );
    r
}
