//! Server-side printing: `meta.k8s.io/v1` Table (what `kubectl get` asks for) and
//! PartialObjectMetadata renderings.

use serde_json::{Value, json};

use crate::registry::ResourceInfo;

/// What representation a client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Object,
    Table,
    PartialMetadata,
}

impl Output {
    /// The first representation of the Accept list this server can produce.
    pub fn negotiate(accept: Option<&str>) -> Output {
        for part in accept.unwrap_or("").split(',') {
            let part = part.trim();
            if part.contains("as=Table") {
                return Output::Table;
            }
            if part.contains("as=PartialObjectMetadata") {
                return Output::PartialMetadata;
            }
            if part.starts_with("application/json")
                || part.starts_with("*/*")
                || part.starts_with("application/*")
            {
                return Output::Object;
            }
        }
        Output::Object
    }
}

pub fn partial_metadata(obj: &Value) -> Value {
    json!({ "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({})) })
}

pub fn partial_metadata_list(list: &Value) -> Value {
    let items: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(partial_metadata)
        .collect();
    json!({ "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list["metadata"], "items": items })
}

struct Column {
    name: &'static str,
    kind: &'static str,
    cell: fn(&Value) -> Value,
}

fn age(o: &Value) -> Value {
    json!(
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .map(since)
            .unwrap_or_else(|| "<unknown>".into())
    )
}

fn count(o: &Value, field: &str) -> Value {
    json!(
        o.get(field)
            .and_then(|d| d
                .as_object()
                .map(|m| m.len())
                .or(d.as_array().map(|a| a.len())))
            .unwrap_or(0)
    )
}

fn text(o: &Value, ptr: &str) -> Value {
    json!(
        o.pointer(ptr)
            .map(|v| v
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string()))
            .unwrap_or_default()
    )
}

fn job_status(o: &Value) -> Value {
    let has = |t: &str| {
        o.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == t && c["status"] == "True"))
    };
    json!(if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    })
}

/// Columns of the built-in printers for the kinds served here (after Name).
fn builtin_columns(info: &ResourceInfo) -> Vec<Column> {
    let age_col = Column {
        name: "Age",
        kind: "string",
        cell: age,
    };
    let mut cols = match (info.group.as_str(), info.plural.as_str()) {
        ("", "namespaces") => vec![Column {
            name: "Status",
            kind: "string",
            cell: |o| text(o, "/status/phase"),
        }],
        ("", "secrets") => vec![
            Column {
                name: "Type",
                kind: "string",
                cell: |o| text(o, "/type"),
            },
            Column {
                name: "Data",
                kind: "string",
                cell: |o| count(o, "data"),
            },
        ],
        ("", "configmaps") => vec![Column {
            name: "Data",
            kind: "string",
            cell: |o| count(o, "data"),
        }],
        ("", "serviceaccounts") => vec![Column {
            name: "Secrets",
            kind: "string",
            cell: |o| count(o, "secrets"),
        }],
        ("coordination.k8s.io", "leases") => vec![Column {
            name: "Holder",
            kind: "string",
            cell: |o| text(o, "/spec/holderIdentity"),
        }],
        ("batch", "jobs") => vec![
            Column {
                name: "Status",
                kind: "string",
                cell: job_status,
            },
            Column {
                name: "Completions",
                kind: "string",
                cell: |o| {
                    let done = o
                        .pointer("/status/succeeded")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    let want = o
                        .pointer("/spec/completions")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    json!(format!("{done}/{want}"))
                },
            },
        ],
        ("apps", "deployments") => vec![
            Column {
                name: "Ready",
                kind: "string",
                cell: |o| {
                    let ready = o
                        .pointer("/status/readyReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    let want = o
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    json!(format!("{ready}/{want}"))
                },
            },
            Column {
                name: "Up-to-date",
                kind: "integer",
                cell: |o| {
                    json!(
                        o.pointer("/status/updatedReplicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    )
                },
            },
            Column {
                name: "Available",
                kind: "integer",
                cell: |o| {
                    json!(
                        o.pointer("/status/availableReplicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    )
                },
            },
        ],
        ("apiextensions.k8s.io", _) => {
            return vec![Column {
                name: "Created At",
                kind: "date",
                cell: |o| text(o, "/metadata/creationTimestamp"),
            }];
        }
        _ => vec![],
    };
    cols.push(age_col);
    cols
}

/// A Table of presented objects. `headers` is false for watch events after the first.
pub fn table(info: &ResourceInfo, objects: &[Value], list_meta: Value, headers: bool) -> Value {
    let mut defs = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
    })];
    let rows: Vec<Value> = if info.is_custom() {
        let mut columns = info.printer_columns.clone();
        if columns.is_empty() {
            columns.push(
                json!({ "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp" }),
            );
        }
        for c in &columns {
            defs.push(json!({
                "name": c["name"], "type": c["type"], "format": c.get("format").cloned().unwrap_or(json!("")),
                "description": c.get("description").cloned().unwrap_or(json!("")), "priority": c.get("priority").cloned().unwrap_or(json!(0)),
            }));
        }
        objects
            .iter()
            .map(|o| {
                let mut cells = vec![json!(
                    o.pointer("/metadata/name").cloned().unwrap_or_default()
                )];
                for c in &columns {
                    let v = jsonpath(o, c["jsonPath"].as_str().unwrap_or(""));
                    cells.push(cell(c["type"].as_str().unwrap_or("string"), v));
                }
                row(o, cells)
            })
            .collect()
    } else {
        let columns = builtin_columns(info);
        for c in &columns {
            defs.push(json!({ "name": c.name, "type": c.kind, "format": "", "description": "", "priority": 0 }));
        }
        objects
            .iter()
            .map(|o| {
                let mut cells = vec![json!(
                    o.pointer("/metadata/name").cloned().unwrap_or_default()
                )];
                cells.extend(columns.iter().map(|c| (c.cell)(o)));
                row(o, cells)
            })
            .collect()
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": if headers { Value::Array(defs) } else { json!([]) },
        "rows": rows,
    })
}

fn row(o: &Value, cells: Vec<Value>) -> Value {
    json!({ "cells": cells, "object": partial_metadata(o) })
}

fn cell(kind: &str, v: Option<Value>) -> Value {
    let Some(v) = v else { return Value::Null };
    match kind {
        "date" => v.as_str().map(|s| json!(since(s))).unwrap_or(Value::Null),
        "string" => match v {
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
        _ => v,
    }
}

/// Evaluates the simple JSONPath CRD printer columns use: `.a.b`, `[n]`, `[?(@.k=="v")]`.
fn jsonpath(obj: &Value, path: &str) -> Option<Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = obj.clone();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                cur = cur.get(&r[..end])?.clone();
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                cur = cur
                    .as_array()?
                    .iter()
                    .find(|x| x.get(field.trim()).and_then(Value::as_str) == Some(want))?
                    .clone();
            } else {
                let i: usize = inner.parse().ok()?;
                cur = cur.get(i)?.clone();
            }
        } else {
            return None;
        }
    }
    Some(cur)
}

/// Go's `duration.HumanDuration` of the time since an RFC 3339 timestamp.
pub fn since(ts: &str) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else {
        return "<invalid>".into();
    };
    human_duration(jiff::Timestamp::now().as_second() - t.as_second())
}

fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_durations() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}, "spec": {"l": [1, 2]}});
        assert_eq!(
            jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("True"))
        );
        assert_eq!(jsonpath(&o, ".spec.l[1]"), Some(json!(2)));
        assert_eq!(jsonpath(&o, ".spec.missing"), None);
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(50 * 3600), "2d2h");
    }
}
