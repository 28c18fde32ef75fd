//! The harness that drives DCE's real client (dce-cli) and the `aws` CLI, unmodified, on
//! loopback: their HTTPS calls to AWS's STS hosts go through a CONNECT proxy to moto, their API
//! calls to a TLS front, and both trust only the test's CA.
//!
//! Needs `make dce-cli` and `make venv`; skips, saying which is missing, without them (fails in
//! CI).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use axum::Json;
use axum::routing::get;
use dce_e2e::connect_proxy::{ConnectProxy, STS_HOSTS, Tunnel};
use dce_e2e::dce_cli::{ClientHome, aws_cli_binary, dce_cli_binary, venv_binary};
use dce_e2e::moto::{AccessKey, Moto};
use dce_e2e::tls::TestCa;
use dce_e2e::tls_front::TlsFront;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const REGION: &str = "us-east-1";
const BASE_PATH: &str = "/api";
const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
/// The account the API stub lists.
const ACCOUNT_ID: &str = "123456789012";

/// The statuses moto answered the STS calls through `proxy` with, oldest first.
fn sts_call_statuses(proxy: &ConnectProxy) -> Vec<u16> {
    let requests = proxy.requests();
    let sts_calls = requests
        .iter()
        .filter(|r| STS_HOSTS.contains(&r.host.as_str()));
    sts_calls.map(|r| r.status).collect()
}

fn opened_sts_tunnel(proxy: &ConnectProxy) -> bool {
    proxy.tunnels().iter().any(|t| {
        t.allowed
            && STS_HOSTS
                .iter()
                .any(|host| t.target == format!("{host}:443"))
    })
}

#[tokio::test]
async fn dce_cli_prints_its_version() -> anyhow::Result<()> {
    let Some(dce) = dce_cli_binary()? else {
        return Ok(());
    };
    let home = ClientHome::new(&TestCa::new("dce-cli-harness")?, None)?;

    let output = home.run(&dce, &["version"], None).await?;

    assert!(output.success(), "{output}");
    let version = output.stdout.trim();
    let parts: Vec<&str> = version.split('.').collect();
    assert!(
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "not a version: {version:?}"
    );
    Ok(())
}

#[tokio::test]
async fn aws_cli_reaches_moto_through_the_proxy_and_no_other_host_is_tunnelled()
-> anyhow::Result<()> {
    let Some(aws) = aws_cli_binary()? else {
        return Ok(());
    };
    let ca = TestCa::new("dce-cli-harness")?;
    let moto = Moto::start().await?;
    let key = moto.create_user_with_key("alice", None).await?;
    let proxy = ConnectProxy::start(&ca, STS_HOSTS, moto.addr()).await?;
    let mut home = ClientHome::new(&ca, Some(&proxy))?;
    home.set_aws_key(&key);

    let output = home
        .run(
            &aws,
            &[
                "sts",
                "get-caller-identity",
                "--region",
                REGION,
                "--output",
                "json",
            ],
            None,
        )
        .await?;

    assert!(output.success(), "{output}");
    let identity: serde_json::Value = serde_json::from_str(&output.stdout)?;
    let arn = identity["Arn"].as_str().unwrap_or_default();
    assert!(
        arn.ends_with(":user/alice"),
        "moto did not answer: {identity}"
    );
    assert!(opened_sts_tunnel(&proxy), "{:?}", proxy.tunnels());
    assert_eq!(sts_call_statuses(&proxy), [200]);

    for target in ["example.com:443", "sts.amazonaws.com:80"] {
        assert_eq!(connect_status(proxy.addr(), target).await?, 403, "{target}");
        let refused = Tunnel {
            target: target.to_string(),
            allowed: false,
        };
        assert!(proxy.tunnels().contains(&refused), "{target}");
    }
    assert_eq!(
        sts_call_statuses(&proxy),
        [200],
        "nothing more was forwarded"
    );

    proxy.shutdown().await;
    drop(moto);
    Ok(())
}

