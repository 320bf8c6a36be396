//! File operations confined beneath a volume's root.
//!
//! The guest names everything by a relative path it has already resolved
//! (no `.`, `..` or symlink on the way, see `optivolt_abi::volume`). It is
//! not trusted to have: every path is checked again here, and opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`,
//! so that a symlink or `..` — put there by the guest or raced in by a host
//! process — makes the call fail (ELOOP, EXDEV) instead of leaving the
//! volume. Calls on an entry open its parent that way and then use the
//! `*at` call that does not follow the last component; the ones that would
//! follow (chmod) go through the exact inode, opened `O_PATH`, by its
//! `/proc/self/fd` link. Only regular files and directories are opened for
//! reading or writing: never a FIFO (which would block the vCPU), a device
//! or a socket.
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use optivolt_abi::volume::{valid_name, valid_relative, VolumeStat};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

/// An errno for the guest.
pub type Res<T> = Result<T, i32>;

fn err(e: Errno) -> i32 {
    e.raw_os_error()
}

fn confined() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

/// `rel` if it is well formed, as a path `openat2` accepts.
fn checked(rel: &[u8]) -> Res<&[u8]> {
    if !valid_relative(rel) {
        return Err(libc::EINVAL);
    }
    Ok(if rel.is_empty() { b"." } else { rel })
}

/// Opens `rel` below `root` as `O_PATH`, not following a final symlink.
pub fn open_path(root: &OwnedFd, rel: &[u8]) -> Res<OwnedFd> {
    let p = checked(rel)?;
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rfs::openat2(root, p, flags, Mode::empty(), confined()).map_err(err)
}

/// The directory that holds `rel`, and the entry's name in it.
pub fn parent<'r>(root: &OwnedFd, rel: &'r [u8]) -> Res<(OwnedFd, &'r [u8])> {
    checked(rel)?;
    let (dir, name) = match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&b""[..], rel),
    };
    if !valid_name(name) {
        return Err(libc::EINVAL);
    }
    let p = if dir.is_empty() { b"." } else { dir };
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rfs::openat2(root, p, flags, Mode::empty(), confined()).map_err(err)?;
    Ok((fd, name))
}

/// `statx`-like metadata of an open file.
pub fn stat_fd(fd: &impl AsFd) -> Res<VolumeStat> {
    rfs::fstat(fd).map(|s| describe(&s)).map_err(err)
}

/// The contract's metadata from the host's.
pub fn describe(s: &Stat) -> VolumeStat {
    VolumeStat {
        mode: s.st_mode,
        nlink: s.st_nlink as u32,
        uid: s.st_uid,
        gid: s.st_gid,
        size: s.st_size as u64,
        blocks: s.st_blocks as u64,
        ino: s.st_ino,
        atime: s.st_atime,
        mtime: s.st_mtime,
        ctime: s.st_ctime,
        atime_ns: s.st_atime_nsec as u32,
        mtime_ns: s.st_mtime_nsec as u32,
        ctime_ns: s.st_ctime_nsec as u32,
        _reserved: 0,
    }
}

/// What a walk found: the entry, or the first symlink on the way.
pub enum Walk {
    Found(VolumeStat),
    Link { prefix: usize, target: Vec<u8> },
}

/// Walks `rel`: stops at the first symlink (the last component's only if
/// `follow_last`).
pub fn walk(root: &OwnedFd, rel: &[u8], follow_last: bool) -> Res<Walk> {
    checked(rel)?;
    // Most paths have no symlink: one call.
    match open_path(root, rel) {
        Ok(fd) => {
            let st = stat_fd(&fd)?;
            if follow_last && FileType::from_raw_mode(st.mode) == FileType::Symlink {
                let target = rfs::readlinkat(&fd, "", Vec::new()).map_err(err)?;
                return Ok(Walk::Link {
                    prefix: rel.len(),
                    target: target.into_bytes(),
                });
            }
            return Ok(Walk::Found(st));
        }
        Err(libc::ELOOP) => {}
        Err(e) => return Err(e),
    }
    // A symlink on the way: find it, one component at a time.
    let mut cur = open_path(root, b"")?;
    let mut end = 0usize;
    let parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    for (i, name) in parts.iter().enumerate() {
        end += name.len() + usize::from(i > 0);
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat2(&cur, *name, flags, Mode::empty(), confined()).map_err(err)?;
        let st = stat_fd(&fd)?;
        let last = i + 1 == parts.len();
        match FileType::from_raw_mode(st.mode) {
            FileType::Symlink if !last || follow_last => {
                let target = rfs::readlinkat(&fd, "", Vec::new()).map_err(err)?;
                return Ok(Walk::Link {
                    prefix: end,
                    target: target.into_bytes(),
                });
            }
            _ if last => return Ok(Walk::Found(st)),
            FileType::Directory => cur = fd,
            _ => return Err(libc::ENOTDIR),
        }
    }
    Err(libc::ENOENT)
}

