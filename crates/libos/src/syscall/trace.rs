//! strace-style formatting of system calls for `--trace-syscalls`.

use core::fmt::{self, Write};

use super::table;
use crate::errno;

/// How many arguments a call takes (so the trace shows no junk registers).
pub fn arity(nr: u64) -> usize {
    use table::*;
    match nr {
        GETPID | GETTID | GETUID | GETEUID | GETGID | GETEGID | GETPPID | SCHED_YIELD | PAUSE
        | SYNC | FORK | VFORK => 0,
        EXIT | EXIT_GROUP | CLOSE | BRK | SET_TID_ADDRESS | UNAME | TIME | UMASK | DUP | CHDIR
        | FCHDIR | FSYNC | FDATASYNC | RMDIR | UNLINK | EPOLL_CREATE1 | PIPE | ALARM => 1,
        ARCH_PRCTL | MUNMAP | SET_ROBUST_LIST | SIGALTSTACK | CLOCK_GETTIME | CLOCK_GETRES
        | GETTIMEOFDAY | NANOSLEEP | FSTAT | STAT | LSTAT | ACCESS | PIPE2 | DUP2 | GETCWD
        | KILL | TKILL | FTRUNCATE | TRUNCATE | RENAME | MKDIR | CHMOD | FCHMOD | SYMLINK
        | LINK | CREAT | SHUTDOWN | EVENTFD2 | TIMERFD_CREATE | TIMERFD_GETTIME | SETRLIMIT
        | GETRLIMIT | LISTEN => 2,
        WRITE | READ | WRITEV | READV | MPROTECT | IOCTL | GETRANDOM | LSEEK | OPEN | POLL
        | FCNTL | MADVISE | SCHED_GETAFFINITY | SCHED_SETAFFINITY | TGKILL | DUP3 | GETDENTS64
        | READLINK | MKDIRAT | UNLINKAT | FCHMODAT | SYMLINKAT | SOCKET | CONNECT | BIND
        | ACCEPT => 3,
        RT_SIGACTION | RT_SIGPROCMASK | OPENAT | NEWFSTATAT | READLINKAT | PRLIMIT64 | RSEQ
        | PREAD64 | PWRITE64 | CLOCK_NANOSLEEP | FACCESSAT | FACCESSAT2 | RENAMEAT | EPOLL_CTL
        | EPOLL_WAIT | TIMERFD_SETTIME | SOCKETPAIR | ACCEPT4 | PPOLL | PREADV | PWRITEV => 4,
        MREMAP | STATX | RENAMEAT2 | SELECT | EPOLL_PWAIT | CLONE | MOUNT => 5,
        _ => 6,
    }
}

/// Which arguments of a call are paths (printed as strings, as strace does).
pub fn path_args(nr: u64) -> &'static [usize] {
    use table::*;
    match nr {
        OPEN | STAT | LSTAT | ACCESS | MKDIR | RMDIR | UNLINK | READLINK | CHDIR | CHMOD
        | CREAT | TRUNCATE | EXECVE => &[0],
        OPENAT | NEWFSTATAT | STATX | FACCESSAT | FACCESSAT2 | MKDIRAT | UNLINKAT | READLINKAT
        | FCHMODAT => &[1],
        RENAME | SYMLINK => &[0, 1],
        RENAMEAT | RENAMEAT2 => &[1, 3],
        SYMLINKAT => &[0, 2],
        _ => &[],
    }
}

/// Writes `name(arg, …) = result`, fetching path arguments with `fetch`
/// (`None` when unreadable: the pointer is shown).
pub fn format_call_with<W: Write>(
    out: &mut W,
    nr: u64,
    args: &[u64; 6],
    ret: i64,
    mut fetch: impl FnMut(u64) -> Option<alloc::vec::Vec<u8>>,
) -> fmt::Result {
    let paths = path_args(nr);
    match table::name(nr) {
        Some(n) => write!(out, "{n}(")?,
        None => write!(out, "syscall_{nr}(")?,
    }
    for (i, a) in args.iter().take(arity(nr)).enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        if i == 0 && *a as u32 as i32 == -100 && paths.iter().any(|&p| p > 0) {
            out.write_str("AT_FDCWD")?;
            continue;
        }
        if paths.contains(&i) {
            if let Some(p) = fetch(*a) {
                out.write_char('"')?;
                for &c in p.iter().take(96) {
                    match c {
                        b'"' | b'\\' => write!(out, "\\{}", c as char)?,
                        0x20..=0x7e => out.write_char(c as char)?,
                        _ => write!(out, "\\x{c:02x}")?,
                    }
                }
                out.write_str(if p.len() > 96 { "\"..." } else { "\"" })?;
                continue;
            }
        }
        let signed = *a as i64;
        if (-4096..4096).contains(&signed) {
            write!(out, "{signed}")?;
        } else {
            write!(out, "{a:#x}")?;
        }
    }
    if (-4095..0).contains(&ret) {
        writeln!(out, ") = -1 {} ({})", errno::name(-ret), -ret)
    } else if ret > 0xffff {
        writeln!(out, ") = {ret:#x}")
    } else {
        writeln!(out, ") = {ret}")
    }
}

/// Writes `name(arg, …) = result` (with the errno name for failures).
pub fn format_call<W: Write>(out: &mut W, nr: u64, args: &[u64; 6], ret: i64) -> fmt::Result {
    format_call_with(out, nr, args, ret, |_| None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_strace() {
        let mut s = String::new();
        format_call(&mut s, table::WRITE, &[1, 0x7ffc_0000, 12, 9, 9, 9], 12).unwrap();
        assert_eq!(s, "write(1, 0x7ffc0000, 12) = 12\n");
        let mut s = String::new();
        format_call(
            &mut s,
            table::RSEQ,
            &[0x1000, 32, 0, 0x53053053, 0, 0],
            -errno::ENOSYS,
        )
        .unwrap();
        assert_eq!(s, "rseq(0x1000, 32, 0, 0x53053053) = -1 ENOSYS (38)\n");
        let mut s = String::new();
        format_call(&mut s, 9999, &[0; 6], 0).unwrap();
        assert!(s.starts_with("syscall_9999("));
    }

    #[test]
    fn paths_are_shown_as_strings() {
        let mut s = String::new();
        let fetch = |p: u64| (p == 0x1000).then(|| b"/etc/a \"b\"\n".to_vec());
        format_call_with(
            &mut s,
            table::OPENAT,
            &[(-100i64) as u64, 0x1000, 0, 0, 0, 0],
            -errno::ENOENT,
            fetch,
        )
        .unwrap();
        assert_eq!(
            s,
            "openat(AT_FDCWD, \"/etc/a \\\"b\\\"\\x0a\", 0, 0) = -1 ENOENT (2)\n"
        );
        let mut s = String::new();
        format_call_with(&mut s, table::OPEN, &[0x2000, 0, 0, 0, 0, 0], 3, |_| None).unwrap();
        assert_eq!(s, "open(0x2000, 0, 0) = 3\n");
    }
}
