//! The Linux system-call dispatcher. Anything not implemented returns -ENOSYS
//! (and shows up in `--trace-syscalls`), so programs can fall back.
use optivolt_abi::layout::USER_TOP;

use crate::arch::entry::SyscallFrame;
use crate::arch::stamp;
use crate::arch::{cpu, hypercall};
use crate::drivers::console;
use crate::errno::*;
use crate::kernel::{Kernel, KERNEL};
use crate::mm::vma::{Vma, VmaKind, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::mm::{page_up, PAGE};
use crate::syscall::linux::file as fs;
use crate::syscall::linux::{poll, socket as inet, thread as threads};
use crate::syscall::table as nr;
use crate::syscall::trace;
use crate::task::process::{SigAction, NSIG, PID};
use crate::task::{sched, signal};
use crate::time;
use crate::util::BufWriter;

type Ret = Result<i64, i64>;

/// Returned by `exit` of one thread: the dispatcher ends the thread.
const EXIT_THREAD: i64 = 1 << 41;
/// Returned by `sched_yield`: the dispatcher yields, then returns 0.
const YIELD: i64 = 1 << 42;

/// Called by `ov_syscall_handler` with the saved registers; the result goes to RAX.
#[no_mangle]
extern "C" fn ov_syscall_dispatch(frame: &mut SyscallFrame) {
    let n = frame.regs.rax;
    let args = [
        frame.regs.rdi,
        frame.regs.rsi,
        frame.regs.rdx,
        frame.regs.r10,
        frame.regs.r8,
        frame.regs.r9,
    ];
    if n == nr::RT_SIGRETURN {
        let addr = frame as *mut SyscallFrame as u64;
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else { return };
        let ctx = signal::UserContext {
            regs: &mut frame.regs,
            rip: &mut frame.rip,
            rflags: &mut frame.rflags,
            rsp: &mut frame.rsp,
            fx: fx_area(addr),
        };
        let sp = *ctx.rsp;
        if let Err(e) = signal::sigreturn(&mut k.mem, ctx) {
            drop(guard);
            // As Linux: a corrupt signal frame kills the process with SIGSEGV.
            console::kernel_log(format_args!(
                "optivolt: rt_sigreturn with a bad frame at {sp:#x} (error {e}): SIGSEGV\n"
            ));
            stamp(|t| &mut t.app_exit);
            hypercall::exit(128 + 11);
        }
        drop(guard);
        // RAX is the interrupted context's; deliver what else is pending.
        deliver_to(frame);
        return;
    }
    loop {
        // The kernel lock is held for one attempt only, never across a switch.
        let (result, trace) = {
            let mut guard = KERNEL.lock();
            let Some(k) = guard.as_mut() else {
                crate::arch::hypercall::abort(b"system call before the kernel was initialised")
            };
            if k.trace && (n == nr::EXIT || n == nr::EXIT_GROUP) {
                // These do not return: show them first, as strace does ("= ?").
                console::kernel_log(format_args!(
                    "{}({}) = ?\n",
                    crate::syscall::table::name(n).unwrap_or("exit"),
                    args[0] as i32
                ));
            }
            (dispatch(k, n, &args, frame), k.trace)
        };
        if result != Err(sched::BLOCKED) {
            sched::call_done();
        }
        let ret = match result {
            Err(sched::BLOCKED) => {
                sched::schedule();
                if sched::interrupted() {
                    sched::call_done();
                    if restarts(n) {
                        // SA_RESTART: run the handler, then the `syscall`
                        // instruction again (RIP back over it, RAX = number).
                        frame.rip -= 2;
                        frame.regs.rax = n;
                        deliver_to(frame);
                        return;
                    }
                    // A signal arrived while waiting: the call fails with EINTR.
                    finish(frame, n, &args, -EINTR, trace);
                    return;
                }
                continue;
            }
            Err(EXIT_THREAD) => sched::exit_current(),
            Err(YIELD) => {
                sched::yield_now();
                0
            }
            Ok(v) => v,
            Err(e) => -e,
        };
        finish(frame, n, &args, ret, trace);
        return;
    }
}

/// Whether the interrupted call `n` is restarted after the handler of the
/// signal about to be delivered: Linux restarts these with SA_RESTART
/// (sleeps and poll/select/epoll always fail with EINTR).
fn restarts(n: u64) -> bool {
    const SA_RESTART: u64 = 0x1000_0000;
    let restartable = matches!(
        n,
        nr::READ
            | nr::READV
            | nr::WRITE
            | nr::WRITEV
            | nr::PREAD64
            | nr::PWRITE64
            | nr::FUTEX
            | nr::RECVFROM
            | nr::SENDTO
    );
    if !restartable {
        return false;
    }
    let Some(sig) = sched::peek_signal() else {
        return false;
    };
    let guard = KERNEL.lock();
    guard.as_ref().is_some_and(|k| {
        let a = k.proc.actions[sig as usize - 1];
        a.handler > 1 && a.flags & SA_RESTART != 0
    })
}

/// Completes a system call: trace, result, then pending signals.
fn finish(frame: &mut SyscallFrame, n: u64, args: &[u64; 6], ret: i64, trace: bool) {
    if trace {
        let mut buf = [0u8; 384];
        let mut w = BufWriter::new(&mut buf);
        {
            let mut guard = KERNEL.lock();
            let fetch = |p: u64| guard.as_mut().and_then(|k| k.mem.read_cstr(p, 4096).ok());
            let _ = trace::format_call_with(&mut w, n, args, ret, fetch);
        }
        let len = w.len();
        console::write_kernel(2, &buf[..len]);
    }
    frame.regs.rax = ret as u64;
    if ret == -EPIPE && raises_sigpipe(n, args) {
        sched::send_signal(sched::current_tid(), SIGPIPE);
    }
    deliver_to(frame);
}

/// [`deliver_pending`] on the context a system call returns to.
fn deliver_to(frame: &mut SyscallFrame) {
    deliver_pending(
        frame as *mut SyscallFrame as u64,
        &mut frame.regs,
        &mut frame.rip,
        &mut frame.rflags,
        &mut frame.rsp,
    );
}

const SIGPIPE: u32 = 13;

/// Whether EPIPE from call `n` comes with SIGPIPE, as on Linux: writes to a
/// pipe or socket whose other end is gone, unless a send asked for
/// MSG_NOSIGNAL.
fn raises_sigpipe(n: u64, args: &[u64; 6]) -> bool {
    const MSG_NOSIGNAL: u64 = 0x4000;
    match n {
        nr::WRITE | nr::WRITEV | nr::PWRITE64 | nr::PWRITEV | nr::PWRITEV2 => true,
        nr::SENDTO => args[3] & MSG_NOSIGNAL == 0,
        nr::SENDMSG => args[2] & MSG_NOSIGNAL == 0,
        _ => false,
    }
}

/// The FXSAVE image the entry code saved below a frame at `frame_addr`.
fn fx_area(frame_addr: u64) -> &'static mut [u8; 512] {
    // SAFETY: every entry path (system call, timer, exception) aligns the
    // stack below its register frame down to 16 bytes and FXSAVEs 512 bytes
    // there; the area lives until the frame is popped, after this returns.
    unsafe { &mut *(((frame_addr & !15) - 512) as *mut [u8; 512]) }
}

