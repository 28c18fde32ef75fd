//! The sign-in page's cookies: the session (which credentials Secret the browser signed in to)
//! and the CSRF token every form repeats. Both `Secure`, `HttpOnly`, `SameSite=Lax` (the OIDC
//! callback is a cross-site redirect that must carry the flow cookie), scoped to the page's
//! path, and holding no credential: only references that the server checks.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};
use rand::Rng;
use rand::distr::Alphanumeric;

pub const SESSION: &str = "dce_session";
pub const CSRF: &str = "dce_csrf";
/// The OIDC sign-in in progress: its state, nonce and PKCE verifier.
pub const OIDC_FLOW: &str = "dce_oidc_flow";
const CSRF_LENGTH: usize = 32;

/// The value of cookie `name` in the request, if any.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_string())
        .filter(|value| !value.is_empty())
}

/// A `Set-Cookie` value for `name` on `path`, living `max_age_seconds` (0 removes it).
pub fn set(name: &str, value: &str, path: &str, max_age_seconds: i64) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .path(path.to_string())
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age_seconds))
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("cookie values are visible ASCII")
}

/// A fresh random token (CSRF, OIDC state and nonce).
pub fn random_token() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(CSRF_LENGTH)
        .map(char::from)
        .collect()
}

/// The session cookie's value: which session, and the secret that proves the browser holds it.
pub fn session_value(access_key_id: &str, browser_secret: &str) -> String {
    format!("{access_key_id}.{browser_secret}")
}

/// `(access key id, browser secret)` of a session cookie value.
pub fn parse_session(value: &str) -> Option<(&str, &str)> {
    value
        .split_once('.')
        .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_among_others_and_set_securely() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; dce_csrf=abc; b=2".parse().unwrap());
        assert_eq!(read(&headers, CSRF).as_deref(), Some("abc"));
        assert_eq!(read(&headers, SESSION), None);
        let set = set(SESSION, "id.secret", "/api/auth", 3600);
        let text = set.to_str().unwrap();
        for part in [
            "dce_session=id.secret",
            "Path=/api/auth",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
            "Max-Age=3600",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
    }

    #[test]
    fn session_values_round_trip() {
        let value = session_value("ASIAEXAMPLE", "s3cret");
        assert_eq!(parse_session(&value), Some(("ASIAEXAMPLE", "s3cret")));
        assert_eq!(parse_session("nodot"), None);
        assert_eq!(parse_session(".x"), None);
    }
}
