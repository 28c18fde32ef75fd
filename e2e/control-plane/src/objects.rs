//! Writes to stored objects with the generic registry's semantics: identity and system metadata,
//! optimistic concurrency, status subresource separation, generation, field ownership,
//! finalizers and graceful deletion.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use local_apimachinery::apply::{self, ApplyContext};
use local_apimachinery::{patch as patches, schema};
use serde_json::{Map, Value, json};

use crate::app::{App, CRD_STORAGE};
use crate::convert::{present, to_stored};
use crate::crd;
use crate::managed::KindListTypes;
use crate::meta;
use crate::registry::{ResourceInfo, Special};
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::{Key, Mutation, Objects};

/// Namespaces a real server refuses to delete.
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];
pub const ORPHAN_FINALIZER: &str = "orphan";
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The namespace controller's entry in a Namespace's `spec.finalizers`.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// Per-request write options.
pub struct WriteOpts {
    pub manager: String,
    pub dry_run: bool,
    /// `fieldValidation=Strict`: unknown fields fail the request instead of being dropped.
    pub strict: bool,
}

/// Paths (`spec.a.b`) present in `before` and absent from `after`: what pruning removed.
fn removed_fields(before: &Value, after: &Value, prefix: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match a.get(k) {
                    Some(av) => removed_fields(v, av, &path, out),
                    None => out.push(path),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                removed_fields(bv, av, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

pub fn key(info: &ResourceInfo, namespace: &str, name: &str) -> Key {
    Key::new(
        &info.storage,
        if info.namespaced { namespace } else { "" },
        name,
    )
}

pub fn get(app: &App, info: &ResourceInfo, namespace: &str, name: &str) -> ApiResult<Value> {
    app.store
        .get(&key(info, namespace, name))
        .map(|o| present(info, &o))
        .ok_or_else(|| ApiError::not_found(info.target(), name))
}

fn committed(out: Option<Arc<Value>>) -> ApiResult<Value> {
    out.map(|o| (*o).clone())
        .ok_or_else(|| ApiError::internal("the write produced no object"))
}

/// Checks a request body's type and namespace and returns it as an object.
fn check_body(info: &ResourceInfo, namespace: &str, body: Value) -> ApiResult<Value> {
    let Value::Object(_) = body else {
        return Err(ApiError::bad_request(format!(
            "the body of the request must be a {} object",
            info.kind
        )));
    };
    let mut obj = body;
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    if !kind.is_empty() && kind != info.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the provided object ({kind}) does not match the kind of the request ({})",
            info.kind
        )));
    }
    if !api_version.is_empty() && api_version != info.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    let m = meta::metadata_mut(&mut obj);
    if info.namespaced {
        match m.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                m.insert("namespace".into(), json!(namespace));
            }
        }
    } else {
        m.remove("namespace");
    }
    obj["apiVersion"] = json!(info.api_version());
    obj["kind"] = json!(info.kind);
    Ok(obj)
}

fn check_name(obj: &mut Value, name: &str) -> ApiResult<()> {
    let in_body = meta::name(obj).to_string();
    if in_body.is_empty() {
        meta::metadata_mut(obj).insert("name".into(), json!(name));
    } else if in_body != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({in_body}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

fn invalid(info: &ResourceInfo, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(&info.group, &info.kind, name, causes)
}

/// Defaulting, pruning and validation of a new object state, plus the state the API server's
/// own controllers keep (namespace phase, CRD conditions).
fn prepare(
    info: &ResourceInfo,
    old: Option<&Value>,
    obj: &mut Value,
    opts: &WriteOpts,
) -> ApiResult<()> {
    if info.group.is_empty() && info.plural == "secrets" {
        fold_string_data(obj)?;
    }
    let name = meta::name(obj).to_string();
    let mut causes = vec![];
    if old.is_none() {
        causes.extend(meta::validate_name(
            &name,
            meta::name_rule(&info.group, &info.plural),
        ));
    }
    if let Some(old) = old
        && meta::is_deleting(old)
    {
        let before = meta::finalizers(old);
        let added: Vec<String> = meta::finalizers(obj)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                message: format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    added.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(", ")
                ),
                field: "metadata.finalizers".into(),
            });
        }
    }
    if let Some(schema_v) = &info.schema {
        schema::apply_defaults(schema_v, obj);
        let before = opts.strict.then(|| obj.clone());
        schema::prune(schema_v, obj);
        if let Some(before) = before {
            let mut unknown = vec![];
            removed_fields(&before, obj, "", &mut unknown);
            if !unknown.is_empty() {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field {f:?}"))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )));
            }
        }
        causes.extend(schema::validate(schema_v, obj).into_iter().map(Cause::from));
    }
    match info.special {
        Special::Crd => {
            causes.extend(crd::validate(obj));
            if causes.is_empty() {
                crd::set_established_status(obj);
            }
        }
        Special::Namespace => {
            // The API server labels every namespace with its own name.
            let labels = meta::metadata_mut(obj)
                .entry("labels")
                .or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            if old.is_none() && obj.pointer("/spec/finalizers").is_none() {
                obj["spec"] = json!({ "finalizers": [NAMESPACE_FINALIZER] });
            }
            if obj.pointer("/status/phase").is_none() {
                obj["status"] = json!({ "phase": "Active" });
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(info, &name, causes))
    }
}

