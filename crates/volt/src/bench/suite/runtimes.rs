//! The runtimes the suite compares, each started the same way: a command
//! that runs one program with its arguments (and, for servers, listens on a
//! host port on 127.0.0.1). A runtime that is missing is listed with the
//! reason, never invented.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use super::microvm::{self, MicroVm, Monitor};
use super::report::RuntimeInfo;

/// A runtime the suite can drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// A plain Linux process.
    Process,
    /// `runc run` of a bundle the suite makes (the binary alone in its rootfs).
    Runc,
    /// `crun run` of the same bundle.
    Crun,
    /// `podman run` of an image imported from the same rootfs (runc under
    /// it, host networking, storage of the suite's own).
    Podman,
    /// `volt run` (its `-p` relay for servers).
    Unikernel,
    /// A Linux kernel under QEMU's `microvm` machine, the binary as /init.
    Qemu(MicroVm),
    /// The same under Firecracker.
    Firecracker(MicroVm),
}

impl Runtime {
    pub fn name(&self) -> &'static str {
        match self {
            Runtime::Process => "process",
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
            Runtime::Podman => "podman",
            Runtime::Unikernel => "unikernel",
            Runtime::Qemu(_) => "qemu",
            Runtime::Firecracker(_) => "firecracker",
        }
    }

    fn microvm(&self) -> Option<&MicroVm> {
        match self {
            Runtime::Qemu(m) | Runtime::Firecracker(m) => Some(m),
            _ => None,
        }
    }
}

/// What the microVM runtimes need from the command line.
pub struct MicroVmArgs {
    pub kernel: Option<PathBuf>,
    pub firecracker: Option<PathBuf>,
    pub qemu: PathBuf,
    pub limit: std::time::Duration,
}

impl MicroVmArgs {
    pub fn of(a: &super::SuiteArgs) -> MicroVmArgs {
        MicroVmArgs {
            kernel: a.kernel.clone(),
            firecracker: a.firecracker.clone(),
            qemu: a.qemu.clone(),
            limit: std::time::Duration::from_secs(a.microvm_timeout),
        }
    }

    /// The microVM runtime `monitor` with `bin`, or why not.
    fn detect(
        &self,
        monitor: Monitor,
        bin: Option<&Path>,
    ) -> (Option<Runtime>, String, Option<String>) {
        let what = match monitor {
            Monitor::Qemu => "qemu",
            Monitor::Firecracker => "firecracker",
        };
        let Some(bin) = bin else {
            return (None, String::new(), Some(
                "not given: --firecracker BIN --kernel VMLINUX (Firecracker is not in Debian; it needs a Linux guest kernel, and on these nested-PVM hosts such a guest had not reached init after minutes, ../shared/platform.md)".to_string()
            ));
        };
        let v = version(&bin.to_string_lossy(), "--version");
        let Some(v) = v else {
            return (
                None,
                String::new(),
                Some(format!("{} does not run here ({what})", bin.display())),
            );
        };
        let Some(kernel) = self.kernel.clone().filter(|k| k.is_file()) else {
            return (None, String::new(), Some(format!(
                "{v}: needs a Linux guest kernel, --kernel VMLINUX (Debian's linux-image-cloud-amd64 has one in /boot)"
            )));
        };
        let m = MicroVm {
            monitor,
            bin: bin.to_path_buf(),
            kernel: kernel.clone(),
            limit: self.limit,
        };
        let rt = match monitor {
            Monitor::Qemu => Runtime::Qemu(m),
            Monitor::Firecracker => Runtime::Firecracker(m),
        };
        (Some(rt), format!(
            "{v}, kernel {}, an initramfs with the binary as /init (boot-to-exit workloads only; at most {} s each)",
            kernel.display(),
            self.limit.as_secs()
        ), None)
    }
}

fn version(cmd: &str, arg: &str) -> Option<String> {
    let o = Command::new(cmd).arg(arg).output().ok()?;
    if !o.status.success() {
        return None;
    }
    let t = String::from_utf8_lossy(&o.stdout);
    t.lines().next().map(|l| l.trim().to_string())
}