/// Delivers the running thread's pending signals into a user context.
pub fn deliver_pending(
    frame_addr: u64,
    regs: &mut optivolt_abi::hypercall::Registers,
    rip: &mut u64,
    rflags: &mut u64,
    rsp: &mut u64,
) {
    while let Some(sig) = sched::take_signal() {
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else { return };
        let ctx = signal::UserContext {
            regs: &mut *regs,
            rip: &mut *rip,
            rflags: &mut *rflags,
            rsp: &mut *rsp,
            fx: fx_area(frame_addr),
        };
        let info = signal::Info {
            code: -6,
            ..Default::default()
        };
        if let Err(status) = signal::deliver(&mut k.mem, &mut k.proc, k.trace, sig, info, ctx) {
            drop(guard);
            console::kernel_log(format_args!(
                "optivolt: the application was terminated by signal {sig} (default action)\n"
            ));
            stamp(|t| &mut t.app_exit);
            hypercall::exit(status);
        }
    }
}

/// The timer interrupt, taken in application code: let others run, then
/// deliver what was sent to this thread meanwhile.
#[no_mangle]
extern "C" fn ov_timer_dispatch(frame: &mut crate::arch::entry::ExceptionFrame) {
    crate::net::stack::tick_poll();
    sched::yield_now();
    let addr = frame as *mut _ as u64;
    deliver_pending(
        addr,
        &mut frame.regs,
        &mut frame.rip,
        &mut frame.rflags,
        &mut frame.rsp,
    );
}