/// A Secret's write-only `stringData` merged into `data` (base64), its entries winning, as the
/// real server's v1 → internal conversion does on every write; `stringData` is never stored.
fn fold_string_data(secret: &mut Value) -> ApiResult<()> {
    let Some(fields) = secret.as_object_mut() else {
        return Ok(());
    };
    let Some(string_data) = fields.remove("stringData") else {
        return Ok(());
    };
    let entries = match string_data {
        Value::Null => return Ok(()),
        Value::Object(entries) => entries,
        other => {
            return Err(undecodable_secret(
                &other,
                "Secret.stringData",
                "map[string]string",
            ));
        }
    };
    if entries.is_empty() {
        return Ok(());
    }
    let data = fields.entry("data").or_insert_with(|| json!({}));
    if data.is_null() {
        *data = json!({});
    }
    let Some(data) = data.as_object_mut() else {
        return Err(undecodable_secret(
            data,
            "Secret.data",
            "map[string][]uint8",
        ));
    };
    for (key, value) in entries {
        let Value::String(text) = value else {
            return Err(undecodable_secret(&value, "Secret.stringData", "string"));
        };
        data.insert(key, json!(BASE64.encode(text)));
    }
    Ok(())
}

/// The 400 a real server answers when a Secret body does not decode into the v1 type.
fn undecodable_secret(value: &Value, field: &str, go_type: &str) -> ApiError {
    let json_type = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    ApiError::bad_request(format!(
        "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal {json_type} into Go struct field {field} of type {go_type}"
    ))
}

