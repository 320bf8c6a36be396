//! `-p` without root: volt runs again inside a user and network namespace
//! that `pasta` (Debian package `passt`) makes and forwards the published
//! ports into. In there volt holds CAP_NET_ADMIN, so it makes its tap and
//! relays as it does as root; pasta carries the host's connections to the
//! relay's ports inside. This process stays outside: it passes the signals
//! a program should get (SIGTERM from `volt stop`, Ctrl-C) to the volt
//! inside — pasta would only die of them — and exits with its status.
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{PortMapping, Proto};

/// Set in the environment of the volt that runs inside pasta: a file it
/// makes when it starts, which tells the outer volt that pasta did its part.
pub const INSIDE: &str = "VOLT_ROOTLESS_INSIDE";

/// Whether this volt is the one pasta started.
pub fn inside() -> bool {
    std::env::var_os(INSIDE).is_some()
}

/// The descriptor number of the outer volt's stderr, inherited through
/// pasta (pasta's own stderr goes to a file, so that its chatter never
/// mixes with the program's).
const STDERR: &str = "VOLT_ROOTLESS_STDERR";

/// Called by the volt inside pasta when it starts: takes back the user's
/// stderr and says it started.
pub fn started() {
    let Some(mark) = std::env::var_os(INSIDE) else {
        return;
    };
    let fd = std::env::var(STDERR)
        .ok()
        .and_then(|v| v.parse::<i32>().ok());
    if let Some(fd) = fd.filter(|&fd| fd > 2) {
        // SAFETY: F_GETFD only asks whether the number is an open descriptor.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            // SAFETY: the outer volt left this descriptor open (without
            // CLOEXEC) for us and names it in the environment; nothing else
            // in this process owns it. It becomes our stderr, then closes.
            let theirs =
                unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            let _ = rustix::stdio::dup2_stderr(&theirs);
        }
    }
    let _ = std::fs::write(mark, b"");
}

/// A private scratch directory for pasta's log and the start mark.
fn scratch() -> Result<std::path::PathBuf> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let d = base.join(format!("volt-rootless-{}", std::process::id()));
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(d)
}

/// pasta's `-t`/`-u` arguments for the published ports.
pub fn pasta_ports(maps: &[PortMapping]) -> Vec<String> {
    let mut v = Vec::new();
    for m in maps {
        v.push(match m.proto {
            Proto::Tcp => "-t".to_string(),
            Proto::Udp => "-u".to_string(),
        });
        v.push(match m.host_ip {
            IpAddr::V4(a) if a.is_unspecified() => m.host_port.to_string(),
            ip => format!("{ip}/{}", m.host_port),
        });
    }
    v
}

static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(sig: libc::c_int) {
    PENDING.store(sig, Ordering::SeqCst);
}

/// Runs this same `volt` command line again under pasta; returns its exit status.
pub fn run(maps: &[PortMapping]) -> Result<i32> {
    let Some(pasta) = find_pasta() else {
        bail!("-p without root needs pasta (Debian package passt) for rootless networking, or run as root");
    };
    let exe = std::fs::read_link("/proc/self/exe").context("cannot find volt's own executable")?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let dir = scratch()?;
    let (log, mark) = (dir.join("pasta.log"), dir.join("started"));
    let mut c = Command::new(pasta);
    // -f: stay in the foreground as our child; -q: quiet, and what it says
    // to its log file, not into the program's stderr; -T/-U none: no ports
    // forwarded from the namespace to the host.
    c.args(["--config-net", "-f", "-q", "-T", "none", "-U", "none", "-l"])
        .arg(&log)
        .args(pasta_ports(maps))
        .arg("--")
        .arg(exe)
        .args(args)
        .env(INSIDE, &mark)
        // Inside, volt looks like root: keep this user's data directory.
        .env("VOLT_DATA_DIR", crate::store::data_dir());
    // dup() leaves CLOEXEC off: pasta and the volt it starts inherit it.
    let ours = rustix::io::dup(std::io::stderr()).context("cannot duplicate stderr")?;
    c.env(STDERR, std::os::fd::AsRawFd::as_raw_fd(&ours).to_string());
    let pasta_err = std::fs::File::create(dir.join("pasta.stderr"))?;
    c.stderr(pasta_err);
    tracing::info!("rootless: running under pasta");
    let mut child = c.spawn().context("cannot start pasta")?;
    drop(ours);
    for &sig in optivolt_vmm::host_signals::FORWARDED {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(sig, note as *const () as libc::sighandler_t) };
    }
    let pasta_pid = child.id() as i32;
    loop {
        if let Some(st) = child.try_wait().context("waiting for pasta")? {
            use std::os::unix::process::ExitStatusExt;
            let ran = mark.exists();
            let said = std::fs::read_to_string(&log).unwrap_or_default()
                + &std::fs::read_to_string(dir.join("pasta.stderr")).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            if !ran {
                let why = said
                    .lines()
                    .map(|l| l.trim())
                    .rfind(|l| !l.is_empty() && !l.contains("syslog"))
                    .unwrap_or("it ended at once");
                bail!("rootless -p: pasta could not set up the network: {why}");
            }
            return Ok(st.code().unwrap_or(128 + st.signal().unwrap_or(0)));
        }
        let sig = PENDING.swap(0, Ordering::SeqCst);
        if sig != 0 {
            if let Some(inner) = child_of(pasta_pid) {
                // SAFETY: kill takes no pointers; the PID is pasta's child, ours.
                unsafe { libc::kill(inner, sig) };
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// pasta's child: the volt inside.
fn child_of(pid: i32) -> Option<i32> {
    let list = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    list.split_whitespace().next()?.parse().ok()
}

fn find_pasta() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join("pasta"))
        .find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_for_pasta() {
        let maps: Vec<PortMapping> = ["127.0.0.1:8080:80", "9000:90/udp"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(pasta_ports(&maps), ["-t", "127.0.0.1/8080", "-u", "9000"]);
    }
}
