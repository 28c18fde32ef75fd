//! Conversion between the stored form of an object and the version a request uses.
//!
//! Objects are stored in one version per storage resource. Custom resources have no conversion
//! webhook here (strategy `None`): only `apiVersion` changes. Events are stored as core/v1 and
//! served under events.k8s.io/v1 with that API's field names.

use serde_json::{Map, Value};

use crate::registry::ResourceInfo;

/// events.k8s.io/v1 field ↔ core/v1 field.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

fn is_events_api(info: &ResourceInfo) -> bool {
    info.group == "events.k8s.io"
}

fn rename(obj: &mut Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    if let Some(m) = obj.as_object_mut() {
        for (from, to) in pairs {
            if let Some(v) = m.remove(from) {
                m.insert(to.to_string(), v);
            }
        }
    }
}

/// The stored object as `info`'s version presents it.
pub fn present(info: &ResourceInfo, stored: &Value) -> Value {
    let mut obj = stored.clone();
    if is_events_api(info) {
        rename(&mut obj, EVENT_FIELDS.iter().map(|(a, b)| (*b, *a)));
    }
    stamp_type(info, &mut obj);
    obj
}

/// A request's object in stored form.
pub fn to_stored(info: &ResourceInfo, obj: Value) -> Value {
    let mut obj = obj;
    if is_events_api(info) {
        rename(&mut obj, EVENT_FIELDS.iter().copied());
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), Value::from("v1"));
        }
    } else {
        stamp_type(info, &mut obj);
    }
    obj
}

fn stamp_type(info: &ResourceInfo, obj: &mut Value) {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    obj["apiVersion"] = Value::from(info.api_version());
    obj["kind"] = Value::from(info.kind.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn events_round_trip() {
        let reg = Registry::new();
        let ev = reg.find("events.k8s.io", "v1", "events").unwrap();
        let stored = to_stored(
            &ev,
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "note": "hi", "regarding": {"name": "x"}}),
        );
        assert_eq!(stored["message"], "hi");
        assert_eq!(stored["involvedObject"]["name"], "x");
        let back = present(&ev, &stored);
        assert_eq!(back["note"], "hi");
        assert_eq!(back["apiVersion"], "events.k8s.io/v1");
    }
}