/// Identity and system metadata of an object about to be created.
fn stamp_new(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let m = meta::metadata_mut(obj);
    if m.get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|rv| !rv.is_empty())
    {
        return Err(ApiError::internal(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    m.remove("resourceVersion");
    m.remove("deletionTimestamp");
    m.remove("deletionGracePeriodSeconds");
    m.insert("uid".into(), json!(meta::new_uid()));
    m.insert("creationTimestamp".into(), json!(meta::now()));
    if info.has_generation {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
    if info.special == Special::Crd {
        let mut f = meta::finalizers(obj);
        if !f.iter().any(|x| x == crd::CLEANUP_FINALIZER) {
            f.push(crd::CLEANUP_FINALIZER.into());
        }
        meta::set_finalizers(obj, f);
    }
    // Status is owned by the status subresource: a create starts with none.
    if info.status_subresource
        && info.special == Special::None
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
    Ok(())
}

/// Checks that the target namespace (and, for custom objects, the CRD) accepts new objects.
fn admit_create(
    objects: &Objects,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
) -> ApiResult<()> {
    if info.namespaced {
        let ns = objects.get(&Key::new("/namespaces", "", namespace));
        match ns {
            None => {
                return Err(ApiError::not_found(
                    crate::status::Target {
                        group: "",
                        resource: "namespaces",
                    },
                    namespace,
                ));
            }
            Some(ns) if meta::is_deleting(ns) => {
                return Err(ApiError::forbidden(
                    info.target(),
                    name,
                    &format!("unable to create new content in namespace {namespace} because it is being terminated"),
                )
                .with_causes(vec![Cause {
                    reason: "NamespaceTerminating".into(),
                    message: format!("namespace {namespace} is being terminated"),
                    field: "metadata.namespace".into(),
                }]));
            }
            Some(_) => {}
        }
    }
    if info.is_custom() {
        let crd_key = Key::new(CRD_STORAGE, "", &format!("{}.{}", info.plural, info.group));
        if objects
            .get(&crd_key)
            .is_some_and(|c| !crd::accepts_new_instances(c))
        {
            return Err(ApiError {
                code: 405,
                reason: "MethodNotAllowed",
                message: "create not allowed while custom resource definition is terminating"
                    .into(),
                details: Some(json!({})),
            });
        }
    }
    Ok(())
}

fn ctx<'a>(
    manager: &'a str,
    sub: Option<&'a str>,
    now: &'a str,
    api_version: &'a str,
) -> ApplyContext<'a> {
    ApplyContext {
        manager,
        subresource: sub,
        now,
        api_version,
    }
}

pub fn create(
    app: &App,
    info: &ResourceInfo,
    namespace: &str,
    body: Value,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let mut obj = check_body(info, namespace, body)?;
    if meta::name(&obj).is_empty() {
        let prefix = meta::meta_str(&obj, "generateName").to_string();
        if prefix.is_empty() {
            return Err(invalid(
                info,
                "",
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            ));
        }
        meta::metadata_mut(&mut obj).insert(
            "name".into(),
            json!(format!("{prefix}{}", meta::name_suffix())),
        );
    }
    let name = meta::name(&obj).to_string();
    stamp_new(info, &mut obj)?;
    prepare(info, None, &mut obj, opts)?;
    let now = meta::now();
    let api_version = info.api_version();
    let lt = KindListTypes {
        schema: info.schema.as_ref(),
    };
    apply::record_update(
        None,
        &mut obj,
        &ctx(&opts.manager, None, &now, &api_version),
        &lt,
    );
    let stored = to_stored(info, obj);
    let out = app.write(
        &key(info, namespace, &name),
        opts.dry_run,
        |objects, current| {
            if current.is_some() {
                return Err(ApiError::already_exists(info.target(), &name));
            }
            admit_create(objects, info, namespace, &name)?;
            Ok(Mutation::Put(stored))
        },
    )?;
    Ok(present(info, &committed(out)?))
}

/// The object a write of `new` to `current` produces: system metadata comes from `current`;
/// the main resource keeps the stored status, the status subresource changes only status.
fn carry_over(info: &ResourceInfo, current: &Value, mut new: Value, sub: Option<&str>) -> Value {
    if sub == Some("status") {
        let mut out = current.clone();
        match new.get("status") {
            Some(s) => out["status"] = s.clone(),
            None => {
                if let Some(o) = out.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        if let Some(mf) = meta::metadata(&new).and_then(|m| m.get("managedFields")) {
            meta::metadata_mut(&mut out).insert("managedFields".into(), mf.clone());
        }
        return out;
    }
    if info.status_subresource {
        match current.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    let cur_meta = meta::metadata(current).cloned().unwrap_or_default();
    let m = meta::metadata_mut(&mut new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match cur_meta.get(field) {
            Some(v) => m.insert(field.into(), v.clone()),
            None => m.remove(field),
        };
    }
    if !m.contains_key("managedFields")
        && let Some(mf) = cur_meta.get("managedFields")
    {
        m.insert("managedFields".into(), mf.clone());
    }
    new
}

/// Whether anything outside metadata (and status, when it is a subresource) differs.
fn spec_changed(info: &ResourceInfo, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap_or_default();
        m.remove("metadata");
        if info.status_subresource {
            m.remove("status");
        }
        m
    };
    strip(old) != strip(new)
}

/// Whether a deletion-marked object has nothing left holding it.
fn ready_to_remove(info: &ResourceInfo, obj: &Value) -> bool {
    meta::is_deleting(obj)
        && meta::finalizers(obj).is_empty()
        && (info.special != Special::Namespace
            || obj
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty()))
}

/// Final steps of every update: validation, generation, ownership, and removal when the last
/// finalizer of a deleting object is gone. `fields_recorded` is set when apply already did it.
fn finish_update(
    info: &ResourceInfo,
    current: &Value,
    mut new: Value,
    sub: Option<&str>,
    opts: &WriteOpts,
    fields_recorded: bool,
) -> ApiResult<Mutation> {
    prepare(info, Some(current), &mut new, opts)?;
    if info.has_generation && spec_changed(info, current, &new) {
        meta::metadata_mut(&mut new)
            .insert("generation".into(), json!(meta::generation(current) + 1));
    }
    if !fields_recorded {
        let now = meta::now();
        let api_version = info.api_version();
        let lt = KindListTypes {
            schema: info.schema.as_ref(),
        };
        apply::record_update(
            Some(current),
            &mut new,
            &ctx(&opts.manager, sub, &now, &api_version),
            &lt,
        );
    }
    if ready_to_remove(info, &new) {
        return Ok(Mutation::Delete);
    }
    Ok(Mutation::Put(to_stored(info, new)))
}

fn require_resource_version(
    info: &ResourceInfo,
    name: &str,
    body_rv: &str,
    current: &Value,
) -> ApiResult<()> {
    if body_rv.is_empty() {
        if info.requires_resource_version {
            return Err(invalid(
                info,
                name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: 0x0: must be specified for an update".into(),
                    field: "metadata.resourceVersion".into(),
                }],
            ));
        }
        return Ok(());
    }
    if body_rv != meta::meta_str(current, "resourceVersion") {
        return Err(ApiError::stale_resource_version(info.target(), name));
    }
    Ok(())
}

