//! File-system system calls: paths, descriptors, reads and writes (metadata
//! is in `stat`).
use alloc::vec;
use alloc::vec::Vec;

use crate::drivers::console::Batch;
use crate::errno::*;
use crate::fd::file::*;
use crate::fs::resolve::{self as walk, Loc};
use crate::fs::vfs::{Device, Generated, Node, PATH_MAX};
use crate::fs::volume::Host;
use crate::kernel::Kernel;

pub use super::fdops::{dup, dup3, fcntl, fsync, ftruncate, ioctl, truncate};
pub use super::stat::{fstat, fstatat, statx};
use crate::uapi::fcntl::{AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW};

pub(super) fn user_path(k: &mut Kernel, ptr: u64) -> Result<Vec<u8>, i64> {
    let p = k.mem.read_cstr(ptr, PATH_MAX)?;
    if p.is_empty() {
        return Err(ENOENT);
    }
    Ok(p)
}

/// The directory a *at() call is relative to.
pub(super) fn base_dir(k: &Kernel, dirfd: u64) -> Result<Loc, i64> {
    if dirfd as i32 == AT_FDCWD {
        return Ok(k.cwd.clone());
    }
    let f = k.fds.file(dirfd)?;
    let f = f.lock();
    match &f.kind {
        FileKind::Inode(ino) if k.fs.inode(*ino)?.is_dir() => Ok(Loc::Mem(*ino)),
        FileKind::Host(h) if h.dir => Ok(Loc::Host(h.path.clone(), dir_stat())),
        _ => Err(ENOTDIR),
    }
}

/// What a directory descriptor of a volume is known to be without asking.
fn dir_stat() -> optivolt_abi::volume::VolumeStat {
    optivolt_abi::volume::VolumeStat {
        mode: crate::fs::vfs::S_IFDIR | 0o755,
        ..Default::default()
    }
}

/// Resolves a path from directory `base`, across volumes.
pub(super) fn lookup(k: &Kernel, base: &Loc, p: &[u8], follow: bool) -> Result<Loc, i64> {
    walk::resolve(&k.fs, &mut Host, base, p, follow)
}

/// Resolves all but the last component: (directory, name).
pub(super) fn lookup_parent<'p>(
    k: &Kernel,
    base: &Loc,
    p: &'p [u8],
) -> Result<(Loc, &'p [u8]), i64> {
    walk::resolve_parent(&k.fs, &mut Host, base, p)
}

pub(super) fn resolve(k: &mut Kernel, dirfd: u64, path: u64, follow: bool) -> Result<Loc, i64> {
    let p = user_path(k, path)?;
    let base = base_dir(k, dirfd)?;
    lookup(k, &base, &p, follow)
}

/// Where a descriptor's file is (for fchdir, fchmod, …).
pub(super) fn fd_loc(k: &Kernel, fd: u64) -> Result<Option<Loc>, i64> {
    let f = k.fds.file(fd)?;
    let f = f.lock();
    Ok(match &f.kind {
        FileKind::Inode(i) | FileKind::Snapshot(i, _) => Some(Loc::Mem(*i)),
        FileKind::Host(h) if h.dir => Some(Loc::Host(h.path.clone(), dir_stat())),
        FileKind::Host(h) => Some(Loc::Host(h.path.clone(), Default::default())),
        _ => None,
    })
}

