//! AWS Signature Version 4 verification, as DCE clients sign (dce-cli signs every request for
//! service `execute-api` with the caller's AWS credentials). The facade holds the secret of
//! the credentials it issued and recomputes the signature: canonical request and string to
//! sign here (they are what the request says), the signing key and signature by the aws-sigv4
//! crate (what AWS's SDKs compute), then a comparison that takes the same time wherever the
//! signatures differ.
//!
//! Paths are URI-encoded once more, as every AWS service but S3 expects (and SDK signers do);
//! query parameters are decoded and re-encoded in AWS's canonical form, so both a Go SDK's
//! pre-encoded query and a differently escaped one verify.

use aws_sigv4::sign::v4 as sign;
use axum::http::{HeaderMap, Method, Uri};
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

/// The only signing algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service DCE clients sign for (API Gateway).
pub const SERVICE: &str = "execute-api";
/// How far a request's `X-Amz-Date` may be from the server's clock, either way (AWS's limit).
pub const MAX_SKEW: SignedDuration = SignedDuration::from_mins(15);
const DATE_HEADER: &str = "x-amz-date";

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key_id: &'a str,
    /// `YYYYMMDD` of the credential scope.
    pub scope_date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    /// Lower-case header names, as listed (`;`-separated, sorted by the signer).
    pub signed_headers: Vec<&'a str>,
    /// Lower-case hex, 64 characters.
    pub signature: &'a str,
}

/// Why a signed request is refused. The messages name what is wrong, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("malformed AWS4-HMAC-SHA256 Authorization header: {0}")]
    Malformed(&'static str),
    #[error("credential scope must be for service \"execute-api\" and end with aws4_request")]
    WrongScope,
    #[error("X-Amz-Date must be a signed header of the form YYYYMMDD'T'HHMMSS'Z'")]
    BadDate,
    #[error("the credential scope's date is not the date of X-Amz-Date")]
    ScopeDateMismatch,
    #[error("signature expired: request time {request} is more than 15 minutes from {now}")]
    Expired { request: String, now: String },
    #[error("signed header {0:?} is missing from the request or not readable")]
    MissingSignedHeader(String),
    #[error("the host header must be signed")]
    HostNotSigned,
    #[error(
        "the request signature does not match the signature calculated for it; check the secret access key and the signing method"
    )]
    Mismatch,
}

/// Whether `value` is an `Authorization` header of the SigV4 scheme.
pub fn is_sigv4(value: &str) -> bool {
    value
        .trim_start()
        .split_once(' ')
        .is_some_and(|(scheme, _)| scheme == ALGORITHM)
}

