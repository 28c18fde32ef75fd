//! JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, PatchError> {
    Err(PatchError(msg.into()))
}

/// RFC 7386 merge patch, in place.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 6902
// ---------------------------------------------------------------------------------------------

/// RFC 6902 JSON patch. `patch` must be an array of operations; failure leaves nothing applied.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Some(ops) = patch.as_array() else {
        return err("json: cannot unmarshal object into Go value of type jsonpatch.Patch");
    };
    let mut doc = target.clone();
    for op in ops {
        apply_operation(&mut doc, op)?;
    }
    Ok(doc)
}

fn apply_operation(doc: &mut Value, op: &Value) -> Result<(), PatchError> {
    let field = |name: &str| op.get(name).and_then(Value::as_str);
    let Some(kind) = field("op") else {
        return err(format!(
            "Unexpected kind: {}",
            field("op").unwrap_or("unknown")
        ));
    };
    let Some(path) = field("path") else {
        return err(format!("{kind} operation missing path"));
    };
    let path = parse_pointer(path)?;
    match kind {
        "add" => add(doc, &path, required_value(op, kind)?.clone()),
        "remove" => remove(doc, &path).map(drop),
        "replace" => {
            let value = required_value(op, kind)?.clone();
            let slot = get_mut(doc, &path).ok_or_else(|| {
                PatchError(format!(
                    "replace operation does not apply: doc is missing key: {}",
                    display(&path)
                ))
            })?;
            *slot = value;
            Ok(())
        }
        "move" => {
            let from = parse_pointer(
                field("from").ok_or_else(|| PatchError("move operation missing from".into()))?,
            )?;
            if path.len() > from.len() && path[..from.len()] == from[..] {
                return err(format!(
                    "move operation does not apply: cannot move {} into its own child",
                    display(&from)
                ));
            }
            let value = remove(doc, &from)?;
            add(doc, &path, value)
        }
        "copy" => {
            let from = parse_pointer(
                field("from").ok_or_else(|| PatchError("copy operation missing from".into()))?,
            )?;
            let value = get(doc, &from)
                .ok_or_else(|| {
                    PatchError(format!(
                        "copy operation does not apply: doc is missing from path: {}",
                        display(&from)
                    ))
                })?
                .clone();
            add(doc, &path, value)
        }
        "test" => {
            let expected = required_value(op, kind)?;
            match get(doc, &path) {
                Some(actual) if json_equal(actual, expected) => Ok(()),
                // The API server's JSON patch library treats an absent member as null, so
                // "test absent" is `{"op":"test","value":null}` (kube-runtime's finalizer uses it).
                None if expected.is_null() => Ok(()),
                _ => err(format!(
                    "testing value {} failed: test failed",
                    display(&path)
                )),
            }
        }
        other => err(format!("Unexpected kind: {other}")),
    }
}

fn required_value<'a>(op: &'a Value, kind: &str) -> Result<&'a Value, PatchError> {
    op.get("value")
        .ok_or_else(|| PatchError(format!("{kind} operation missing value")))
}

