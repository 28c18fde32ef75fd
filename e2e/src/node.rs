//! A real Kubernetes node for tests whose Pods must run: containerd (with Debian's runc) and a
//! kubelet registered with a [`ControlPlane`], whose kube-scheduler binds Pods to it. Built
//! from Go modules by `make kube-tools` (`e2e/kube/`, `e2e/kube/node/`); needs root.
//!
//! Only loopback: every server listens on a loopback address, the node's own (127.0.0.1, or
//! another of 127.0.0.0/8 for a second node on this machine), so Pods use host networking
//! (`hostNetwork: true`) and their probes reach servers bound to their Pod IP, the node's
//! address. The kubelet refuses a loopback `--node-ip`, so it runs with
//! `--cloud-provider=external` and [`Node::start`] plays the cloud controller: it sets the
//! Node's addresses and removes the startup taints. No image is ever pulled: images are
//! imported from OCI archives ([`Node::import_image`]), the sandbox (pause) image first.
//!
//! Each node has its own files, sockets and cgroup tree, so nodes of parallel tests do not
//! meet. [`Node::shutdown`] (or drop) kills its processes and containers, unmounts what they
//! mounted, removes its cgroups and files, and restores the kernel settings the kubelet
//! changes at start.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use rand::Rng as _;
use serde_json::json;

use crate::control_plane::{ControlPlane, kube_bin_dir, kube_binary};
use crate::process::{ServerProcess, free_port};
use crate::target::ScratchDir;

/// How long containerd and the kubelet may take to come up (the node to be Ready) on a busy
/// 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long cleanup waits for killed processes to go and cgroups to empty.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Taints a new Node gets until it is initialized and Ready: from the kubelet under an
/// external cloud provider, and from the API server's admission (removed by the cloud and
/// node lifecycle controllers, which do not run here: [`Node::start`] does their part).
const STARTUP_TAINTS: [&str; 2] = [
    "node.cloudprovider.kubernetes.io/uninitialized",
    "node.kubernetes.io/not-ready",
];
/// The binaries a node runs, from `make kube-tools`.
const NODE_BINARIES: [&str; 6] = [
    "kubelet",
    "kube-scheduler",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "loopback",
];

/// Why a node cannot run here, if it cannot: tests print "skipped: <why>" and return.
pub fn node_support() -> Result<(), String> {
    // SAFETY: geteuid only reads the process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        return Err("a test node needs root (containers, mounts and cgroups)".into());
    }
    for name in NODE_BINARIES {
        if !kube_bin_dir().join(name).is_file() {
            return Err(format!(
                "{} not found: build the test node with `make kube-tools`",
                kube_bin_dir().join(name).display()
            ));
        }
    }
    runc_binary().map(|_| ())
}

/// Debian's runc (`make kube-tools` installs it): on the PATH or where Debian puts it.
fn runc_binary() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("runc"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| "runc not found: install it with `apt-get install runc`".to_string())
}

/// A running node. Dropping it stops it and removes everything it made, as
/// [`Node::shutdown`] does.
pub struct Node {
    name: String,
    /// The Node's InternalIP, where its kubelet listens and its Pods' IP.
    address: Ipv4Addr,
    kubelet: Option<ServerProcess>,
    containerd: Option<ServerProcess>,
    footprint: Footprint,
    /// Taken when the node stops: removed, or left in place if something is still mounted
    /// under it (deleting it would delete inside the mount).
    dir: Option<ScratchDir>,
}

impl Node {
    /// Starts containerd and a kubelet registered with `control_plane` (and the control
    /// plane's scheduler), and waits until the Node is Ready. `sandbox_image` names the pause
    /// image every Pod's sandbox runs (e.g. `localhost/pause:e2e`): import it with
    /// [`Node::import_image`] before creating Pods.
    pub async fn start(
        control_plane: &mut ControlPlane,
        sandbox_image: &str,
    ) -> anyhow::Result<Node> {
        Self::start_at(control_plane, sandbox_image, Ipv4Addr::LOCALHOST).await
    }