fn dispatch(k: &mut Kernel, n: u64, a: &[u64; 6], frame: &SyscallFrame) -> Ret {
    const AT_FDCWD: u64 = fs::AT_FDCWD as u64;
    match n {
        // Files.
        nr::READ => fs::read(k, a[0], a[1], a[2], None),
        nr::WRITE => fs::write(k, a[0], a[1], a[2], None),
        nr::PREAD64 => fs::read(k, a[0], a[1], a[2], Some(nonneg(a[3])?)),
        nr::PWRITE64 => fs::write(k, a[0], a[1], a[2], Some(nonneg(a[3])?)),
        nr::READV => fs::vectored(k, a[0], a[1], a[2], None, false),
        nr::WRITEV => fs::vectored(k, a[0], a[1], a[2], None, true),
        nr::PREADV => fs::vectored(k, a[0], a[1], a[2], Some(nonneg(a[3])?), false),
        nr::PWRITEV => fs::vectored(k, a[0], a[1], a[2], Some(nonneg(a[3])?), true),
        nr::OPEN => fs::openat(k, AT_FDCWD, a[0], a[1] as u32, a[2] as u32),
        nr::CREAT => fs::openat(k, AT_FDCWD, a[0], 0o1101, a[1] as u32),
        nr::OPENAT => fs::openat(k, a[0], a[1], a[2] as u32, a[3] as u32),
        nr::CLOSE => fs::close(k, a[0]),
        nr::LSEEK => fs::lseek(k, a[0], a[1] as i64, a[2] as u32),
        nr::FSTAT => fs::fstat(k, a[0], a[1]),
        nr::STAT => fs::fstatat(k, AT_FDCWD, a[0], a[1], 0),
        nr::LSTAT => fs::fstatat(k, AT_FDCWD, a[0], a[1], 0x100),
        nr::NEWFSTATAT => fs::fstatat(k, a[0], a[1], a[2], a[3]),
        nr::STATX => fs::statx(k, a[0], a[1], a[2], a[4]),
        nr::ACCESS => fs::faccessat(k, AT_FDCWD, a[0], a[1], 0),
        nr::FACCESSAT => fs::faccessat(k, a[0], a[1], a[2], 0),
        nr::FACCESSAT2 => fs::faccessat(k, a[0], a[1], a[2], a[3]),
        nr::GETDENTS64 => fs::getdents64(k, a[0], a[1], a[2]),
        nr::MKDIR => fs::mkdirat(k, AT_FDCWD, a[0], a[1] as u32),
        nr::MKDIRAT => fs::mkdirat(k, a[0], a[1], a[2] as u32),
        nr::RMDIR => fs::unlinkat(k, AT_FDCWD, a[0], 0x200),
        nr::UNLINK => fs::unlinkat(k, AT_FDCWD, a[0], 0),
        nr::UNLINKAT => fs::unlinkat(k, a[0], a[1], a[2]),
        nr::RENAME => fs::renameat2(k, AT_FDCWD, a[0], AT_FDCWD, a[1], 0),
        nr::RENAMEAT => fs::renameat2(k, a[0], a[1], a[2], a[3], 0),
        nr::RENAMEAT2 => fs::renameat2(k, a[0], a[1], a[2], a[3], a[4]),
        nr::READLINK => fs::readlinkat(k, AT_FDCWD, a[0], a[1], a[2]),
        nr::READLINKAT => fs::readlinkat(k, a[0], a[1], a[2], a[3]),
        nr::SYMLINK => fs::symlinkat(k, a[0], AT_FDCWD, a[1]),
        nr::SYMLINKAT => fs::symlinkat(k, a[0], a[1], a[2]),
        nr::LINK | nr::LINKAT => Err(EMLINK),
        nr::CHMOD => fs::fchmodat(k, AT_FDCWD, a[0], a[1] as u32),
        nr::FCHMODAT => fs::fchmodat(k, a[0], a[1], a[2] as u32),
        nr::FCHMOD => fs::fchmod(k, a[0], a[1] as u32),
        nr::CHOWN | nr::LCHOWN | nr::FCHOWN | nr::FCHOWNAT => Ok(0),
        nr::UTIMENSAT | nr::UTIMES | nr::UTIME | nr::FUTIMESAT => Ok(0),
        nr::GETCWD => fs::getcwd(k, a[0], a[1]),
        nr::CHDIR => fs::chdir(k, a[0]),
        nr::FCHDIR => fs::fchdir(k, a[0]),
        nr::DUP => fs::dup(k, a[0]),
        nr::DUP2 => fs::dup3(k, a[0], a[1], 0, true),
        nr::DUP3 => fs::dup3(k, a[0], a[1], a[2], false),
        nr::FCNTL => fs::fcntl(k, a[0], a[1], a[2]),
        nr::FTRUNCATE => fs::ftruncate(k, a[0], a[1] as i64),
        nr::TRUNCATE => fs::truncate(k, a[0], a[1] as i64),
        nr::FSYNC | nr::FDATASYNC | nr::SYNCFS => k.fds.get(a[0]).map(|_| 0),
        nr::SYNC => Ok(0),
        nr::FADVISE64 => k.fds.get(a[0]).map(|_| 0),
        nr::IOCTL => fs::ioctl(k, a[0], a[1], a[2]),
        nr::POLL => poll::poll(
            k,
            a[0],
            a[1],
            if (a[2] as i32) < 0 {
                -1
            } else {
                a[2] as i32 as i64 * 1_000_000
            },
        ),
        nr::PPOLL => {
            let t = poll::timespec_ns(k, a[2])?;
            poll::poll(k, a[0], a[1], t)
        }
        nr::SELECT => {
            let t = if a[4] == 0 {
                -1
            } else {
                let [s, us]: [i64; 2] = k.mem.read_obj(a[4])?;
                s.saturating_mul(1_000_000_000)
                    .saturating_add(us.saturating_mul(1000))
            };
            poll::select(k, a[0], a[1], a[2], a[3], t)
        }
        nr::PSELECT6 => {
            let t = poll::timespec_ns(k, a[4])?;
            poll::select(k, a[0], a[1], a[2], a[3], t)
        }
        nr::PIPE => poll::pipe2(k, a[0], 0),
        nr::PIPE2 => poll::pipe2(k, a[0], a[1] as u32),
        nr::EVENTFD => poll::eventfd2(k, a[0] as u32, 0),
        nr::EVENTFD2 => poll::eventfd2(k, a[0] as u32, a[1] as u32),
        nr::SOCKETPAIR => poll::socketpair(k, a[0], a[1], a[2], a[3]),
        nr::SHUTDOWN => poll::shutdown(k, a[0], a[1]),
        nr::SENDTO if inet::is_inet(k, a[0]) => inet::sendto(k, a[0], a[1], a[2], a[3], a[4], a[5]),
        nr::SENDMSG => crate::syscall::linux::msg::sendmsg(k, a[0], a[1], a[2]),
        nr::RECVMSG => crate::syscall::linux::msg::recvmsg(k, a[0], a[1], a[2]),
        nr::LISTEN => inet::listen(k, a[0], a[1]),
        nr::ACCEPT => inet::accept4(k, a[0], a[1], a[2], 0),
        nr::ACCEPT4 => inet::accept4(k, a[0], a[1], a[2], a[3]),
        nr::SETSOCKOPT => {
            crate::syscall::linux::sockopt::setsockopt(k, a[0], a[1], a[2], a[3], a[4])
        }
        nr::GETSOCKOPT => {
            crate::syscall::linux::sockopt::getsockopt(k, a[0], a[1], a[2], a[3], a[4])
        }
        nr::RECVFROM if inet::is_inet(k, a[0]) => {
            inet::recvfrom(k, a[0], a[1], a[2], a[3], a[4], a[5])
        }
        nr::SENDTO => poll::sock_io(k, a[0], a[1], a[2], a[3], true),
        nr::RECVFROM => poll::sock_io(k, a[0], a[1], a[2], a[3], false),
        nr::SOCKET => inet::socket(k, a[0], a[1], a[2]),
        nr::BIND => inet::bind(k, a[0], a[1], a[2]),
        nr::GETSOCKNAME => inet::getsockname(k, a[0], a[1], a[2]),
        nr::GETPEERNAME => inet::getpeername(k, a[0], a[1], a[2]),
        nr::CONNECT => inet::connect(k, a[0], a[1], a[2]),
        nr::TIMERFD_CREATE => poll::timerfd_create(k, a[0], a[1] as u32),
        nr::TIMERFD_SETTIME => poll::timerfd_settime(k, a[0], a[1] as u32, a[2], a[3]),
        nr::TIMERFD_GETTIME => poll::timerfd_gettime(k, a[0], a[1]),
        nr::MREMAP => sys_mremap(k, a[0], a[1], a[2], a[3], a[4]),
        nr::EPOLL_CREATE => poll::epoll_create(k, 0),
        nr::EPOLL_CREATE1 => poll::epoll_create(k, a[0] as u32),
        nr::EPOLL_CTL => poll::epoll_ctl(k, a[0], a[1] as u32, a[2], a[3]),
        nr::EPOLL_WAIT | nr::EPOLL_PWAIT => {
            poll::epoll_wait(k, a[0], a[1], a[2] as i32, a[3] as i32 as i64)
        }
        nr::EPOLL_PWAIT2 => {
            let t = poll::timespec_ns(k, a[3])?;
            poll::epoll_wait(
                k,
                a[0],
                a[1],
                a[2] as i32,
                if t < 0 { -1 } else { t / 1_000_000 },
            )
        }
        nr::UMASK => Ok(core::mem::replace(&mut k.proc.umask, a[0] as u32 & 0o777) as i64),
        // Process and threads.
        nr::EXIT_GROUP => sys_exit(a[0] as i32),
        nr::EXIT => sys_exit_thread(k, a[0] as i32),
        nr::CLONE => threads::clone(k, frame, a[0], a[1], a[2], a[3], a[4]),
        nr::CLONE3 => threads::clone3(k, frame, a[0], a[1]),
        nr::FORK | nr::VFORK => Err(ENOSYS),
        nr::FUTEX => threads::futex(k, a[0], a[1] as u32, a[2] as u32, a[3], a[4], a[5] as u32),
        nr::NANOSLEEP => threads::nanosleep(k, 1, 0, a[0], a[1]),
        nr::CLOCK_NANOSLEEP => threads::nanosleep(k, a[0], a[1], a[2], a[3]),
        nr::SCHED_YIELD => Err(YIELD),
        nr::TKILL => threads::tgkill(k, 1, a[0], a[1]),
        nr::TGKILL => threads::tgkill(k, a[0], a[1], a[2]),
        nr::SCHED_SETAFFINITY => Ok(0),
        nr::SCHED_GETSCHEDULER | nr::SCHED_GETPARAM => Ok(0),
        nr::SETPRIORITY => Ok(0),
        nr::GETPRIORITY => Ok(20),
        nr::ARCH_PRCTL => sys_arch_prctl(k, a[0], a[1]),
        nr::SET_TID_ADDRESS => {
            sched::with_current(|t| t.clear_child_tid = a[0]);
            Ok(sched::current_tid() as i64)
        }
        nr::SET_ROBUST_LIST => {
            k.proc.robust_list = a[0];
            Ok(0)
        }
        nr::GETPID => Ok(PID),
        nr::GETTID => Ok(sched::current_tid() as i64),
        nr::GETPPID => Ok(0),
        nr::GETUID | nr::GETEUID | nr::GETGID | nr::GETEGID => Ok(0),
        nr::PRLIMIT64 => sys_prlimit(k, a[1], a[3]),
        nr::GETRLIMIT => sys_prlimit(k, a[0], a[1]),
        nr::UNAME => sys_uname(k, a[0]),
        nr::SCHED_GETAFFINITY => sys_sched_getaffinity(k, a[1], a[2]),
        // Memory.
        nr::BRK => Ok(k.mem.set_brk(a[0]) as i64),
        nr::MMAP => sys_mmap(k, a[0], a[1], a[2] as u32, a[3] as u32, a[4], a[5]),
        nr::MUNMAP => sys_munmap(k, a[0], a[1]),
        nr::MPROTECT => sys_mprotect(k, a[0], a[1], a[2] as u32),
        nr::MADVISE => sys_madvise(k, a[0], a[1], a[2]),
        // Signals (bookkeeping).
        nr::RT_SIGACTION => sys_rt_sigaction(k, a[0], a[1], a[2], a[3]),
        nr::RT_SIGPROCMASK => sys_rt_sigprocmask(k, a[0], a[1], a[2], a[3]),
        nr::SIGALTSTACK => signal::sigaltstack(&mut k.mem, a[0], a[1], frame.rsp),
        nr::KILL => threads::kill(k, a[0] as i64, a[1]),
        // Time and randomness.
        nr::CLOCK_GETTIME => sys_clock_gettime(k, a[0], a[1]),
        nr::CLOCK_GETRES => sys_clock_getres(k, a[0], a[1]),
        nr::GETTIMEOFDAY => sys_gettimeofday(k, a[0]),
        nr::TIME => sys_time(k, a[0]),
        nr::GETRANDOM => sys_getrandom(k, a[0], a[1]),
        _ => Err(ENOSYS),
    }
}

