//! The control socket of a running instance (`<instance dir>/control.sock`,
//! mode 0600): one JSON request per connection, one JSON answer, as
//! Firecracker's API socket does for its VM: a snapshot, or the live
//! counters (voltd's metrics).
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use optivolt_vmm::snapshot::{ControlHandle, SnapshotRequest};
use serde::{Deserialize, Serialize};

/// A request on the socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Write a snapshot to this absolute path, then end the VM if `stop`.
    Snapshot {
        path: PathBuf,
        #[serde(default)]
        stop: bool,
    },
    /// The live counters.
    Stats,
}

/// The live counters of a running instance.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counters {
    /// VM exits (hypercalls and interruptions) since the monitor started.
    pub exits: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// System calls by jump (patched sites) and by trap, as the guest counts.
    pub syscalls_by_jump: u64,
    pub syscalls_by_trap: u64,
    pub patched_sites: u64,
    pub page_faults: u64,
    /// Guest RAM the host backs now.
    pub guest_memory_bytes: u64,
    /// TCP connections relayed through `-p`: in all, and open now.
    pub connections: u64,
    pub open_connections: u64,
}

/// What a snapshot cost, as answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Taken {
    pub path: PathBuf,
    pub pages: u64,
    pub disk_bytes: u64,
    pub file_len: u64,
    pub duration_ms: f64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Answer {
    Ok(Taken),
    Stats(Counters),
    Error(String),
}

/// How long a snapshot may take before the asker gives up.
const LIMIT: Duration = Duration::from_secs(60);

/// A socket address for `path` that fits `sun_path` (108 bytes) however
/// deep the data directory is: through the open directory's descriptor.
/// The directory stays open as long as the returned guard.
fn short(path: &Path) -> Result<(std::fs::File, PathBuf)> {
    use std::os::fd::AsRawFd;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default();
    let d = std::fs::File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let p = PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd())).join(name);
    Ok((d, p))
}

/// Serves the socket at `path` on a thread of its own, for as long as the
/// process lives.
pub fn serve(path: &Path, vm: ControlHandle) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let (_dir, at) = short(path)?;
    let listener = UnixListener::bind(&at)
        .with_context(|| format!("cannot create the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    std::thread::Builder::new()
        .name("volt-control".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = answer(conn, &vm);
            }
        })
        .context("cannot start the control thread")?;
    Ok(())
}

fn answer(conn: UnixStream, vm: &ControlHandle) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(conn.try_clone()?)
        .take(64 << 10)
        .read_line(&mut line)?;
    let answer = match serde_json::from_str::<Request>(&line) {
        Err(e) => Answer::Error(format!("bad request: {e}")),
        Ok(Request::Stats) => {
            use std::sync::atomic::Ordering::Relaxed;
            let s = vm.stats();
            Answer::Stats(Counters {
                exits: s.exits,
                rx_frames: s.rx_frames,
                rx_bytes: s.rx_bytes,
                tx_frames: s.tx_frames,
                tx_bytes: s.tx_bytes,
                syscalls_by_jump: s.guest.syscalls_by_jump,
                syscalls_by_trap: s.guest.syscalls_by_trap,
                patched_sites: s.guest.patched_sites,
                page_faults: s.guest.page_faults,
                guest_memory_bytes: s.guest_memory_bytes,
                connections: crate::publish::proxy::CONNECTIONS.load(Relaxed),
                open_connections: crate::publish::proxy::OPEN_CONNECTIONS.load(Relaxed),
            })
        }
        Ok(Request::Snapshot { path, .. }) if !path.is_absolute() => {
            Answer::Error("the snapshot path must be absolute".into())
        }
        Ok(Request::Snapshot { path, stop }) => {
            match vm.snapshot(SnapshotRequest { path, stop }, LIMIT) {
                Ok(i) => Answer::Ok(Taken {
                    path: i.path,
                    pages: i.pages,
                    disk_bytes: i.disk_bytes,
                    file_len: i.file_len,
                    duration_ms: i.duration.as_secs_f64() * 1e3,
                }),
                Err(e) => Answer::Error(e),
            }
        }
    };
    let mut out = serde_json::to_vec(&answer).unwrap_or_default();
    out.push(b'\n');
    (&conn).write_all(&out)
}

/// Asks the instance behind `socket` for a snapshot.
pub fn request(socket: &Path, req: &Request) -> Result<Taken> {
    match ask(socket, req, LIMIT + Duration::from_secs(5))? {
        Answer::Ok(t) => Ok(t),
        Answer::Stats(_) => bail!("the instance's monitor answered something else"),
        Answer::Error(e) => bail!("{e}"),
    }
}

/// The live counters of the instance behind `socket` (waiting at most `limit`).
pub fn counters(socket: &Path, limit: Duration) -> Result<Counters> {
    match ask(socket, &Request::Stats, limit)? {
        Answer::Stats(c) => Ok(c),
        Answer::Ok(_) => bail!("the instance's monitor answered something else"),
        Answer::Error(e) => bail!("{e}"),
    }
}

fn ask(socket: &Path, req: &Request, limit: Duration) -> Result<Answer> {
    let (_dir, at) = short(socket)?;
    let mut conn = UnixStream::connect(&at).with_context(|| {
        format!(
            "cannot reach the instance's monitor at {} (is it running?)",
            socket.display()
        )
    })?;
    conn.set_read_timeout(Some(limit))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    conn.write_all(&line)?;
    let mut back = String::new();
    BufReader::new(conn).read_line(&mut back)?;
    serde_json::from_str::<Answer>(&back)
        .map_err(|_| anyhow::anyhow!("the instance's monitor ended without answering"))
}

use std::io::Read as _;
