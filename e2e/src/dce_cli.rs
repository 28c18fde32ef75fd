//! The real clients of a DCE user, run unmodified but entirely on loopback: DCE's own `dce`
//! (dce-cli, built by `make dce-cli`) and the `aws` CLI (from the venv, `make venv`).
//!
//! Each runs in a [`ClientHome`]: a fresh HOME (dce-cli reads `~/.dce/config.yaml`, `aws` writes
//! `~/.aws/`), a controlled environment with no inherited `AWS_*` settings, the test's CA as the
//! only trusted one and, given a [`ConnectProxy`], its HTTPS traffic to AWS sent there.

use std::os::fd::AsRawFd as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::AsyncWriteExt as _;

use crate::connect_proxy::ConnectProxy;
use crate::control_plane::kube_bin_dir;
use crate::moto::{AccessKey, venv_dir};
use crate::target::ScratchDir;
use crate::tls::TestCa;

/// How long one command may take (dce-cli retries failed AWS calls with back-off).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// dce-cli's binary, or `None` (after saying why) when it has not been built; an error in CI,
/// where `make test` builds it.
pub fn dce_cli_binary() -> anyhow::Result<Option<PathBuf>> {
    tool(kube_bin_dir().join("dce-cli"), "make dce-cli")
}

/// The venv's `aws` CLI, or `None` (after saying why) when the venv lacks it; an error in CI.
pub fn aws_cli_binary() -> anyhow::Result<Option<PathBuf>> {
    venv_binary("aws")
}

/// A program of the venv (e.g. `moto_server`), or `None` (after saying why) when the venv lacks
/// it; an error in CI.
pub fn venv_binary(name: &str) -> anyhow::Result<Option<PathBuf>> {
    tool(venv_dir().join("bin").join(name), "make venv")
}

fn tool(path: PathBuf, build: &str) -> anyhow::Result<Option<PathBuf>> {
    if path.is_file() {
        return Ok(Some(path));
    }
    if std::env::var_os("CI").is_some() {
        bail!("{} not found: `{build}` builds it", path.display());
    }
    eprintln!("skipped: {} not found: run `{build}`", path.display());
    Ok(None)
}

/// What a command did.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

impl std::fmt::Display for CliOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A user's HOME and environment for the clients; its files are removed on drop.
pub struct ClientHome {
    scratch: ScratchDir,
    ca_file: PathBuf,
    proxy_url: Option<String>,
    env: Vec<(String, String)>,
}

impl ClientHome {
    /// A fresh HOME whose clients trust `ca` alone and, given `proxy`, send their HTTPS requests
    /// to non-loopback hosts (AWS's) through it.
    pub fn new(ca: &TestCa, proxy: Option<&ConnectProxy>) -> anyhow::Result<ClientHome> {
        let scratch = ScratchDir::new()?;
        let ca_file = ca.write_pem(scratch.path())?;
        let home = ClientHome {
            scratch,
            ca_file,
            proxy_url: proxy.map(ConnectProxy::url),
            env: Vec::new(),
        };
        std::fs::create_dir_all(home.home())?;
        home.install_browser_stub()?;
        Ok(home)
    }

    /// The HOME directory the clients run with.
    pub fn home(&self) -> PathBuf {
        self.scratch.path().join("home")
    }

    /// Writes `~/.dce/config.yaml` with the API's address and the region, and no credentials:
    /// `api_host` is host and port (dce-cli always uses https), `api_basepath` the path prefix.
    pub fn write_dce_config(
        &self,
        api_host: &str,
        api_basepath: &str,
        region: &str,
    ) -> anyhow::Result<PathBuf> {
        let config = serde_json::json!({
            "api": {"host": api_host, "basepath": api_basepath},
            "region": region,
        });
        let path = self.dce_config_path();
        std::fs::create_dir_all(self.home().join(".dce"))?;
        std::fs::write(&path, serde_yaml::to_string(&config)?)?;
        Ok(path)
    }