fn nonneg(off: u64) -> Result<u64, i64> {
    if (off as i64) < 0 {
        Err(EINVAL)
    } else {
        Ok(off)
    }
}

fn sys_exit_thread(k: &mut Kernel, status: i32) -> Ret {
    threads::clear_child_tid(k);
    if sched::thread_count() <= 1 {
        return sys_exit(status);
    }
    Err(EXIT_THREAD)
}

fn sys_exit(status: i32) -> Ret {
    stamp(|t| &mut t.app_exit);
    hypercall::exit(status & 0xff)
}

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;

fn sys_arch_prctl(k: &mut Kernel, code: u64, addr: u64) -> Ret {
    match code {
        ARCH_SET_FS => {
            if addr >= USER_TOP {
                return Err(EPERM);
            }
            cpu::set_fs_base(addr);
            Ok(0)
        }
        ARCH_GET_FS => {
            k.mem.write_obj(addr, &cpu::fs_base())?;
            Ok(0)
        }
        ARCH_SET_GS | ARCH_GET_GS => Err(EINVAL),
        _ => Err(EINVAL),
    }
}

const MAP_SHARED: u32 = 0x01;
const MAP_PRIVATE: u32 = 0x02;
const MAP_FIXED: u32 = 0x10;
const MAP_ANONYMOUS: u32 = 0x20;
const MAP_NORESERVE: u32 = 0x4000;
const MAP_FIXED_NOREPLACE: u32 = 0x100000;