/// Splits a JSON pointer into unescaped reference tokens (`~1` → `/`, `~0` → `~`).
fn parse_pointer(pointer: &str) -> Result<Vec<String>, PatchError> {
    if pointer.is_empty() {
        return Ok(vec![]);
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return err(format!(
            "JSON pointer must be empty or start with a \"/\": {pointer}"
        ));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn display(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn array_index(token: &str, len: usize) -> Option<usize> {
    if token.is_empty()
        || !token.bytes().all(|b| b.is_ascii_digit())
        || (token.len() > 1 && token.starts_with('0'))
    {
        return None;
    }
    token.parse::<usize>().ok().filter(|i| *i < len)
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |node, token| match node {
        Value::Object(map) => map.get(token),
        Value::Array(list) => array_index(token, list.len()).map(|i| &list[i]),
        _ => None,
    })
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |node, token| match node {
        Value::Object(map) => map.get_mut(token),
        Value::Array(list) => array_index(token, list.len()).map(move |i| &mut list[i]),
        _ => None,
    })
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), PatchError> {
    let Some((last, parent_path)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    let missing = || {
        PatchError(format!(
            "add operation does not apply: doc is missing path: \"{}\": missing value",
            display(path)
        ))
    };
    match get_mut(doc, parent_path).ok_or_else(missing)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(list) => {
            let index = if last == "-" {
                list.len()
            } else {
                array_index(last, list.len() + 1).ok_or_else(missing)?
            };
            list.insert(index, value);
            Ok(())
        }
        _ => Err(missing()),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, PatchError> {
    let missing = || {
        PatchError(format!(
            "remove operation does not apply: doc is missing path: \"{}\": missing value",
            display(path)
        ))
    };
    let Some((last, parent_path)) = path.split_last() else {
        return Ok(std::mem::take(doc));
    };
    match get_mut(doc, parent_path).ok_or_else(missing)? {
        Value::Object(map) => map.remove(last).ok_or_else(missing),
        Value::Array(list) => array_index(last, list.len())
            .map(|i| list.remove(i))
            .ok_or_else(missing),
        _ => Err(missing()),
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch
// ---------------------------------------------------------------------------------------------

const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// How a list field of a built-in kind merges (its `patchStrategy` / `patchMergeKey` tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// No patch strategy: the patch's list replaces the live one.
    Replace,
    /// `patchStrategy:"merge"` on a list of scalars: union, keeping order.
    MergeScalars,
    /// `patchStrategy:"merge"` with `patchMergeKey`.
    MergeByKey(&'static str),
}

/// The strategy of the list field `field` reached through the object field names `path`
/// (list indices not included), for the built-in kinds' well-known lists.
pub fn builtin_list_strategy(path: &[&str], field: &str) -> ListStrategy {
    let in_container = path
        .iter()
        .any(|p| matches!(*p, "containers" | "initContainers" | "ephemeralContainers"));
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => ListStrategy::MergeByKey("name"),
        "ports" if in_container => ListStrategy::MergeByKey("containerPort"),
        "ports" if path.last() == Some(&"spec") => ListStrategy::MergeByKey("port"),
        "volumeMounts" => ListStrategy::MergeByKey("mountPath"),
        "volumeDevices" => ListStrategy::MergeByKey("devicePath"),
        "hostAliases" => ListStrategy::MergeByKey("ip"),
        "topologySpreadConstraints" => ListStrategy::MergeByKey("topologyKey"),
        "conditions" => ListStrategy::MergeByKey("type"),
        "secrets" if path.is_empty() => ListStrategy::MergeByKey("name"),
        "ownerReferences" if path == ["metadata"] => ListStrategy::MergeByKey("uid"),
        "finalizers" if path == ["metadata"] => ListStrategy::MergeScalars,
        _ => ListStrategy::Replace,
    }
}

/// Strategic merge patch for built-in kinds: merge-by-key for the well-known keyed lists
/// (containers, env, ports, volumes, … by `name`; conditions by `type`), `$patch: delete|replace`
/// directives, otherwise RFC 7386 semantics.
///
/// Also handles `$patch: merge`, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and
/// `$setElementOrder/<field>` (accepted; the resulting order is live order, then new items).
/// No directive ever remains in the result.
pub fn strategic_merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return err("the patch must be a JSON object");
    };
    let original = target.as_object().cloned().unwrap_or_default();
    Ok(Value::Object(merge_map(original, patch, &[])?))
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    path: &[&str],
) -> Result<Map<String, Value>, PatchError> {
    match patch.get(PATCH_DIRECTIVE) {
        None => {}
        Some(Value::String(d)) if d == "merge" => {}
        Some(Value::String(d)) if d == "replace" => {
            // The patch (minus the directive) becomes the whole map.
            return merge_map(Map::new(), &without_key(patch, PATCH_DIRECTIVE), path);
        }
        Some(Value::String(d)) if d == "delete" => return Ok(Map::new()),
        Some(other) => {
            return err(format!(
                "unknown patch type: {} in map",
                crate::go_format::json(other)
            ));
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Some(keys) = retain.as_array() else {
            return err("$retainKeys must be a list of strings");
        };
        let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        original.retain(|k, _| keys.contains(&k.as_str()));
    }
    for (key, values) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let Some(values) = values.as_array() else {
                return err(format!("{key} must be a list"));
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|v| !values.contains(v));
            }
        }
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let child_path: Vec<&str> = path
            .iter()
            .copied()
            .chain(std::iter::once(key.as_str()))
            .collect();
        let merged = match (original.remove(key), value) {
            (Some(Value::Object(live)), Value::Object(p)) => {
                // `$patch: delete` on a field removes the field.
                if p.get(PATCH_DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                    continue;
                }
                Value::Object(merge_map(live, p, &child_path)?)
            }
            (Some(Value::Array(live)), Value::Array(p)) => Value::Array(merge_list(
                live,
                p,
                builtin_list_strategy(path, key),
                &child_path,
            )?),
            (_, Value::Object(p)) => {
                if p.get(PATCH_DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                    continue;
                }
                Value::Object(merge_map(Map::new(), p, &child_path)?)
            }
            (_, Value::Array(p)) => Value::Array(merge_list(
                vec![],
                p,
                builtin_list_strategy(path, key),
                &child_path,
            )?),
            (_, scalar) => scalar.clone(),
        };
        original.insert(key.clone(), merged);
    }
    Ok(original)
}