/// Contents of a generated file, made now.
fn generate(k: &mut Kernel, g: Generated) -> Vec<u8> {
    use core::fmt::Write;
    let mut s = alloc::string::String::new();
    match g {
        Generated::Maps => {
            for v in k.mem.vmas.iter() {
                let r = if v.prot & 1 != 0 { 'r' } else { '-' };
                let w = if v.prot & 2 != 0 { 'w' } else { '-' };
                let x = if v.prot & 4 != 0 { 'x' } else { '-' };
                let file = k.mem.file_at(v.start);
                let name = match (v.kind, file) {
                    (_, Some((path, _))) => core::str::from_utf8(path).unwrap_or(""),
                    (crate::mm::vma::VmaKind::Image, _) => {
                        core::str::from_utf8(&k.proc.exec_path).unwrap_or("")
                    }
                    (crate::mm::vma::VmaKind::Heap, _) => "[heap]",
                    (crate::mm::vma::VmaKind::Stack, _) => "[stack]",
                    (crate::mm::vma::VmaKind::Anonymous, _) => "",
                };
                let off = file.map_or(0, |f| f.1);
                let _ = writeln!(
                    s,
                    "{:08x}-{:08x} {r}{w}{x}p {off:08x} 00:00 0          {name}",
                    v.start, v.end
                );
            }
        }
        Generated::CpuInfo => {
            let info = crate::fs::cpuinfo::describe(&k.boot);
            let _ = s.write_str(&info);
        }
        Generated::MemInfo => {
            let total = k.boot.ram_size / 1024;
            let (used, avail) = k.mem.frame_usage();
            let free = avail * 4;
            let _ = write!(
                s,
                "MemTotal:       {total:>8} kB\nMemFree:        {free:>8} kB\nMemAvailable:   {free:>8} kB\n\
                 Buffers:               0 kB\nCached:                0 kB\nSwapCached:            0 kB\n\
                 Active:         {:>8} kB\nInactive:              0 kB\nSwapTotal:             0 kB\n\
                 SwapFree:              0 kB\nAnonPages:      {:>8} kB\nShmem:                 0 kB\n",
                used * 4,
                used * 4
            );
        }
    }
    s.into_bytes()
}

/// openat(2).
pub fn openat(k: &mut Kernel, dirfd: u64, path: u64, flags: u32, mode: u32) -> SysResult {
    let p = user_path(k, path)?;
    if flags & O_TMPFILE == O_TMPFILE {
        return Err(EOPNOTSUPP);
    }
    let base = base_dir(k, dirfd)?;
    let acc = flags & O_ACCMODE;
    let follow = flags & O_NOFOLLOW == 0;
    let ino = match lookup(k, &base, &p, follow) {
        Ok(_) if flags & O_CREAT != 0 && flags & O_EXCL != 0 => return Err(EEXIST),
        Ok(Loc::Mem(i)) => i,
        Ok(Loc::Host(hp, st)) => return super::volume::open(k, hp, Some(&st), flags, mode),
        Err(ENOENT) if flags & O_CREAT != 0 => {
            let (dir, name) = lookup_parent(k, &base, &p)?;
            if name.is_empty() || p.ends_with(b"/") {
                return Err(EISDIR);
            }
            match dir {
                Loc::Mem(dir) => {
                    k.fs.now = (k.clock_ns(0)? / 1_000_000_000) as i64;
                    k.fs.create(dir, name, mode & !k.proc.umask & 0o7777)?
                }
                Loc::Host(d, _) => return super::volume::open(k, d.join(name), None, flags, mode),
            }
        }
        Err(e) => return Err(e),
    };
    let node = k.fs.inode(ino)?;
    if matches!(node.node, Node::Symlink(_)) && flags & O_PATH == 0 {
        return Err(ELOOP); // O_NOFOLLOW on a symlink
    }
    let is_dir = node.is_dir();
    if flags & O_DIRECTORY != 0 && !is_dir {
        return Err(ENOTDIR);
    }
    if is_dir && acc != O_RDONLY {
        return Err(EISDIR);
    }
    let kind = match &node.node {
        Node::Device(Device::Console(n)) if flags & O_PATH == 0 => FileKind::Console(*n),
        Node::Generated(g) => {
            let g = *g;
            FileKind::Snapshot(ino, generate(k, g))
        }
        _ => FileKind::Inode(ino),
    };
    if flags & O_TRUNC != 0 && acc != O_RDONLY && matches!(k.fs.inode(ino)?.node, Node::File(_)) {
        k.fs.truncate(ino, 0)?;
    }
    install(k, kind, flags)
}

