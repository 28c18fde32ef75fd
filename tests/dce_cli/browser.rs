//! The sign-in page in a real browser: a person signs in through the cluster's OIDC provider
//! in headless Chromium, copies the token the page shows into `dce auth`, leases an account
//! with dce-cli, finds the lease on the page and opens its AWS console from there; signing out
//! revokes the token at once. `DCE_UPDATE_SCREENSHOT=1` writes the signed-in page to
//! `docs/images/sign-in.png`.

use std::path::PathBuf;
use std::time::Duration;

use dce_e2e::browser::{Browser, browser_support};
use dce_e2e::cluster::wait_for;

use crate::fixture::{Deployment, OIDC_PROVIDER_NAME, Tools, carol};
use crate::{printed_error, printed_json};

const PAGE_WAIT: Duration = Duration::from_secs(30);

/// Whether Chromium is missing (said, then skipped; in CI an error).
fn without_browser() -> anyhow::Result<bool> {
    let Err(why) = browser_support() else {
        return Ok(false);
    };
    anyhow::ensure!(
        std::env::var_os("CI").is_none(),
        "the browser test cannot run in CI: {why}"
    );
    eprintln!("skipped: {why}");
    Ok(true)
}

#[tokio::test]
async fn a_person_signs_in_through_the_provider_and_dce_cli_uses_the_page_token()
-> anyhow::Result<()> {
    let Some(tools) = Tools::find()? else {
        return Ok(());
    };
    if without_browser()? {
        return Ok(());
    }
    let deployment = Deployment::start_with_oidc(tools).await?;
    let browser = Browser::start(deployment.ca()).await?;
    let page = deployment.sign_in_url();
    let user = carol();

    // Signed out: both ways in are offered; the provider's button starts the OIDC flow.
    browser.goto(&page).await?;
    let button = browser.text("#oidc-sign-in").await?;
    assert_eq!(button, format!("Sign in with {OIDC_PROVIDER_NAME}"));
    browser.click("#oidc-sign-in").await?;
    if browser.current_url().await?.ends_with("/oidc/start") {
        anyhow::bail!("the sign-in did not start: {}", browser.text("main").await?);
    }
    browser.fill("#username", &user.username).await?;
    browser.fill("#password", &user.password).await?;
    browser.click("#submit").await?;
    // Back on the page, signed in as the user the API server maps her ID token to.
    assert_eq!(browser.text("#user").await?, user.email);
    assert_eq!(
        browser.current_url().await?,
        page,
        "no code or token left in the URL"
    );
    let token = browser.text("#dce-token").await?;
    assert!(
        browser
            .text("#token-expiry")
            .await?
            .starts_with("Expires at ")
    );

    // dce-cli takes the token, and leases an account as her.
    let admin = deployment.signed_in(&crate::fixture::ADMIN).await?;
    deployment.add_account(&admin, "444455556666").await?;
    let home = deployment.home()?;
    deployment.auth_with(&home, &token).await?;
    let lease = [
        "leases",
        "create",
        "--principal-id",
        &user.email,
        "--budget-amount",
        "20",
    ];
    let lease = [
        &lease[..],
        &["--budget-currency", "USD", "--email", &user.email],
    ]
    .concat();
    let created = printed_json(&deployment.dce(&home, &lease).await?);
    let id = created["id"].as_str().unwrap_or_default().to_string();

    // The page lists the lease, with a way into its console.
    let row = format!("tr[data-lease=\"{id}\"]");
    let listed = wait_for(PAGE_WAIT, || async {
        browser.goto(&page).await.ok()?;
        let text = browser.text(&row).await.ok()?;
        text.contains("Active").then_some(text)
    })
    .await?;
    assert!(
        listed.contains("444455556666") && listed.contains("20.00 USD"),
        "{listed}"
    );
    if std::env::var_os("DCE_UPDATE_SCREENSHOT").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/images");
        std::fs::create_dir_all(&docs)?;
        browser.resize(1000, 860).await?;
        browser.screenshot(&docs.join("sign-in.png")).await?;
    }
    browser.click(&format!("{row} button")).await?;
    let federation = deployment.federation_endpoint();
    let console = wait_for(PAGE_WAIT, || async {
        let url = browser.current_url().await.ok()?;
        url.starts_with(&federation).then_some(url)
    })
    .await?;
    assert!(console.contains("Action=login"), "{console}");

    // Signing out revokes the token: dce-cli's next call is refused.
    browser.goto(&page).await?;
    browser.click("#sign-out").await?;
    browser.text("#token-sign-in").await?;
    let refused = deployment.dce(&home, &["leases", "list"]).await?;
    assert!(printed_error(&refused).contains("401"), "{refused}");

    browser.stop().await;
    deployment.stop().await;
    Ok(())
}