/// Opens `rel` for I/O with the guest's `flags` (`O_ACCMODE`, `O_CREAT`,
/// `O_EXCL`, `O_TRUNC`, `O_DIRECTORY`, `O_PATH`): regular files and
/// directories only.
pub fn open(root: &OwnedFd, rel: &[u8], flags: u32, mode: u32) -> Res<OwnedFd> {
    let f = flags as i32;
    let existing = match open_path(root, rel) {
        Ok(fd) => {
            if f & libc::O_CREAT != 0 && f & libc::O_EXCL != 0 {
                return Err(libc::EEXIST);
            }
            fd
        }
        Err(libc::ENOENT) if f & libc::O_CREAT != 0 => {
            // Made here, exclusively: it cannot be anything but a new file.
            let acc = OFlags::from_bits_retain((f & libc::O_ACCMODE) as u32);
            let how = acc | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let p = checked(rel)?;
            return rfs::openat2(root, p, how, Mode::from_raw_mode(mode & 0o7777), confined())
                .map_err(err);
        }
        Err(e) => return Err(e),
    };
    let st = stat_fd(&existing)?;
    let kind = FileType::from_raw_mode(st.mode);
    if f & libc::O_PATH != 0 {
        return Ok(existing);
    }
    match kind {
        FileType::RegularFile => {
            if f & libc::O_DIRECTORY != 0 {
                return Err(libc::ENOTDIR);
            }
        }
        FileType::Directory => {
            if f & libc::O_ACCMODE != libc::O_RDONLY {
                return Err(libc::EISDIR);
            }
        }
        FileType::Symlink => return Err(libc::ELOOP),
        _ => return Err(libc::ENXIO),
    }
    // Reopen that very inode (not the path again) with the access asked.
    let keep = libc::O_ACCMODE | libc::O_TRUNC | libc::O_DIRECTORY;
    let how = OFlags::from_bits_retain((f & keep) as u32) | OFlags::CLOEXEC | OFlags::NOCTTY;
    rfs::open(proc_fd(&existing), how, Mode::empty()).map_err(err)
}

fn proc_fd(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Sets the permission bits of `rel` (a regular file or directory).
pub fn chmod(root: &OwnedFd, rel: &[u8], mode: u32) -> Res<()> {
    let fd = open_path(root, rel)?;
    match FileType::from_raw_mode(stat_fd(&fd)?.mode) {
        FileType::RegularFile | FileType::Directory => {}
        FileType::Symlink => return Err(libc::EOPNOTSUPP),
        _ => return Err(libc::EPERM),
    }
    rfs::chmod(proc_fd(&fd), Mode::from_raw_mode(mode & 0o7777)).map_err(err)
}

/// The target of symlink `rel`.
pub fn readlink(root: &OwnedFd, rel: &[u8]) -> Res<Vec<u8>> {
    let fd = open_path(root, rel)?;
    rfs::readlinkat(&fd, "", Vec::new())
        .map(|t| t.into_bytes())
        .map_err(|e| {
            if e == Errno::NOENT {
                libc::EINVAL
            } else {
                err(e)
            }
        })
}

/// `mkdirat` of `rel`.
pub fn mkdir(root: &OwnedFd, rel: &[u8], mode: u32) -> Res<()> {
    let (dir, name) = parent(root, rel)?;
    rfs::mkdirat(&dir, name, Mode::from_raw_mode(mode & 0o7777)).map_err(err)
}

/// `unlinkat` of `rel` (a directory with `dir`).
pub fn unlink(root: &OwnedFd, rel: &[u8], dir: bool) -> Res<()> {
    let (d, name) = parent(root, rel)?;
    let flags = if dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    rfs::unlinkat(&d, name, flags).map_err(err)
}

/// A symlink `rel` → `target` (any bytes: it is only ever read back).
pub fn symlink(root: &OwnedFd, rel: &[u8], target: &[u8]) -> Res<()> {
    if target.is_empty() || target.contains(&0) {
        return Err(libc::ENOENT);
    }
    let (d, name) = parent(root, rel)?;
    rfs::symlinkat(target, &d, name).map_err(err)
}

/// Renames `from` to `to`; `noreplace` refuses an existing target.
pub fn rename(root: &OwnedFd, from: &[u8], to: &[u8], noreplace: bool) -> Res<()> {
    let (od, on) = parent(root, from)?;
    let (nd, nn) = parent(root, to)?;
    let flags = if noreplace {
        rfs::RenameFlags::NOREPLACE
    } else {
        rfs::RenameFlags::empty()
    };
    rfs::renameat_with(&od, on, &nd, nn, flags).map_err(err)
}

/// A hard link `to` of `from` (a symlink is linked itself, not followed).
pub fn link(root: &OwnedFd, from: &[u8], to: &[u8]) -> Res<()> {
    let (od, on) = parent(root, from)?;
    let (nd, nn) = parent(root, to)?;
    rfs::linkat(&od, on, &nd, nn, AtFlags::empty()).map_err(err)
}

/// Sets access and modification times (ns since the epoch; `None` keeps one).
pub fn utimes(root: &OwnedFd, rel: &[u8], atime: Option<u64>, mtime: Option<u64>) -> Res<()> {
    let ts = |t: Option<u64>| match t {
        Some(ns) => rfs::Timespec {
            tv_sec: (ns / 1_000_000_000) as i64,
            tv_nsec: (ns % 1_000_000_000) as _,
        },
        None => rfs::Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        },
    };
    let times = rfs::Timestamps {
        last_access: ts(atime),
        last_modification: ts(mtime),
    };
    if rel.is_empty() {
        let fd = open_path(root, rel)?;
        return rfs::utimensat(&fd, "", &times, AtFlags::EMPTY_PATH).map_err(err);
    }
    let (d, name) = parent(root, rel)?;
    rfs::utimensat(&d, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(err)
}

/// `DT_*` of a file type.
pub fn dtype(t: FileType) -> u8 {
    match t {
        FileType::Fifo => 1,
        FileType::CharacterDevice => 2,
        FileType::Directory => 4,
        FileType::BlockDevice => 6,
        FileType::RegularFile => 8,
        FileType::Symlink => 10,
        FileType::Socket => 12,
        _ => 0,
    }
}
