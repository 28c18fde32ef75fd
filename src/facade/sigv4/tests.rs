use super::*;
use axum::http::HeaderValue;

/// AWS's published SigV4 test suite example `get-vanilla`: its canonical request and signature,
/// computed without this module's parser or the aws-sigv4 crate.
#[test]
fn aws_test_suite_get_vanilla() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
    headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
    let uri: Uri = "/".parse().unwrap();
    let request = SignedRequest {
        method: &Method::GET,
        uri: &uri,
        headers: &headers,
        body: b"",
    };
    let canonical = canonical_request(&request, &["host", "x-amz-date"]).unwrap();
    assert_eq!(
        canonical,
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = sign::generate_signing_key(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Timestamp::from_second(1_440_938_160).unwrap().into(),
        "us-east-1",
        "service",
    );
    assert_eq!(
        sign::calculate_signature(key, string_to_sign.as_bytes()),
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

/// AWS's `get-vanilla-query-order-key-case`: parameters sorted by name in the canonical query.
#[test]
fn aws_test_suite_query_order() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
    headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
    let uri: Uri = "/?Param2=value2&Param1=value1".parse().unwrap();
    let request = SignedRequest {
        method: &Method::GET,
        uri: &uri,
        headers: &headers,
        body: b"",
    };
    let canonical = canonical_request(&request, &["host", "x-amz-date"]).unwrap();
    assert!(
        canonical.starts_with("GET\n/\nParam1=value1&Param2=value2\n"),
        "{canonical}"
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = sign::generate_signing_key(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Timestamp::from_second(1_440_938_160).unwrap().into(),
        "us-east-1",
        "service",
    );
    assert_eq!(
        sign::calculate_signature(key, string_to_sign.as_bytes()),
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
    );
}

const KEY_ID: &str = "DCEKEYID";
const SECRET: &str = "the-secret-access-key";

/// Signs a request with the aws-sigv4 crate, as an AWS SDK (and dce-cli) does.
fn signed(
    method: &str,
    path_and_query: &str,
    body: &[u8],
    secret: &str,
    at: std::time::SystemTime,
    session_token: Option<&str>,
) -> (Method, Uri, HeaderMap) {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity = aws_credential_types::Credentials::new(
        KEY_ID,
        secret,
        session_token.map(str::to_string),
        None,
        "test",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name(SERVICE)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("https://dce.example{path_and_query}");
    let headers = [("content-type", "application/json")];
    let signable =
        SignableRequest::new(method, &url, headers.into_iter(), SignableBody::Bytes(body)).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut map = HeaderMap::new();
    map.insert("host", HeaderValue::from_static("dce.example"));
    map.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in instructions.headers() {
        map.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    (
        method.parse().unwrap(),
        path_and_query.parse().unwrap(),
        map,
    )
}

fn check(
    (method, uri, headers): &(Method, Uri, HeaderMap),
    body: &[u8],
    now: std::time::SystemTime,
) -> Result<(), SignatureError> {
    let value = headers["authorization"].to_str().unwrap();
    assert!(is_sigv4(value));
    let authorization = parse_authorization(value)?;
    assert_eq!(authorization.access_key_id, KEY_ID);
    let request = SignedRequest {
        method,
        uri,
        headers,
        body,
    };
    verify(
        &request,
        &authorization,
        SECRET,
        Timestamp::try_from(now).unwrap(),
    )
    .map(|_| ())
}

#[test]
fn signatures_of_an_aws_signer_verify() {
    let now = std::time::SystemTime::now();
    let body = br#"{"principalId":"alice","accountId":"123456789012"}"#;
    for (method, target) in [
        ("GET", "/leases?principalId=alice&limit=2&accountId="),
        ("GET", "/leases?status=Active&principalId=a%20b%2Bc"),
        ("DELETE", "/leases"),
        ("POST", "/leases/3f1c-uid/auth"),
    ] {
        let request = signed(method, target, body, SECRET, now, None);
        assert_eq!(check(&request, body, now), Ok(()), "{method} {target}");
    }
    let with_token = signed("GET", "/usage", b"", SECRET, now, Some("session-token"));
    assert_eq!(check(&with_token, b"", now), Ok(()));
}

#[test]
fn a_wrong_secret_or_a_changed_request_does_not_verify() {
    let now = std::time::SystemTime::now();
    let body = br#"{"principalId":"alice"}"#;
    let wrong_secret = signed("POST", "/leases", body, "another-secret", now, None);
    assert_eq!(
        check(&wrong_secret, body, now),
        Err(SignatureError::Mismatch)
    );

    let good = signed("POST", "/leases?x=1", body, SECRET, now, None);
    assert_eq!(
        check(&good, br#"{"principalId":"mallory"}"#, now),
        Err(SignatureError::Mismatch),
        "tampered body"
    );
    let mut other_query = good.clone();
    other_query.1 = "/leases?x=2".parse().unwrap();
    assert_eq!(
        check(&other_query, body, now),
        Err(SignatureError::Mismatch)
    );
    let mut other_method = good.clone();
    other_method.0 = Method::PUT;
    assert_eq!(
        check(&other_method, body, now),
        Err(SignatureError::Mismatch)
    );
    let mut other_host = good.clone();
    other_host
        .2
        .insert("host", HeaderValue::from_static("elsewhere.example"));
    assert_eq!(check(&other_host, body, now), Err(SignatureError::Mismatch));
}

#[test]
fn requests_older_or_newer_than_fifteen_minutes_are_refused() {
    let now = std::time::SystemTime::now();
    let minutes = |m: u64| std::time::Duration::from_secs(60 * m);
    for at in [now - minutes(14), now + minutes(14)] {
        let request = signed("GET", "/leases", b"", SECRET, at, None);
        assert_eq!(check(&request, b"", now), Ok(()));
    }
    for at in [now - minutes(16), now + minutes(16)] {
        let request = signed("GET", "/leases", b"", SECRET, at, None);
        assert!(
            matches!(
                check(&request, b"", now),
                Err(SignatureError::Expired { .. })
            ),
            "{at:?}"
        );
    }
}

#[test]
fn malformed_authorization_headers_are_refused() {
    let scope = "Credential=AKID/20260101/us-east-1/execute-api/aws4_request";
    let signature = format!("Signature={}", "a".repeat(64));
    for value in [
        "AWS4-HMAC-SHA256".to_string(),
        "AWS4-HMAC-SHA256 ".to_string(),
        format!("AWS4-HMAC-SHA256 {scope}, SignedHeaders=host;x-amz-date"),
        format!("AWS4-HMAC-SHA256 {scope}, {signature}"),
        format!("AWS4-HMAC-SHA256 {scope}, SignedHeaders=x-amz-date;host, {signature}"),
        format!("AWS4-HMAC-SHA256 {scope}, SignedHeaders=Host, {signature}"),
        format!("AWS4-HMAC-SHA256 {scope}, SignedHeaders=host, Signature=xyz"),
        format!("AWS4-HMAC-SHA256 {scope}, {scope}, SignedHeaders=host, {signature}"),
        format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, {signature}"
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/execute-api, SignedHeaders=host, {signature}"
        ),
        format!("AWS4-HMAC-SHA256 {scope}, SignedHeaders=host, {signature}, Other=1"),
    ] {
        assert!(parse_authorization(&value).is_err(), "{value}");
    }
    assert!(!is_sigv4("Bearer abc"));
    assert!(!is_sigv4("AWS4-HMAC-SHA256"));
}

#[test]
fn the_date_must_be_signed_and_match_the_scope() {
    let now = std::time::SystemTime::now();
    let (method, uri, mut headers) = signed("GET", "/leases", b"", SECRET, now, None);
    headers.insert("x-amz-date", HeaderValue::from_static("20000101T000000Z"));
    assert_eq!(
        check(&(method.clone(), uri.clone(), headers.clone()), b"", now),
        Err(SignatureError::ScopeDateMismatch)
    );
    headers.insert("x-amz-date", HeaderValue::from_static("yesterday"));
    assert_eq!(
        check(&(method, uri, headers), b"", now),
        Err(SignatureError::BadDate)
    );
}

/// Who a signed request is, through the [`crate::facade::Authorizer`] that holds `secrets`.
async fn authenticated(
    secrets: &[k8s_openapi::api::core::v1::Secret],
    (method, uri, headers): &(Method, Uri, HeaderMap),
    now: std::time::SystemTime,
) -> Result<String, crate::facade::AuthError> {
    use kube::runtime::{reflector, watcher};
    let (store, mut writer) = reflector::store();
    for secret in secrets {
        writer.apply_watcher_event(&watcher::Event::Apply(secret.clone()));
    }
    // Never called: signed requests are checked against the cached Secrets alone.
    let client =
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
    let auth = crate::facade::Authorizer::new(client, crate::facade::ApiKeys::from_store(store));
    let request = SignedRequest {
        method,
        uri,
        headers,
        body: b"",
    };
    auth.authenticate_signed(&request, Timestamp::try_from(now).unwrap())
        .map(|user| user.username)
}

/// A sign-in session's Secret, as the sign-in page writes it.
fn session(token: &str, expires_at: Timestamp) -> k8s_openapi::api::core::v1::Secret {
    use crate::lifecycle::api_keys::*;
    let text = |value: &str| k8s_openapi::ByteString(value.as_bytes().to_vec());
    let mut secret = k8s_openapi::api::core::v1::Secret::default();
    secret.metadata.name = Some("dce-api-session-dcekeyid".into());
    secret.metadata.annotations = Some(
        [
            (USER_ANNOTATION.to_string(), "alice".to_string()),
            (EXPIRES_ANNOTATION.to_string(), expires_at.to_string()),
        ]
        .into(),
    );
    secret.data = Some(
        [
            (ACCESS_KEY_ID_KEY.to_string(), text(KEY_ID)),
            (SECRET_ACCESS_KEY_KEY.to_string(), text(SECRET)),
            (SESSION_TOKEN_KEY.to_string(), text(token)),
        ]
        .into(),
    );
    secret
}

#[tokio::test]
async fn session_credentials_need_their_token_and_stop_at_expiry() {
    use crate::facade::AuthError;
    let now = std::time::SystemTime::now();
    let in_an_hour = Timestamp::try_from(now).unwrap() + SignedDuration::from_hours(1);
    let live = [session("the-token", in_an_hour)];
    let with = |token| signed("GET", "/leases", b"", SECRET, now, token);
    assert_eq!(
        authenticated(&live, &with(Some("the-token")), now).await,
        Ok("alice".into())
    );
    for token in [None, Some("another-token")] {
        assert_eq!(
            authenticated(&live, &with(token), now).await,
            Err(AuthError::InvalidSecurityToken),
            "{token:?}"
        );
    }
    let expired = [session("the-token", Timestamp::try_from(now).unwrap())];
    assert_eq!(
        authenticated(&expired, &with(Some("the-token")), now).await,
        Err(AuthError::ExpiredToken)
    );
    // A key pair has no token: one sent with it is refused too.
    let mut pair = session("unused", in_an_hour);
    pair.data
        .as_mut()
        .unwrap()
        .remove(crate::lifecycle::api_keys::SESSION_TOKEN_KEY);
    pair.metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(crate::lifecycle::api_keys::EXPIRES_ANNOTATION);
    assert_eq!(
        authenticated(&[pair.clone()], &with(Some("a-token")), now).await,
        Err(AuthError::InvalidSecurityToken)
    );
    assert_eq!(
        authenticated(&[pair], &with(None), now).await,
        Ok("alice".into())
    );
}