    /// `~/.dce/config.yaml` as it is now (dce-cli rewrites it, e.g. `dce auth` adds `api.token`).
    pub fn dce_config(&self) -> anyhow::Result<String> {
        let path = self.dce_config_path();
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// Where dce-cli reads its config: `~/.dce/config.yaml` (its messages name the path).
    pub fn dce_config_path(&self) -> PathBuf {
        self.home().join(".dce/config.yaml")
    }

    /// Sets a variable for every later command (e.g. `AWS_REGION`).
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_string(), value.to_string()));
    }

    /// Gives the clients `key` through the environment, as a user's shell would.
    pub fn set_aws_key(&mut self, key: &AccessKey) {
        self.set_env("AWS_ACCESS_KEY_ID", &key.access_key_id);
        self.set_env("AWS_SECRET_ACCESS_KEY", &key.secret_access_key);
    }

    /// The URLs the clients asked to open in a browser, oldest first.
    pub fn opened_urls(&self) -> Vec<String> {
        let opened = std::fs::read_to_string(self.opened_urls_path()).unwrap_or_default();
        opened.lines().map(str::to_string).collect()
    }

    fn opened_urls_path(&self) -> PathBuf {
        self.scratch.path().join("opened-urls")
    }

    fn stub_dir(&self) -> PathBuf {
        self.scratch.path().join("bin")
    }

    /// dce-cli opens URLs (`dce auth`, `leases login --open-browser`) with pkg/browser, which on
    /// Linux runs `xdg-open` from PATH and honours no BROWSER setting: a stub of that name first
    /// on PATH records the URL instead, so no real browser starts.
    fn install_browser_stub(&self) -> anyhow::Result<()> {
        let stub = self.stub_dir().join("xdg-open");
        std::fs::create_dir_all(self.stub_dir())?;
        let record = self.opened_urls_path();
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n",
            record.display()
        );
        std::fs::write(&stub, script)?;
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    /// Runs `program` (e.g. [`dce_cli_binary`] or [`aws_cli_binary`]) with `args` in this home,
    /// `stdin` as its standard input (closed when `None`; `dce auth` reads its token from there).
    /// The environment is built from nothing: HOME, a PATH with the browser stub and the venv
    /// (for the `aws` that `dce leases login` runs) before the inherited one, the CA for Go
    /// (`SSL_CERT_FILE`) and the AWS SDKs and CLI (`AWS_CA_BUNDLE`), the proxy if any, and what
    /// [`ClientHome::set_env`] set.
    pub async fn run(
        &self,
        program: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<CliOutput> {
        self.run_answering(program, args, stdin.as_slice()).await
    }

    /// [`ClientHome::run`] with `answers` written to standard input one at a time, each once the
    /// program has read everything before it: dce-cli reads each prompt with a new line reader
    /// (`dce init` asks twice), and a reader that found the next answers already there would
    /// swallow them. Standard input is closed after the last one (at once when there are none).
    pub async fn run_answering(
        &self,
        program: &Path,
        args: &[&str],
        answers: &[&str],
    ) -> anyhow::Result<CliOutput> {
        let inherited_path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        let path = format!(
            "{}:{}:{inherited_path}",
            self.stub_dir().display(),
            venv_dir().join("bin").display()
        );
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", path)
            .env("SSL_CERT_FILE", &self.ca_file)
            .env("AWS_CA_BUNDLE", &self.ca_file)
            // Without credentials the aws CLI would ask the instance metadata service, which is
            // not on loopback.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(self.proxy_url.iter().map(|url| ("HTTPS_PROXY", url)))
            .envs(self.env.iter().map(|(n, v)| (n, v)))
            .current_dir(self.home())
            .stdin(if answers.is_empty() {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        // Dropped on a time-out, which kills the child.
        let run = async move {
            if let Some(mut input) = child.stdin.take() {
                for answer in answers {
                    wait_until_read(&input, &mut child).await?;
                    // A program that stopped reading has exited; its output says why.
                    if input.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
            anyhow::Ok(child.wait_with_output().await?)
        };
        let output = tokio::time::timeout(RUN_TIMEOUT, run)
            .await
            .with_context(|| {
                format!(
                    "{} {args:?}: not done within {RUN_TIMEOUT:?}",
                    program.display()
                )
            })??;
        Ok(CliOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// Waits until `child` has read all that was written to `input`, or has exited.
async fn wait_until_read(
    input: &tokio::process::ChildStdin,
    child: &mut tokio::process::Child,
) -> anyhow::Result<()> {
    loop {
        let mut unread: libc::c_int = 0;
        // SAFETY: FIONREAD stores the bytes waiting in the pipe into the one c_int it is given;
        // the descriptor is the pipe's write end, open for as long as `input` lives.
        let status = unsafe { libc::ioctl(input.as_raw_fd(), libc::FIONREAD, &mut unread) };
        anyhow::ensure!(status == 0, "FIONREAD: {}", std::io::Error::last_os_error());
        if unread == 0 || child.try_wait()?.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
