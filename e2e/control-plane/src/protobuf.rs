//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`).
//!
//! client-go's typed clients send built-in objects as protobuf; Helm stores its releases in
//! Secrets through one. A real API server accepts protobuf for every built-in kind; this one
//! decodes the kinds its clients send (Secret, ConfigMap, Namespace, DeleteOptions) into their JSON form and
//! answers 415 for the rest, as a real server does for custom resources. Fields it does not know
//! are refused, never dropped.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::status::{ApiError, ApiResult};

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The prefix of every protobuf-encoded object: "k8s" and a zero byte.
const MAGIC: &[u8] = b"k8s\0";

/// How a field's value is encoded and rendered in JSON.
#[derive(Clone, Copy)]
enum Field {
    /// A string JSON omits when empty (Go `string` fields with `omitempty`).
    OptionalString,
    Bytes,
    Int64,
    /// A pointer field: present in JSON whenever it is on the wire, zero or not.
    Present(Scalar),
    Message(&'static Message),
    Repeated(&'static Message),
    RepeatedString,
    MapOfStrings,
    MapOfBytes,
    Time,
}

#[derive(Clone, Copy)]
enum Scalar {
    String,
    Bool,
    Int64,
}

struct Message {
    name: &'static str,
    fields: &'static [(u64, &'static str, Field)],
}

const OWNER_REFERENCE: Message = Message {
    name: "OwnerReference",
    fields: &[
        (1, "kind", Field::OptionalString),
        (3, "name", Field::OptionalString),
        (4, "uid", Field::OptionalString),
        (5, "apiVersion", Field::OptionalString),
        (6, "controller", Field::Present(Scalar::Bool)),
        (7, "blockOwnerDeletion", Field::Present(Scalar::Bool)),
    ],
};

const OBJECT_META: Message = Message {
    name: "ObjectMeta",
    fields: &[
        (1, "name", Field::OptionalString),
        (2, "generateName", Field::OptionalString),
        (3, "namespace", Field::OptionalString),
        (4, "selfLink", Field::OptionalString),
        (5, "uid", Field::OptionalString),
        (6, "resourceVersion", Field::OptionalString),
        (7, "generation", Field::Int64),
        (8, "creationTimestamp", Field::Time),
        (9, "deletionTimestamp", Field::Time),
        (
            10,
            "deletionGracePeriodSeconds",
            Field::Present(Scalar::Int64),
        ),
        (11, "labels", Field::MapOfStrings),
        (12, "annotations", Field::MapOfStrings),
        (13, "ownerReferences", Field::Repeated(&OWNER_REFERENCE)),
        (14, "finalizers", Field::RepeatedString),
    ],
};

const SECRET: Message = Message {
    name: "Secret",
    fields: &[
        (1, "metadata", Field::Message(&OBJECT_META)),
        (2, "data", Field::MapOfBytes),
        (3, "type", Field::OptionalString),
        (4, "stringData", Field::MapOfStrings),
        (5, "immutable", Field::Present(Scalar::Bool)),
    ],
};

const CONFIG_MAP: Message = Message {
    name: "ConfigMap",
    fields: &[
        (1, "metadata", Field::Message(&OBJECT_META)),
        (2, "data", Field::MapOfStrings),
        (3, "binaryData", Field::MapOfBytes),
        (4, "immutable", Field::Present(Scalar::Bool)),
    ],
};

const NAMESPACE_SPEC: Message = Message {
    name: "NamespaceSpec",
    fields: &[(1, "finalizers", Field::RepeatedString)],
};

const NAMESPACE_STATUS: Message = Message {
    name: "NamespaceStatus",
    fields: &[(1, "phase", Field::OptionalString)],
};

const NAMESPACE: Message = Message {
    name: "Namespace",
    fields: &[
        (1, "metadata", Field::Message(&OBJECT_META)),
        (2, "spec", Field::Message(&NAMESPACE_SPEC)),
        (3, "status", Field::Message(&NAMESPACE_STATUS)),
    ],
};

const PRECONDITIONS: Message = Message {
    name: "Preconditions",
    fields: &[
        (1, "uid", Field::Present(Scalar::String)),
        (2, "resourceVersion", Field::Present(Scalar::String)),
    ],
};

const DELETE_OPTIONS: Message = Message {
    name: "DeleteOptions",
    fields: &[
        (1, "gracePeriodSeconds", Field::Present(Scalar::Int64)),
        (2, "preconditions", Field::Message(&PRECONDITIONS)),
        (3, "orphanDependents", Field::Present(Scalar::Bool)),
        (4, "propagationPolicy", Field::Present(Scalar::String)),
        (5, "dryRun", Field::RepeatedString),
    ],
};

