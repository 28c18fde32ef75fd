//! Outbound HTTPS (console federation, budget webhooks) trusting the platform's root
//! certificates.

use std::net::IpAddr;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use url::{Host, Url};

/// An HTTP/1 connector for `https://` (and, where callers allow it, plain `http://`) URLs.
pub fn https_connector() -> std::io::Result<HttpsConnector<HttpConnector>> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .build())
}

/// Parses `configured` as an https URL; plain http is accepted on loopback only (local stubs in
/// development and tests). `what` names the setting in the error.
pub fn secure_url(configured: &str, what: &str) -> Result<Url, String> {
    let url = Url::parse(configured)
        .map_err(|err| format!("{what} {configured:?} is not a URL: {err}"))?;
    let loopback = match url.host() {
        Some(Host::Domain(name)) => name == "localhost",
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(format!(
            "{what} {configured:?} must be an https URL (plain http only on loopback)"
        )),
    }
}