    /// [`Node::start`] with the node at `address`, a loopback address no other node here has:
    /// its Pods (host network) get it as their IP, so two nodes' Pods may use the same ports.
    pub async fn start_at(
        control_plane: &mut ControlPlane,
        sandbox_image: &str,
        address: Ipv4Addr,
    ) -> anyhow::Result<Node> {
        node_support().map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            address.is_loopback(),
            "a test node's address is a loopback address"
        );
        control_plane.start_scheduler().await?;
        let id: u64 = rand::rng().random_range(0..1 << 48);
        let name = format!("dce-e2e-node-{id:012x}");
        let dir = ScratchDir::new()?;
        let footprint = Footprint {
            scratch_dir: dir.path().to_path_buf(),
            runtime_dir: PathBuf::from(format!("/run/dce-e2e-{id:012x}")),
            cgroup_root: format!("/{name}"),
        };
        let mut node = Node {
            name,
            address,
            kubelet: None,
            containerd: None,
            footprint,
            dir: Some(dir),
        };
        kernel_settings_acquire();
        let started = Instant::now();
        node.start_containerd(sandbox_image)?;
        node.start_kubelet(control_plane)?;
        node.initialize(&control_plane.admin_client().await?)
            .await?;
        eprintln!("node {} Ready in {:?}", node.name, started.elapsed());
        Ok(node)
    }

    /// The Node's name (also its hostname in the API).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("the scratch dir is kept while running")
            .path()
    }

    fn runtime_dir(&self) -> &Path {
        &self.footprint.runtime_dir
    }

    /// containerd's gRPC socket (for `ctr -a` or a CRI client).
    pub fn containerd_socket(&self) -> PathBuf {
        self.runtime_dir().join("containerd.sock")
    }

    fn start_containerd(&mut self, sandbox_image: &str) -> anyhow::Result<()> {
        let runtime_dir = self.runtime_dir().to_path_buf();
        std::fs::create_dir_all(&runtime_dir)
            .with_context(|| format!("creating {}", runtime_dir.display()))?;
        let cni_conf_dir = self.dir().join("cni");
        std::fs::create_dir_all(&cni_conf_dir)?;
        // Host-network Pods never use a CNI network, but the CRI reports the network ready
        // only once it has loaded a configuration.
        std::fs::write(
            cni_conf_dir.join("10-loopback.conflist"),
            r#"{"cniVersion":"1.0.0","name":"loopback","plugins":[{"type":"loopback"}]}"#,
        )?;
        let config = containerd_config(&ContainerdPaths {
            root: &self.dir().join("containerd"),
            runtime_dir: &runtime_dir,
            cni_conf_dir: &cni_conf_dir,
            runc: &runc_binary().map_err(anyhow::Error::msg)?,
            sandbox_image,
        });
        let config_path = self.dir().join("containerd.toml");
        std::fs::write(&config_path, config)?;
        let mut command = Command::new(kube_binary("containerd")?);
        command
            .arg("--config")
            .arg(&config_path)
            // The runc shim is found on the PATH.
            .env("PATH", path_with(&kube_bin_dir()));
        let mut containerd =
            ServerProcess::spawn("containerd", command, &self.dir().join("containerd.log"))?;
        let socket = self.containerd_socket();
        let deadline = Instant::now() + START_TIMEOUT;
        while UnixStream::connect(&socket).is_err() {
            containerd.check_running()?;
            if Instant::now() > deadline {
                bail!(
                    "containerd did not serve {} within {START_TIMEOUT:?}:\n{}",
                    socket.display(),
                    containerd.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.containerd = Some(containerd);
        Ok(())
    }

    fn start_kubelet(&mut self, control_plane: &ControlPlane) -> anyhow::Result<()> {
        let dir = self.dir().to_path_buf();
        let kubeconfig = dir.join("kubelet.kubeconfig");
        control_plane.write_kubeconfig(&kubeconfig, control_plane.admin_token())?;
        // Pods resolve names through the kubelet's resolv.conf: nothing leaves loopback.
        let resolv_conf = dir.join("resolv.conf");
        std::fs::write(&resolv_conf, "nameserver 127.0.0.1\n")?;
        self.create_cgroup_root()?;
        let config = json!({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            // The machines mount cgroup v1 (hybrid), which kubelet 1.35+ refuses by default.
            "failCgroupV1": false,
            "cgroupDriver": "cgroupfs",
            // A tree of its own, so cleanup removes exactly this node's cgroups.
            "cgroupRoot": self.footprint.cgroup_root,
            "cgroupsPerQOS": true,
            "containerRuntimeEndpoint": format!("unix://{}", self.containerd_socket().display()),
            // The API server reaches the kubelet at the Node's InternalIP.
            "address": self.address.to_string(),
            "port": free_port()?,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port()?,
            // Only loopback reaches it; the API server's log and exec requests come anonymous.
            "authentication": {
                "anonymous": {"enabled": true},
                "webhook": {"enabled": false},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "failSwapOn": false,
            "resolvConf": resolv_conf,
            "podLogsDir": dir.join("pod-logs"),
            // A nearly full disk must not evict test Pods or collect their images.
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
                "imagefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
        });
        let config_path = dir.join("kubelet.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let mut command = Command::new(kube_binary("kubelet")?);
        command.args([
            format!("--config={}", config_path.display()),
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--root-dir={}", dir.join("kubelet").display()),
            format!("--hostname-override={}", self.name),
            // See the module docs: the node's address is set by `initialize`.
            "--cloud-provider=external".into(),
            "--v=1".into(),
        ]);
        self.kubelet = Some(ServerProcess::spawn(
            "kubelet",
            command,
            &dir.join("kubelet.log"),
        )?);
        Ok(())
    }

    /// Creates the kubelet's cgroup root in every hierarchy (the kubelet requires it to
    /// exist), with the CPUs and memory nodes of its parent for cpuset.
    fn create_cgroup_root(&self) -> anyhow::Result<()> {
        for mount in cgroup_mounts() {
            let root = mount.join(self.footprint.cgroup_root.trim_start_matches('/'));
            std::fs::create_dir_all(&root)
                .with_context(|| format!("creating cgroup {}", root.display()))?;
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(parent) = std::fs::read_to_string(mount.join(file)) {
                    std::fs::write(root.join(file), parent.trim())
                        .with_context(|| format!("writing {}", root.join(file).display()))?;
                }
            }
        }
        Ok(())
    }

    /// Waits until the kubelet has registered the Node and gives it its address (the
    /// cloud controller's part), waits until it is Ready, then removes the taints that keep
    /// Pods off a node until then (the cloud and node lifecycle controllers' part).
    async fn initialize(&mut self, client: &Client) -> anyhow::Result<()> {
        let nodes: Api<NodeObject> = Api::all(client.clone());
        let params = PatchParams::default();
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            for process in [&mut self.containerd, &mut self.kubelet]
                .into_iter()
                .flatten()
            {
                process.check_running()?;
            }
            if let Some(node) = nodes.get_opt(&self.name).await? {
                if !has_address(&node, self.address) {
                    // The kubelet keeps addresses it finds set (its cloud provider is
                    // external).
                    let addresses = json!({"status": {"addresses": [
                        {"type": "InternalIP", "address": self.address.to_string()},
                        {"type": "Hostname", "address": self.name},
                    ]}});
                    nodes
                        .patch_status(&self.name, &params, &Patch::Merge(addresses))
                        .await?;
                } else if is_ready(&node) {
                    let taints: Vec<_> = node
                        .spec
                        .iter()
                        .flat_map(|spec| spec.taints.iter().flatten())
                        .filter(|taint| !STARTUP_TAINTS.contains(&taint.key.as_str()))
                        .collect();
                    let taints = json!({"spec": {"taints": taints}});
                    nodes
                        .patch(&self.name, &params, &Patch::Merge(taints))
                        .await?;
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "node {} not Ready within {START_TIMEOUT:?}:\n{}",
                    self.name,
                    self.kubelet
                        .as_ref()
                        .map(|k| k.log_tail(40))
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Imports the images of an OCI image layout archive into the CRI's namespace, under the
    /// names its index annotates (`io.containerd.image.name`), so Pods find them unpulled.
    pub fn import_image(&self, oci_archive: &Path) -> anyhow::Result<()> {
        let archive = oci_archive.to_str().context("archive path is not UTF-8")?;
        self.ctr(&["images", "import", archive])?;
        Ok(())
    }

    /// Runs `ctr` against this node's containerd in the CRI's namespace (`k8s.io`) and
    /// returns its output, e.g. `ctr(&["tasks", "ls"])`.
    pub fn ctr(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(kube_binary("ctr")?)
            .arg("--address")
            .arg(self.containerd_socket())
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .context("running ctr")?;
        if !output.status.success() {
            bail!(
                "ctr {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The last `lines` lines of the kubelet's and containerd's logs, to explain a Pod that
    /// does not start.
    pub fn log_tail(&self, lines: usize) -> String {
        [("kubelet", &self.kubelet), ("containerd", &self.containerd)]
            .iter()
            .filter_map(|(name, process)| {
                Some(format!(
                    "--- {name}:\n{}",
                    process.as_ref()?.log_tail(lines)
                ))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What this node leaves on the machine while it runs: after it stops,
    /// [`Footprint::leftovers`] must be empty.
    pub fn footprint(&self) -> Footprint {
        self.footprint.clone()
    }

    /// Stops the node and removes everything it made; an error names what could not be
    /// removed.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop();
        let leftovers = self.footprint.leftovers();
        if !leftovers.is_empty() {
            bail!("node {} left behind:\n{}", self.name, leftovers.join("\n"));
        }
        Ok(())
    }

    /// Kills the kubelet, containerd and every process of this node (its shims and
    /// containers), unmounts what they mounted, removes its cgroups and its files. Idempotent.
    fn stop(&mut self) {
        if self.dir.is_none() {
            return;
        }
        // The kubelet first, so it restarts nothing; the shims outlive containerd, so they
        // and the containers are found by their cgroup and command line.
        drop(self.kubelet.take());
        drop(self.containerd.take());
        let deadline = Instant::now() + CLEANUP_TIMEOUT;
        loop {
            let pids = self.footprint.processes();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                // SAFETY: kill(2) with a pid read from /proc; at worst the process is gone.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for mount_point in self.footprint.mounts() {
            if let Ok(path) = CString::new(mount_point.as_os_str().as_bytes()) {
                // SAFETY: umount2 with a NUL-terminated path. Detached (lazy), so a busy
                // mount goes as soon as its last user does.
                unsafe {
                    libc::umount2(path.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
        let deadline = Instant::now() + CLEANUP_TIMEOUT;
        while !self.footprint.remove_cgroups() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        kernel_settings_release();
        let _ = std::fs::remove_dir_all(self.runtime_dir());
        if self.footprint.mounts().is_empty() {
            drop(self.dir.take());
        } else {
            // Deleting the directory would delete inside what is still mounted there.
            std::mem::forget(self.dir.take());
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a node leaves traces on the machine: its directories and its cgroup tree.
#[derive(Debug, Clone)]
pub struct Footprint {
    /// Configuration, logs, the kubelet's root and containerd's root.
    scratch_dir: PathBuf,
    /// Sockets and containerd's state, under /run: socket paths must be short (a unix socket
    /// path has at most 108 bytes, a shim socket directory 42).
    runtime_dir: PathBuf,
    cgroup_root: String,
}

impl Footprint {
    fn dirs(&self) -> [&Path; 2] {
        [&self.scratch_dir, &self.runtime_dir]
    }

    /// What is left of the node: processes, mount points, cgroups and directories; empty
    /// once it has stopped cleanly.
    pub fn leftovers(&self) -> Vec<String> {
        let mut leftovers: Vec<String> = self
            .processes()
            .into_iter()
            .map(|pid| format!("process {pid}: {}", command_line(pid)))
            .collect();
        leftovers.extend(
            self.mounts()
                .into_iter()
                .map(|mount| format!("mount {}", mount.display())),
        );
        leftovers.extend(
            self.cgroups()
                .into_iter()
                .map(|cgroup| format!("cgroup {}", cgroup.display())),
        );
        leftovers.extend(
            self.dirs()
                .into_iter()
                .filter(|dir| dir.exists())
                .map(|dir| format!("directory {}", dir.display())),
        );
        leftovers
    }

    /// Processes of the node: in its cgroup tree, or naming its directories on their command
    /// line (the kubelet, containerd and the runc shims, which outlive containerd).
    fn processes(&self) -> Vec<libc::pid_t> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::pid_t>().ok())
            .filter(|&pid| {
                let cgroups =
                    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
                let in_tree = cgroups.lines().any(|line| {
                    let path = line.splitn(3, ':').nth(2).unwrap_or_default();
                    Path::new(path).starts_with(&self.cgroup_root)
                });
                let command = command_line(pid);
                in_tree
                    || self
                        .dirs()
                        .iter()
                        .any(|dir| command.contains(&*dir.to_string_lossy()))
            })
            .collect()
    }

    /// Mount points under the node's directories, deepest first.
    fn mounts(&self) -> Vec<PathBuf> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<PathBuf> = mountinfo
            .lines()
            .filter_map(|line| line.split(' ').nth(4).map(unescape_mount_path))
            .filter(|mount| self.dirs().iter().any(|dir| mount.starts_with(dir)))
            .collect();
        mounts.sort_by_key(|mount| std::cmp::Reverse(mount.components().count()));
        mounts
    }

    /// The node's cgroup root in each hierarchy, where it exists.
    fn cgroups(&self) -> Vec<PathBuf> {
        cgroup_mounts()
            .into_iter()
            .map(|mount| mount.join(self.cgroup_root.trim_start_matches('/')))
            .filter(|path| path.exists())
            .collect()
    }

    /// Removes the node's cgroup trees, children first; false while some are still busy.
    fn remove_cgroups(&self) -> bool {
        self.cgroups()
            .iter()
            .all(|root| remove_cgroup_tree(root).is_ok())
    }
}

/// Removes a cgroup directory and its descendants (`rmdir` each: the files a cgroup shows
/// are not removable, nor need to be).
fn remove_cgroup_tree(path: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(path)?.flatten() {
        if entry.file_type()?.is_dir() {
            remove_cgroup_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Mount points of the cgroup hierarchies (v1 controllers and the unified one).
fn cgroup_mounts() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            // Fields after " - " are the filesystem type, source and options.
            let (fields, filesystem) = line.split_once(" - ")?;
            let kind = filesystem.split(' ').next()?;
            let mount_point = fields.split(' ').nth(4)?;
            (kind == "cgroup" || kind == "cgroup2").then(|| unescape_mount_path(mount_point))
        })
        .collect()
}

/// A mount point as mountinfo writes it: space, tab, newline and backslash octal-escaped.
fn unescape_mount_path(escaped: &str) -> PathBuf {
    let mut bytes = Vec::with_capacity(escaped.len());
    let raw = escaped.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let octal = raw.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (raw[i], octal) {
            (b'\\', Some(byte)) => {
                bytes.push(byte);
                i += 4;
            }
            (byte, _) => {
                bytes.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))
}

fn command_line(pid: libc::pid_t) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .unwrap_or_default()
}

/// `$PATH` with `dir` first.
fn path_with(dir: &Path) -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&path)))
        .unwrap_or(path)
}

fn is_ready(node: &NodeObject) -> bool {
    node.status
        .iter()
        .flat_map(|status| status.conditions.iter().flatten())
        .any(|condition| condition.type_ == "Ready" && condition.status == "True")
}

fn has_address(node: &NodeObject, wanted: Ipv4Addr) -> bool {
    node.status
        .iter()
        .flat_map(|status| status.addresses.iter().flatten())
        .any(|address| address.type_ == "InternalIP" && address.address == wanted.to_string())
}

struct ContainerdPaths<'a> {
    root: &'a Path,
    runtime_dir: &'a Path,
    cni_conf_dir: &'a Path,
    runc: &'a Path,
    sandbox_image: &'a str,
}

/// containerd's configuration (format version 4, containerd 2.4's own): its files under the
/// node's directories, sockets only (no TCP, debug or metrics listeners), the CRI with the
/// local sandbox image, overlayfs, runc with cgroupfs, and the loopback CNI configuration.
/// NRI is off: its socket is one per machine. OOM score adjustments stay at or above
/// containerd's own: lowering them needs CAP_SYS_RESOURCE, which the test machines withhold
/// even from root.
fn containerd_config(paths: &ContainerdPaths) -> String {
    let root = paths.root.display();
    let run = paths.runtime_dir.display();
    let cni_bin = kube_bin_dir();
    format!(
        r#"version = 4
root = '{root}/root'
state = '{run}/state'
temp = '{root}/tmp'
disabled_plugins = ['io.containerd.nri.v1.nri']

[plugins.'io.containerd.server.v1.grpc']
  address = '{run}/containerd.sock'
[plugins.'io.containerd.server.v1.ttrpc']
  address = '{run}/containerd.sock.ttrpc'
[plugins.'io.containerd.server.v1.debug']
  address = ''
[plugins.'io.containerd.server.v1.metrics']
  address = ''
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = '{run}/s'
[plugins.'io.containerd.internal.v1.opt']
  path = '{root}/opt'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{sandbox}'

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '{runc}'
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['{cni_bin}']
    conf_dir = '{cni_conf}'

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
"#,
        sandbox = paths.sandbox_image,
        runc = paths.runc.display(),
        cni_bin = cni_bin.display(),
        cni_conf = paths.cni_conf_dir.display(),
    )
}

/// Kernel settings the kubelet sets when it starts (and has no option to leave alone).
const KUBELET_KERNEL_SETTINGS: [&str; 6] = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// Nodes running in this process, and the kernel settings found before the first started.
static KERNEL_SETTINGS: Mutex<(usize, Vec<(&str, String)>)> = Mutex::new((0, Vec::new()));

/// Records the kernel settings before the first node of this process starts.
fn kernel_settings_acquire() {
    let mut guard = KERNEL_SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
    let (nodes, saved) = &mut *guard;
    if *nodes == 0 {
        *saved = KUBELET_KERNEL_SETTINGS
            .iter()
            .filter_map(|&name| {
                let value = std::fs::read_to_string(Path::new("/proc/sys").join(name)).ok()?;
                Some((name, value.trim().to_string()))
            })
            .collect();
    }
    *nodes += 1;
}

/// Restores the kernel settings when the last node of this process stops.
fn kernel_settings_release() {
    let mut guard = KERNEL_SETTINGS.lock().unwrap_or_else(|e| e.into_inner());
    let (nodes, saved) = &mut *guard;
    *nodes = nodes.saturating_sub(1);
    if *nodes == 0 {
        for (name, value) in saved.drain(..) {
            let _ = std::fs::write(Path::new("/proc/sys").join(name), value);
        }
    }
}