pub fn update(
    app: &App,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    sub: Option<&str>,
    body: Value,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let mut obj = check_body(info, namespace, body)?;
    check_name(&mut obj, name)?;
    let body_rv = meta::meta_str(&obj, "resourceVersion").to_string();
    let out = app.write(&key(info, namespace, name), opts.dry_run, |_, current| {
        let current = present(
            info,
            current.ok_or_else(|| ApiError::not_found(info.target(), name))?,
        );
        require_resource_version(info, name, &body_rv, &current)?;
        let new = carry_over(info, &current, obj, sub);
        finish_update(info, &current, new, sub, opts, false)
    })?;
    Ok(present(info, &committed(out)?))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

impl PatchKind {
    /// The patch type of a request's Content-Type; custom resources have no strategic merge.
    pub fn from_content_type(info: &ResourceInfo, content_type: &str) -> ApiResult<PatchKind> {
        let base = content_type.split(';').next().unwrap_or("").trim();
        let kind = match base {
            "application/merge-patch+json" => PatchKind::Merge,
            "application/json-patch+json" => PatchKind::Json,
            "application/strategic-merge-patch+json" if !info.is_custom() => PatchKind::Strategic,
            "application/apply-patch+yaml" => PatchKind::Apply,
            _ => {
                let mut accepted = PATCH_TYPES.to_vec();
                if !info.is_custom() {
                    accepted.insert(2, "application/strategic-merge-patch+json");
                }
                return Err(ApiError::unsupported_media_type(base, &accepted));
            }
        };
        Ok(kind)
    }
}

fn patch_options_invalid(field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "PatchOptions",
        "",
        vec![Cause {
            reason: "FieldValueRequired".into(),
            message: message.into(),
            field: field.into(),
        }],
    )
}

