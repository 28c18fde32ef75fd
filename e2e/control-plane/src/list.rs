//! List requests: selectors, resourceVersion semantics and paging with continue tokens.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use local_apimachinery::selector::{FieldSelector, LabelSelector};
use serde_json::{Value, json};

use crate::app::App;
use crate::convert::present;
use crate::registry::ResourceInfo;
use crate::status::{ApiError, ApiResult};
use crate::store::Key;

/// Query parameters of a list or watch.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub label_selector: Option<LabelSelector>,
    pub field_selector: Option<FieldSelector>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// Field selectors each kind supports besides `metadata.name` and `metadata.namespace`.
fn extra_fields(info: &ResourceInfo) -> &'static [&'static str] {
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "type",
            "reportingComponent",
        ],
        ("events.k8s.io", "events") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "reason",
            "type",
            "reportingController",
        ],
        ("batch", "jobs") => &["status.successful"],
        _ => &[],
    }
}

impl ListQuery {
    pub fn parse(info: &ResourceInfo, query: &[(String, String)]) -> ApiResult<ListQuery> {
        let q = |k: &str| {
            query
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let label_selector = q("labelSelector")
            .map(|s| LabelSelector::parse(&s))
            .transpose()
            .map_err(ApiError::bad_request)?;
        let mut supported = vec!["metadata.name", "metadata.namespace"];
        supported.extend_from_slice(extra_fields(info));
        let field_selector = q("fieldSelector")
            .map(|s| FieldSelector::parse(&s, &supported))
            .transpose()
            .map_err(ApiError::bad_request)?;
        let limit = match q("limit") {
            None => None,
            Some(l) => match l.parse::<i64>() {
                Ok(n) if n > 0 => Some(n as usize),
                Ok(_) => None,
                Err(_) => {
                    return Err(ApiError::bad_request(format!(
                        "invalid value for limit: {l:?}"
                    )));
                }
            },
        };
        Ok(ListQuery {
            label_selector,
            field_selector,
            resource_version: q("resourceVersion"),
            resource_version_match: q("resourceVersionMatch"),
            limit,
            continue_token: q("continue"),
        })
    }

    pub fn has_selectors(&self) -> bool {
        self.label_selector.is_some() || self.field_selector.is_some()
    }

    /// Whether a presented object passes the selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.label_selector
            .as_ref()
            .is_none_or(|s| s.matches(obj.pointer("/metadata/labels")))
            && self.field_selector.as_ref().is_none_or(|s| s.matches(obj))
    }
}

/// The opaque continue token: the snapshot resourceVersion and the last key returned.
fn encode_continue(rv: u64, last: &Key) -> String {
    let start = format!("{}/{}\u{0}", last.namespace, last.name);
    STANDARD.encode(json!({ "v": "meta.k8s.io/v1", "rv": rv, "start": start }).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, String, String)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = STANDARD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(bad());
    }
    let rv = v["rv"].as_u64().filter(|rv| *rv > 0).ok_or_else(bad)?;
    let start = v["start"]
        .as_str()
        .ok_or_else(bad)?
        .trim_end_matches('\u{0}');
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((rv, ns.to_string(), name.to_string()))
}

/// A list answer before it is rendered: items, resourceVersion, paging.
pub struct ListResult {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

pub fn parse_rv(rv: &str) -> ApiResult<u64> {
    rv.parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))
}

pub fn list(
    app: &App,
    info: &ResourceInfo,
    namespace: Option<&str>,
    q: &ListQuery,
) -> ApiResult<ListResult> {
    let current = app.store.current_rv();
    let (at, after) = match &q.continue_token {
        Some(token) => {
            let (rv, ns, name) = decode_continue(token)?;
            (Some(rv), Some((ns, name)))
        }
        None => {
            let exact = q.resource_version_match.as_deref() == Some("Exact");
            match q.resource_version.as_deref() {
                Some(rv) if rv != "0" => {
                    let rv = parse_rv(rv)?;
                    if rv > current {
                        return Err(ApiError::too_large_resource_version(rv, current));
                    }
                    (exact.then_some(rv), None)
                }
                _ => (None, None),
            }
        }
    };
    let (objects, rv) = app.store.list(&info.storage, namespace, at).map_err(|c| {
        if q.continue_token.is_some() {
            ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            )
        } else {
            ApiError::expired(format!("too old resource version: {} ({})", at.unwrap_or_default(), c.floor))
        }
    })?;
    let mut matching = objects
        .into_iter()
        .filter(|(k, _)| {
            after
                .as_ref()
                .is_none_or(|(ns, name)| (&k.namespace, &k.name) > (ns, name))
        })
        .map(|(k, v)| (k, present(info, &v)))
        .filter(|(_, v)| q.matches(v));
    let mut items = vec![];
    let mut last = None;
    for (k, v) in matching.by_ref() {
        if q.limit.is_some_and(|l| items.len() >= l) {
            // One more exists: the page is full.
            let remaining = 1 + matching.count();
            let token = last.as_ref().map(|k| encode_continue(rv, k));
            return Ok(ListResult {
                items,
                resource_version: rv,
                continue_token: token,
                remaining: (!q.has_selectors()).then_some(remaining),
            });
        }
        last = Some(k);
        items.push(v);
    }
    Ok(ListResult {
        items,
        resource_version: rv,
        continue_token: None,
        remaining: None,
    })
}

/// The `<Kind>List` document of a list answer.
pub fn list_document(info: &ResourceInfo, r: ListResult) -> Value {
    let mut metadata = json!({ "resourceVersion": r.resource_version.to_string() });
    if let Some(c) = r.continue_token {
        metadata["continue"] = json!(c);
    }
    if let Some(n) = r.remaining {
        metadata["remainingItemCount"] = json!(n);
    }
    json!({ "kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": metadata, "items": r.items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_round_trip() {
        let t = encode_continue(42, &Key::new("r", "ns", "b"));
        let (rv, ns, name) = decode_continue(&t).unwrap();
        assert_eq!((rv, ns.as_str(), name.as_str()), (42, "ns", "b"));
        assert!(decode_continue("garbage").is_err());
    }
}