/// A new descriptor for an open file of `kind`, opened with `flags` (the
/// status flags that stay, and O_CLOEXEC).
pub(super) fn install(k: &mut Kernel, kind: FileKind, flags: u32) -> SysResult {
    let keep = O_ACCMODE | O_APPEND | O_NONBLOCK | O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CREAT;
    let file = OpenFile {
        kind,
        offset: 0,
        flags: flags & keep,
    };
    k.fds
        .install(file, flags & O_CLOEXEC != 0)
        .map(|fd| fd as i64)
}

/// close(2).
pub fn close(k: &mut Kernel, fd: u64) -> SysResult {
    k.fds.close(fd).map(|_| 0)
}

/// read/pread: `off` = None uses and advances the file offset.
pub fn read(k: &mut Kernel, fd: u64, buf: u64, len: u64, off: Option<u64>) -> SysResult {
    let file = k.fds.file(fd)?;
    let mut f = file.lock();
    if !f.readable() {
        return Err(EBADF);
    }
    let len = len.min(i32::MAX as u64 & !0xfff);
    // Checked first: a channel's read consumes.
    if off.is_some() && f.kind.is_channel() {
        return Err(ESPIPE);
    }
    if let Some(r) = crate::syscall::linux::poll::read_channel(k, &f, buf, len) {
        return r;
    }
    let pos = off.unwrap_or(f.offset);
    let n = match &f.kind {
        FileKind::Console(n) => {
            if off.is_some() {
                return Err(ESPIPE);
            }
            if *n != 0 {
                return Ok(0);
            }
            // The host's stdin, through a bounce buffer in library-OS memory.
            let mut tmp = vec![0u8; len.min(64 << 10) as usize];
            match crate::drivers::console::read_stdin(&mut tmp) {
                Ok(got) => {
                    k.mem.copy_to_user(buf, &tmp[..got])?;
                    got
                }
                Err(EAGAIN) if f.flags & O_NONBLOCK == 0 => {
                    crate::task::sched::note_stdin_wanted();
                    crate::task::sched::block_io(None);
                    return Err(BLOCKED);
                }
                Err(e) => return Err(e),
            }
        }
        FileKind::Snapshot(_, data) => copy_out(k, data, pos, buf, len)?,
        FileKind::Host(h) => super::volume::read(k, h, pos, buf, len)?,
        FileKind::PipeRead(_)
        | FileKind::PipeWrite(_)
        | FileKind::EventFd(_)
        | FileKind::Epoll(_)
        | FileKind::TimerFd(_)
        | FileKind::Udp(_)
        | FileKind::Tcp(_)
        | FileKind::UnixStream { .. } => return Err(EINVAL),
        FileKind::Inode(ino) => {
            let ino = *ino;
            match &k.fs.inode(ino)?.node {
                Node::File(_) => {
                    let data = k.fs.contents(ino)?;
                    // Split borrow: contents live in k.fs, the copy goes through k.mem.
                    let data: &[u8] = unsafe_extend(data);
                    copy_out(k, data, pos, buf, len)?
                }
                Node::Dir { .. } => return Err(EISDIR),
                Node::Device(Device::Null) => 0,
                Node::Device(Device::Zero) => fill_user(k, buf, len, |c| c.fill(0))?,
                Node::Device(Device::Random) => {
                    let mut rng = core::mem::replace(&mut k.rng, crate::rand::Csprng::new([0; 32]));
                    let r = fill_user(k, buf, len, |c| rng.fill(c));
                    k.rng = rng;
                    r?
                }
                _ => return Err(EINVAL),
            }
        }
    };
    if off.is_none() {
        f.offset = pos + n as u64;
    }
    Ok(n as i64)
}

/// Extends a borrow of VFS file contents across a call that also borrows the
/// kernel mutably. The VFS is not modified by the copy in between.
fn unsafe_extend(data: &[u8]) -> &'static [u8] {
    // SAFETY: callers copy out of `data` only while holding the kernel lock,
    // and the copy (user memory writes through the physmap) never touches the
    // VFS, so the bytes stay alive and unchanged for the duration.
    unsafe { core::slice::from_raw_parts(data.as_ptr(), data.len()) }
}