const TYPE_META: Message = Message {
    name: "TypeMeta",
    fields: &[
        (1, "apiVersion", Field::OptionalString),
        (2, "kind", Field::OptionalString),
    ],
};

const UNKNOWN: Message = Message {
    name: "Unknown",
    fields: &[
        (1, "typeMeta", Field::Message(&TYPE_META)),
        (2, "raw", Field::Bytes),
        (3, "contentEncoding", Field::OptionalString),
        (4, "contentType", Field::OptionalString),
    ],
};

/// The kinds this server decodes, by `apiVersion` and `kind`.
fn message_for(api_version: &str, kind: &str) -> Option<&'static Message> {
    match (api_version, kind) {
        ("v1", "Secret") => Some(&SECRET),
        ("v1", "ConfigMap") => Some(&CONFIG_MAP),
        ("v1", "Namespace") => Some(&NAMESPACE),
        // DeleteOptions are sent with the group-version of the resource being deleted.
        (_, "DeleteOptions") => Some(&DELETE_OPTIONS),
        _ => None,
    }
}

/// Decodes a protobuf-encoded object into its JSON form, `apiVersion` and `kind` included.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| malformed("the body does not start with the protobuf object prefix"))?;
    let unknown = decode_message(envelope, &UNKNOWN)?;
    let api_version = unknown["typeMeta"]["apiVersion"].as_str().unwrap_or("");
    let kind = unknown["typeMeta"]["kind"].as_str().unwrap_or("");
    if unknown
        .get("contentEncoding")
        .is_some_and(|e| e.as_str() != Some(""))
    {
        return Err(malformed("content encodings are not supported"));
    }
    let message = message_for(api_version, kind).ok_or_else(|| {
        ApiError::unsupported_media_type(CONTENT_TYPE, &["application/json", "application/yaml"])
    })?;
    let raw = unknown
        .get("raw")
        .and_then(Value::as_str)
        .map(|b64| base64::engine::general_purpose::STANDARD.decode(b64))
        .transpose()
        .map_err(|_| malformed("raw"))?
        .unwrap_or_default();
    let mut object = decode_message(&raw, message)?;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

fn malformed(detail: &str) -> ApiError {
    ApiError::bad_request(format!("unable to decode protobuf body: {detail}"))
}

/// One field as it is on the wire.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(input: &mut &[u8]) -> ApiResult<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input
            .split_first()
            .ok_or_else(|| malformed("truncated varint"))?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed("varint too long"))
}

/// The fields of a message in wire order.
fn wire_fields(mut input: &[u8]) -> ApiResult<Vec<(u64, Wire<'_>)>> {
    let mut fields = vec![];
    while !input.is_empty() {
        let key = varint(&mut input)?;
        let value = match key & 7 {
            0 => Wire::Varint(varint(&mut input)?),
            2 => {
                let len = usize::try_from(varint(&mut input)?)
                    .map_err(|_| malformed("length overflow"))?;
                if len > input.len() {
                    return Err(malformed("truncated field"));
                }
                let (bytes, rest) = input.split_at(len);
                input = rest;
                Wire::Bytes(bytes)
            }
            other => return Err(malformed(&format!("unexpected wire type {other}"))),
        };
        fields.push((key >> 3, value));
    }
    Ok(fields)
}

fn text(bytes: &[u8]) -> ApiResult<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("a string is not UTF-8"))
}