#[tokio::test]
async fn dce_cli_checks_its_keys_with_moto_and_signs_api_calls() -> anyhow::Result<()> {
    let (Some(dce), Some(_)) = (dce_cli_binary()?, venv_binary("moto_server")?) else {
        return Ok(());
    };
    let ca = TestCa::new("dce-cli-harness")?;
    let moto = Moto::start().await?;
    let key = moto.create_user_with_key("alice", Some(ALLOW_ALL)).await?;
    // From now on moto refuses keys it does not know, as STS does.
    moto.enforce_auth().await?;
    let proxy = ConnectProxy::start(&ca, STS_HOSTS, moto.addr()).await?;
    let api = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let api_addr = api.local_addr()?;
    let accounts = serde_json::json!([{"id": ACCOUNT_ID, "accountStatus": "Ready"}]);
    let app = axum::Router::new().route(
        &format!("{BASE_PATH}/accounts"),
        get(move || async move { Json(accounts) }),
    );
    let api_server = tokio::spawn(async move { axum::serve(api, app).await });
    let front = TlsFront::start(&ca.issue(&["127.0.0.1"])?, api_addr).await?;
    let mut home = ClientHome::new(&ca, Some(&proxy))?;
    home.write_dce_config(&front.addr().to_string(), BASE_PATH, REGION)?;
    home.set_aws_key(&key);

    let output = home.run(&dce, &["accounts", "list"], None).await?;

    assert!(output.success(), "{output}");
    let listed: serde_json::Value = serde_json::from_str(output.stdout.trim())?;
    assert_eq!(listed[0]["id"], ACCOUNT_ID, "{output}");
    assert!(opened_sts_tunnel(&proxy), "{:?}", proxy.tunnels());
    assert_eq!(
        sts_call_statuses(&proxy),
        [200],
        "one credential check, which moto accepted"
    );
    let api_requests = front.requests();
    let [request] = api_requests.as_slice() else {
        panic!("expected one API request: {api_requests:?}");
    };
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("GET", "/api/accounts")
    );
    let authorization = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .context("the API request is not signed")?;
    let scope = format!("/{REGION}/execute-api/aws4_request");
    assert!(
        authorization.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={}/",
            key.access_key_id
        )) && authorization.contains(&scope),
        "not SigV4 for execute-api with the user's key: {authorization}"
    );

    // Keys STS does not know: moto refuses them, so dce-cli sends its user to sign in (a
    // browser on the API's /auth page, a token read from stdin, which is empty here) and calls
    // no API.
    home.set_aws_key(&AccessKey {
        access_key_id: "AKIAUNKNOWN000000000".into(),
        secret_access_key: "unknown-secret".into(),
    });
    let output = home.run(&dce, &["accounts", "list"], None).await?;

    assert!(!output.success(), "{output}");
    assert!(
        output.stderr.contains("No valid DCE credentials found"),
        "{output}"
    );
    assert_eq!(
        sts_call_statuses(&proxy),
        [200, 403],
        "moto refused the unknown key"
    );
    let sign_in = format!("https://{}{BASE_PATH}/auth", front.addr());
    assert_eq!(home.opened_urls(), [sign_in]);
    assert_eq!(front.requests().len(), 1, "no API call without valid keys");

    front.shutdown().await;
    api_server.abort();
    let _ = api_server.await;
    proxy.shutdown().await;
    drop(moto);
    Ok(())
}

#[tokio::test]
async fn dce_auth_opens_the_sign_in_page_and_saves_the_token_it_reads() -> anyhow::Result<()> {
    let Some(dce) = dce_cli_binary()? else {
        return Ok(());
    };
    // No server: without keys dce-cli makes no call before asking for the token.
    let api_host = "127.0.0.1:8443";
    let home = ClientHome::new(&TestCa::new("dce-cli-harness")?, None)?;
    home.write_dce_config(api_host, BASE_PATH, REGION)?;

    let output = home.run(&dce, &["auth"], Some("the-token\n")).await?;

    assert!(output.success(), "{output}");
    assert_eq!(
        home.opened_urls(),
        [format!("https://{api_host}{BASE_PATH}/auth")]
    );
    let config: serde_yaml::Value = serde_yaml::from_str(&home.dce_config()?)?;
    assert_eq!(config["api"]["token"].as_str(), Some("the-token"));
    assert_eq!(config["api"]["host"].as_str(), Some(api_host));
    Ok(())
}

/// The status a proxy answers `CONNECT target` with.
async fn connect_status(proxy: SocketAddr, target: &str) -> anyhow::Result<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(proxy).await?;
        let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        // A refusal closes the connection.
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("the proxy did not answer")??;
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no status in {response:?}"))
}