/// How the API server names a conflicting manager, from its managedFields entry: appliers by
/// name; updaters with the apiVersion and time of their write.
fn print_manager(live: Option<&Value>, manager: &str) -> String {
    let entry = live
        .and_then(|l| l.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .and_then(|entries| entries.iter().find(|e| e["manager"] == manager));
    let mut out = format!("{manager:?}");
    let Some(e) = entry else { return out };
    if let Some(sub) = e["subresource"].as_str().filter(|s| !s.is_empty()) {
        out = format!("{out} with subresource {sub:?}");
    }
    if e["operation"] == "Update" {
        let api_version = e["apiVersion"].as_str().unwrap_or_default();
        out = match e["time"].as_str() {
            Some(t) => format!("{out} using {api_version} at {t}"),
            None => format!("{out} using {api_version}"),
        };
    }
    out
}

/// The 409 an apply with conflicts gets: message and causes as the API server words them.
fn conflicts_error(live: Option<&Value>, conflicts: Vec<apply::Conflict>) -> ApiError {
    let message = if conflicts.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            print_manager(live, &conflicts[0].manager),
            conflicts[0].field
        )
    } else {
        let mut by_manager: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for c in &conflicts {
            by_manager.entry(&c.manager).or_default().push(&c.field);
        }
        let lines: Vec<String> = by_manager
            .iter()
            .flat_map(|(m, fields)| {
                std::iter::once(format!("conflicts with {}:", print_manager(live, m)))
                    .chain(fields.iter().map(|f| format!("- {f}")))
            })
            .collect();
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let causes = conflicts
        .iter()
        .map(|c| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {}", print_manager(live, &c.manager)),
            field: c.field.clone(),
        })
        .collect();
    ApiError {
        code: 409,
        reason: "Conflict",
        message,
        details: None,
    }
    .with_causes(causes)
}

/// Parses a patch body: YAML (or JSON) for apply, JSON otherwise.
pub fn parse_patch(kind: PatchKind, body: &[u8]) -> ApiResult<Value> {
    if kind == PatchKind::Apply {
        let v: serde_yaml::Value = serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        serde_json::to_value(v)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
    }
}

/// Patches an object; server-side apply creates it when absent. Returns the HTTP code and object.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    app: &App,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    sub: Option<&str>,
    kind: PatchKind,
    patch: Value,
    force: bool,
    opts: &WriteOpts,
    manager_given: bool,
) -> ApiResult<(u16, Value)> {
    if kind == PatchKind::Apply && !manager_given {
        return Err(patch_options_invalid(
            "fieldManager",
            "Required value: is required for apply patch",
        ));
    }
    if kind != PatchKind::Apply && force {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: may not be specified for non-apply patch".into(),
                field: "force".into(),
            }],
        ));
    }
    let applied = if kind == PatchKind::Apply {
        let mut a = check_body(info, namespace, patch.clone())?;
        if !patch.get("apiVersion").is_some_and(Value::is_string)
            || !patch.get("kind").is_some_and(Value::is_string)
        {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an apply request body",
            ));
        }
        check_name(&mut a, name)?;
        Some(a)
    } else {
        None
    };
    let now = meta::now();
    let api_version = info.api_version();
    let lt = KindListTypes {
        schema: info.schema.as_ref(),
    };
    let actx = ctx(&opts.manager, sub, &now, &api_version);
    let mut created = false;
    let out = app.write(
        &key(info, namespace, name),
        opts.dry_run,
        |objects, current| {
            let Some(current) = current else {
                let Some(applied) = applied else {
                    return Err(ApiError::not_found(info.target(), name));
                };
                if sub.is_some() {
                    return Err(ApiError::not_found(info.target(), name));
                }
                admit_create(objects, info, namespace, name)?;
                let mut obj = apply::apply(None, &applied, &actx, force, &lt)
                    .map_err(|c| conflicts_error(None, c))?;
                stamp_new(info, &mut obj)?;
                prepare(info, None, &mut obj, opts)?;
                created = true;
                return Ok(Mutation::Put(to_stored(info, obj)));
            };
            let current = present(info, current);
            let (patched, recorded) = match kind {
                PatchKind::Merge => {
                    let mut t = current.clone();
                    patches::merge_patch(&mut t, &patch);
                    (t, false)
                }
                PatchKind::Json => (
                    patches::json_patch(&current, &patch).map_err(|e| unprocessable(e.0))?,
                    false,
                ),
                PatchKind::Strategic => (
                    patches::strategic_merge_patch(&current, &patch)
                        .map_err(|e| unprocessable(e.0))?,
                    false,
                ),
                PatchKind::Apply => {
                    let applied = applied
                        .as_ref()
                        .ok_or_else(|| ApiError::internal("apply without a body"))?;
                    let merged = apply::apply(Some(&current), applied, &actx, force, &lt)
                        .map_err(|c| conflicts_error(Some(&current), c))?;
                    (merged, true)
                }
            };
            let mut patched = check_body(info, namespace, patched)?;
            check_name(&mut patched, name)?;
            let rv = meta::meta_str(&patched, "resourceVersion").to_string();
            if !rv.is_empty() && rv != meta::meta_str(&current, "resourceVersion") {
                return Err(ApiError::stale_resource_version(info.target(), name));
            }
            let new = carry_over(info, &current, patched, sub);
            finish_update(info, &current, new, sub, opts, recorded)
        },
    )?;
    Ok((
        if created { 201 } else { 200 },
        present(info, &committed(out)?),
    ))
}

