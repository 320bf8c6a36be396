//! The control socket of a running instance (`<instance dir>/control.sock`,
//! mode 0600): one JSON request per connection, one JSON answer, as
//! Firecracker's API socket does for its VM. Its only request today is a
//! snapshot.
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
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Write a snapshot to this absolute path.
    pub snapshot: PathBuf,
    /// Then end the VM (standby).
    #[serde(default)]
    pub stop: bool,
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
        Ok(r) if !r.snapshot.is_absolute() => {
            Answer::Error("the snapshot path must be absolute".into())
        }
        Ok(r) => match vm.snapshot(
            SnapshotRequest {
                path: r.snapshot,
                stop: r.stop,
            },
            LIMIT,
        ) {
            Ok(i) => Answer::Ok(Taken {
                path: i.path,
                pages: i.pages,
                disk_bytes: i.disk_bytes,
                file_len: i.file_len,
                duration_ms: i.duration.as_secs_f64() * 1e3,
            }),
            Err(e) => Answer::Error(e),
        },
    };
    let mut out = serde_json::to_vec(&answer).unwrap_or_default();
    out.push(b'\n');
    (&conn).write_all(&out)
}

/// Asks the instance behind `socket` for a snapshot.
pub fn request(socket: &Path, req: &Request) -> Result<Taken> {
    let (_dir, at) = short(socket)?;
    let mut conn = UnixStream::connect(&at).with_context(|| {
        format!(
            "cannot reach the instance's monitor at {} (is it running?)",
            socket.display()
        )
    })?;
    conn.set_read_timeout(Some(LIMIT + Duration::from_secs(5)))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    conn.write_all(&line)?;
    let mut back = String::new();
    BufReader::new(conn).read_line(&mut back)?;
    match serde_json::from_str::<Answer>(&back) {
        Ok(Answer::Ok(t)) => Ok(t),
        Ok(Answer::Error(e)) => bail!("{e}"),
        Err(_) => bail!("the instance's monitor ended without answering"),
    }
}

use std::io::Read as _;
