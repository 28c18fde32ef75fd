//! The test OIDC provider and the API server that trusts it (`dce_e2e::oidc`): a person signs in
//! through the provider's form in headless Chromium (authorization-code flow with PKCE), and the
//! id_token the client gets for the code authenticates to kube-apiserver as that person — the
//! email as the username, the provider's groups as Kubernetes groups — as does a token got
//! without a browser, in a TokenReview (as the REST API checks a caller) and for kubectl; a
//! confidential client redeems its code with its secret. Needs `make kube-tools`
//! (kube-apiserver, etcd, kubectl, oidc-provider) and Chromium (`e2e/scripts/browser.sh`):
//! skips naming what is missing, except in CI, where it fails.

use std::collections::HashMap;

use anyhow::Context as _;
use dce_e2e::browser::{Browser, browser_support};
use dce_e2e::control_plane::{ControlPlane, ControlPlaneConfig, kube_binary};
use dce_e2e::kubectl::Kubectl;
use dce_e2e::oidc::{OidcClient, OidcProvider, OidcUser, Pkce, unverified_claims};
use dce_e2e::target::ScratchDir;
use dce_e2e::tls::TestCa;
use k8s_openapi::api::authentication::v1::{
    SelfSubjectReview, TokenReview, TokenReviewSpec, UserInfo,
};
use kube::api::{Api, PostParams};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const CLIENT_ID: &str = "dce-sign-in";

fn user(name: &str, groups: &[&str]) -> OidcUser {
    OidcUser {
        username: name.into(),
        password: format!("{name}-password"),
        email: format!("{name}@example.test"),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// Whether to skip (after saying why) for lack of a browser or binaries; in CI, an error.
fn skip() -> anyhow::Result<bool> {
    let missing = browser_support().err().or_else(|| {
        ["kube-apiserver", "etcd", "kubectl", "oidc-provider"]
            .into_iter()
            .find_map(|binary| kube_binary(binary).err().map(|e| e.to_string()))
    });
    let Some(why) = missing else {
        return Ok(false);
    };
    if std::env::var_os("CI").is_some() {
        anyhow::bail!("the OIDC test cannot run in CI: {why}");
    }
    eprintln!("skipped: {why}");
    Ok(true)
}

/// The client's redirect target on loopback: answers the first request to `/callback` with a
/// page and hands over its query (code and state).
struct Callback {
    url: String,
    query: oneshot::Receiver<HashMap<String, String>>,
}

impl Callback {
    async fn start() -> anyhow::Result<Callback> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/callback", listener.local_addr()?);
        let (sender, query) = oneshot::channel();
        tokio::spawn(async move {
            let mut sender = Some(sender);
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = vec![0; 8192];
                let read = stream.read(&mut head).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&head[..read]);
                let target = head.split(' ').nth(1).unwrap_or_default();
                let (page, reply) = match target.strip_prefix("/callback?") {
                    Some(query) => (
                        "200 OK",
                        url::form_urlencoded::parse(query.as_bytes())
                            .into_owned()
                            .collect(),
                    ),
                    // The browser's own requests (a favicon).
                    None => ("404 Not Found", HashMap::new()),
                };
                let body = "<!DOCTYPE html><title>Signed in</title><p id=\"done\">signed in</p>";
                let response = format!(
                    "HTTP/1.1 {page}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                if !reply.is_empty()
                    && let Some(sender) = sender.take()
                {
                    let _ = sender.send(reply);
                }
            }
        });
        Ok(Callback { url, query })
    }

    /// The code the redirect brought, checking it came back with `state`.
    async fn code(self, state: &str) -> anyhow::Result<String> {
        let mut query = self.query.await.context("the redirect brought no code")?;
        assert_eq!(query.get("state").map(String::as_str), Some(state));
        query.remove("code").context("the redirect brought no code")
    }
}

/// Signs `user` in through the form the browser shows, then waits for the page the client's
/// redirect target serves.
async fn sign_in(browser: &Browser, user: &OidcUser) -> anyhow::Result<()> {
    browser.fill("#username", &user.username).await?;
    browser.fill("#password", &user.password).await?;
    browser.click("#submit").await?;
    assert_eq!(browser.text("#done").await?, "signed in");
    Ok(())
}