/// Parses `AWS4-HMAC-SHA256 Credential=<id>/<date>/<region>/<service>/aws4_request,
/// SignedHeaders=<a;b>, Signature=<hex>`.
pub fn parse_authorization(value: &str) -> Result<Authorization<'_>, SignatureError> {
    let rest = value
        .trim()
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with(' '))
        .ok_or(SignatureError::Malformed(
            "expected the AWS4-HMAC-SHA256 scheme",
        ))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("expected name=value components"))?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(SignatureError::Malformed("unknown component")),
        };
        if slot.replace(value).is_some() {
            return Err(SignatureError::Malformed("repeated component"));
        }
    }
    let credential = credential.ok_or(SignatureError::Malformed("no Credential"))?;
    let signed_headers = signed_headers.ok_or(SignatureError::Malformed("no SignedHeaders"))?;
    let signature = signature.ok_or(SignatureError::Malformed("no Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, scope_date, region, service, terminator] = scope[..] else {
        return Err(SignatureError::Malformed(
            "Credential must be <key id>/<date>/<region>/<service>/aws4_request",
        ));
    };
    if access_key_id.is_empty() || region.is_empty() {
        return Err(SignatureError::Malformed("empty key id or region"));
    }
    if service != SERVICE || terminator != "aws4_request" {
        return Err(SignatureError::WrongScope);
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SignatureError::Malformed("Signature must be 64 hex digits"));
    }
    let signed_headers: Vec<&str> = signed_headers.split(';').collect();
    let well_formed = signed_headers.iter().all(|name| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    });
    if !well_formed || !signed_headers.is_sorted() {
        return Err(SignatureError::Malformed(
            "SignedHeaders must be sorted lower-case header names",
        ));
    }
    Ok(Authorization {
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// A request as the verifier sees it.
pub struct SignedRequest<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Checks the request's time against `now` and its signature against `secret_access_key`.
pub fn verify(
    request: &SignedRequest<'_>,
    authorization: &Authorization<'_>,
    secret_access_key: &str,
    now: Timestamp,
) -> Result<(), SignatureError> {
    let amz_date = request_time(request, authorization)?;
    let canonical = canonical_request(request, &authorization.signed_headers)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        authorization.scope_date, authorization.region, authorization.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    // Checked after the canonical request, so a request that is wrong in both ways reports
    // the signature, which is what a client must fix first.
    let at = parse_amz_date(amz_date).ok_or(SignatureError::BadDate)?;
    if (now.duration_since(at)).abs() > MAX_SKEW {
        return Err(SignatureError::Expired {
            request: at.to_string(),
            now: now.to_string(),
        });
    }
    let sent = hex::decode(authorization.signature)
        .ok()
        .filter(|bytes| bytes.len() == 32)
        .ok_or(SignatureError::Malformed("Signature must be 64 hex digits"))?;
    // The scope's date is the signed date's (checked by `request_time`).
    let key = sign::generate_signing_key(
        secret_access_key,
        at.into(),
        authorization.region,
        authorization.service,
    );
    let expected = hex::decode(sign::calculate_signature(key, string_to_sign.as_bytes()))
        .expect("the crate's signature is hex");
    // Digests compared: the time taken says nothing about where the signatures differ.
    if Sha256::digest(&expected) == Sha256::digest(&sent) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The signed `X-Amz-Date`, consistent with the credential scope.
fn request_time<'a>(
    request: &SignedRequest<'a>,
    authorization: &Authorization<'_>,
) -> Result<&'a str, SignatureError> {
    if !authorization.signed_headers.contains(&DATE_HEADER) {
        return Err(SignatureError::BadDate);
    }
    let amz_date = request
        .headers
        .get(DATE_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| parse_amz_date(value).is_some())
        .ok_or(SignatureError::BadDate)?;
    if amz_date.get(..8) != Some(authorization.scope_date) {
        return Err(SignatureError::ScopeDateMismatch);
    }
    Ok(amz_date)
}

/// `YYYYMMDD'T'HHMMSS'Z'` as a time.
fn parse_amz_date(value: &str) -> Option<Timestamp> {
    if value.len() != 16 || !value.is_ascii() {
        return None;
    }
    jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", value)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|zoned| zoned.timestamp())
}

/// The canonical request (AWS's definition) over the listed signed headers.
pub fn canonical_request(
    request: &SignedRequest<'_>,
    signed_headers: &[&str],
) -> Result<String, SignatureError> {
    if !signed_headers.contains(&"host") {
        return Err(SignatureError::HostNotSigned);
    }
    let path = match request.uri.path() {
        "" => "/",
        path => path,
    };
    let mut canonical = format!(
        "{}\n{}\n{}\n",
        request.method.as_str(),
        uri_encode(path, false),
        canonical_query(request.uri.query().unwrap_or_default())
    );
    for name in signed_headers {
        let value = header_value(request, name)
            .ok_or_else(|| SignatureError::MissingSignedHeader(name.to_string()))?;
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(&value);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed_headers.join(";"));
    canonical.push('\n');
    canonical.push_str(&hex::encode(Sha256::digest(request.body)));
    Ok(canonical)
}

/// A header's canonical value: every value of it, trimmed, inner runs of spaces collapsed,
/// joined by commas. `host` falls back to the URI's authority (HTTP/2 has no Host header).
fn header_value(request: &SignedRequest<'_>, name: &str) -> Option<String> {
    let values: Vec<&str> = request
        .headers
        .get_all(name)
        .iter()
        .map(|value| value.to_str().ok())
        .collect::<Option<_>>()?;
    if values.is_empty() {
        return match name {
            "host" => request.uri.authority().map(|a| a.as_str().to_string()),
            _ => None,
        };
    }
    Some(
        values
            .iter()
            .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Query parameters decoded, re-encoded as AWS does, sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| (uri_encode(&name, true), uri_encode(&value, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// AWS's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (and `/` too when
/// `encode_slash`).
fn uri_encode(text: &str, encode_slash: bool) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(char::from(byte));
            }
            b'/' if !encode_slash => encoded.push('/'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests;
