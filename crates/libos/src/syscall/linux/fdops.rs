//! Operations on descriptors themselves: dup, dup3, fcntl, ioctl.
use super::file::resolve;
use crate::errno::*;
use crate::fd::file::*;
use crate::fs::resolve::Loc;
use crate::kernel::Kernel;
use crate::uapi::fcntl::AT_FDCWD;

/// dup(2).
pub fn dup(k: &mut Kernel, fd: u64) -> SysResult {
    let f = k.fds.get(fd)?.clone();
    k.fds
        .install_from(
            0,
            Fd {
                file: f.file,
                cloexec: false,
            },
        )
        .map(|n| n as i64)
}

/// dup2/dup3.
pub fn dup3(k: &mut Kernel, old: u64, new: u64, flags: u64, is_dup2: bool) -> SysResult {
    let f = k.fds.get(old)?.clone();
    if old == new {
        return if is_dup2 { Ok(new as i64) } else { Err(EINVAL) };
    }
    if flags & !(O_CLOEXEC as u64) != 0 {
        return Err(EINVAL);
    }
    k.fds
        .install_at(
            new,
            Fd {
                file: f.file,
                cloexec: flags & O_CLOEXEC as u64 != 0,
            },
        )
        .map(|n| n as i64)
}

/// fcntl(2).
pub fn fcntl(k: &mut Kernel, fd: u64, cmd: u64, arg: u64) -> SysResult {
    const F_DUPFD: u64 = 0;
    const F_GETFD: u64 = 1;
    const F_SETFD: u64 = 2;
    const F_GETFL: u64 = 3;
    const F_SETFL: u64 = 4;
    const F_GETLK: u64 = 5;
    const F_SETLK: u64 = 6;
    const F_SETLKW: u64 = 7;
    const F_DUPFD_CLOEXEC: u64 = 1030;
    const F_GETPIPE_SZ: u64 = 1032;
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let f = k.fds.get(fd)?.clone();
            let min = usize::try_from(arg)
                .ok()
                .filter(|&m| m < MAX_FDS)
                .ok_or(EINVAL)?;
            k.fds
                .install_from(
                    min,
                    Fd {
                        file: f.file,
                        cloexec: cmd == F_DUPFD_CLOEXEC,
                    },
                )
                .map(|n| n as i64)
        }
        F_GETFD => Ok(k.fds.get(fd)?.cloexec as i64),
        F_SETFD => {
            k.fds.get_mut(fd)?.cloexec = arg & 1 != 0;
            Ok(0)
        }
        F_GETFL => {
            let f = k.fds.file(fd)?;
            let fl = f.lock().flags;
            Ok((fl & (O_ACCMODE | O_APPEND | O_NONBLOCK | O_PATH | O_DIRECTORY)) as i64)
        }
        F_SETFL => {
            let f = k.fds.file(fd)?;
            let mut f = f.lock();
            let changeable = O_APPEND | O_NONBLOCK;
            f.flags = (f.flags & !changeable) | (arg as u32 & changeable);
            Ok(0)
        }
        F_GETLK => {
            k.fds.get(fd)?;
            // struct flock: l_type first; nobody else holds locks in a unikernel.
            k.mem.write_obj(arg, &2i16)?; // F_UNLCK
            Ok(0)
        }
        F_SETLK | F_SETLKW => k.fds.get(fd).map(|_| 0),
        F_GETPIPE_SZ => Err(EBADF),
        _ => Err(EINVAL),
    }
}

/// ftruncate(2).
pub fn ftruncate(k: &mut Kernel, fd: u64, len: i64) -> SysResult {
    if len < 0 {
        return Err(EINVAL);
    }
    let file = k.fds.file(fd)?;
    let f = file.lock();
    if !f.writable() {
        return Err(EINVAL);
    }
    match &f.kind {
        FileKind::Inode(ino) => k.fs.truncate(*ino, len as u64).map(|_| 0),
        FileKind::Host(h) => crate::fs::volume::ftruncate(h.handle, len as u64).map(|_| 0),
        _ => Err(EINVAL),
    }
}

/// fsync(2) and fdatasync(2): to the host's disk for a volume's file.
pub fn fsync(k: &mut Kernel, fd: u64) -> SysResult {
    let file = k.fds.file(fd)?;
    let f = file.lock();
    match &f.kind {
        FileKind::Host(h) if !h.dir => crate::fs::volume::fsync(h.handle).map(|_| 0),
        _ => Ok(0),
    }
}