fn without_key(map: &Map<String, Value>, key: &str) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| k.as_str() != key)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn directive_of(v: &Value) -> Option<&str> {
    v.get(PATCH_DIRECTIVE).and_then(Value::as_str)
}

fn merge_list(
    live: Vec<Value>,
    patch: &[Value],
    strategy: ListStrategy,
    path: &[&str],
) -> Result<Vec<Value>, PatchError> {
    // `{"$patch": "replace"}` as a list element replaces the whole list with the other elements.
    let replace = patch.iter().any(|v| directive_of(v) == Some("replace"));
    let mut result = if replace { vec![] } else { live };
    let elements = patch.iter().filter(|v| directive_of(v) != Some("replace"));
    match strategy {
        ListStrategy::Replace => {
            return elements.map(|v| clean(v, path)).collect();
        }
        ListStrategy::MergeScalars => {
            for v in elements {
                if !result.contains(v) {
                    result.push(clean(v, path)?);
                }
            }
        }
        ListStrategy::MergeByKey(merge_key) => {
            for element in elements {
                let Value::Object(p) = element else {
                    result.push(element.clone());
                    continue;
                };
                let Some(key) = p.get(merge_key) else {
                    return err(format!(
                        "map: {} does not contain declared merge key: {merge_key}",
                        crate::go_format::json(element)
                    ));
                };
                let position = result.iter().position(|v| v.get(merge_key) == Some(key));
                if directive_of(element) == Some("delete") {
                    result.retain(|v| v.get(merge_key) != Some(key));
                    continue;
                }
                match position {
                    Some(i) => {
                        let live = result[i].as_object().cloned().unwrap_or_default();
                        result[i] = Value::Object(merge_map(live, p, path)?);
                    }
                    None => result.push(Value::Object(merge_map(Map::new(), p, path)?)),
                }
            }
        }
    }
    Ok(result)
}

/// A patch value taken as it is, with directives processed against nothing.
fn clean(v: &Value, path: &[&str]) -> Result<Value, PatchError> {
    match v {
        Value::Object(map) => Ok(Value::Object(merge_map(Map::new(), map, path)?)),
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests;
