//! Query strings, `limit`, and the `Link: <…>; rel="next"` header of paged lists.
//!
//! Lists are served in the order of a [`SortedCache`](crate::facade::SortedCache): by a key that
//! never changes over an item's life, ties broken by uid. A `next…` cursor names the last item
//! of the previous page, and the next page starts strictly after it. Items created, changed or
//! deleted between pages therefore never shift the others: nothing is skipped or repeated.

use std::collections::HashMap;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::DceError;
use crate::facade::Listed;

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

/// The `next…` parameters that continue a list after `last`: `names` paired with the parts of
/// its cursor, as many as there are names.
pub fn cursor<'a, K: Listed>(names: &[&'a str], last: &K) -> Vec<(&'a str, String)> {
    names.iter().copied().zip(last.cursor()).collect()
}

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

/// `Link: <url>; rel="next"` for the page after the current one: the request's own URL with
/// the `next…` parameters replaced.
fn next_link(
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
    // The base path the API is served under, as the server (or a proxy) says.
    let prefix = headers
        .get("x-forwarded-prefix")
        .and_then(|h| h.to_str().ok())
        .filter(|p| {
            p.starts_with('/')
                && p.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
        })
        .unwrap_or_default()
        .trim_end_matches('/');
    let url = match host {
        Some(host) => format!("{scheme}://{host}{prefix}{path}?{query}"),
        None => format!("{prefix}{path}?{query}"),
    };
    HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
