//! The system-call table: one row per call the library OS knows, which
//! drives dispatch, `docs/syscalls.md`, `--trace-syscalls` and the restart and
//! SIGPIPE rules. Adding a system call means one row here and one handler in
//! `linux/`. Calls without a row return ENOSYS.
//!
//! A row's handler decodes the raw arguments and calls the handler of its
//! family; it exists only in the guest build (the host build keeps the rest
//! of the row, for the document and the tracer's tests).
#[cfg(all(feature = "guest", not(feature = "net")))]
use super::linux::nonet;
#[cfg(all(feature = "guest", feature = "net"))]
use super::linux::socket as inet;
#[cfg(feature = "guest")]
use super::linux::{file as fs, misc::*, mm::*, poll, signal::*, thread as threads, time::*};
use super::status::Status::{self, *};
#[cfg(feature = "guest")]
use crate::errno::{ENOSYS, YIELD};
#[cfg(feature = "guest")]
use crate::task::{process::PID, sched, signal};
use crate::uapi::unistd::*;

/// What a handler returns: the value, or a negated errno (and the
/// dispatcher's control values, see `crate::errno`).
#[cfg(feature = "guest")]
pub type Handler = fn(
    &mut crate::kernel::Kernel,
    &[u64; 6],
    &crate::arch::entry::SyscallFrame,
) -> crate::errno::SysResult;
/// The host build has no kernel to call: rows carry this in its place.
#[cfg(not(feature = "guest"))]
#[derive(Clone, Copy, Debug)]
pub struct Handler;

/// A socket call's handler: the first expression with the network, the
/// second without it.
#[cfg(feature = "net")]
macro_rules! hnet {
    ($e:expr, $without:expr) => {
        h!($e)
    };
}
#[cfg(not(feature = "net"))]
macro_rules! hnet {
    ($e:expr, $without:expr) => {
        h!($without)
    };
}

/// A row's handler: the expression in the guest, nothing on the host.
macro_rules! h {
    ($e:expr) => {{
        #[cfg(feature = "guest")]
        let h: Handler = $e;
        #[cfg(not(feature = "guest"))]
        let h = Handler;
        h
    }};
}

/// How a call that failed with EPIPE raises SIGPIPE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigPipe {
    /// Never.
    No,
    /// Always (writes).
    Yes,
    /// Unless MSG_NOSIGNAL is set in the flags argument with this index (sends).
    UnlessNoSignal(usize),
}

/// What the dispatcher does with a call.
#[derive(Clone, Copy)]
pub enum Entry {
    /// Runs the handler.
    Call(Handler),
    /// rt_sigreturn: restores the interrupted context (the dispatcher does it).
    SigReturn,
}

/// One system call.
#[derive(Clone, Copy)]
pub struct Row {
    /// Its x86-64 number.
    pub nr: u64,
    /// Its name (checked against the kernel's table by a test).
    pub name: &'static str,
    /// How many arguments it takes (the tracer shows no more).
    pub arity: u8,
    /// What the library OS does with it (for `docs/syscalls.md`).
    pub status: Status,
    /// Restarted after a handler with SA_RESTART when a signal interrupts it
    /// (otherwise it fails with EINTR).
    pub restart: bool,
    /// Whether EPIPE comes with SIGPIPE.
    pub sigpipe: SigPipe,
    /// Which arguments are paths (traced as strings).
    pub paths: &'static [usize],
    /// Never returns (traced before it runs, as strace's "= ?").
    pub noreturn: bool,
    /// What runs it.
    pub entry: Entry,
}

const fn row(nr: u64, name: &'static str, arity: u8, status: Status, h: Handler) -> Row {
    Row {
        nr,
        name,
        arity,
        status,
        restart: false,
        sigpipe: SigPipe::No,
        paths: &[],
        noreturn: false,
        entry: Entry::Call(h),
    }
}

const fn sigreturn() -> Handler {
    h!(|_, _, _| Err(crate::errno::ENOSYS))
}

