//! The special files laid over every rootfs: `/dev`, `/proc`, `/tmp`.
use alloc::vec::Vec;

use super::vfs::{self, Device, Generated};

/// Builds the /dev, /proc and /tmp entries around the unpacked rootfs.
pub fn populate(fs: &mut vfs::Vfs, exec_path: &[u8]) -> Result<(), i64> {
    let dev = fs.mkdir_all(b"/dev", 0o755)?;
    for (name, d, perm) in [
        (&b"null"[..], Device::Null, 0o666),
        (b"zero", Device::Zero, 0o666),
        (b"random", Device::Random, 0o666),
        (b"urandom", Device::Random, 0o666),
        (b"stdin", Device::Console(0), 0o620),
        (b"stdout", Device::Console(1), 0o620),
        (b"stderr", Device::Console(2), 0o620),
        (b"tty", Device::Console(1), 0o666),
    ] {
        let _ = fs.unlink(dev, name);
        fs.mknod(dev, name, d, perm)?;
    }
    fs.mkdir_all(b"/dev/shm", 0o1777)?;
    let proc_self = fs.mkdir_all(b"/proc/self", 0o555)?;
    let mut target = Vec::new();
    if !exec_path.starts_with(b"/") {
        target.push(b'/');
    }
    target.extend_from_slice(exec_path);
    fs.symlink(proc_self, b"exe", &target)?;
    fs.generated(proc_self, b"maps", Generated::Maps)?;
    let proc = fs.lookup(vfs::ROOT, b"/proc", true)?;
    fs.generated(proc, b"cpuinfo", Generated::CpuInfo)?;
    fs.generated(proc, b"meminfo", Generated::MemInfo)?;
    // The largest listen backlog (Go and others size theirs from it).
    let core = fs.mkdir_all(b"/proc/sys/net/core", 0o555)?;
    let somaxconn = fs.create(core, b"somaxconn", 0o644)?;
    fs.write(somaxconn, 0, b"4096\n")?;
    let tmp = fs.mkdir_all(b"/tmp", 0o1777)?;
    fs.chmod(tmp, 0o1777)?;
    Ok(())
}

/// Adds (or replaces) the regular file `path` with `data`: the files the
/// monitor gives the guest, such as its `/etc/hosts`.
pub fn add_file(fs: &mut vfs::Vfs, path: &[u8], data: &[u8]) -> Result<(), i64> {
    let (dir, name) = crate::fs::path::split_last(path);
    if !path.starts_with(b"/") || name.is_empty() {
        return Err(crate::errno::EINVAL);
    }
    let d = match fs.lookup(vfs::ROOT, dir, true) {
        Ok(d) => d,
        Err(_) => fs.mkdir_all(dir, 0o755)?,
    };
    let _ = fs.unlink(d, name);
    let f = fs.create(d, name, 0o644)?;
    fs.write(f, 0, data)?;
    Ok(())
}