fn sys_mmap(k: &mut Kernel, addr: u64, len: u64, prot: u32, flags: u32, fd: u64, off: u64) -> Ret {
    if len == 0 || prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(EINVAL);
    }
    if flags & (MAP_SHARED | MAP_PRIVATE) == 0 {
        return Err(EINVAL);
    }
    let file = flags & MAP_ANONYMOUS == 0;
    if file {
        if !off.is_multiple_of(PAGE) {
            return Err(EINVAL);
        }
        fs::file_for_mmap(k, fd)?;
    }
    let len = page_up(len).ok_or(ENOMEM)?;
    let start = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
        if !addr.is_multiple_of(PAGE) || addr.checked_add(len).is_none_or(|e| e > USER_TOP) {
            return Err(EINVAL);
        }
        if k.mem.vmas.overlaps(addr, addr + len) {
            if flags & MAP_FIXED_NOREPLACE != 0 {
                return Err(EEXIST);
            }
            k.mem.unmap(addr, addr + len)?;
        }
        addr
    } else if addr != 0
        && addr.is_multiple_of(PAGE)
        && addr.checked_add(len).is_some_and(|e| e <= USER_TOP)
        && !k.mem.vmas.overlaps(addr, addr + len)
    {
        addr
    } else {
        k.mem.find_free(len)?
    };
    // MAP_NORESERVE and PROT_NONE areas get frames on first touch; everything
    // else is populated now (cheap: untouched frames cost no host memory).
    // File mappings are private copies of the file (MAP_SHARED writes are not
    // written back: files live in memory and nothing else maps them).
    const MAP_POPULATE: u32 = 0x8000;
    let populate = file
        || flags & MAP_POPULATE != 0
        || (flags & MAP_NORESERVE == 0 && len <= crate::mm::space::EAGER_MAX);
    k.mem.map(
        Vma {
            start,
            end: start + len,
            prot,
            kind: VmaKind::Anonymous,
        },
        populate,
    )?;
    if file {
        let data = fs::file_for_mmap(k, fd)?;
        let data: &[u8] = {
            let s = (off.min(data.len() as u64)) as usize;
            let e = (off.saturating_add(len).min(data.len() as u64)) as usize;
            // SAFETY: see fs_calls::unsafe_extend — the VFS is not touched while copying.
            unsafe { core::slice::from_raw_parts(data[s..e].as_ptr(), e - s) }
        };
        if let Err(e) = k.mem.load(start, data) {
            let _ = k.mem.unmap(start, start + len);
            return Err(e);
        }
    }
    Ok(start as i64)
}

