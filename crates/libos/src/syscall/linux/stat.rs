//! Metadata: fstat, newfstatat, statx, and what a descriptor or inode reports.
use alloc::sync::Arc;

use super::file::{base_dir, lookup};
use crate::errno::*;
use crate::fd::file::*;
use crate::fs::resolve::Loc;
use crate::fs::vfs::{self, Device, Ino, Node, PATH_MAX, S_IFCHR};
use crate::kernel::Kernel;
use crate::uapi::fcntl::{AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW};

/// Metadata of an inode or the console.
pub struct Meta {
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: i64,
    pub mtime: i64,
}

fn meta_inode(k: &Kernel, ino: Ino) -> Result<Meta, i64> {
    let i = k.fs.inode(ino)?;
    let rdev = match i.node {
        Node::Device(Device::Null) => (1 << 8) | 3,
        Node::Device(Device::Zero) => (1 << 8) | 5,
        Node::Device(Device::Random) => (1 << 8) | 9,
        Node::Device(Device::Console(n)) => (136 << 8) | n as u64,
        _ => 0,
    };
    Ok(Meta {
        ino: ino as u64 + 1,
        mode: i.mode(),
        nlink: i.nlink as u64,
        uid: i.uid,
        gid: i.gid,
        rdev,
        size: i.size() as i64,
        mtime: i.mtime,
    })
}

fn meta_fd(k: &Kernel, fd: u64) -> Result<Meta, i64> {
    let file = k.fds.file(fd)?;
    let f = file.lock();
    match &f.kind {
        FileKind::Console(n) => {
            // What the host's fd is: a pipe stays a FIFO, a file a regular
            // file, a terminal a character device (a closed one: /dev/null's
            // kind).
            let host = k.boot.stdio[(*n as usize).min(2)];
            let (mode, rdev) = if host.mode == 0 {
                (S_IFCHR | 0o666, (1 << 8) | 3)
            } else {
                (host.mode, host.rdev)
            };
            Ok(Meta {
                ino: 100 + *n as u64,
                mode,
                nlink: 1,
                uid: 0,
                gid: if host.flags & optivolt_abi::boot::stdio::TTY != 0 {
                    5
                } else {
                    0
                },
                rdev,
                size: host.size as i64,
                mtime: (k.boot.wallclock_ns / 1_000_000_000) as i64,
            })
        }
        FileKind::Snapshot(ino, data) => {
            let mut m = meta_inode(k, *ino)?;
            m.size = data.len() as i64;
            Ok(m)
        }
        FileKind::Inode(ino) => meta_inode(k, *ino),
        FileKind::Host(h) => super::volume::fstat(h),
        FileKind::PipeRead(p) | FileKind::PipeWrite(p) => Ok(anonymous(
            k,
            0x1000 + (Arc::as_ptr(p) as u64 & 0xffff),
            vfs::S_IFIFO | 0o600,
        )),
        FileKind::Udp(_) | FileKind::Tcp(_) => Ok(anonymous(k, 0x4000, S_IFSOCK | 0o777)),
        FileKind::UnixStream { rx, .. } => Ok(anonymous(
            k,
            0x3000 + (Arc::as_ptr(rx) as u64 & 0xffff),
            S_IFSOCK | 0o777,
        )),
        FileKind::EventFd(_) | FileKind::Epoll(_) | FileKind::TimerFd(_) => {
            Ok(anonymous(k, 0x2000, 0o600))
        }
    }
}

const S_IFSOCK: u32 = 0o140000;

/// Metadata of an object with no inode (pipes, sockets, eventfds…): root's,
/// empty, made at boot.
fn anonymous(k: &Kernel, ino: u64, mode: u32) -> Meta {
    Meta {
        ino,
        mode,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        size: 0,
        mtime: (k.boot.wallclock_ns / 1_000_000_000) as i64,
    }
}