impl Row {
    const fn restart(mut self) -> Row {
        self.restart = true;
        self
    }
    const fn sigpipe(mut self) -> Row {
        self.sigpipe = SigPipe::Yes;
        self
    }
    const fn sigpipe_unless_flag(mut self, arg: usize) -> Row {
        self.sigpipe = SigPipe::UnlessNoSignal(arg);
        self
    }
    const fn paths(mut self, p: &'static [usize]) -> Row {
        self.paths = p;
        self
    }
    const fn noreturn(mut self) -> Row {
        self.noreturn = true;
        self
    }
    const fn special(mut self) -> Row {
        self.entry = Entry::SigReturn;
        self
    }
}

/// Calls the library OS does not implement but whose arguments the tracer shows.
const ENOSYS_HANDLER: Handler = h!(|_, _, _| Err(crate::errno::ENOSYS));

#[cfg(feature = "guest")]
const AT_FDCWD: u64 = crate::uapi::fcntl::AT_FDCWD as u64;

/// Every row, by number.
pub const ROWS: &[Row] = &[
    row(READ, "read", 3, Partial("stdin is empty (end of file)"), h!(|k, a, _| fs::read(k, a[0], a[1], a[2], None))).restart(),
    row(WRITE, "write", 3, Full, h!(|k, a, _| fs::write(k, a[0], a[1], a[2], None))).restart().sigpipe(),
    row(OPEN, "open", 3, Full, h!(|k, a, _| fs::openat(k, AT_FDCWD, a[0], a[1] as u32, a[2] as u32))).paths(&[0]),
    row(CLOSE, "close", 1, Full, h!(|k, a, _| fs::close(k, a[0]))),
    row(STAT, "stat", 2, Full, h!(|k, a, _| fs::fstatat(k, AT_FDCWD, a[0], a[1], 0))).paths(&[0]),
    row(FSTAT, "fstat", 2, Full, h!(|k, a, _| fs::fstat(k, a[0], a[1]))),
    row(LSTAT, "lstat", 2, Full, h!(|k, a, _| fs::fstatat(k, AT_FDCWD, a[0], a[1], 0x100))).paths(&[0]),
    row(POLL, "poll", 3, Full, h!(|k, a, _| poll::poll(
            k,
            a[0],
            a[1],
            if (a[2] as i32) < 0 {
                -1
            } else {
                a[2] as i32 as i64 * 1_000_000
            },
        ))),
    row(LSEEK, "lseek", 3, Full, h!(|k, a, _| fs::lseek(k, a[0], a[1] as i64, a[2] as u32))),
    row(MMAP, "mmap", 6, Partial( "file mappings are private copies; MAP_SHARED writes to files are not written back", ), h!(|k, a, _| sys_mmap(k, a[0], a[1], a[2] as u32, a[3] as u32, a[4], a[5]))),
    row(MPROTECT, "mprotect", 3, Full, h!(|k, a, _| sys_mprotect(k, a[0], a[1], a[2] as u32))),
    row(MUNMAP, "munmap", 2, Full, h!(|k, a, _| sys_munmap(k, a[0], a[1]))),
    row(BRK, "brk", 1, Full, h!(|k, a, _| Ok(k.mem.set_brk(a[0]) as i64))),
    row(RT_SIGACTION, "rt_sigaction", 4, Full, h!(|k, a, _| sys_rt_sigaction(k, a[0], a[1], a[2], a[3]))),
    row(RT_SIGPROCMASK, "rt_sigprocmask", 4, Full, h!(|k, a, _| sys_rt_sigprocmask(k, a[0], a[1], a[2], a[3]))),
    row(RT_SIGRETURN, "rt_sigreturn", 0, Full, sigreturn()).special(),
    row(IOCTL, "ioctl", 3, Partial("FIONBIO, FIONREAD, FIOCLEX, FIONCLEX; nothing is a terminal (ENOTTY)"), h!(|k, a, _| fs::ioctl(k, a[0], a[1], a[2]))),
    row(PREAD64, "pread64", 4, Full, h!(|k, a, _| fs::read(k, a[0], a[1], a[2], Some(nonneg(a[3])?)))).restart(),
    row(PWRITE64, "pwrite64", 4, Full, h!(|k, a, _| fs::write(k, a[0], a[1], a[2], Some(nonneg(a[3])?)))).restart().sigpipe(),
    row(READV, "readv", 3, Full, h!(|k, a, _| fs::vectored(k, a[0], a[1], a[2], None, false))).restart(),
    row(WRITEV, "writev", 3, Full, h!(|k, a, _| fs::vectored(k, a[0], a[1], a[2], None, true))).restart().sigpipe(),
    row(ACCESS, "access", 2, Partial("the process is root: only existence and execute bits are checked"), h!(|k, a, _| fs::faccessat(k, AT_FDCWD, a[0], a[1], 0))).paths(&[0]),
    row(PIPE, "pipe", 1, Full, h!(|k, a, _| poll::pipe2(k, a[0], 0))),
    row(SELECT, "select", 5, Full, h!(|k, a, _| {
            let t = if a[4] == 0 {
                -1
            } else {
                let [s, us]: [i64; 2] = k.mem.read_obj(a[4])?;
                s.saturating_mul(1_000_000_000)
                    .saturating_add(us.saturating_mul(1000))
            };
            poll::select(k, a[0], a[1], a[2], a[3], t)
        })),
    row(SCHED_YIELD, "sched_yield", 0, Full, h!(|_, _, _| Err(YIELD))),
    row(MREMAP, "mremap", 5, Partial("moves page-table entries, never copies; no MREMAP_DONTUNMAP"), h!(|k, a, _| sys_mremap(k, a[0], a[1], a[2], a[3], a[4]))),
    row(MADVISE, "madvise", 3, Partial( "DONTNEED and FREE release the pages to the host; other advice is accepted and ignored", ), h!(|k, a, _| sys_madvise(k, a[0], a[1], a[2]))),
    row(DUP, "dup", 1, Full, h!(|k, a, _| fs::dup(k, a[0]))),
    row(DUP2, "dup2", 2, Full, h!(|k, a, _| fs::dup3(k, a[0], a[1], 0, true))),
    row(PAUSE, "pause", 0, Full, h!(|k, _, _| sys_pause(k))),
    row(NANOSLEEP, "nanosleep", 2, Partial("an interrupted sleep does not report the remaining time"), h!(|k, a, _| threads::nanosleep(k, 1, 0, a[0], a[1]))),
    row(GETITIMER, "getitimer", 2, Partial("ITIMER_REAL; VIRTUAL and PROF: EINVAL"), h!(|k, a, _| sys_getitimer(k, a[0], a[1]))),
    row(ALARM, "alarm", 1, Partial("SIGALRM is noticed at the next scheduling point or tick (10 ms) while the program computes"), h!(|k, a, _| sys_alarm(k, a[0]))),
    row(SETITIMER, "setitimer", 3, Partial("ITIMER_REAL, noticed like alarm's; VIRTUAL and PROF: EINVAL"), h!(|k, a, _| sys_setitimer(k, a[0], a[1], a[2]))),
    row(GETPID, "getpid", 0, Full, h!(|_, _, _| Ok(PID))),
    row(SOCKET, "socket", 3, Partial("AF_INET SOCK_STREAM (TCP) and SOCK_DGRAM (UDP); AF_INET6 and AF_UNIX: EAFNOSUPPORT"), hnet!(|k, a, _| inet::socket(k, a[0], a[1], a[2]), |_, _, _| nonet::socket())),
    row(CONNECT, "connect", 3, Full, hnet!(|k, a, _| inet::connect(k, a[0], a[1], a[2]), |k, a, _| nonet::not_a_socket(k, a[0]))),
    row(ACCEPT, "accept", 3, Full, hnet!(|k, a, _| inet::accept4(k, a[0], a[1], a[2], 0), |k, a, _| nonet::not_a_socket(k, a[0]))),
    row(SENDTO, "sendto", 6, Partial("AF_INET TCP and UDP, socket pairs; MSG_DONTWAIT, MSG_NOSIGNAL"), hnet!(|k, a, _| if inet::is_inet(k, a[0]) { inet::sendto(k, a[0], a[1], a[2], a[3], a[4], a[5]) } else { poll::sock_io(k, a[0], a[1], a[2], a[3], true) }, |k, a, _| poll::sock_io(k, a[0], a[1], a[2], a[3], true))).restart().sigpipe_unless_flag(3),
    row(RECVFROM, "recvfrom", 6, Partial("AF_INET TCP and UDP, socket pairs; MSG_PEEK, MSG_DONTWAIT, MSG_TRUNC"), hnet!(|k, a, _| if inet::is_inet(k, a[0]) { {
            inet::recvfrom(k, a[0], a[1], a[2], a[3], a[4], a[5])
        } } else { poll::sock_io(k, a[0], a[1], a[2], a[3], false) }, |k, a, _| poll::sock_io(k, a[0], a[1], a[2], a[3], false))).restart(),
    row(SENDMSG, "sendmsg", 6, Partial("AF_INET; no ancillary data"), hnet!(|k, a, _| crate::syscall::linux::msg::sendmsg(k, a[0], a[1], a[2]), |k, a, _| nonet::not_a_socket(k, a[0]))).sigpipe_unless_flag(2),
    row(RECVMSG, "recvmsg", 6, Partial("AF_INET; no ancillary data (msg_controllen comes back 0)"), hnet!(|k, a, _| crate::syscall::linux::msg::recvmsg(k, a[0], a[1], a[2]), |k, a, _| nonet::not_a_socket(k, a[0]))),
    row(SHUTDOWN, "shutdown", 2, Full, h!(|k, a, _| poll::shutdown(k, a[0], a[1]))),
    row(BIND, "bind", 3, Partial("AF_INET; SO_REUSEADDR/SO_REUSEPORT rules for TCP; a UDP port is taken once"), hnet!(|k, a, _| inet::bind(k, a[0], a[1], a[2]), |k, a, _| nonet::not_a_socket(k, a[0]))),
    row(LISTEN, "listen", 2, Full, hnet!(|k, a, _| inet::listen(k, a[0], a[1]), |k, a, _| nonet::not_a_socket(k, a[0]))),
    row(GETSOCKNAME, "getsockname", 6, Full, hnet!(|k, a, _| inet::getsockname(k, a[0], a[1], a[2]), |k, a, _| nonet::not_a_socket(k, a[0]))),
    row(GETPEERNAME, "getpeername", 6, Full, hnet!(|k, a, _| inet::getpeername(k, a[0], a[1], a[2]), |k, a, _| nonet::not_a_socket(k, a[0]))),
    row(SOCKETPAIR, "socketpair", 4, Partial("AF_UNIX SOCK_STREAM only (AF_UNIX socket() is not supported)"), h!(|k, a, _| poll::socketpair(k, a[0], a[1], a[2], a[3]))),
    row(SETSOCKOPT, "setsockopt", 6, Partial("the SOL_SOCKET, IPPROTO_TCP and IPPROTO_IP options servers set; tuning-only ones have no effect; others ENOPROTOOPT"), hnet!(|k, a, _| {
            crate::syscall::linux::sockopt::setsockopt(k, a[0], a[1], a[2], a[3], a[4])
        }, |k, a, _| nonet::not_a_socket(k, a[0]))),
    row(GETSOCKOPT, "getsockopt", 6, Partial("as setsockopt, plus SO_ERROR, SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ACCEPTCONN"), hnet!(|k, a, _| {
            crate::syscall::linux::sockopt::getsockopt(k, a[0], a[1], a[2], a[3], a[4])
        }, |k, a, _| nonet::not_a_socket(k, a[0]))),
    row(CLONE, "clone", 5, Partial("threads only (CLONE_VM|CLONE_THREAD|CLONE_SIGHAND); processes: ENOSYS"), h!(|k, a, frame| threads::clone(k, frame, a[0], a[1], a[2], a[3], a[4]))),
    row(FORK, "fork", 0, Refused("ENOSYS: a unikernel has one process"), h!(|_, _, _| Err(ENOSYS))),
    row(VFORK, "vfork", 0, Refused("ENOSYS: a unikernel has one process"), h!(|_, _, _| Err(ENOSYS))),
    row(EXIT, "exit", 1, Full, h!(|k, a, _| sys_exit_thread(k, a[0] as i32))).noreturn(),
    row(KILL, "kill", 2, Partial("only the unikernel's own process (pid 1)"), h!(|k, a, _| threads::kill(k, a[0] as i64, a[1]))),
    row(UNAME, "uname", 1, Full, h!(|k, a, _| sys_uname(k, a[0]))),
    row(FCNTL, "fcntl", 3, Partial("locks always succeed (no other process); no F_SETPIPE_SZ, leases, notify"), h!(|k, a, _| fs::fcntl(k, a[0], a[1], a[2]))),
    row(FSYNC, "fsync", 1, Full, h!(|k, a, _| fs::fsync(k, a[0]))),
    row(FDATASYNC, "fdatasync", 1, Full, h!(|k, a, _| fs::fsync(k, a[0]))),
    row(TRUNCATE, "truncate", 2, Full, h!(|k, a, _| fs::truncate(k, a[0], a[1] as i64))).paths(&[0]),
    row(FTRUNCATE, "ftruncate", 2, Full, h!(|k, a, _| fs::ftruncate(k, a[0], a[1] as i64))),
    row(GETCWD, "getcwd", 2, Full, h!(|k, a, _| fs::getcwd(k, a[0], a[1]))),
    row(CHDIR, "chdir", 1, Full, h!(|k, a, _| fs::chdir(k, a[0]))).paths(&[0]),
    row(FCHDIR, "fchdir", 1, Full, h!(|k, a, _| fs::fchdir(k, a[0]))),
    row(RENAME, "rename", 2, Full, h!(|k, a, _| fs::renameat2(k, AT_FDCWD, a[0], AT_FDCWD, a[1], 0))).paths(&[0, 1]),
    row(MKDIR, "mkdir", 2, Full, h!(|k, a, _| fs::mkdirat(k, AT_FDCWD, a[0], a[1] as u32))).paths(&[0]),
    row(RMDIR, "rmdir", 1, Full, h!(|k, a, _| fs::unlinkat(k, AT_FDCWD, a[0], 0x200))).paths(&[0]),
    row(CREAT, "creat", 2, Full, h!(|k, a, _| fs::openat(k, AT_FDCWD, a[0], 0o1101, a[1] as u32))).paths(&[0]),
    row(LINK, "link", 2, Partial("in volumes; EMLINK in the VFS (no hard links)"), h!(|k, a, _| fs::linkat(k, AT_FDCWD, a[0], AT_FDCWD, a[1]))).paths(&[0, 1]),
    row(UNLINK, "unlink", 1, Full, h!(|k, a, _| fs::unlinkat(k, AT_FDCWD, a[0], 0))).paths(&[0]),
    row(SYMLINK, "symlink", 2, Full, h!(|k, a, _| fs::symlinkat(k, a[0], AT_FDCWD, a[1]))).paths(&[0, 1]),
    row(READLINK, "readlink", 3, Full, h!(|k, a, _| fs::readlinkat(k, AT_FDCWD, a[0], a[1], a[2]))).paths(&[0]),
    row(CHMOD, "chmod", 2, Full, h!(|k, a, _| fs::fchmodat(k, AT_FDCWD, a[0], a[1] as u32))).paths(&[0]),
    row(FCHMOD, "fchmod", 2, Full, h!(|k, a, _| fs::fchmod(k, a[0], a[1] as u32))),
    row(CHOWN, "chown", 6, Partial("accepted, ownership unchanged"), h!(|_, _, _| Ok(0))),
    row(FCHOWN, "fchown", 6, Partial("accepted, ownership unchanged"), h!(|_, _, _| Ok(0))),
    row(LCHOWN, "lchown", 6, Partial("accepted, ownership unchanged"), h!(|_, _, _| Ok(0))),
    row(UMASK, "umask", 1, Full, h!(|k, a, _| Ok(core::mem::replace(&mut k.proc.umask, a[0] as u32 & 0o777) as i64))),
    row(GETTIMEOFDAY, "gettimeofday", 2, Full, h!(|k, a, _| sys_gettimeofday(k, a[0]))),
    row(GETRLIMIT, "getrlimit", 2, Partial("fixed limits (stack 8 MiB, 1024 files)"), h!(|k, a, _| sys_prlimit(k, a[0], a[1]))),
    row(GETUID, "getuid", 0, Full, h!(|_, _, _| Ok(0))),
    row(GETGID, "getgid", 0, Full, h!(|_, _, _| Ok(0))),
    row(GETEUID, "geteuid", 0, Full, h!(|_, _, _| Ok(0))),
    row(GETEGID, "getegid", 0, Full, h!(|_, _, _| Ok(0))),
    row(GETPPID, "getppid", 0, Full, h!(|_, _, _| Ok(0))),
    row(SIGALTSTACK, "sigaltstack", 2, Full, h!(|k, a, frame| signal::sigaltstack(&mut k.mem, a[0], a[1], frame.rsp))),
    row(UTIME, "utime", 6, Partial("accepted, times unchanged"), h!(|_, _, _| Ok(0))),
    row(GETPRIORITY, "getpriority", 6, Partial("always 20"), h!(|_, _, _| Ok(20))),
    row(SETPRIORITY, "setpriority", 6, Partial("accepted, no effect"), h!(|_, _, _| Ok(0))),
    row(SCHED_GETPARAM, "sched_getparam", 6, Partial("always 0"), h!(|_, _, _| Ok(0))),
    row(SCHED_GETSCHEDULER, "sched_getscheduler", 6, Partial("always SCHED_OTHER"), h!(|_, _, _| Ok(0))),
    row(ARCH_PRCTL, "arch_prctl", 2, Partial("ARCH_SET_FS/ARCH_GET_FS; GS: EINVAL"), h!(|k, a, _| sys_arch_prctl(k, a[0], a[1]))),
    row(SYNC, "sync", 0, Full, h!(|_, _, _| Ok(0))),
    row(GETTID, "gettid", 0, Full, h!(|_, _, _| Ok(sched::current_tid() as i64))),
    row(TKILL, "tkill", 2, Full, h!(|k, a, _| threads::tgkill(k, 1, a[0], a[1]))),
    row(TIME, "time", 1, Full, h!(|k, a, _| sys_time(k, a[0]))),
    row(FUTEX, "futex", 6, Partial( "WAIT, WAKE, WAIT_BITSET, WAKE_BITSET, REQUEUE, CMP_REQUEUE, WAKE_OP; no PI futexes", ), h!(|k, a, _| threads::futex(k, a[0], a[1] as u32, a[2] as u32, a[3], a[4], a[5] as u32))).restart(),
    row(SCHED_SETAFFINITY, "sched_setaffinity", 3, Partial("accepted: there is one vCPU"), h!(|_, _, _| Ok(0))),
    row(SCHED_GETAFFINITY, "sched_getaffinity", 3, Full, h!(|k, a, _| sys_sched_getaffinity(k, a[1], a[2]))),
    row(EPOLL_CREATE, "epoll_create", 6, Full, h!(|k, _, _| poll::epoll_create(k, 0))),
    row(GETDENTS64, "getdents64", 3, Full, h!(|k, a, _| fs::getdents64(k, a[0], a[1], a[2]))),
    row(SET_TID_ADDRESS, "set_tid_address", 1, Full, h!(|_, a, _| {
            sched::with_current(|t| t.clear_child_tid = a[0]);
            Ok(sched::current_tid() as i64)
        })),
    row(FADVISE64, "fadvise64", 6, Partial("accepted, no effect"), h!(|k, a, _| k.fds.get(a[0]).map(|_| 0))),
    row(CLOCK_GETTIME, "clock_gettime", 2, Full, h!(|k, a, _| sys_clock_gettime(k, a[0], a[1]))),
    row(CLOCK_GETRES, "clock_getres", 2, Full, h!(|k, a, _| sys_clock_getres(k, a[0], a[1]))),
    row(CLOCK_NANOSLEEP, "clock_nanosleep", 4, Partial("an interrupted sleep does not report the remaining time"), h!(|k, a, _| threads::nanosleep(k, a[0], a[1], a[2], a[3]))),
    row(EXIT_GROUP, "exit_group", 1, Full, h!(|_, a, _| sys_exit(a[0] as i32))).noreturn(),
    row(EPOLL_WAIT, "epoll_wait", 4, Full, h!(|k, a, _| {
            poll::epoll_wait(k, a[0], a[1], a[2] as i32, a[3] as i32 as i64)
        })),
    row(EPOLL_CTL, "epoll_ctl", 4, Full, h!(|k, a, _| poll::epoll_ctl(k, a[0], a[1] as u32, a[2], a[3]))),
    row(TGKILL, "tgkill", 3, Full, h!(|k, a, _| threads::tgkill(k, a[0], a[1], a[2]))),
    row(UTIMES, "utimes", 6, Partial("accepted, times unchanged"), h!(|_, _, _| Ok(0))),
    row(OPENAT, "openat", 4, Partial("no O_TMPFILE"), h!(|k, a, _| fs::openat(k, a[0], a[1], a[2] as u32, a[3] as u32))).paths(&[1]),
    row(MKDIRAT, "mkdirat", 3, Full, h!(|k, a, _| fs::mkdirat(k, a[0], a[1], a[2] as u32))).paths(&[1]),
    row(FCHOWNAT, "fchownat", 6, Partial("accepted, ownership unchanged"), h!(|_, _, _| Ok(0))),
    row(FUTIMESAT, "futimesat", 6, Partial("accepted, times unchanged"), h!(|_, _, _| Ok(0))),
    row(NEWFSTATAT, "newfstatat", 4, Full, h!(|k, a, _| fs::fstatat(k, a[0], a[1], a[2], a[3]))).paths(&[1]),
    row(UNLINKAT, "unlinkat", 3, Full, h!(|k, a, _| fs::unlinkat(k, a[0], a[1], a[2]))).paths(&[1]),
    row(RENAMEAT, "renameat", 4, Full, h!(|k, a, _| fs::renameat2(k, a[0], a[1], a[2], a[3], 0))).paths(&[1, 3]),
    row(LINKAT, "linkat", 6, Partial("in volumes; EMLINK in the VFS (no hard links)"), h!(|k, a, _| fs::linkat(k, a[0], a[1], a[2], a[3]))).paths(&[1, 3]),
    row(SYMLINKAT, "symlinkat", 3, Full, h!(|k, a, _| fs::symlinkat(k, a[0], a[1], a[2]))).paths(&[0, 2]),
    row(READLINKAT, "readlinkat", 4, Full, h!(|k, a, _| fs::readlinkat(k, a[0], a[1], a[2], a[3]))).paths(&[1]),
    row(FCHMODAT, "fchmodat", 3, Full, h!(|k, a, _| fs::fchmodat(k, a[0], a[1], a[2] as u32))).paths(&[1]),
    row(FACCESSAT, "faccessat", 4, Partial("the process is root: only existence and execute bits are checked"), h!(|k, a, _| fs::faccessat(k, a[0], a[1], a[2], 0))).paths(&[1]),
    row(PSELECT6, "pselect6", 6, Partial("the signal mask argument is not applied"), h!(|k, a, _| {
            let t = poll::timespec_ns(k, a[4])?;
            poll::select(k, a[0], a[1], a[2], a[3], t)
        })),
    row(PPOLL, "ppoll", 4, Partial("the signal mask argument is not applied"), h!(|k, a, _| {
            let t = poll::timespec_ns(k, a[2])?;
            poll::poll(k, a[0], a[1], t)
        })),
    row(SET_ROBUST_LIST, "set_robust_list", 2, Partial("recorded; lists are not walked at thread exit"), h!(|k, a, _| {
            k.proc.robust_list = a[0];
            Ok(0)
        })),
    row(UTIMENSAT, "utimensat", 6, Partial("accepted, times unchanged"), h!(|_, _, _| Ok(0))),
    row(EPOLL_PWAIT, "epoll_pwait", 5, Partial("the signal mask argument is not applied"), h!(|k, a, _| {
            poll::epoll_wait(k, a[0], a[1], a[2] as i32, a[3] as i32 as i64)
        })),
    row(TIMERFD_CREATE, "timerfd_create", 2, Partial("MONOTONIC, REALTIME, BOOTTIME clocks; no TFD_TIMER_CANCEL_ON_SET"), h!(|k, a, _| poll::timerfd_create(k, a[0], a[1] as u32))),
    row(EVENTFD, "eventfd", 6, Full, h!(|k, a, _| poll::eventfd2(k, a[0] as u32, 0))),
    row(TIMERFD_SETTIME, "timerfd_settime", 4, Full, h!(|k, a, _| poll::timerfd_settime(k, a[0], a[1] as u32, a[2], a[3]))),
    row(TIMERFD_GETTIME, "timerfd_gettime", 2, Full, h!(|k, a, _| poll::timerfd_gettime(k, a[0], a[1]))),
    row(ACCEPT4, "accept4", 4, Full, hnet!(|k, a, _| inet::accept4(k, a[0], a[1], a[2], a[3]), |k, a, _| nonet::not_a_socket(k, a[0]))),
    row(EVENTFD2, "eventfd2", 2, Full, h!(|k, a, _| poll::eventfd2(k, a[0] as u32, a[1] as u32))),
    row(EPOLL_CREATE1, "epoll_create1", 1, Full, h!(|k, a, _| poll::epoll_create(k, a[0] as u32))),
    row(DUP3, "dup3", 3, Full, h!(|k, a, _| fs::dup3(k, a[0], a[1], a[2], false))),
    row(PIPE2, "pipe2", 2, Full, h!(|k, a, _| poll::pipe2(k, a[0], a[1] as u32))),
    row(PREADV, "preadv", 4, Full, h!(|k, a, _| fs::vectored(k, a[0], a[1], a[2], Some(nonneg(a[3])?), false))),
    row(PWRITEV, "pwritev", 4, Full, h!(|k, a, _| fs::vectored(k, a[0], a[1], a[2], Some(nonneg(a[3])?), true))).sigpipe(),
    row(PRLIMIT64, "prlimit64", 4, Partial("fixed limits (stack 8 MiB, 1024 files); new limits are ignored"), h!(|k, a, _| sys_prlimit(k, a[1], a[3]))),
    row(SYNCFS, "syncfs", 6, Full, h!(|k, a, _| k.fds.get(a[0]).map(|_| 0))),
    row(RENAMEAT2, "renameat2", 5, Partial("RENAME_NOREPLACE only"), h!(|k, a, _| fs::renameat2(k, a[0], a[1], a[2], a[3], a[4]))).paths(&[1, 3]),
    row(GETRANDOM, "getrandom", 3, Full, h!(|k, a, _| sys_getrandom(k, a[0], a[1]))),
    row(STATX, "statx", 5, Full, h!(|k, a, _| fs::statx(k, a[0], a[1], a[2], a[4]))).paths(&[1]),
    row(CLONE3, "clone3", 6, Partial("threads only, as clone"), h!(|k, a, frame| threads::clone3(k, frame, a[0], a[1]))),
    row(FACCESSAT2, "faccessat2", 4, Partial("the process is root: only existence and execute bits are checked"), h!(|k, a, _| fs::faccessat(k, a[0], a[1], a[2], a[3]))).paths(&[1]),
    row(EPOLL_PWAIT2, "epoll_pwait2", 6, Partial("the signal mask argument is not applied"), h!(|k, a, _| {
            let t = poll::timespec_ns(k, a[3])?;
            poll::epoll_wait(
                k,
                a[0],
                a[1],
                a[2] as i32,
                if t < 0 { -1 } else { t / 1_000_000 },
            )
        })),
    row(EXECVE, "execve", 6, Missing, ENOSYS_HANDLER).paths(&[0]),
    row(SETRLIMIT, "setrlimit", 2, Missing, ENOSYS_HANDLER),
    row(MOUNT, "mount", 5, Missing, ENOSYS_HANDLER),
    row(RSEQ, "rseq", 4, Missing, ENOSYS_HANDLER),
];

