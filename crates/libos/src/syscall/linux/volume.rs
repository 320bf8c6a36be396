//! The file system calls on volumes: what `file`, `stat` and `fdops` do
//! when a path resolves into a volume or a descriptor is open on one. Each
//! decodes and asks the monitor (`fs::volume`); the host's answer, errno
//! included, is the guest's.
use alloc::vec;
use alloc::vec::Vec;

use super::stat::Meta;
use crate::errno::*;
use crate::fd::file::*;
use crate::fs::resolve::{is_link, Loc};
use crate::fs::vfs::{S_IFDIR, S_IFMT};
use crate::fs::volume::{self as vol, op, HostFile, HostPath, VolumeStat, MAX_IO};
use crate::kernel::Kernel;

/// Metadata as `stat` reports it.
pub fn meta(st: &VolumeStat) -> Meta {
    Meta {
        ino: st.ino,
        mode: st.mode,
        nlink: st.nlink as u64,
        uid: st.uid,
        gid: st.gid,
        rdev: 0,
        size: st.size as i64,
        mtime: st.mtime,
    }
}

/// Metadata of an open host file.
pub fn fstat(h: &HostFile) -> Result<Meta, i64> {
    vol::fstat(h.handle).map(|st| meta(&st))
}

fn is_dir(st: &VolumeStat) -> bool {
    st.mode & S_IFMT == S_IFDIR
}

/// openat(2) of an existing entry (`st`) or, with `st` = None, one to create.
pub fn open(
    k: &mut Kernel,
    hp: HostPath,
    st: Option<&VolumeStat>,
    flags: u32,
    mode: u32,
) -> SysResult {
    let acc = flags & O_ACCMODE;
    let dir = match st {
        Some(st) => {
            if is_link(st) && flags & O_PATH == 0 {
                return Err(ELOOP); // O_NOFOLLOW on a symlink
            }
            if flags & O_DIRECTORY != 0 && !is_dir(st) {
                return Err(ENOTDIR);
            }
            if is_dir(st) && acc != O_RDONLY {
                return Err(EISDIR);
            }
            is_dir(st)
        }
        None => {
            if !optivolt_abi::volume::valid_relative(&hp.rel) {
                return Err(EINVAL);
            }
            false
        }
    };
    let pass = O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_DIRECTORY | O_PATH | O_NOFOLLOW;
    let handle = vol::open(&hp, flags & pass, mode & !k.proc.umask & 0o7777)?;
    let kind = FileKind::Host(HostFile {
        handle,
        path: hp,
        dir,
    });
    super::file::install(k, kind, flags)
}