/// truncate(2).
pub fn truncate(k: &mut Kernel, path: u64, len: i64) -> SysResult {
    if len < 0 {
        return Err(EINVAL);
    }
    match resolve(k, AT_FDCWD as u64, path, true)? {
        Loc::Mem(ino) => k.fs.truncate(ino, len as u64).map(|_| 0),
        Loc::Host(hp, _) => super::volume::truncate(&hp, len as u64),
    }
}

/// ioctl(2).
pub fn ioctl(k: &mut Kernel, fd: u64, req: u64, arg: u64) -> SysResult {
    const TCGETS: u64 = 0x5401;
    const TCSETS: u64 = 0x5402;
    const TCSETSW: u64 = 0x5403;
    const TCSETSF: u64 = 0x5404;
    const TIOCGPGRP: u64 = 0x540f;
    const TIOCGWINSZ: u64 = 0x5413;
    const FIONREAD: u64 = 0x541b;
    const FIONBIO: u64 = 0x5421;
    const FIONCLEX: u64 = 0x5450;
    const FIOCLEX: u64 = 0x5451;
    let file = k.fds.file(fd)?;
    match req {
        FIONBIO => {
            let on: i32 = k.mem.read_obj(arg)?;
            let mut f = file.lock();
            if on != 0 {
                f.flags |= O_NONBLOCK;
            } else {
                f.flags &= !O_NONBLOCK;
            }
            Ok(0)
        }
        FIOCLEX | FIONCLEX => {
            k.fds.get_mut(fd)?.cloexec = req == FIOCLEX;
            Ok(0)
        }
        FIONREAD => {
            let f = file.lock();
            let avail = match &f.kind {
                FileKind::Inode(i) => k.fs.inode(*i)?.size().saturating_sub(f.offset),
                FileKind::Host(h) => {
                    (super::volume::fstat(h)?.size as u64).saturating_sub(f.offset)
                }
                FileKind::Snapshot(_, d) => (d.len() as u64).saturating_sub(f.offset),
                FileKind::PipeRead(p) => p.lock().data.len() as u64,
                _ => 0,
            };
            drop(f);
            k.mem.write_obj(arg, &(avail.min(i32::MAX as u64) as i32))?;
            Ok(0)
        }
        TCGETS | TIOCGWINSZ | TCSETS | TCSETSW | TCSETSF | TIOCGPGRP => {
            // A standard fd is a terminal when the host's is.
            let f = file.lock();
            let FileKind::Console(n) = f.kind else {
                return Err(ENOTTY);
            };
            let host = k.boot.stdio[(n as usize).min(2)];
            drop(f);
            if host.flags & optivolt_abi::boot::stdio::TTY == 0 {
                return Err(ENOTTY);
            }
            match req {
                TCGETS => k.mem.write_obj(arg, &termios_default())?,
                TIOCGWINSZ => k.mem.write_obj(arg, &[host.rows, host.cols, 0, 0])?,
                TIOCGPGRP => k.mem.write_obj(arg, &(crate::task::process::PID as i32))?,
                // Settings are accepted; the host's terminal keeps its own.
                _ => {}
            }
            Ok(0)
        }
        _ => Err(ENOTTY),
    }
}

/// `struct termios` (60 bytes) of a terminal in its usual cooked mode:
/// ICRNL|IXON, OPOST|ONLCR, B38400|CS8|CREAD|HUPCL,
/// ISIG|ICANON|ECHO|ECHOE|ECHOK|ECHOCTL|ECHOKE|IEXTEN, and the usual
/// control characters (^C ^\\ DEL ^U ^D …).
fn termios_default() -> [u8; 60] {
    let mut t = [0u8; 60];
    let flags: [u32; 4] = [0o2400, 0o5, 0o2277, 0o105073];
    for (i, f) in flags.iter().enumerate() {
        t[i * 4..i * 4 + 4].copy_from_slice(&f.to_le_bytes());
    }
    // c_line at 16, c_cc[19] from 17.
    let cc = [3u8, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22];
    t[17..17 + cc.len()].copy_from_slice(&cc);
    t
}