fn user_range(addr: u64, len: u64) -> Result<(u64, u64), i64> {
    if !addr.is_multiple_of(PAGE) || len == 0 {
        return Err(EINVAL);
    }
    let end = page_up(addr.checked_add(len).ok_or(EINVAL)?).ok_or(EINVAL)?;
    if end > USER_TOP {
        return Err(EINVAL);
    }
    Ok((addr, end))
}

fn sys_madvise(k: &mut Kernel, addr: u64, len: u64, advice: u64) -> Ret {
    const MADV_DONTNEED: u64 = 4;
    const MADV_FREE: u64 = 8;
    if !addr.is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let end = page_up(addr.checked_add(len).ok_or(EINVAL)?).ok_or(EINVAL)?;
    if end > USER_TOP {
        return Err(EINVAL);
    }
    match advice {
        MADV_DONTNEED | MADV_FREE => k.mem.discard(addr, end).map(|_| 0),
        // Hints (NORMAL, RANDOM, SEQUENTIAL, WILLNEED, HUGEPAGE, …): accepted.
        _ => Ok(0),
    }
}

fn sys_mremap(
    k: &mut Kernel,
    old: u64,
    old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
) -> Ret {
    const MREMAP_MAYMOVE: u64 = 1;
    const MREMAP_FIXED: u64 = 2;
    if !old.is_multiple_of(PAGE) || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED) != 0 || new_len == 0 {
        return Err(EINVAL);
    }
    if flags & MREMAP_FIXED != 0 && (flags & MREMAP_MAYMOVE == 0 || !new_addr.is_multiple_of(PAGE))
    {
        return Err(EINVAL);
    }
    let old_len = page_up(old_len).ok_or(EINVAL)?;
    let new_len = page_up(new_len).ok_or(ENOMEM)?;
    let fixed = (flags & MREMAP_FIXED != 0).then_some(new_addr);
    k.mem
        .remap(old, old_len, new_len, flags & MREMAP_MAYMOVE != 0, fixed)
        .map(|a| a as i64)
}