fn unprocessable(message: String) -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid",
        message,
        details: None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub orphan_dependents: Option<bool>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// From a DeleteOptions body, or the query parameters when there is none.
    pub fn parse(body: Option<&Value>, query: &[(String, String)]) -> ApiResult<DeleteOptions> {
        let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let policy = body
            .and_then(|b| {
                b.get("propagationPolicy")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .or_else(|| q("propagationPolicy"));
        let propagation = match policy.as_deref() {
            None | Some("") => None,
            Some("Orphan") => Some(Propagation::Orphan),
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some(other) => {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "DeleteOptions",
                    "",
                    vec![Cause {
                        reason: "FieldValueNotSupported".into(),
                        message: format!(
                            "Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                        ),
                        field: "propagationPolicy".into(),
                    }],
                ));
            }
        };
        let orphan_dependents = body
            .and_then(|b| b.get("orphanDependents").and_then(Value::as_bool))
            .or_else(|| q("orphanDependents").map(|v| v == "true"));
        let pre = |k: &str| {
            body.and_then(|b| b.pointer(&format!("/preconditions/{k}")))
                .and_then(Value::as_str)
                .map(String::from)
        };
        let dry_run = body
            .and_then(|b| b.get("dryRun").and_then(Value::as_array))
            .is_some_and(|a| a.iter().any(|v| v == "All"))
            || query.iter().any(|(k, v)| k == "dryRun" && v == "All");
        Ok(DeleteOptions {
            propagation,
            orphan_dependents,
            precondition_uid: pre("uid"),
            precondition_rv: pre("resourceVersion"),
            dry_run,
        })
    }
}

/// The outcome of a delete: the object still exists (marked for deletion) or is gone.
pub enum Deleted {
    Pending(Value),
    Gone(Value),
}

