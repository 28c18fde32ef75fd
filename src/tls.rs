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

/// An HTTP/1 connector for `https://` URLs that trusts the platform's roots and, given, the
/// certificates of a PEM bundle (a private CA, e.g. an in-cluster identity provider's).
pub fn https_connector_trusting(
    extra_ca_pem: Option<&[u8]>,
) -> anyhow::Result<HttpsConnector<HttpConnector>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(pem) = extra_ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots.add(cert?)?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
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
