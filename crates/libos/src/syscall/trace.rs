//! strace-style formatting of system calls for `--trace-syscalls`.

use core::fmt::{self, Write};

use super::{errno, table};

/// How many arguments a call takes (so the trace shows no junk registers).
pub fn arity(nr: u64) -> usize {
    use table::*;
    match nr {
        GETPID | GETTID | GETUID | GETEUID | GETGID | GETEGID | GETPPID | SCHED_YIELD | PAUSE
        | SYNC => 0,
        EXIT | EXIT_GROUP | CLOSE | BRK | SET_TID_ADDRESS | UNAME | TIME | UMASK | DUP | CHDIR
        | FSYNC => 1,
        ARCH_PRCTL | MUNMAP | SET_ROBUST_LIST | SIGALTSTACK | CLOCK_GETTIME | CLOCK_GETRES
        | GETTIMEOFDAY | NANOSLEEP | FSTAT | STAT | LSTAT | ACCESS | PIPE2 | DUP2 | GETCWD
        | KILL | TKILL | FTRUNCATE => 2,
        WRITE | READ | WRITEV | READV | MPROTECT | IOCTL | GETRANDOM | LSEEK | OPEN | POLL
        | FCNTL | MADVISE | SCHED_GETAFFINITY | TGKILL | DUP3 | GETDENTS64 => 3,
        RT_SIGACTION | RT_SIGPROCMASK | OPENAT | NEWFSTATAT | READLINKAT | PRLIMIT64 | RSEQ
        | PREAD64 | PWRITE64 | CLOCK_NANOSLEEP | FACCESSAT | FACCESSAT2 => 4,
        READLINK => 3,
        MREMAP | STATX => 5,
        _ => 6,
    }
}

/// Writes `name(arg, …) = result` (with the errno name for failures).
pub fn format_call<W: Write>(out: &mut W, nr: u64, args: &[u64; 6], ret: i64) -> fmt::Result {
    match table::name(nr) {
        Some(n) => write!(out, "{n}(")?,
        None => write!(out, "syscall_{nr}(")?,
    }
    for (i, a) in args.iter().take(arity(nr)).enumerate() {
        if i > 0 {
            out.write_str(", ")?;
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
}
