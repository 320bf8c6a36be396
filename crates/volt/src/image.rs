//! Turning the user's binary into an image: checks first (before any VM
//! exists), then the rootfs.
use std::path::Path;

use anyhow::{Context, Result};
use optivolt_abi::elf::Elf;

use crate::rootfs::CpioWriter;

/// A packed application.
pub struct AppImage {
    /// The rootfs (cpio newc).
    pub rootfs: Vec<u8>,
    /// Path of the program inside it.
    pub exec_path: String,
    /// Bytes the program's loadable segments span.
    pub load_size: u64,
    /// The executable itself (the monitor places its segments).
    pub program: Vec<u8>,
}

/// Reads and checks `binary`, then packs it as `/<name>` in a rootfs.
pub fn pack_binary(binary: &Path) -> Result<AppImage> {
    let data =
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let elf = Elf::parse_static(&data).map_err(|e| anyhow::anyhow!("{}: {e}", binary.display()))?;
    let (lo, hi) = elf.load_bounds();
    let load_size = (hi.div_ceil(4096) * 4096).saturating_sub(lo & !4095);
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("app")
        .to_string();
    let mtime = std::fs::metadata(binary)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let mut w = CpioWriter::with_capacity(data.len());
    w.file(&format!("/{name}"), 0o755, mtime, &data);
    Ok(AppImage {
        rootfs: w.finish(),
        exec_path: format!("/{name}"),
        load_size,
        program: data,
    })
}