fn sys_munmap(k: &mut Kernel, addr: u64, len: u64) -> Ret {
    let (s, e) = user_range(addr, len)?;
    k.mem.unmap(s, e)?;
    Ok(0)
}

fn sys_mprotect(k: &mut Kernel, addr: u64, len: u64, prot: u32) -> Ret {
    let (s, e) = user_range(addr, len)?;
    // Linux ignores PROT_GROWSDOWN/UP here for our purposes.
    k.mem.protect(s, e, prot & 7)?;
    Ok(0)
}

fn put_field(buf: &mut [u8], i: usize, s: &[u8]) {
    let f = &mut buf[i * 65..i * 65 + 65];
    let n = s.len().min(64);
    f[..n].copy_from_slice(&s[..n]);
}

fn sys_uname(k: &mut Kernel, addr: u64) -> Ret {
    let mut u = [0u8; 65 * 6];
    put_field(&mut u, 0, b"Linux");
    put_field(&mut u, 1, b"optivolt");
    put_field(&mut u, 2, b"6.1.0-optivolt");
    put_field(&mut u, 3, b"#1 SMP OptiVolt library OS");
    put_field(&mut u, 4, b"x86_64");
    put_field(&mut u, 5, b"(none)");
    k.mem.copy_to_user(addr, &u)?;
    Ok(0)
}

