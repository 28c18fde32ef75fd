//! CustomResourceDefinitions: validation on write, the status the API server's controllers set
//! (names accepted, established), and the resources each served version adds.

use local_apimachinery::schema;
use serde_json::{Value, json};

use crate::meta;
use crate::registry::{ResourceInfo, Special};
use crate::status::Cause;

/// Finalizer that makes CRD deletion remove all its custom objects first.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn required(field: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: field.into(),
    }
}

fn invalid(field: &str, value: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value:?}: {detail}"),
        field: field.into(),
    }
}

/// Field errors of a CRD as the apiextensions validation reports them.
pub fn validate(crd: &Value) -> Vec<Cause> {
    let mut errs = vec![];
    let group = s(crd, &["spec", "group"]);
    let plural = s(crd, &["spec", "names", "plural"]);
    let name = meta::name(crd);
    if group.is_empty() {
        errs.push(required("spec.group"));
    } else if !group.contains('.') {
        errs.push(invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    for field in ["plural", "kind", "singular", "listKind"] {
        let v = s(crd, &["spec", "names", field]);
        let full = format!("spec.names.{field}");
        if v.is_empty() {
            if field == "plural" || field == "kind" {
                errs.push(required(&full));
            }
        } else if field != "kind"
            && field != "listKind"
            && !meta::validate_name(v, meta::NameRule::Dns1123Label).is_empty()
        {
            errs.push(invalid(&full, v, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"));
        }
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push(invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match s(crd, &["spec", "scope"]) {
        "Namespaced" | "Cluster" => {}
        "" => errs.push(required("spec.scope")),
        other => errs.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
            ),
            field: "spec.scope".into(),
        }),
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(Cause {
            reason: "FieldValueInvalid".into(),
            message:
                "Invalid value: \"null\": must have exactly one version marked as storage version"
                    .into(),
            field: "spec.versions".into(),
        });
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        errs.push(Cause {
            reason: "FieldValueInvalid".into(),
            message: format!(
                "Invalid value: {:?}: must have exactly one version marked as storage version",
                serde_json::to_string(
                    &versions.iter().map(|v| s(v, &["name"])).collect::<Vec<_>>()
                )
                .unwrap_or_default()
            ),
            field: "spec.versions".into(),
        });
    }
    for (i, v) in versions.iter().enumerate() {
        let base = format!("spec.versions[{i}]");
        if s(v, &["name"]).is_empty() {
            errs.push(required(&format!("{base}.name")));
        }
        match v.pointer("/schema/openAPIV3Schema") {
            None => errs.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: schemas are required".into(),
                field: format!("{base}.schema.openAPIV3Schema"),
            }),
            Some(schema_v) => {
                for e in schema::check_structural(schema_v) {
                    let field = if e.field.is_empty() {
                        format!("{base}.schema.openAPIV3Schema")
                    } else {
                        format!("{base}.schema.openAPIV3Schema.{}", e.field)
                    };
                    errs.push(Cause {
                        reason: e.reason,
                        message: e.message,
                        field,
                    });
                }
            }
        }
    }
    errs
}

/// Sets what the API server's CRD controllers set once a CRD is accepted.
pub fn set_established_status(crd: &mut Value) {
    let now = meta::now();
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let kind = s(&names, &["kind"]).to_string();
    let mut accepted = names.clone();
    if s(&accepted, &["singular"]).is_empty() {
        accepted["singular"] = json!(kind.to_lowercase());
    }
    if s(&accepted, &["listKind"]).is_empty() {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    crd["spec"]["names"] = accepted.clone();
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    let mut stored = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for v in storage {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    let condition = |t: &str, reason: &str, message: &str| json!({ "type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message });
    let mut conditions = vec![
        condition("NamesAccepted", "NoConflicts", "no conflicts found"),
        condition(
            "Established",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        ),
    ];
    if meta::is_deleting(crd) {
        conditions.push(condition(
            "Terminating",
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        ));
    }
    // Keep transition times of conditions that did not change.
    if let Some(old) = crd.pointer("/status/conditions").and_then(Value::as_array) {
        for c in &mut conditions {
            if let Some(prev) = old
                .iter()
                .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
            {
                c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
            }
        }
    }
    crd["status"] =
        json!({ "conditions": conditions, "acceptedNames": accepted, "storedVersions": stored });
}

/// Whether the CRD's instances may still be created (not while the CRD is being deleted).
pub fn accepts_new_instances(crd: &Value) -> bool {
    !meta::is_deleting(crd)
}

/// The resources one CRD serves, one per served version.
pub fn served_resources(crd: &Value) -> Vec<ResourceInfo> {
    let group = s(crd, &["spec", "group"]);
    let names = &crd["spec"]["names"];
    let strs = |k: &str| -> Vec<String> {
        names
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let plural = s(names, &["plural"]);
    let kind = s(names, &["kind"]);
    let mut versions: Vec<&Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(s(v, &["name"]))));
    versions
        .into_iter()
        .map(|v| ResourceInfo {
            group: group.into(),
            version: s(v, &["name"]).into(),
            plural: plural.into(),
            singular: if s(names, &["singular"]).is_empty() {
                kind.to_lowercase()
            } else {
                s(names, &["singular"]).into()
            },
            kind: kind.into(),
            namespaced: s(crd, &["spec", "scope"]) == "Namespaced",
            short_names: strs("shortNames"),
            categories: strs("categories"),
            status_subresource: v.pointer("/subresources/status").is_some(),
            storage: format!("{group}/{plural}"),
            has_generation: true,
            return_deleted_object: false,
            orphan_by_default: false,
            requires_resource_version: true,
            special: Special::None,
            schema: Some(
                v.pointer("/schema/openAPIV3Schema")
                    .cloned()
                    .unwrap_or(json!({"type": "object"})),
            ),
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        })
        .collect()
}

/// Kubernetes version ordering: GA > beta > alpha, then by numbers; others last.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    let level = |t: &str, rank: u8| t.parse::<u32>().ok().map(|minor| (rank, major, minor));
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(t) = tail.strip_prefix("beta") {
        level(t, 2).unwrap_or((0, 0, 0))
    } else if let Some(t) = tail.strip_prefix("alpha") {
        level(t, 1).unwrap_or((0, 0, 0))
    } else {
        (0, 0, 0)
    }
}
