//! What `volt-runtime` keeps per container, under `--root`: `ID/state.json`,
//! `ID/exec.fifo` (there while the container is created but not started),
//! and what `create` prepared for the init process (`ID/init.json`).
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// A container's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// The init process (the container's PID) and its start time.
    pub pid: i32,
    pub start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339.
    pub created: String,
    #[serde(default)]
    pub paused: bool,
    /// The network namespace the container is in, if the bundle named one.
    #[serde(default)]
    pub netns: Option<PathBuf>,
}

/// What the init process does: the `volt run` it becomes, and where.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Init {
    /// `volt run` arguments (without `volt run`).
    pub args: Vec<String>,
    /// Enter this network namespace; `None`: a new, empty one.
    pub netns: Option<PathBuf>,
}

/// The pod interface a container took over (restored by `delete`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PodNet {
    pub iface: String,
    pub ip: String,
    pub prefix: u8,
    pub gateway: Option<String>,
    pub mac: String,
}

/// The lifecycle state runc reports.
pub fn status(s: &State, dir: &Path) -> &'static str {
    if !crate::instance::alive(Some((s.pid, s.start))) {
        "stopped"
    } else if s.paused {
        "paused"
    } else if dir.join("exec.fifo").exists() {
        "created"
    } else {
        "running"
    }
}

/// A container ID runc would accept.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
}

/// The container's directory under `root`.
pub fn dir(root: &Path, id: &str) -> Result<PathBuf> {
    if !valid_id(id) {
        bail!("invalid container id {id:?}");
    }
    Ok(root.join(id))
}

pub fn load(root: &Path, id: &str) -> Result<State> {
    let p = dir(root, id)?.join("state.json");
    let b = std::fs::read(&p).map_err(|_| anyhow::anyhow!("container {id} does not exist"))?;
    serde_json::from_slice(&b).with_context(|| format!("reading {}", p.display()))
}

/// Writes `value` to `path` atomically (a temporary file renamed).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, &serde_json::to_vec(value)?)
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