fn decode_message(input: &[u8], message: &Message) -> ApiResult<Value> {
    let mut out = Map::new();
    for (number, wire) in wire_fields(input)? {
        let Some((_, name, field)) = message.fields.iter().find(|(n, _, _)| *n == number) else {
            return Err(malformed(&format!(
                "field {number} of {} is not supported by this server",
                message.name
            )));
        };
        let name = name.to_string();
        match (field, wire) {
            (Field::OptionalString, Wire::Bytes(b)) => {
                let s = text(b)?;
                if !s.is_empty() {
                    out.insert(name, json!(s));
                }
            }
            (Field::Bytes, Wire::Bytes(b)) => {
                out.insert(
                    name,
                    json!(base64::engine::general_purpose::STANDARD.encode(b)),
                );
            }
            (Field::Int64, Wire::Varint(v)) => {
                if v != 0 {
                    out.insert(name, json!(v as i64));
                }
            }
            (Field::Present(Scalar::String), Wire::Bytes(b)) => {
                out.insert(name, json!(text(b)?));
            }
            (Field::Present(Scalar::Bool), Wire::Varint(v)) => {
                out.insert(name, json!(v != 0));
            }
            (Field::Present(Scalar::Int64), Wire::Varint(v)) => {
                out.insert(name, json!(v as i64));
            }
            (Field::Message(inner), Wire::Bytes(b)) => {
                out.insert(name, decode_message(b, inner)?);
            }
            (Field::Repeated(inner), Wire::Bytes(b)) => {
                let item = decode_message(b, inner)?;
                push(&mut out, name, item);
            }
            (Field::RepeatedString, Wire::Bytes(b)) => {
                push(&mut out, name, json!(text(b)?));
            }
            (Field::MapOfStrings | Field::MapOfBytes, Wire::Bytes(b)) => {
                let (key, value) = map_entry(b, matches!(field, Field::MapOfBytes))?;
                out.entry(name)
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("maps are objects")
                    .insert(key, value);
            }
            (Field::Time, Wire::Bytes(b)) => {
                if let Some(time) = timestamp(b)? {
                    out.insert(name, json!(time));
                }
            }
            _ => {
                return Err(malformed(&format!(
                    "field {number} of {} has the wrong wire type",
                    message.name
                )));
            }
        }
    }
    Ok(Value::Object(out))
}

fn push(out: &mut Map<String, Value>, name: String, item: Value) {
    out.entry(name)
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .expect("repeated fields are arrays")
        .push(item);
}

/// A map entry: key 1, value 2 (bytes values in their JSON form, base64).
fn map_entry(input: &[u8], bytes_value: bool) -> ApiResult<(String, Value)> {
    let mut key = String::new();
    let mut value = json!("");
    for (number, wire) in wire_fields(input)? {
        match (number, wire) {
            (1, Wire::Bytes(b)) => key = text(b)?,
            (2, Wire::Bytes(b)) if bytes_value => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(b));
            }
            (2, Wire::Bytes(b)) => value = json!(text(b)?),
            _ => return Err(malformed("map entry")),
        }
    }
    Ok((key, value))
}

/// `metav1.Time`: seconds and nanos since the epoch; the zero time is absent in JSON.
fn timestamp(input: &[u8]) -> ApiResult<Option<String>> {
    let mut seconds = 0i64;
    let mut nanos = 0i32;
    for (number, wire) in wire_fields(input)? {
        match (number, wire) {
            (1, Wire::Varint(v)) => seconds = v as i64,
            (2, Wire::Varint(v)) => nanos = v as i32,
            _ => return Err(malformed("time")),
        }
    }
    if seconds == 0 && nanos == 0 {
        return Ok(None);
    }
    let time = jiff::Timestamp::new(seconds, 0).map_err(|_| malformed("time out of range"))?;
    Ok(Some(time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited field.
    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
        let mut body = MAGIC.to_vec();
        body.extend(field(1, &type_meta));
        body.extend(field(2, raw));
        body
    }

    #[test]
    fn secret_with_go_zero_values_decodes_to_its_json_form() {
        // As client-go writes it: empty strings and a zero creationTimestamp on the wire.
        let label = [field(1, b"owner"), field(2, b"helm")].concat();
        let meta = [
            field(1, b"release"),
            field(2, b""),
            field(6, b""),
            field(8, b""),
            field(11, &label),
        ]
        .concat();
        let data = [field(1, b"release"), field(2, &[0, 159, 255])].concat();
        let secret = [
            field(1, &meta),
            field(2, &data),
            field(3, b"helm.sh/release.v1"),
        ]
        .concat();
        let decoded = decode(&envelope("v1", "Secret", &secret)).unwrap();
        assert_eq!(
            decoded,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": { "name": "release", "labels": { "owner": "helm" } },
                "data": { "release": "AJ//" },
                "type": "helm.sh/release.v1",
            })
        );
    }

    #[test]
    fn delete_options_keep_zero_pointer_fields() {
        let options = [vec![1 << 3, 0], field(4, b"Background")].concat();
        let decoded = decode(&envelope("v1", "DeleteOptions", &options)).unwrap();
        assert_eq!(decoded["gracePeriodSeconds"], json!(0));
        assert_eq!(decoded["propagationPolicy"], json!("Background"));
    }

    #[test]
    fn unknown_kinds_and_fields_are_refused() {
        assert_eq!(
            decode(&envelope("apps/v1", "Deployment", b""))
                .unwrap_err()
                .code,
            415
        );
        let secret = field(9, b"x");
        assert_eq!(
            decode(&envelope("v1", "Secret", &secret)).unwrap_err().code,
            400
        );
        assert_eq!(decode(b"not protobuf").unwrap_err().code, 400);
    }
}