/// Which of the requested runtimes can run here; the others with a reason.
pub fn detect(wanted: &[String], vm: &MicroVmArgs) -> (Vec<Runtime>, Vec<RuntimeInfo>) {
    let mut ok = Vec::new();
    let mut info = Vec::new();
    for w in wanted {
        let (rt, what, skipped) = match w.as_str() {
            "process" => (Some(Runtime::Process), "a Linux process".to_string(), None),
            "runc" => match version("runc", "--version") {
                Some(v) => (
                    Some(Runtime::Runc),
                    format!("{v}, a bundle with the binary alone"),
                    None,
                ),
                None => (
                    None,
                    String::new(),
                    Some("runc is not installed (apt-get install runc)".to_string()),
                ),
            },
            // Tried, not assumed: where crun cannot run here (this host's
            // hybrid cgroups), each workload's note says what it answered.
            "crun" => match (version("crun", "--version"), version("runc", "--version")) {
                (Some(v), Some(_)) => (
                    Some(Runtime::Crun),
                    format!("{v}, the same bundle as runc"),
                    None,
                ),
                (Some(_), None) => (
                    None,
                    String::new(),
                    Some("crun needs runc's `runc spec` here to make its bundle".into()),
                ),
                (None, _) => (
                    None,
                    String::new(),
                    Some("crun is not installed (apt-get install crun)".into()),
                ),
            },
            "podman" => match version("podman", "--version") {
                Some(v) if version("runc", "--version").is_some() => (
                    Some(Runtime::Podman),
                    format!("{v} (runc, host network, vfs storage), an image of the binary alone"),
                    None,
                ),
                Some(v) => (
                    None,
                    String::new(),
                    Some(format!("{v}: needs runc here (crun refuses this host)")),
                ),
                None => (
                    None,
                    String::new(),
                    Some("podman is not installed (apt-get install podman)".into()),
                ),
            },
            "docker" => (
                None,
                String::new(),
                Some(match version(w, "--version") {
                    Some(v)
                        if w == "docker"
                            && Command::new("docker")
                                .arg("info")
                                .output()
                                .map(|o| !o.status.success())
                                .unwrap_or(true) =>
                    {
                        format!("{v}: its daemon is not running here")
                    }
                    Some(v) => format!(
                        "{v}: not driven by this version of the suite (runc runs the same bundle)"
                    ),
                    None => format!("{w} is not installed"),
                }),
            ),
            "unikernel" => (
                Some(Runtime::Unikernel),
                "volt run (OptiVolt unikernel, -p for servers)".to_string(),
                None,
            ),
            "firecracker" => vm.detect(Monitor::Firecracker, vm.firecracker.as_deref()),
            "qemu" => vm.detect(Monitor::Qemu, Some(&vm.qemu)),
            other => (
                None,
                String::new(),
                Some(format!("unknown runtime {other:?}")),
            ),
        };
        if let Some(r) = rt.clone() {
            ok.push(r);
        }
        info.push(RuntimeInfo {
            name: w.clone(),
            what,
            skipped,
        });
    }
    (ok, info)
}

/// Starts programs under a runtime; keeps what it made (runc bundles).
pub struct Launcher {
    pub runtime: Runtime,
    work: PathBuf,
    volt: PathBuf,
    count: u32,
}