fn copy_out(k: &mut Kernel, data: &[u8], pos: u64, buf: u64, len: u64) -> Result<usize, i64> {
    let start = (pos.min(data.len() as u64)) as usize;
    let n = (len as usize).min(data.len() - start);
    k.mem.copy_to_user(buf, &data[start..start + n])?;
    Ok(n)
}

fn fill_user(
    k: &mut Kernel,
    buf: u64,
    len: u64,
    mut f: impl FnMut(&mut [u8]),
) -> Result<usize, i64> {
    let mut chunk = [0u8; 512];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(chunk.len());
        f(&mut chunk[..n]);
        k.mem.copy_to_user(buf + done, &chunk[..n])?;
        done += n as u64;
    }
    Ok(len as usize)
}

/// write/pwrite.
pub fn write(k: &mut Kernel, fd: u64, buf: u64, len: u64, off: Option<u64>) -> SysResult {
    let file = k.fds.file(fd)?;
    let mut f = file.lock();
    if !f.writable() {
        return Err(EBADF);
    }
    let len = len.min(i32::MAX as u64 & !0xfff);
    if off.is_some() && f.kind.is_channel() {
        return Err(ESPIPE);
    }
    if let Some(r) = crate::syscall::linux::poll::write_channel(k, &f, buf, len) {
        return r;
    }
    match &f.kind {
        FileKind::PipeRead(_)
        | FileKind::PipeWrite(_)
        | FileKind::EventFd(_)
        | FileKind::Epoll(_)
        | FileKind::TimerFd(_)
        | FileKind::Udp(_)
        | FileKind::Tcp(_)
        | FileKind::UnixStream { .. } => Err(EINVAL),
        FileKind::Console(n) => {
            if off.is_some() {
                return Err(ESPIPE);
            }
            let mut b = Batch::new(if *n == 2 { 2 } else { 1 });
            k.mem
                .for_each_user_chunk(buf, len, false, |pa, l| b.push(pa, l))?;
            b.finish()
        }
        FileKind::Snapshot(..) => Err(EACCES),
        FileKind::Host(h) => {
            let at = match off {
                Some(o) => Some(o),
                None if f.flags & O_APPEND != 0 => None,
                None => Some(f.offset),
            };
            let (n, end) = super::volume::write(k, h, at, buf, len)?;
            if off.is_none() {
                f.offset = end.unwrap_or(f.offset + n as u64);
            }
            Ok(n as i64)
        }
        FileKind::Inode(ino) => {
            let ino = *ino;
            match k.fs.inode(ino)?.node {
                Node::File(_) => {
                    let mut data = vec![0u8; len as usize];
                    k.mem.copy_from_user(buf, &mut data)?;
                    let pos = match off {
                        Some(o) => o,
                        None if f.flags & O_APPEND != 0 => k.fs.inode(ino)?.size(),
                        None => f.offset,
                    };
                    k.fs.now = (k.clock_ns(0)? / 1_000_000_000) as i64;
                    let n = k.fs.write(ino, pos, &data)?;
                    if off.is_none() {
                        f.offset = pos + n as u64;
                    }
                    Ok(n as i64)
                }
                Node::Dir { .. } => Err(EISDIR),
                Node::Device(_) => {
                    // /dev/null, /dev/zero, /dev/random accept and discard.
                    k.mem.for_each_user_chunk(buf, len, false, |_, _| Ok(()))?;
                    Ok(len as i64)
                }
                _ => Err(EINVAL),
            }
        }
    }
}

