//! A containerd of its own — root, state and socket in one directory, the
//! CRI plugin off — for `volt-runtime`'s tests and `volt bench runtime`, so
//! that neither touches a containerd the machine may run.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct Private {
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// Where runc (or volt-runtime) keeps its state (`--runc-root`).
    pub runc_root: PathBuf,
    child: Child,
}

impl Private {
    /// Starts containerd in `dir` (made fresh) and waits for its socket.
    pub fn start(dir: &Path) -> Result<Private> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("ctd.sock");
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{1}\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{0}/opt\"\n",
            dir.display(),
            socket.display()
        );
        std::fs::write(dir.join("config.toml"), config)?;
        let log = std::fs::File::create(dir.join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start containerd (Debian package containerd)")?;
        let c = Private {
            dir: dir.to_path_buf(),
            socket,
            runc_root: dir.join("runc"),
            child,
        };
        let until = Instant::now() + Duration::from_secs(20);
        while c
            .ctr(&["version"])
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            if Instant::now() > until {
                bail!(
                    "containerd did not answer within 20 s (see {}/containerd.log)",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(c)
    }

    /// `ctr ARGS` against this containerd.
    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn ctr(&self, args: &[&str]) -> Result<Output> {
        self.ctr_cmd(args).output().context("cannot run ctr")
    }

    /// `ctr run --rm` with `runtime` as the runc binary: its output.
    pub fn run_with(&self, runtime: &Path, image: &str, id: &str, args: &[&str]) -> Result<Output> {
        let rt = runtime.display().to_string();
        let root = self.runc_root.display().to_string();
        let mut a = vec![
            "run",
            "--rm",
            "--runc-binary",
            &rt,
            "--runc-root",
            &root,
            image,
            id,
        ];
        a.extend_from_slice(args);
        self.ctr(&a)
    }

    /// Imports an OCI archive; its name is the archive's ref.name.
    pub fn import(&self, archive: &Path) -> Result<()> {
        let o = self.ctr(&["images", "import", &archive.display().to_string()])?;
        if !o.status.success() {
            bail!("ctr images import: {}", String::from_utf8_lossy(&o.stderr));
        }
        Ok(())
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        // Tasks first (their shims would outlive containerd), then containerd.
        if let Ok(o) = self.ctr(&["task", "ls", "-q"]) {
            for id in String::from_utf8_lossy(&o.stdout).lines() {
                let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
                std::thread::sleep(Duration::from_millis(100));
                let _ = self.ctr(&["task", "rm", "-f", id]);
            }
        }
        if let Ok(o) = self.ctr(&["containers", "ls", "-q"]) {
            for id in String::from_utf8_lossy(&o.stdout).lines() {
                let _ = self.ctr(&["containers", "rm", id]);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its snapshots are overlay mounts under its root.
        if let Ok(m) = std::fs::read_to_string("/proc/self/mounts") {
            let root = self.dir.display().to_string();
            for line in m.lines().rev() {
                if let Some(p) = line.split(' ').nth(1) {
                    if p.starts_with(&root) {
                        let _ = Command::new("umount").arg(p).status();
                    }
                }
            }
        }
    }
}