/// A started program, stopped (and its container deleted) when dropped.
pub struct Running {
    pub child: Child,
    /// runc or crun: its binary, root and the container's ID.
    runc_id: Option<(&'static str, PathBuf, String)>,
    /// podman: its global arguments and the container's name.
    podman: Option<(Vec<String>, String)>,
    /// Reaped by the caller (wait4): not to be signalled or waited for again.
    reaped: bool,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every process that is the program's cost: its process tree, and for
    /// podman the container's monitor (conmon, not podman's child) with
    /// the container under it.
    pub fn pids(&self) -> Vec<u32> {
        let mut v = tree(self.pid());
        if let Some((g, name)) = &self.podman {
            let conmon = Command::new("podman")
                .args(g)
                .args(["inspect", "--format", "{{.State.ConmonPid}}", name])
                .output()
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<u32>()
                        .ok()
                });
            if let Some(c) = conmon.filter(|&c| c > 0) {
                v.extend(tree(c));
            }
        }
        v
    }

    /// Marks it as reaped by the caller.
    pub fn reaped(&mut self) {
        self.reaped = true;
    }

    /// Waits for it to end by itself.
    pub fn wait(mut self) -> Result<std::process::ExitStatus> {
        let st = self.child.wait().context("wait")?;
        Ok(st)
    }

    /// Waits at most `limit` for it to end; None (and it is killed when
    /// dropped) if it did not.
    pub fn wait_at_most(
        mut self,
        limit: std::time::Duration,
    ) -> Result<Option<std::process::ExitStatus>> {
        let t = std::time::Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().context("wait")? {
                self.reaped = true;
                return Ok(Some(st));
            }
            if t.elapsed() >= limit {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some((g, name)) = &self.podman {
            let _ = Command::new("podman")
                .args(g)
                .args(["rm", "-f", "-t", "0", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some((bin, root, id)) = &self.runc_id {
            let _ = Command::new(bin)
                .arg("--root")
                .arg(root)
                .args(["kill", id, "KILL"])
                .stderr(Stdio::null())
                .status();
        }
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some((bin, root, id)) = &self.runc_id {
            let _ = Command::new(bin)
                .arg("--root")
                .arg(root)
                .args(["delete", "-f", id])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Launcher {
    pub fn new(runtime: Runtime, work: &Path) -> Result<Launcher> {
        std::fs::create_dir_all(work)?;
        Ok(Launcher {
            runtime,
            work: work.to_path_buf(),
            volt: std::env::current_exe().context("cannot find volt")?,
            count: 0,
        })
    }

    /// A bundle whose rootfs holds `bin` as /app/bin, running it with `args`.
    fn bundle(&self, bin: &Path, args: &[String], memory: u64) -> Result<PathBuf> {
        let name = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bin".into());
        let b = self.work.join(format!("bundle-{name}-{}", self.count));
        let _ = std::fs::remove_dir_all(&b);
        std::fs::create_dir_all(b.join("rootfs/app"))?;
        std::fs::create_dir_all(b.join("rootfs/tmp"))?;
        std::fs::copy(bin, b.join("rootfs/app/bin"))?;
        let mut argv = vec!["/app/bin".to_string()];
        argv.extend(args.iter().cloned());
        Self::configure(&b, argv, memory)?;
        Ok(b)
    }

    /// `runc run` of `argv` in a bundle whose rootfs is the tree `root`.
    pub fn runc_in_tree(
        &mut self,
        root: &crate::store::tree::Tree,
        argv: Vec<String>,
        memory: u64,
    ) -> Result<Running> {
        self.count += 1;
        let b = self.work.join(format!("bundle-tree-{}", self.count));
        let _ = std::fs::remove_dir_all(&b);
        root.write_to(&b.join("rootfs"))?;
        std::fs::create_dir_all(b.join("rootfs/tmp"))?;
        Self::configure(&b, argv, memory)?;
        let rt = self.work.join("runc-root");
        let id = format!("suite-{}-{}", std::process::id(), self.count);
        let child = Command::new("runc")
            .arg("--root")
            .arg(&rt)
            .args(["run", "--bundle"])
            .arg(&b)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start runc")?;
        Ok(Running {
            child,
            runc_id: Some(("runc", rt, id)),
            podman: None,
            reaped: false,
        })
    }

    /// Writes the bundle's config.json: `argv`, the suite's network
    /// namespace, the memory limit.
    fn configure(b: &Path, argv: Vec<String>, memory: u64) -> Result<()> {
        let st = Command::new("runc")
            .args(["spec"])
            .current_dir(b)
            .status()
            .context("cannot run runc spec")?;
        if !st.success() {
            bail!("runc spec failed");
        }
        let p = b.join("config.json");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p)?)?;
        v["process"]["args"] = serde_json::json!(argv);
        v["process"]["terminal"] = serde_json::json!(false);
        v["root"]["readonly"] = serde_json::json!(false);
        // The suite's own network namespace (so 127.0.0.1 is shared), and
        // the same memory limit as the unikernel gets.
        if let Some(ns) = v["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
        }
        v["linux"]["resources"]["memory"] = serde_json::json!({ "limit": memory });
        std::fs::write(&p, serde_json::to_vec_pretty(&v)?)?;
        Ok(())
    }

    /// Starts `bin args`; a server listens on 127.0.0.1:`port` (the
    /// unikernel through `-p port:guest_port`, `args` then say `:guest_port`).
    pub fn start(
        &mut self,
        bin: &Path,
        args: &[String],
        server: Option<(u16, u16)>,
        memory: u64,
        quiet: bool,
    ) -> Result<Running> {
        self.count += 1;
        let out = || {
            if quiet {
                Stdio::null()
            } else {
                Stdio::inherit()
            }
        };
        let mut podman = None;
        let (mut cmd, runc_id) = match &self.runtime {
            Runtime::Process => {
                let mut c = Command::new(bin);
                c.args(host_args(args, server));
                (c, None)
            }
            Runtime::Runc | Runtime::Crun => {
                let b = self.bundle(bin, &host_args(args, server), memory)?;
                let tool = self.runtime.name();
                let root = self.work.join(format!("{tool}-root"));
                let id = format!("suite-{}-{}", std::process::id(), self.count);
                let mut c = Command::new(tool);
                c.arg("--root")
                    .arg(&root)
                    .args(["run", "--bundle"])
                    .arg(&b)
                    .arg(&id);
                (c, Some((tool, root, id)))
            }
            Runtime::Podman => {
                let image = self.podman_image(bin)?;
                let g = self.podman_global();
                let name = format!("suite-{}-{}", std::process::id(), self.count);
                let mut c = Command::new("podman");
                c.args(&g)
                    .args(["run", "--rm", "--network", "host", "--name", &name])
                    // podman's default RLIMIT_NOFILE is above this host's hard limit.
                    .args([
                        "--ulimit",
                        "nofile=1024:1024",
                        "--ulimit",
                        "nproc=4096:4096",
                    ])
                    .arg("--memory")
                    .arg(memory.to_string())
                    .arg(image)
                    .arg("/app/bin")
                    .args(host_args(args, server));
                podman = Some((g, name));
                (c, None)
            }
            Runtime::Qemu(m) | Runtime::Firecracker(m) => {
                if server.is_some() {
                    bail!("the suite gives a microVM no network device, so no server runs there");
                }
                let initrd = microvm::initramfs(&self.work, bin)?;
                let mut c = m.command(&initrd, args, memory, &self.work)?;
                // The serial console: what the guest printed, for `printed`.
                let console = std::fs::File::create(self.work.join("console.log"))?;
                c.stdout(console);
                (c, None)
            }
            Runtime::Unikernel => {
                let mut c = Command::new(&self.volt);
                c.arg("run")
                    .arg("--memory")
                    .arg(format!("{}K", memory >> 10));
                if let Some((host, guest)) = server {
                    c.arg("-p").arg(format!("127.0.0.1:{host}:{guest}"));
                }
                c.arg(bin).args(args);
                (c, None)
            }
        };
        // What the runtime says goes to a file: the reason, if it fails.
        let err = std::fs::File::create(self.work.join("last.err"))?;
        if self.runtime.microvm().is_none() {
            cmd.stdout(out());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stderr(err)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} under {}",
                    bin.display(),
                    self.runtime.name()
                )
            })?;
        Ok(Running {
            child,
            runc_id,
            podman,
            reaped: false,
        })
    }

    /// A microVM's time limit per run; None for the other runtimes.
    pub fn limit(&self) -> Option<std::time::Duration> {
        self.runtime.microvm().map(|m| m.limit)
    }

    /// What the last microVM's serial console showed (kernel messages and
    /// the program's output).
    fn console(&self) -> Option<String> {
        let t = std::fs::read(self.work.join("console.log")).ok()?;
        Some(String::from_utf8_lossy(&t).into_owned())
    }

    /// The last line of the last microVM's console.
    pub fn last_output(&self) -> Option<String> {
        self.console()?
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(String::from)
    }

    /// Whether the last program printed `what`: a microVM's console must
    /// show it (its monitor's exit status says nothing of the guest's);
    /// the other runtimes' statuses are the program's own.
    pub fn printed(&self, what: &str) -> bool {
        match self.runtime.microvm() {
            None => true,
            Some(_) => self.console().is_some_and(|t| t.contains(what)),
        }
    }

    /// The last line the last started program's runtime wrote on stderr.
    pub fn last_error(&self) -> Option<String> {
        let s = std::fs::read_to_string(self.work.join("last.err")).ok()?;
        s.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string())
    }

    /// podman's global arguments: storage and state of the suite's own.
    fn podman_global(&self) -> Vec<String> {
        let p = self.work.join("podman");
        vec![
            "--root".into(),
            p.join("storage").display().to_string(),
            "--runroot".into(),
            p.join("run").display().to_string(),
            "--storage-driver".into(),
            "vfs".into(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
            "--runtime".into(),
            "runc".into(),
        ]
    }

    /// An image whose rootfs holds `bin` as /app/bin (imported once).
    fn podman_image(&self, bin: &Path) -> Result<String> {
        let name = bin
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_else(|| "bin".into());
        let image = format!("localhost/suite-{name}:1");
        let g = self.podman_global();
        let exists = Command::new("podman")
            .args(&g)
            .args(["image", "exists", &image])
            .status()
            .is_ok_and(|s| s.success());
        if exists {
            return Ok(image);
        }
        let root = self.work.join(format!("podman-rootfs-{name}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("app"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::copy(bin, root.join("app/bin"))?;
        let tar = self.work.join(format!("podman-{name}.tar"));
        let st = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()?;
        if !st.success() {
            bail!("tar of the podman rootfs failed");
        }
        let o = Command::new("podman")
            .args(&g)
            .args(["import", "-q"])
            .arg(&tar)
            .arg(&image)
            .output()
            .context("cannot run podman")?;
        if !o.status.success() {
            bail!(
                "podman import: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(image)
    }
}

/// The arguments as a host process gets them: the guest port's `:P`
/// becomes `127.0.0.1:HOST`.
fn host_args(args: &[String], server: Option<(u16, u16)>) -> Vec<String> {
    args.iter()
        .map(|a| match server {
            Some((host, guest)) if *a == format!(":{guest}") => format!("127.0.0.1:{host}"),
            _ => a.clone(),
        })
        .collect()
}

/// The process and its descendants (from /proc).
pub fn tree(root: u32) -> Vec<u32> {
    let mut kids: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Some(s) = crate::procfs::stat(pid) else {
                continue;
            };
            kids.entry(s.ppid).or_default().push(pid);
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(k) = kids.get(&out[i]) {
            out.extend(k.iter().copied());
        }
        i += 1;
    }
    out
}

/// CPU seconds (user + system) used by `pids` so far.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|&p| crate::procfs::cpu_seconds(p))
        .sum()
}

/// Proportional set size of `pids`, MiB.
pub fn pss_mib(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|&p| crate::procfs::pss_bytes(p))
        .sum::<u64>() as f64
        / 1048576.0
}

/// Resident set size of `pids`, MiB.
pub fn rss_mib(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/statm")).ok()?;
            s.split(' ').nth(1)?.parse::<f64>().ok()
        })
        .sum::<f64>()
        * 4096.0
        / (1 << 20) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_runtimes_say_why_and_host_arguments_take_the_host_port() {
        let vm = MicroVmArgs {
            kernel: None,
            firecracker: None,
            qemu: "/nonexistent/qemu".into(),
            limit: std::time::Duration::from_secs(1),
        };
        let wanted = ["process", "firecracker", "nosuch", "qemu"].map(String::from);
        let (ok, info) = detect(&wanted, &vm);
        assert_eq!(ok, [Runtime::Process]);
        assert!(info[1].skipped.as_deref().unwrap().contains("guest kernel"));
        assert!(info[3]
            .skipped
            .as_deref()
            .unwrap()
            .contains("does not run here"));
        assert!(info[2]
            .skipped
            .as_deref()
            .unwrap()
            .contains("unknown runtime"));
        assert_eq!(
            host_args(&["serve".into(), ":8080".into()], Some((18000, 8080))),
            ["serve", "127.0.0.1:18000"]
        );
        let me = std::process::id();
        assert!(tree(me).contains(&me));
        assert!(cpu_seconds(&[me]) >= 0.0 && pss_mib(&[me]) > 0.0 && rss_mib(&[me]) > 0.0);
    }
}
