//! The container's init process: it enters the bundle's network namespace
//! (or a new one), takes over the pod's interface if there is one, waits
//! for `start`, and becomes `volt run` (exec: the same PID).
use std::os::unix::process::CommandExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{podnet, state};

/// Runs `f` in network namespace `ns` (a new thread enters it, so that
/// this process stays where it is).
pub fn in_netns(ns: Option<&Path>, f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(ns) = ns {
                if optivolt_vmm::devices::tap::enter_netns(ns).is_err() {
                    return;
                }
            }
            f();
        });
    });
}

pub fn run(root: &Path, id: &str) -> Result<i32> {
    let dir = state::dir(root, id)?;
    let init: state::Init = serde_json::from_slice(
        &std::fs::read(dir.join("init.json")).context("reading init.json")?,
    )?;
    // This process is single-threaded here: setns/unshare move all of it.
    match &init.netns {
        Some(ns) => optivolt_vmm::devices::tap::enter_netns(ns)?,
        None => {
            // SAFETY: unshare takes no pointers.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                bail!(
                    "cannot make a network namespace: {}",
                    std::io::Error::last_os_error()
                );
            }
            crate::publish::hostnet::set_up("lo").context("bringing lo up")?;
        }
    }
    let mut args = vec!["run".to_string()];
    if let Some(p) = podnet::detect()? {
        state::write_json(&dir.join("podnet.json"), &p)?;
        podnet::take(&p)?;
        args.extend([
            "--net".into(),
            format!("tap:vt{}", std::process::id()),
            "--ip".into(),
            format!("{}/{}", p.ip, p.prefix),
            "--mac".into(),
            p.mac.clone(),
            "--redirect".into(),
            p.iface.clone(),
        ]);
        if let Some(gw) = &p.gateway {
            args.extend(["--gateway".into(), gw.clone()]);
        }
    }
    args.extend(init.args.iter().cloned());
    // Wait for `start`: opening the fifo's write end blocks until it opens the other.
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("exec.fifo"))
        .context("opening exec.fifo")?;
    let _ = std::io::Write::write_all(&mut fifo, b"0");
    drop(fifo);
    let volt = crate::volt_exe()?;
    let e = std::process::Command::new(&volt).args(&args).exec();
    bail!("cannot run {}: {e}", volt.display())
}
