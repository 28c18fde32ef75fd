//! Headless Chromium for tests of sign-in pages, driven through chromedriver (WebDriver) with
//! fantoccini: Debian's `chromium`, `chromium-driver` and `libnss3-tools`, which
//! `e2e/scripts/browser.sh` installs (`make test` runs it).
//!
//! The browser trusts the test CA as a person's browser trusts their organisation's CA, and no
//! certificate error is ignored: the CA is in the NSS certificate database of a home directory
//! of the browser's own (`$HOME/.pki/nssdb`, where Chromium on Linux reads the CAs a user
//! added). Chromium is started here, with a fresh profile, and chromedriver attaches to it
//! (`debuggerAddress`), so both are processes of the test: dropping the [`Browser`] kills them
//! and Chromium's helper processes (its process group).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use fantoccini::{Client, ClientBuilder, Locator};

use crate::process::ServerProcess;
use crate::target::ScratchDir;
use crate::tls::TestCa;

/// How long Chromium or chromedriver may take to start on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an element may take to appear (a page loading, a redirect being followed).
const ELEMENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Chromium's switches: headless, no GPU, and no traffic of its own (updates, sync, QUIC, a
/// proxy from the environment): the pages a test opens are its only traffic.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    // No keyring to reach over D-Bus.
    "--password-store=basic",
    "--remote-debugging-address=127.0.0.1",
    // The kernel picks the port; Chromium writes it to the profile's DevToolsActivePort.
    "--remote-debugging-port=0",
];

/// The programs a browser needs, or why it cannot start: say so in a skipped test.
pub fn browser_support() -> Result<(), String> {
    for program in ["chromium", "chromedriver", "certutil"] {
        find_program(program)?;
    }
    Ok(())
}

fn find_program(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!("{name} not found: install Chromium with e2e/scripts/browser.sh (as root)")
        })
}

/// A headless Chromium and the chromedriver session driving it.
pub struct Browser {
    // `Drop` stops Chromium first; then the fields go in order: the session, chromedriver,
    // the files.
    client: Client,
    _chromedriver: ServerProcess,
    chromium: Option<ServerProcess>,
    _dir: ScratchDir,
}

impl Browser {
    /// Starts Chromium trusting `ca` (and no other CA a test made), and a WebDriver session.
    pub async fn start(ca: &TestCa) -> anyhow::Result<Browser> {
        browser_support().map_err(anyhow::Error::msg)?;
        let dir = ScratchDir::new()?;
        let home = dir.path().join("home");
        let nssdb = home.join(".pki/nssdb");
        std::fs::create_dir_all(&nssdb)?;
        let ca_file = ca.write_pem(dir.path())?;
        let db = format!("sql:{}", nssdb.display());
        run("certutil", &["-d", &db, "-N", "--empty-password"])?;
        let ca_arg = ca_file.display().to_string();
        run(
            "certutil",
            &[
                "-d",
                &db,
                "-A",
                "-t",
                "C,,",
                "-n",
                "dce-test-ca",
                "-i",
                &ca_arg,
            ],
        )?;

        let profile = dir.path().join("profile");
        let mut command = Command::new("chromium");
        command
            .env("HOME", &home)
            .args(CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            // Its helpers (renderers, GPU, network service) join its group.
            .process_group(0);
        let mut chromium =
            ServerProcess::spawn("chromium", command, &dir.path().join("chromium.log"))?;
        let devtools = wait_for(&mut chromium, || {
            let ports = std::fs::read_to_string(profile.join("DevToolsActivePort")).ok()?;
            ports.lines().next()?.parse::<u16>().ok()
        })
        .await?;

        let log = dir.path().join("chromedriver.log");
        let mut command = Command::new("chromedriver");
        command.arg("--port=0");
        let mut chromedriver = ServerProcess::spawn("chromedriver", command, &log)?;
        let webdriver = wait_for(&mut chromedriver, || {
            let text = std::fs::read_to_string(&log).ok()?;
            let (_, rest) = text.split_once("started successfully on port ")?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u16>()
                .ok()
        })
        .await?;

        let capabilities = serde_json::json!({
            "goog:chromeOptions": {"debuggerAddress": format!("127.0.0.1:{devtools}")},
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{webdriver}"))
            .await
            .with_context(|| format!("WebDriver session:\n{}", chromedriver.log_tail(20)))?;
        Ok(Browser {
            client,
            _chromedriver: chromedriver,
            chromium: Some(chromium),
            _dir: dir,
        })
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// The address of the page shown now.
    pub async fn current_url(&self) -> anyhow::Result<String> {
        Ok(self.client.current_url().await?.to_string())
    }

    /// Types `text` into the (emptied) field `selector` (CSS), as a person would.
    pub async fn fill(&self, selector: &str, text: &str) -> anyhow::Result<()> {
        let field = self.element(selector).await?;
        field.clear().await?;
        field.send_keys(text).await?;
        Ok(())
    }

    /// Clicks the element `selector` (CSS).
    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        Ok(self.element(selector).await?.click().await?)
    }

    /// The rendered text of the element `selector` (CSS), once it is on the page.
    pub async fn text(&self, selector: &str) -> anyhow::Result<String> {
        Ok(self.element(selector).await?.text().await?)
    }

    /// Sets the window's size in pixels (what a screenshot shows).
    pub async fn resize(&self, width: u32, height: u32) -> anyhow::Result<()> {
        Ok(self.client.set_window_size(width, height).await?)
    }

    /// Saves a PNG screenshot of the page to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self.client.screenshot().await?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Ends the WebDriver session, then stops chromedriver and Chromium.
    pub async fn stop(self) {
        let _ = self.client.clone().close().await;
    }

    async fn element(&self, selector: &str) -> anyhow::Result<fantoccini::elements::Element> {
        let found = self
            .client
            .wait()
            .at_most(ELEMENT_TIMEOUT)
            .for_element(Locator::Css(selector))
            .await;
        match found {
            Ok(element) => Ok(element),
            Err(error) => {
                let url = self.current_url().await.unwrap_or_default();
                bail!("no element {selector} on {url} within {ELEMENT_TIMEOUT:?}: {error}")
            }
        }
    }
}

impl Drop for Browser {
    /// Kills Chromium's process group and waits until its helpers are gone: one still writing
    /// to the profile would keep it from being removed.
    fn drop(&mut self) {
        let Some(chromium) = self.chromium.take() else {
            return;
        };
        let group = chromium.pid() as libc::pid_t;
        // SAFETY: kill(2) only signals the process group Chromium leads.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        // Reaps Chromium; its orphaned helpers are reaped by init.
        drop(chromium);
        let deadline = Instant::now() + Duration::from_secs(10);
        // SAFETY: signal 0 only checks whether a process of the group is left.
        while unsafe { libc::kill(-group, 0) } == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs a setup program to completion; an error with its output if it fails.
fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Polls `ready` until it yields, while `process` runs.
async fn wait_for<T>(
    process: &mut ServerProcess,
    mut ready: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        process.check_running()?;
        if let Some(value) = ready() {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "not started within {START_TIMEOUT:?}:\n{}",
                process.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