#[tokio::test]
async fn a_person_signed_in_in_a_browser_is_that_user_on_the_api_server() -> anyhow::Result<()> {
    if skip()? {
        return Ok(());
    }
    let ca = TestCa::new("dce-test-oidc-ca")?;
    let alice = user("alice", &["dce-admins", "developers"]);
    let bob = user("bob", &["dce-users"]);
    let callback = Callback::start().await?;
    let client = OidcClient {
        id: CLIENT_ID.into(),
        secret: None,
        redirect_uris: vec![callback.url.clone()],
    };
    // The issuer first: the API server reads its discovery document as it starts.
    let provider = OidcProvider::start(&ca, &[alice.clone(), bob.clone()], &client).await?;
    let control_plane = ControlPlane::start(ControlPlaneConfig {
        oidc: Some(provider.issuer_config()),
        defer_controller_manager: true,
        ..ControlPlaneConfig::default()
    })
    .await?;
    let browser = Browser::start(&ca).await?;

    let pkce = Pkce::new();
    let state = "state-4f1c";
    browser
        .goto(&provider.authorize_url(&callback.url, state, &pkce).await?)
        .await?;
    // A wrong password shows the form again, with the error.
    browser.fill("#username", &alice.username).await?;
    browser.fill("#password", "not-her-password").await?;
    browser.click("#submit").await?;
    let error = browser.text("#error").await?;
    assert!(error.contains("wrong username or password"), "{error}");
    sign_in(&browser, &alice).await?;
    assert!(browser.current_url().await?.starts_with(&callback.url));
    browser.stop().await;
    let redirect_uri = callback.url.clone();
    let code = callback.code(state).await?;

    let tokens = provider.exchange_code(&code, &redirect_uri, &pkce).await?;
    assert!(!tokens.access_token.is_empty());
    // The code is spent.
    assert!(
        provider
            .exchange_code(&code, &redirect_uri, &pkce)
            .await
            .is_err()
    );

    let admin = control_plane.admin_client().await?;
    let dir = ScratchDir::new()?;
    let expected = |user: &OidcUser| {
        let mut groups = user.groups.clone();
        groups.push("system:authenticated".into());
        (user.email.clone(), groups)
    };
    for (user, token) in [
        (&alice, tokens.id_token.clone()),
        (&bob, provider.id_token_for(&bob).await?),
    ] {
        // As the REST API sees a caller: a TokenReview.
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.clone()),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let status = Api::<TokenReview>::all(admin.clone())
            .create(&PostParams::default(), &review)
            .await?
            .status
            .unwrap_or_default();
        assert_eq!(status.authenticated, Some(true), "{:?}", status.error);
        assert_eq!(names(status.user.unwrap_or_default()), expected(user));

        // As kubectl sees the person with the token in their kubeconfig.
        let kubeconfig = dir.path().join(format!("{}.kubeconfig", user.username));
        control_plane.write_kubeconfig(&kubeconfig, &token)?;
        let whoami = Kubectl::new(&kubeconfig)
            .ok(&["auth", "whoami", "--output=json"], None)
            .await?;
        let whoami: SelfSubjectReview = serde_json::from_str(&whoami)?;
        let info = whoami.status.and_then(|s| s.user_info).unwrap_or_default();
        assert_eq!(names(info), expected(user));
    }
    Ok(())
}

/// A user's name and groups, as the API server tells them.
fn names(info: UserInfo) -> (String, Vec<String>) {
    (
        info.username.unwrap_or_default(),
        info.groups.unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_confidential_client_redeems_its_code_with_its_secret() -> anyhow::Result<()> {
    if skip()? {
        return Ok(());
    }
    let ca = TestCa::new("dce-test-oidc-ca")?;
    let carol = user("carol", &["dce-users"]);
    let callback = Callback::start().await?;
    let client = OidcClient {
        id: CLIENT_ID.into(),
        secret: Some("client-secret".into()),
        redirect_uris: vec![callback.url.clone()],
    };
    let provider = OidcProvider::start(&ca, std::slice::from_ref(&carol), &client).await?;
    let browser = Browser::start(&ca).await?;
    let pkce = Pkce::new();
    let state = "state-9a02";
    browser
        .goto(&provider.authorize_url(&callback.url, state, &pkce).await?)
        .await?;
    let dir = ScratchDir::new()?;
    let screenshot = dir.path().join("sign-in.png");
    browser.screenshot(&screenshot).await?;
    assert!(std::fs::read(&screenshot)?.starts_with(b"\x89PNG"));
    sign_in(&browser, &carol).await?;
    browser.stop().await;
    let redirect_uri = callback.url.clone();
    let code = callback.code(state).await?;

    let tokens = provider.exchange_code(&code, &redirect_uri, &pkce).await?;
    let claims = unverified_claims(&tokens.id_token)?;
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["aud"], serde_json::json!([CLIENT_ID]));
    assert_eq!(claims["sub"], "carol");
    assert_eq!(claims["preferred_username"], "carol");
    assert_eq!(claims["email"], "carol@example.test");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["groups"], serde_json::json!(["dce-users"]));
    Ok(())
}