/// The largest system-call number with a row, plus one.
const SLOTS: usize = 512;

/// Row index by number (`u16::MAX`: no row), computed at compile time.
static INDEX: [u16; SLOTS] = {
    let mut t = [u16::MAX; SLOTS];
    let mut i = 0;
    while i < ROWS.len() {
        t[ROWS[i].nr as usize] = i as u16;
        i += 1;
    }
    t
};

/// The row of call `nr`.
pub fn lookup(nr: u64) -> Option<&'static Row> {
    let i = *INDEX.get(usize::try_from(nr).ok()?)?;
    ROWS.get(i as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_a_linux_system_call_under_its_own_name() {
        for r in ROWS {
            assert_eq!(
                crate::uapi::unistd::name(r.nr),
                Some(r.name),
                "row {}",
                r.nr
            );
        }
    }

    #[test]
    fn no_call_has_two_rows_and_each_is_found_by_number() {
        for (i, r) in ROWS.iter().enumerate() {
            assert!(ROWS[..i].iter().all(|o| o.nr != r.nr), "{} twice", r.name);
            assert_eq!(lookup(r.nr).map(|f| f.nr), Some(r.nr));
        }
        assert!(lookup(9999).is_none());
        assert!(lookup(u64::MAX).is_none());
    }

    #[test]
    fn arities_and_path_arguments_stay_within_six_registers() {
        for r in ROWS {
            assert!(r.arity <= 6, "{}", r.name);
            assert!(r.paths.iter().all(|&p| p < r.arity as usize), "{}", r.name);
        }
    }
}