/// read/pread at `pos`: as much as asked, in pieces of at most [`MAX_IO`].
pub fn read(k: &mut Kernel, h: &HostFile, pos: u64, buf: u64, len: u64) -> Result<usize, i64> {
    if h.dir {
        return Err(EISDIR);
    }
    let mut tmp = vec![0u8; len.min(MAX_IO) as usize];
    let mut done = 0u64;
    while done < len {
        let want = ((len - done) as usize).min(tmp.len());
        let n = match vol::read(h.handle, pos + done, &mut tmp[..want]) {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        k.mem.copy_to_user(buf + done, &tmp[..n])?;
        done += n as u64;
        if n < want {
            break;
        }
    }
    Ok(done as usize)
}

/// write/pwrite at `pos` (None: at the end, O_APPEND): (bytes, new end
/// for an append).
pub fn write(
    k: &mut Kernel,
    h: &HostFile,
    pos: Option<u64>,
    buf: u64,
    len: u64,
) -> Result<(usize, Option<u64>), i64> {
    if h.dir {
        return Err(EISDIR);
    }
    let mut tmp = vec![0u8; len.min(MAX_IO) as usize];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(tmp.len());
        k.mem.copy_from_user(buf + done, &mut tmp[..n])?;
        let at = pos.map_or(optivolt_abi::volume::APPEND, |p| p + done);
        let w = match vol::write(h.handle, at, &tmp[..n]) {
            Ok(w) => w,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        done += w as u64;
        if w < n {
            break;
        }
    }
    let end = match pos {
        None => Some(vol::fstat(h.handle)?.size),
        Some(_) => None,
    };
    Ok((done as usize, end))
}

/// getdents64(2) of a volume directory, from entry `from`: (records, next index).
pub fn getdents(h: &HostFile, from: u64, count: u64) -> Result<(Vec<u8>, u64), i64> {
    if !h.dir {
        return Err(ENOTDIR);
    }
    let entries = vol::readdir(h.handle, from)?;
    let mut out = Vec::new();
    let mut idx = from;
    for e in &entries {
        let reclen = (19 + e.name.len() + 1).div_ceil(8) * 8;
        if out.len() + reclen > count as usize {
            break;
        }
        let start = out.len();
        out.extend_from_slice(&e.ino.to_le_bytes());
        out.extend_from_slice(&((idx + 1) as i64).to_le_bytes());
        out.extend_from_slice(&(reclen as u16).to_le_bytes());
        out.push(e.dtype);
        out.extend_from_slice(&e.name);
        out.resize(start + reclen, 0);
        idx += 1;
    }
    if out.is_empty() && !entries.is_empty() {
        return Err(EINVAL); // buffer too small for one entry
    }
    Ok((out, idx))
}

/// The entry `name` of a volume directory, for the calls that make or
/// remove one: `.` and `..` are refused as Linux refuses them.
fn entry(dir: &HostPath, name: &[u8], dot: i64) -> Result<HostPath, i64> {
    if name.is_empty() || name == b"." || name == b".." {
        return Err(dot);
    }
    if !optivolt_abi::volume::valid_name(name) {
        return Err(EINVAL);
    }
    Ok(dir.join(name))
}

/// mkdirat(2) in a volume.
pub fn mkdir(k: &Kernel, dir: &HostPath, name: &[u8], mode: u32) -> SysResult {
    let p = entry(dir, name, EEXIST)?;
    let mode = mode & !k.proc.umask & 0o7777;
    vol::path_op(op::MKDIR, &p, &[], 0, mode as u64).map(|_| 0)
}

/// unlinkat(2) (and rmdir) in a volume.
pub fn unlink(dir: &HostPath, name: &[u8], rmdir: bool) -> SysResult {
    if rmdir && name == b"." {
        return Err(EINVAL);
    }
    if rmdir && name == b".." {
        return Err(ENOTEMPTY);
    }
    let p = entry(dir, name, if rmdir { EBUSY } else { EISDIR })?;
    let o = if rmdir { op::RMDIR } else { op::UNLINK };
    vol::path_op(o, &p, &[], 0, 0).map(|_| 0)
}

/// renameat2(2) where either side is in a volume.
pub fn rename(od: &Loc, on: &[u8], nd: &Loc, nn: &[u8], flags: u64) -> SysResult {
    match (od, nd) {
        (Loc::Host(a, _), Loc::Host(b, _)) if a.vol == b.vol => {
            let from = entry(a, on, EBUSY)?;
            let to = entry(b, nn, EBUSY)?;
            vol::path_op(op::RENAME, &from, &to.rel, flags, 0).map(|_| 0)
        }
        _ => Err(EXDEV),
    }
}

/// linkat(2) in a volume (the VFS has no hard links).
pub fn link(od: &Loc, on: &[u8], nd: &Loc, nn: &[u8]) -> SysResult {
    match (od, nd) {
        (Loc::Host(a, _), Loc::Host(b, _)) if a.vol == b.vol => {
            let from = entry(a, on, EPERM)?;
            let to = entry(b, nn, EEXIST)?;
            vol::path_op(op::LINK, &from, &to.rel, 0, 0).map(|_| 0)
        }
        (Loc::Host(..), _) | (_, Loc::Host(..)) => Err(EXDEV),
        _ => Err(EMLINK),
    }
}

/// symlinkat(2) in a volume.
pub fn symlink(dir: &HostPath, name: &[u8], target: &[u8]) -> SysResult {
    let p = entry(dir, name, EEXIST)?;
    vol::path_op(op::SYMLINK, &p, target, 0, 0).map(|_| 0)
}

/// chmod of a volume path.
pub fn chmod(p: &HostPath, mode: u32) -> SysResult {
    vol::path_op(op::CHMOD, p, &[], 0, (mode & 0o7777) as u64).map(|_| 0)
}

/// truncate(2) of a volume path.
pub fn truncate(p: &HostPath, len: u64) -> SysResult {
    let h = vol::open(p, O_WRONLY, 0)?;
    let r = vol::ftruncate(h, len);
    vol::close(h);
    r.map(|_| 0)
}

/// The guest path of a volume path (getcwd, /proc/self/maps).
pub fn guest_path(k: &Kernel, p: &HostPath) -> Result<Vec<u8>, i64> {
    let at = k.fs.mount_point(p.vol).ok_or(ENOENT)?;
    let mut out = k.fs.path_of(at)?;
    if !p.rel.is_empty() {
        out.push(b'/');
        out.extend_from_slice(&p.rel);
    }
    Ok(out)
}

/// A private copy of `[off, off + len)` of an open host file, for mmap.
pub fn contents(h: &HostFile, off: u64, len: u64) -> Result<Vec<u8>, i64> {
    if h.dir {
        return Err(ENODEV);
    }
    let size = vol::fstat(h.handle)?.size;
    let end = off.saturating_add(len).min(size);
    let mut data = vec![0u8; end.saturating_sub(off) as usize];
    let mut done = 0usize;
    while done < data.len() {
        let n = vol::read(h.handle, off + done as u64, &mut data[done..])?;
        if n == 0 {
            break;
        }
        done += n;
    }
    data.truncate(done);
    Ok(data)
}