/// readv/writev/preadv/pwritev.
pub fn vectored(
    k: &mut Kernel,
    fd: u64,
    iov: u64,
    cnt: u64,
    off: Option<u64>,
    writing: bool,
) -> SysResult {
    if cnt > 1024 {
        return Err(EINVAL);
    }
    let mut total: i64 = 0;
    let mut pos = off;
    for i in 0..cnt {
        let base: u64 = k.mem.read_obj(iov + i * 16)?;
        let len: u64 = k.mem.read_obj(iov + i * 16 + 8)?;
        if len == 0 {
            continue;
        }
        let r = if writing {
            write(k, fd, base, len, pos)
        } else {
            read(k, fd, base, len, pos)
        };
        match r {
            Ok(n) => {
                total += n;
                if let Some(p) = pos.as_mut() {
                    *p += n as u64;
                }
                if (n as u64) < len {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(total)
}

/// lseek(2).
pub fn lseek(k: &mut Kernel, fd: u64, off: i64, whence: u32) -> SysResult {
    let file = k.fds.file(fd)?;
    let mut f = file.lock();
    let size = match &f.kind {
        FileKind::Console(_)
        | FileKind::PipeRead(_)
        | FileKind::PipeWrite(_)
        | FileKind::Udp(_)
        | FileKind::Tcp(_)
        | FileKind::UnixStream { .. } => return Err(ESPIPE),
        FileKind::EventFd(_) | FileKind::Epoll(_) | FileKind::TimerFd(_) => return Err(EINVAL),
        FileKind::Snapshot(_, d) => d.len() as i64,
        FileKind::Inode(i) => k.fs.inode(*i)?.size() as i64,
        FileKind::Host(h) => super::volume::fstat(h)?.size,
    };
    let new = match whence {
        0 => off,
        1 => (f.offset as i64).checked_add(off).ok_or(EINVAL)?,
        2 => size.checked_add(off).ok_or(EINVAL)?,
        3 if off < size => off,   // SEEK_DATA: no holes
        4 if off <= size => size, // SEEK_HOLE
        3 | 4 => return Err(ENXIO),
        _ => return Err(EINVAL),
    };
    if new < 0 {
        return Err(EINVAL);
    }
    f.offset = new as u64;
    Ok(new)
}

/// access/faccessat/faccessat2 (everyone is root: only existence and execute bits matter).
pub fn faccessat(k: &mut Kernel, dirfd: u64, path: u64, mode: u64, flags: u64) -> SysResult {
    let (dir, perm) = match resolve(k, dirfd, path, flags & AT_SYMLINK_NOFOLLOW == 0)? {
        Loc::Mem(ino) => {
            let i = k.fs.inode(ino)?;
            (i.is_dir(), i.perm)
        }
        l @ Loc::Host(..) => (
            l.is_dir(&k.fs),
            match l {
                Loc::Host(_, st) => st.mode,
                Loc::Mem(_) => 0,
            },
        ),
    };
    if mode & 1 != 0 && !dir && perm & 0o111 == 0 {
        return Err(EACCES);
    }
    Ok(0)
}

/// getdents64(2).
pub fn getdents64(k: &mut Kernel, fd: u64, buf: u64, count: u64) -> SysResult {
    let file = k.fds.file(fd)?;
    let mut f = file.lock();
    if let FileKind::Host(h) = &f.kind {
        let (out, next) = super::volume::getdents(h, f.offset, count)?;
        k.mem.copy_to_user(buf, &out)?;
        f.offset = next;
        return Ok(out.len() as i64);
    }
    let FileKind::Inode(dir) = f.kind else {
        return Err(ENOTDIR);
    };
    let entries = k.fs.readdir(dir)?;
    let mut out = Vec::new();
    let mut idx = f.offset as usize;
    while let Some(e) = entries.get(idx) {
        let reclen = (19 + e.name.len() + 1).div_ceil(8) * 8;
        if out.len() + reclen > count as usize {
            break;
        }
        let start = out.len();
        out.extend_from_slice(&(e.ino as u64 + 1).to_le_bytes());
        out.extend_from_slice(&((idx + 1) as i64).to_le_bytes());
        out.extend_from_slice(&(reclen as u16).to_le_bytes());
        out.push(e.dtype);
        out.extend_from_slice(&e.name);
        out.resize(start + reclen, 0);
        idx += 1;
    }
    if out.is_empty() && idx < entries.len() {
        return Err(EINVAL); // buffer too small for one entry
    }
    k.mem.copy_to_user(buf, &out)?;
    f.offset = idx as u64;
    Ok(out.len() as i64)
}

/// mkdirat(2).
pub fn mkdirat(k: &mut Kernel, dirfd: u64, path: u64, mode: u32) -> SysResult {
    let p = user_path(k, path)?;
    let base = base_dir(k, dirfd)?;
    let dir = match lookup_parent(k, &base, &p)? {
        (Loc::Mem(d), name) => (d, name),
        (Loc::Host(d, _), name) => return super::volume::mkdir(k, &d, name, mode),
    };
    k.fs.now = (k.clock_ns(0)? / 1_000_000_000) as i64;
    k.fs.mkdir(dir.0, dir.1, mode & !k.proc.umask & 0o7777)
        .map(|_| 0)
}

/// unlinkat(2) and rmdir(2).
pub fn unlinkat(k: &mut Kernel, dirfd: u64, path: u64, flags: u64) -> SysResult {
    let p = user_path(k, path)?;
    let base = base_dir(k, dirfd)?;
    let (dir, name) = match lookup_parent(k, &base, &p)? {
        (Loc::Mem(d), name) => (d, name),
        (Loc::Host(d, _), name) => {
            if flags & AT_REMOVEDIR == 0 && p.ends_with(b"/") {
                return Err(EISDIR);
            }
            return super::volume::unlink(&d, name, flags & AT_REMOVEDIR != 0);
        }
    };
    k.fs.now = (k.clock_ns(0)? / 1_000_000_000) as i64;
    if flags & AT_REMOVEDIR != 0 {
        if name.is_empty() {
            return Err(EBUSY);
        }
        k.fs.rmdir(dir, name).map(|_| 0)
    } else {
        if p.ends_with(b"/") {
            return Err(EISDIR);
        }
        k.fs.unlink(dir, name).map(|_| 0)
    }
}

/// renameat2(2).
pub fn renameat2(
    k: &mut Kernel,
    odirfd: u64,
    opath: u64,
    ndirfd: u64,
    npath: u64,
    flags: u64,
) -> SysResult {
    const RENAME_NOREPLACE: u64 = 1;
    if flags & !RENAME_NOREPLACE != 0 {
        return Err(EINVAL);
    }
    let op = user_path(k, opath)?;
    let np = user_path(k, npath)?;
    let ob = base_dir(k, odirfd)?;
    let nb = base_dir(k, ndirfd)?;
    let (od, on) = lookup_parent(k, &ob, &op)?;
    let (nd, nn) = lookup_parent(k, &nb, &np)?;
    let (Loc::Mem(od), Loc::Mem(nd)) = (&od, &nd) else {
        return super::volume::rename(&od, on, &nd, nn, flags);
    };
    let (od, nd) = (*od, *nd);
    if flags & RENAME_NOREPLACE != 0 && k.fs.lookup(nd, nn, false).is_ok() {
        return Err(EEXIST);
    }
    k.fs.now = (k.clock_ns(0)? / 1_000_000_000) as i64;
    k.fs.rename(od, on, nd, nn).map(|_| 0)
}

/// readlinkat(2).
pub fn readlinkat(k: &mut Kernel, dirfd: u64, path: u64, buf: u64, size: u64) -> SysResult {
    if size == 0 || size > i32::MAX as u64 {
        return Err(EINVAL);
    }
    let t = match resolve(k, dirfd, path, false)? {
        Loc::Mem(ino) => k.fs.readlink(ino)?.to_vec(),
        Loc::Host(hp, st) if walk::is_link(&st) => crate::fs::volume::readlink(&hp)?,
        Loc::Host(..) => return Err(EINVAL),
    };
    let n = t.len().min(size as usize);
    k.mem.copy_to_user(buf, &t[..n])?;
    Ok(n as i64)
}

/// symlinkat(2).
pub fn symlinkat(k: &mut Kernel, target: u64, dirfd: u64, path: u64) -> SysResult {
    let t = user_path(k, target)?;
    let p = user_path(k, path)?;
    let base = base_dir(k, dirfd)?;
    match lookup_parent(k, &base, &p)? {
        (Loc::Mem(dir), name) => k.fs.symlink(dir, name, &t).map(|_| 0),
        (Loc::Host(dir, _), name) => super::volume::symlink(&dir, name, &t),
    }
}

/// linkat(2): hard links exist in volumes only.
pub fn linkat(k: &mut Kernel, odirfd: u64, opath: u64, ndirfd: u64, npath: u64) -> SysResult {
    let op = user_path(k, opath)?;
    let np = user_path(k, npath)?;
    let ob = base_dir(k, odirfd)?;
    let nb = base_dir(k, ndirfd)?;
    let (od, on) = lookup_parent(k, &ob, &op)?;
    let (nd, nn) = lookup_parent(k, &nb, &np)?;
    super::volume::link(&od, on, &nd, nn)
}

/// fchmodat/chmod/fchmod.
pub fn chmod(k: &mut Kernel, at: Loc, mode: u32) -> SysResult {
    match at {
        Loc::Mem(ino) => k.fs.chmod(ino, mode).map(|_| 0),
        Loc::Host(hp, _) => super::volume::chmod(&hp, mode),
    }
}

/// chmod by path.
pub fn fchmodat(k: &mut Kernel, dirfd: u64, path: u64, mode: u32) -> SysResult {
    let at = resolve(k, dirfd, path, true)?;
    chmod(k, at, mode)
}

/// chmod by descriptor.
pub fn fchmod(k: &mut Kernel, fd: u64, mode: u32) -> SysResult {
    match fd_loc(k, fd)? {
        Some(at) => chmod(k, at, mode),
        None => Ok(0),
    }
}

/// getcwd(2).
pub fn getcwd(k: &mut Kernel, buf: u64, size: u64) -> SysResult {
    let mut p = match &k.cwd {
        Loc::Mem(ino) => k.fs.path_of(*ino)?,
        Loc::Host(hp, _) => super::volume::guest_path(k, hp)?,
    };
    p.push(0);
    if (size as usize) < p.len() {
        return Err(ERANGE);
    }
    k.mem.copy_to_user(buf, &p)?;
    Ok(p.len() as i64)
}

/// chdir(2).
pub fn chdir(k: &mut Kernel, path: u64) -> SysResult {
    let at = resolve(k, AT_FDCWD as u64, path, true)?;
    if !at.is_dir(&k.fs) {
        return Err(ENOTDIR);
    }
    k.cwd = at;
    Ok(0)
}

/// fchdir(2).
pub fn fchdir(k: &mut Kernel, fd: u64) -> SysResult {
    let at = fd_loc(k, fd)?.ok_or(ENOTDIR)?;
    if !at.is_dir(&k.fs) {
        return Err(ENOTDIR);
    }
    k.cwd = at;
    Ok(0)
}

/// The contents of a regular file for a private file mapping.
/// The path of the file open on `fd` (for /proc/self/maps).
pub fn path_of_fd(k: &Kernel, fd: u64) -> Option<Vec<u8>> {
    let file = k.fds.file(fd).ok()?;
    let f = file.lock();
    match &f.kind {
        FileKind::Inode(ino) => k.fs.find_path(*ino),
        FileKind::Host(h) => super::volume::guest_path(k, &h.path).ok(),
        _ => None,
    }
}

/// What a file mapping copies from.
pub enum MapSource<'a> {
    /// The VFS's bytes of the whole file.
    Mem(&'a [u8]),
    /// A private copy of the asked range of a file in a volume.
    Host(Vec<u8>),
}

/// The contents of a regular file for a private file mapping of
/// `[off, off + len)`.
pub fn file_for_mmap(k: &Kernel, fd: u64, off: u64, len: u64) -> Result<MapSource<'_>, i64> {
    let file = k.fds.file(fd)?;
    let f = file.lock();
    if !f.readable() {
        return Err(EACCES);
    }
    match &f.kind {
        FileKind::Inode(ino) => match k.fs.inode(*ino)?.node {
            Node::File(_) => k.fs.contents(*ino).map(MapSource::Mem),
            Node::Device(Device::Zero) => Ok(MapSource::Mem(&[])),
            _ => Err(ENODEV),
        },
        FileKind::Host(h) => super::volume::contents(h, off, len).map(MapSource::Host),
        _ => Err(ENODEV),
    }
}