/// `struct stat` (x86-64).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Stat {
    dev: u64,
    ino: u64,
    nlink: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    _pad0: u32,
    rdev: u64,
    size: i64,
    blksize: i64,
    blocks: i64,
    atime: [i64; 2],
    mtime: [i64; 2],
    ctime: [i64; 2],
    _unused: [i64; 3],
}

fn put_stat(k: &mut Kernel, m: &Meta, out: u64) -> SysResult {
    let st = Stat {
        dev: 0x2a,
        ino: m.ino,
        nlink: m.nlink,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        rdev: m.rdev,
        size: m.size,
        blksize: 4096,
        blocks: (m.size + 511) / 512,
        atime: [m.mtime, 0],
        mtime: [m.mtime, 0],
        ctime: [m.mtime, 0],
        ..Default::default()
    };
    k.mem.write_obj(out, &st)?;
    Ok(0)
}

/// fstat(2).
pub fn fstat(k: &mut Kernel, fd: u64, out: u64) -> SysResult {
    let m = meta_fd(k, fd)?;
    put_stat(k, &m, out)
}

/// Metadata for a *at() path (or the descriptor itself with AT_EMPTY_PATH).
fn meta_at(k: &mut Kernel, dirfd: u64, path: u64, flags: u64) -> Result<Meta, i64> {
    let p = k.mem.read_cstr(path, PATH_MAX)?;
    if p.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(ENOENT);
        }
        return match &k.cwd {
            _ if dirfd as i32 != AT_FDCWD => meta_fd(k, dirfd),
            Loc::Mem(ino) => meta_inode(k, *ino),
            // The current directory in a volume: asked again.
            cwd @ Loc::Host(..) => match lookup(k, cwd, b".", true)? {
                Loc::Host(_, st) => Ok(super::volume::meta(&st)),
                Loc::Mem(ino) => meta_inode(k, ino),
            },
        };
    }
    let base = base_dir(k, dirfd)?;
    match lookup(k, &base, &p, flags & AT_SYMLINK_NOFOLLOW == 0)? {
        Loc::Mem(ino) => meta_inode(k, ino),
        Loc::Host(_, st) => Ok(super::volume::meta(&st)),
    }
}

/// stat/lstat/newfstatat.
pub fn fstatat(k: &mut Kernel, dirfd: u64, path: u64, out: u64, flags: u64) -> SysResult {
    let m = meta_at(k, dirfd, path, flags)?;
    put_stat(k, &m, out)
}

/// `struct statx`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Statx {
    mask: u32,
    blksize: u32,
    attributes: u64,
    nlink: u32,
    uid: u32,
    gid: u32,
    mode: u16,
    _pad1: u16,
    ino: u64,
    size: u64,
    blocks: u64,
    attributes_mask: u64,
    atime: [i64; 2],
    btime: [i64; 2],
    ctime: [i64; 2],
    mtime: [i64; 2],
    rdev_major: u32,
    rdev_minor: u32,
    dev_major: u32,
    dev_minor: u32,
    _spare: [u64; 14],
}

/// statx(2).
pub fn statx(k: &mut Kernel, dirfd: u64, path: u64, flags: u64, out: u64) -> SysResult {
    let m = meta_at(k, dirfd, path, flags)?;
    let ts = |s: i64| [s, 0];
    let sx = Statx {
        mask: 0x7ff, // STATX_BASIC_STATS | STATX_BTIME
        blksize: 4096,
        nlink: m.nlink as u32,
        uid: m.uid,
        gid: m.gid,
        mode: m.mode as u16,
        ino: m.ino,
        size: m.size as u64,
        blocks: (m.size as u64).div_ceil(512),
        atime: ts(m.mtime),
        btime: ts(m.mtime),
        ctime: ts(m.mtime),
        mtime: ts(m.mtime),
        rdev_major: (m.rdev >> 8) as u32,
        rdev_minor: (m.rdev & 0xff) as u32,
        dev_major: 0,
        dev_minor: 0x2a,
        ..Default::default()
    };
    k.mem.write_obj(out, &sx)?;
    Ok(0)
}
