//! What the library OS does with each Linux system call. `docs/syscalls.md`
//! is generated from this table and the kernel's own numbering
//! ([`super::table`]); a unit test fails when the document is stale.

/// Support level of a system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Implemented with Linux semantics.
    Full,
    /// Implemented; the note says what is missing.
    Partial(&'static str),
    /// Deliberately refused with the error in the note.
    Refused(&'static str),
}

use Status::*;

/// (name, status) for every call the dispatcher handles.
pub const HANDLED: &[(&str, Status)] = &[
    ("read", Partial("stdin is empty (end of file)")),
    ("write", Full),
    ("open", Full),
    ("close", Full),
    ("stat", Full),
    ("fstat", Full),
    ("lstat", Full),
    ("poll", Full),
    ("lseek", Full),
    (
        "mmap",
        Partial(
            "file mappings are private copies; MAP_SHARED writes to files are not written back",
        ),
    ),
    ("mprotect", Full),
    ("munmap", Full),
    ("brk", Full),
    ("rt_sigaction", Full),
    ("rt_sigprocmask", Full),
    ("rt_sigreturn", Full),
    (
        "ioctl",
        Partial("FIONBIO, FIONREAD, FIOCLEX, FIONCLEX; nothing is a terminal (ENOTTY)"),
    ),
    ("pread64", Full),
    ("pwrite64", Full),
    ("readv", Full),
    ("writev", Full),
    (
        "access",
        Partial("the process is root: only existence and execute bits are checked"),
    ),
    ("pipe", Full),
    ("select", Full),
    ("sched_yield", Full),
    (
        "madvise",
        Partial(
            "DONTNEED and FREE release the pages to the host; other advice is accepted and ignored",
        ),
    ),
    ("dup", Full),
    ("dup2", Full),
    (
        "nanosleep",
        Partial("an interrupted sleep does not report the remaining time"),
    ),
    ("getpid", Full),
    (
        "clone",
        Partial("threads only (CLONE_VM|CLONE_THREAD|CLONE_SIGHAND); processes: ENOSYS"),
    ),
    ("fork", Refused("ENOSYS: a unikernel has one process")),
    ("vfork", Refused("ENOSYS: a unikernel has one process")),
    ("exit", Full),
    ("kill", Partial("only the unikernel's own process (pid 1)")),
    ("uname", Full),
    (
        "fcntl",
        Partial("locks always succeed (no other process); no F_SETPIPE_SZ, leases, notify"),
    ),
    ("fsync", Full),
    ("fdatasync", Full),
    ("truncate", Full),
    ("ftruncate", Full),
    ("getcwd", Full),
    ("chdir", Full),
    ("fchdir", Full),
    ("rename", Full),
    ("mkdir", Full),
    ("rmdir", Full),
    ("creat", Full),
    ("link", Refused("EMLINK: no hard links in the VFS yet")),
    ("unlink", Full),
    ("symlink", Full),
    ("readlink", Full),
    ("chmod", Full),
    ("fchmod", Full),
    ("chown", Partial("accepted, ownership unchanged")),
    ("fchown", Partial("accepted, ownership unchanged")),
    ("lchown", Partial("accepted, ownership unchanged")),
    ("umask", Full),
    ("gettimeofday", Full),
    (
        "getrlimit",
        Partial("fixed limits (stack 8 MiB, 1024 files)"),
    ),
    ("getuid", Full),
    ("getgid", Full),
    ("geteuid", Full),
    ("getegid", Full),
    ("getppid", Full),
    ("sigaltstack", Full),
    ("utime", Partial("accepted, times unchanged")),
    ("getpriority", Partial("always 20")),
    ("setpriority", Partial("accepted, no effect")),
    ("sched_getparam", Partial("always 0")),
    ("sched_getscheduler", Partial("always SCHED_OTHER")),
    ("arch_prctl", Partial("ARCH_SET_FS/ARCH_GET_FS; GS: EINVAL")),
    ("sync", Full),
    ("gettid", Full),
    ("time", Full),
    (
        "futex",
        Partial(
            "WAIT, WAKE, WAIT_BITSET, WAKE_BITSET, REQUEUE, CMP_REQUEUE, WAKE_OP; no PI futexes",
        ),
    ),
    ("sched_setaffinity", Partial("accepted: there is one vCPU")),
    ("sched_getaffinity", Full),
    ("getdents64", Full),
    ("set_tid_address", Full),
    ("fadvise64", Partial("accepted, no effect")),
    ("clock_gettime", Full),
    ("clock_getres", Full),
    (
        "clock_nanosleep",
        Partial("an interrupted sleep does not report the remaining time"),
    ),
    ("exit_group", Full),
    ("epoll_wait", Full),
    ("epoll_ctl", Full),
    ("tgkill", Full),
    ("utimes", Partial("accepted, times unchanged")),
    ("openat", Partial("no O_TMPFILE")),
    ("mkdirat", Full),
    ("fchownat", Partial("accepted, ownership unchanged")),
    ("futimesat", Partial("accepted, times unchanged")),
    ("newfstatat", Full),
    ("unlinkat", Full),
    ("renameat", Full),
    ("linkat", Refused("EMLINK: no hard links in the VFS yet")),
    ("symlinkat", Full),
    ("readlinkat", Full),
    ("fchmodat", Full),
    (
        "faccessat",
        Partial("the process is root: only existence and execute bits are checked"),
    ),
    (
        "pselect6",
        Partial("the signal mask argument is not applied"),
    ),
    ("ppoll", Partial("the signal mask argument is not applied")),
    (
        "set_robust_list",
        Partial("recorded; lists are not walked at thread exit"),
    ),
    ("utimensat", Partial("accepted, times unchanged")),
    (
        "epoll_pwait",
        Partial("the signal mask argument is not applied"),
    ),
    ("eventfd", Full),
    ("eventfd2", Full),
    ("epoll_create", Full),
    ("epoll_create1", Full),
    ("dup3", Full),
    ("pipe2", Full),
    ("preadv", Full),
    ("pwritev", Full),
    (
        "prlimit64",
        Partial("fixed limits (stack 8 MiB, 1024 files); new limits are ignored"),
    ),
    ("syncfs", Full),
    ("getrandom", Full),
    ("renameat2", Partial("RENAME_NOREPLACE only")),
    ("statx", Full),
    ("clone3", Partial("threads only, as clone")),
    (
        "faccessat2",
        Partial("the process is root: only existence and execute bits are checked"),
    ),
    (
        "epoll_pwait2",
        Partial("the signal mask argument is not applied"),
    ),
    ("tkill", Full),
    (
        "mremap",
        Partial("moves page-table entries, never copies; no MREMAP_DONTUNMAP"),
    ),
    (
        "timerfd_create",
        Partial("MONOTONIC, REALTIME, BOOTTIME clocks; no TFD_TIMER_CANCEL_ON_SET"),
    ),
    ("timerfd_settime", Full),
    ("timerfd_gettime", Full),
    (
        "socketpair",
        Partial("AF_UNIX SOCK_STREAM only (AF_UNIX socket() is not supported)"),
    ),
    ("shutdown", Full),
    ("sendto", Partial("AF_INET TCP and UDP, socket pairs; MSG_DONTWAIT, MSG_NOSIGNAL")),
    ("recvfrom", Partial("AF_INET TCP and UDP, socket pairs; MSG_PEEK, MSG_DONTWAIT, MSG_TRUNC")),
    ("sendmsg", Partial("AF_INET; no ancillary data")),
    ("recvmsg", Partial("AF_INET; no ancillary data (msg_controllen comes back 0)")),
    (
        "socket",
        Partial("AF_INET SOCK_STREAM (TCP) and SOCK_DGRAM (UDP); AF_INET6 and AF_UNIX: EAFNOSUPPORT"),
    ),
    ("bind", Partial("AF_INET; SO_REUSEADDR/SO_REUSEPORT rules for TCP; a UDP port is taken once")),
    ("listen", Full),
    ("accept", Full),
    ("accept4", Full),
    ("getsockname", Full),
    ("connect", Full),
    ("getpeername", Full),
    (
        "setsockopt",
        Partial("the SOL_SOCKET, IPPROTO_TCP and IPPROTO_IP options servers set; tuning-only ones have no effect; others ENOPROTOOPT"),
    ),
    ("getsockopt", Partial("as setsockopt, plus SO_ERROR, SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ACCEPTCONN")),
];

/// The status of `name`, `None` for calls that return ENOSYS.
pub fn status(name: &str) -> Option<Status> {
    HANDLED.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The text of `docs/syscalls.md`.
#[cfg(test)]
pub fn document() -> String {
    use core::fmt::Write;
    let mut out = String::new();
    let full = HANDLED.iter().filter(|(_, s)| *s == Full).count();
    let partial = HANDLED
        .iter()
        .filter(|(_, s)| matches!(s, Partial(_)))
        .count();
    let refused = HANDLED
        .iter()
        .filter(|(_, s)| matches!(s, Refused(_)))
        .count();
    let total = super::table::ALL.len();
    let _ = writeln!(out, "# Linux system calls in OptiVolt\n");
    let _ = writeln!(
        out,
        "Generated from the kernel's x86-64 table (`<asm/unistd_64.h>`, see `tools/gen-syscall-table.py`) and \
         `crates/libos/src/syscall/status.rs` by `UPDATE_DOCS=1 cargo test -p optivolt-libos syscall_document`; \
         a test fails when this file is stale.\n"
    );
    let _ = writeln!(
        out,
        "{full} implemented, {partial} partially implemented, {refused} refused by design, {} not implemented (ENOSYS; \
         shown by `volt run --trace-syscalls`), of {total}.\n",
        total - full - partial - refused
    );
    let _ = writeln!(out, "| nr | name | status | notes |\n|---|---|---|---|");
    for (nr, name) in super::table::ALL {
        let (st, note) = match status(name) {
            Some(Full) => ("implemented", ""),
            Some(Partial(n)) => ("partial", n),
            Some(Refused(n)) => ("refused", n),
            None => ("ENOSYS", ""),
        };
        let _ = writeln!(out, "| {nr} | `{name}` | {st} | {note} |");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handled_call_exists_in_the_kernel_table() {
        for (name, _) in HANDLED {
            assert!(
                super::super::table::ALL.iter().any(|(_, n)| n == name),
                "{name} is not a Linux system call"
            );
        }
    }

    #[test]
    fn syscall_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/syscalls.md");
        let want = document();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(have == want, "docs/syscalls.md is stale: run UPDATE_DOCS=1 cargo test -p optivolt-libos syscall_document");
    }
}
