//! Query strings, `limit`, and the `Link: <…>; rel="next"` header of paged lists.
//!
//! Lists are sorted by a key that is unique per item, and a `next…` cursor names the last item
//! of the previous page; the next page starts strictly after it. Items created or deleted
//! between pages therefore never shift the others: nothing is skipped or repeated.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::DceError;

/// Page size when the request names none (DCE's).
pub const DEFAULT_LIMIT: usize = 25;
/// Largest page served.
pub const MAX_LIMIT: usize = 1000;

/// The query parameters of a request; a repeated parameter keeps its last value.
pub fn parse_query(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `limit`: a positive integer, at most [`MAX_LIMIT`].
pub fn limit(query: &HashMap<String, String>) -> Result<usize, DceError> {
    match query.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n.min(MAX_LIMIT)),
            _ => Err(DceError::validation(format!(
                "invalid request parameters: limit must be a positive integer, not {text:?}"
            ))),
        },
    }
}

/// The first `limit` items, in key order, of those `wanted` whose key is after `cursor`, and
/// whether more remain. `select` runs one scan over the cache (e.g. `Store::state_filter`);
/// the scan keeps the `limit + 1` smallest keys seen so far and takes only items that enter
/// them, so a page of a large cache costs a pass of comparisons, not a copy and sort of it.
pub fn page_of<T, const N: usize>(
    select: impl FnOnce(&dyn Fn(&T) -> bool) -> Vec<Arc<T>>,
    wanted: impl Fn(&T) -> bool,
    key: for<'a> fn(&'a T) -> [&'a str; N],
    cursor: Option<[&str; N]>,
    limit: usize,
) -> (Vec<Arc<T>>, bool) {
    let smallest: RefCell<BinaryHeap<[String; N]>> = RefCell::default();
    let candidates = select(&|item: &T| {
        if !wanted(item) {
            return false;
        }
        let item_key = key(item);
        if cursor.is_some_and(|cursor| item_key <= cursor) {
            return false;
        }
        let mut smallest = smallest.borrow_mut();
        if smallest.len() > limit {
            match smallest.peek() {
                Some(largest) if compare(&item_key, largest) == Ordering::Less => {
                    smallest.pop();
                }
                _ => return false,
            }
        }
        smallest.push(item_key.map(str::to_string));
        true
    });
    let smallest = smallest.into_inner();
    let Some(threshold) = smallest.peek() else {
        return (Vec::new(), false);
    };
    let mut page: Vec<Arc<T>> = candidates
        .into_iter()
        .filter(|item| compare(&key(item), threshold) != Ordering::Greater)
        .collect();
    page.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
    let more = page.len() > limit;
    page.truncate(limit);
    (page, more)
}

fn compare<const N: usize>(key: &[&str; N], owned: &[String; N]) -> Ordering {
    key.iter().copied().cmp(owned.iter().map(String::as_str))
}

/// `Link: <url>; rel="next"` for the page after the current one: the request's own URL with
/// the `next…` parameters replaced.
/// A page as the JSON response, with a `Link` to the next page when `next` holds its cursor.
pub fn page_response<T: serde::Serialize>(
    page: Vec<T>,
    headers: &HeaderMap,
    path: &str,
    query: &HashMap<String, String>,
    next: Option<&[(&str, String)]>,
) -> Response {
    let mut response = Json(page).into_response();
    if let Some(link) = next.and_then(|cursor| next_link(headers, path, query, cursor)) {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

pub fn next_link(
    headers: &HeaderMap,
    path: &str,
    query: &HashMap<String, String>,
    cursor: &[(&str, String)],
) -> Option<HeaderValue> {
    let mut params: Vec<(&str, &str)> = query
        .iter()
        .filter(|(name, _)| !cursor.iter().any(|(c, _)| c == name))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    params.sort();
    params.extend(cursor.iter().map(|(name, value)| (*name, value.as_str())));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()) && !h.contains(['<', '>', '/'])
        });
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    let url = match host {
        Some(host) => format!("{scheme}://{host}{path}?{query}"),
        None => format!("{path}?{query}"),
    };
    HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_start_after_the_cursor() {
        fn key(item: &(String, String)) -> [&str; 2] {
            [&item.0, &item.1]
        }
        // Unordered, as a cache hands them out; keys "a1" < "b1" < "b2" < "c1" < "d1".
        let items: Vec<Arc<(String, String)>> =
            [("c", "1"), ("a", "1"), ("d", "1"), ("b", "2"), ("b", "1")]
                .iter()
                .map(|(a, b)| Arc::new((a.to_string(), b.to_string())))
                .collect();
        let select = |wanted: &dyn Fn(&(String, String)) -> bool| {
            items.iter().filter(|i| wanted(i)).cloned().collect()
        };
        let keys = |page: Vec<Arc<(String, String)>>| -> Vec<String> {
            page.iter().map(|i| format!("{}{}", i.0, i.1)).collect()
        };
        let all = |_: &(String, String)| true;
        let (page, more) = page_of(select, all, key, None, 2);
        assert_eq!((keys(page), more), (vec!["a1".into(), "b1".into()], true));
        let (page, more) = page_of(select, all, key, Some(["b", "1"]), 2);
        assert_eq!((keys(page), more), (vec!["b2".into(), "c1".into()], true));
        let (page, more) = page_of(select, all, key, Some(["c", "1"]), 2);
        assert_eq!((keys(page), more), (vec!["d1".into()], false));
        let (page, more) = page_of(select, all, key, Some(["d", "1"]), 2);
        assert_eq!((keys(page), more), (Vec::<String>::new(), false));
        // A cursor whose item was deleted still continues after where it was.
        let (page, _) = page_of(select, all, key, Some(["b", "15"]), 5);
        assert_eq!(keys(page), vec!["b2".to_string(), "c1".into(), "d1".into()]);
        let not_b = |i: &(String, String)| i.0 != "b";
        let (page, more) = page_of(select, not_b, key, None, 3);
        assert_eq!(
            (keys(page), more),
            (vec!["a1".into(), "c1".into(), "d1".into()], false)
        );
    }

    #[test]
    fn limits() {
        let query = |v: &str| parse_query(Some(&format!("limit={v}")));
        assert_eq!(limit(&parse_query(None)).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(&query("3")).unwrap(), 3);
        assert_eq!(limit(&query("100000")).unwrap(), MAX_LIMIT);
        for bad in ["0", "-1", "x", ""] {
            assert!(limit(&query(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn link_keeps_filters_and_replaces_the_cursor() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("api.example"));
        let query = parse_query(Some("status=Active&limit=2&nextPrincipalId=old"));
        let link = next_link(
            &headers,
            "/leases",
            &query,
            &[("nextPrincipalId", "a b".into())],
        );
        assert_eq!(
            link.unwrap(),
            "<http://api.example/leases?limit=2&status=Active&nextPrincipalId=a+b>; rel=\"next\""
        );
    }
}