/// Deletes an object as the generic registry does: preconditions, GC finalizers for the
/// propagation policy, graceful marking while finalizers remain, removal otherwise.
pub fn delete(
    app: &App,
    info: &ResourceInfo,
    namespace: &str,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<Deleted> {
    if info.special == Special::Namespace && IMMORTAL_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(
            info.target(),
            name,
            "this namespace may not be deleted",
        ));
    }
    let mut pending = false;
    let out = app.write(&key(info, namespace, name), opts.dry_run, |_, current| {
        let current = current.ok_or_else(|| ApiError::not_found(info.target(), name))?;
        check_preconditions(info, name, current, opts)?;
        let mut obj = (**current).clone();
        let mut finalizers = meta::finalizers(&obj);
        let has = |f: &Vec<String>, x: &str| f.iter().any(|y| y == x);
        let policy = match (opts.propagation, opts.orphan_dependents) {
            (Some(p), _) => Some(p),
            (None, Some(true)) => Some(Propagation::Orphan),
            (None, Some(false)) => Some(Propagation::Background),
            (None, None)
                if has(&finalizers, ORPHAN_FINALIZER) || has(&finalizers, FOREGROUND_FINALIZER) =>
            {
                None
            }
            (None, None) if info.orphan_by_default => Some(Propagation::Orphan),
            (None, None) => None,
        };
        let (add, remove): (Option<&str>, &[&str]) = match policy {
            Some(Propagation::Orphan) => (Some(ORPHAN_FINALIZER), &[FOREGROUND_FINALIZER]),
            Some(Propagation::Foreground) => (Some(FOREGROUND_FINALIZER), &[ORPHAN_FINALIZER]),
            Some(Propagation::Background) => (None, &[ORPHAN_FINALIZER, FOREGROUND_FINALIZER]),
            None => (None, &[]),
        };
        finalizers.retain(|f| !remove.contains(&f.as_str()));
        if let Some(a) = add
            && !has(&finalizers, a)
        {
            finalizers.push(a.into());
        }
        let namespace_finalizing = info.special == Special::Namespace
            && obj
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
        if finalizers.is_empty() && !namespace_finalizing {
            return Ok(Mutation::Delete);
        }
        pending = true;
        meta::set_finalizers(&mut obj, finalizers);
        if !meta::is_deleting(&obj) {
            let m = meta::metadata_mut(&mut obj);
            m.insert("deletionTimestamp".into(), json!(meta::now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            if info.has_generation {
                let g = meta::generation(&obj);
                meta::metadata_mut(&mut obj).insert("generation".into(), json!(g + 1));
            }
            if info.special == Special::Namespace {
                obj["status"]["phase"] = json!("Terminating");
            }
            if info.special == Special::Crd {
                crd::set_established_status(&mut obj);
            }
        }
        Ok(Mutation::Put(obj))
    })?;
    let obj = present(info, &committed(out)?);
    Ok(if pending {
        Deleted::Pending(obj)
    } else {
        Deleted::Gone(obj)
    })
}

fn check_preconditions(
    info: &ResourceInfo,
    name: &str,
    current: &Value,
    opts: &DeleteOptions,
) -> ApiResult<()> {
    let storage_error = |detail: String| {
        ApiError::conflict(
            info.target(),
            name,
            &format!(
                "StorageError: invalid object, Code: 4, Key: /registry/{}/{}, ResourceVersion: 0, AdditionalErrorMsg: {detail}",
                info.storage.trim_start_matches('/'),
                if info.namespaced {
                    format!("{}/{name}", meta::meta_str(current, "namespace"))
                } else {
                    name.to_string()
                }
            ),
        )
    };
    if let Some(uid) = &opts.precondition_uid
        && uid != meta::uid(current)
    {
        return Err(storage_error(format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
            meta::uid(current)
        )));
    }
    if let Some(rv) = &opts.precondition_rv
        && rv != meta::meta_str(current, "resourceVersion")
    {
        return Err(storage_error(format!(
            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
            meta::meta_str(current, "resourceVersion")
        )));
    }
    Ok(())
}

/// The Status a completed delete answers with, for kinds that do not return the object.
pub fn deleted_status(info: &ResourceInfo, obj: &Value) -> Value {
    let mut details =
        json!({ "name": meta::name(obj), "kind": info.plural, "uid": meta::uid(obj) });
    if !info.group.is_empty() {
        details["group"] = json!(info.group);
    }
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details })
}

/// Changes a stored object on behalf of a built-in controller (no field ownership recorded);
/// `edit` returns false to leave it alone. Removes a deleting object whose finalizers are done.
pub fn controller_edit(
    app: &App,
    key: &Key,
    edit: impl FnOnce(&mut Value) -> bool,
) -> ApiResult<()> {
    let info = app.registry.by_storage(&key.resource);
    app.write(key, false, |_, current| {
        let Some(current) = current else {
            return Ok(Mutation::Keep);
        };
        let mut obj = (**current).clone();
        if !edit(&mut obj) {
            return Ok(Mutation::Keep);
        }
        if info.as_deref().is_some_and(|i| ready_to_remove(i, &obj)) {
            return Ok(Mutation::Delete);
        }
        Ok(Mutation::Put(obj))
    })?;
    Ok(())
}

/// `PUT namespaces/{name}/finalize`: only `spec.finalizers` changes; an emptied, terminating
/// namespace is removed.
pub fn finalize_namespace(
    app: &App,
    info: &ResourceInfo,
    name: &str,
    body: Value,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let finalizers = body
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or(json!([]));
    let out = app.write(&key(info, "", name), opts.dry_run, |_, current| {
        let mut obj = (**current.ok_or_else(|| ApiError::not_found(info.target(), name))?).clone();
        obj["spec"]["finalizers"] = finalizers;
        if ready_to_remove(info, &obj) {
            return Ok(Mutation::Delete);
        }
        Ok(Mutation::Put(obj))
    })?;
    Ok(present(info, &committed(out)?))
}