fn sys_getrandom(k: &mut Kernel, buf: u64, len: u64) -> Ret {
    let len = len.min(1 << 25);
    let mut chunk = [0u8; 256];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(chunk.len());
        k.rng.fill(&mut chunk[..n]);
        k.mem.copy_to_user(buf + done, &chunk[..n])?;
        done += n as u64;
    }
    Ok(len as i64)
}

fn sys_clock_gettime(k: &mut Kernel, clock: u64, ts: u64) -> Ret {
    let (s, ns) = time::split_ns(k.clock_ns(clock)?);
    k.mem.write_obj(ts, &[s, ns])?;
    Ok(0)
}

fn sys_clock_getres(k: &mut Kernel, clock: u64, ts: u64) -> Ret {
    k.clock_ns(clock)?;
    if ts != 0 {
        k.mem.write_obj(ts, &[0i64, 1])?;
    }
    Ok(0)
}

fn sys_gettimeofday(k: &mut Kernel, tv: u64) -> Ret {
    if tv != 0 {
        let (s, ns) = time::split_ns(k.clock_ns(0)?);
        k.mem.write_obj(tv, &[s, ns / 1000])?;
    }
    Ok(0)
}

fn sys_time(k: &mut Kernel, t: u64) -> Ret {
    let s = (k.clock_ns(0)? / 1_000_000_000) as i64;
    if t != 0 {
        k.mem.write_obj(t, &s)?;
    }
    Ok(s)
}

const RLIM_INFINITY: u64 = u64::MAX;

fn sys_prlimit(k: &mut Kernel, resource: u64, old: u64) -> Ret {
    let lim: [u64; 2] = match resource {
        3 => [crate::kernel::boot::STACK_SIZE, RLIM_INFINITY], // RLIMIT_STACK
        7 => [1024, 4096],                                     // RLIMIT_NOFILE
        4 => [0, RLIM_INFINITY],                               // RLIMIT_CORE
        0..=15 => [RLIM_INFINITY, RLIM_INFINITY],
        _ => return Err(EINVAL),
    };
    if old != 0 {
        k.mem.write_obj(old, &lim)?;
    }
    Ok(0)
}

fn sys_rt_sigaction(k: &mut Kernel, sig: u64, act: u64, old: u64, size: u64) -> Ret {
    if sig == 0 || sig as usize > NSIG || size != 8 {
        return Err(EINVAL);
    }
    let i = sig as usize - 1;
    if old != 0 {
        k.mem.write_obj(old, &k.proc.actions[i])?;
    }
    if act != 0 {
        if sig == 9 || sig == 19 {
            return Err(EINVAL); // SIGKILL, SIGSTOP
        }
        k.proc.actions[i] = k.mem.read_obj::<SigAction>(act)?;
    }
    Ok(0)
}

fn sys_rt_sigprocmask(k: &mut Kernel, how: u64, set: u64, old: u64, size: u64) -> Ret {
    if size != 8 {
        return Err(EINVAL);
    }
    let cur = sched::with_current(|t| t.sigmask);
    if old != 0 {
        k.mem.write_obj(old, &cur)?;
    }
    if set != 0 {
        let s: u64 = k.mem.read_obj(set)?;
        let unblockable = (1 << 8) | (1 << 18); // SIGKILL, SIGSTOP
        let new = match how {
            0 => cur | s,
            1 => cur & !s,
            2 => s,
            _ => return Err(EINVAL),
        } & !unblockable;
        sched::with_current(|t| t.sigmask = new);
    }
    Ok(0)
}

fn sys_sched_getaffinity(k: &mut Kernel, size: u64, mask: u64) -> Ret {
    if size < 8 {
        return Err(EINVAL);
    }
    k.mem.write_obj(mask, &1u64)?;
    Ok(8)
}
