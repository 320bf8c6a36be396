//! The Linux system-call dispatcher. Anything not implemented returns -ENOSYS
//! (and shows up in `--trace-syscalls`), so programs can fall back.
use crate::arch::entry::SyscallFrame;
use crate::arch::hypercall;
use crate::arch::stamp;
use crate::drivers::console;
use crate::errno::*;
use crate::kernel::KERNEL;
use crate::syscall::table::{self, Entry, Row, SigPipe};
use crate::syscall::trace;
use crate::task::{sched, signal};
use crate::util::BufWriter;

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
    let jumped = crate::syscall::patch::take_jumped();
    let row = table::lookup(n);
    if matches!(row.map(|r| r.entry), Some(Entry::SigReturn)) {
        let addr = frame as *mut SyscallFrame as u64;
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else { return };
        // The restorer's site is patched like any other (every signal
        // handler returns through it).
        crate::syscall::patch::on_entry(k, jumped, frame.rip, n);
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
    let mut first = true;
    loop {
        // The kernel lock is held for one attempt only, never across a switch.
        let (result, trace) = {
            let mut guard = KERNEL.lock();
            let Some(k) = guard.as_mut() else {
                crate::arch::hypercall::abort(b"system call before the kernel was initialised")
            };
            if first {
                // Counted once, and the site patched before the call runs (a
                // call that never returns, exit or a blocked read, is patched too).
                crate::syscall::patch::on_entry(k, jumped, frame.rip, n);
                first = false;
            }
            let result = match row {
                Some(r) => {
                    if k.trace && r.noreturn {
                        // These do not return: show them first, as strace does ("= ?").
                        console::kernel_log(format_args!("{}({}) = ?\n", r.name, args[0] as i32));
                    }
                    match r.entry {
                        Entry::Call(handler) => handler(k, &args, frame),
                        Entry::SigReturn => Err(ENOSYS),
                    }
                }
                None => Err(ENOSYS),
            };
            (result, k.trace)
        };
        if result != Err(BLOCKED) {
            sched::call_done();
        }
        let ret = match result {
            Err(BLOCKED) => {
                sched::schedule();
                // A signal interrupts the wait, also one that came while the
                // thread was already runnable again (woken by I/O first):
                // retrying would block with it pending, undelivered.
                if sched::interrupted() | sched::signal_ready() {
                    sched::call_done();
                    if row.is_some_and(restarts) {
                        // SA_RESTART: run the handler, then the `syscall`
                        // instruction again (RIP back over it, RAX = number).
                        frame.rip -= 2;
                        frame.regs.rax = n;
                        deliver_to(frame);
                        return;
                    }
                    // A signal arrived while waiting: the call fails with EINTR.
                    finish(frame, n, row, &args, -EINTR, trace);
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
        finish(frame, n, row, &args, ret, trace);
        return;
    }
}

/// Whether the interrupted call is restarted after the handler of the
/// signal about to be delivered: Linux restarts the calls whose row says so
/// under SA_RESTART (sleeps and poll/select/epoll always fail with EINTR).
fn restarts(row: &Row) -> bool {
    const SA_RESTART: u64 = 0x1000_0000;
    if !row.restart {
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
fn finish(
    frame: &mut SyscallFrame,
    n: u64,
    row: Option<&Row>,
    args: &[u64; 6],
    ret: i64,
    trace: bool,
) {
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
    if sched::take_missed_tick() {
        // The tick the monitor could not give while we were in here.
        #[cfg(feature = "net")]
        crate::net::stack::tick_poll();
        sched::yield_now();
    }
    if ret == -EPIPE && row.is_some_and(|r| raises_sigpipe(r, args)) {
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

/// Whether EPIPE from this call comes with SIGPIPE, as on Linux: writes to a
/// pipe or socket whose other end is gone, unless a send asked for
/// MSG_NOSIGNAL.
fn raises_sigpipe(row: &Row, args: &[u64; 6]) -> bool {
    match row.sigpipe {
        SigPipe::No => false,
        SigPipe::Yes => true,
        SigPipe::UnlessNoSignal(i) => args[i] & crate::uapi::socket::MSG_NOSIGNAL == 0,
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
            // As a shell reports a job the signal ended (volt exits with
            // 128 + the signal, as the shell's $? would show).
            if let Some(m) = crate::uapi::signal::death_message(sig) {
                console::kernel_log(format_args!("{m}\n"));
            }
            stamp(|t| &mut t.app_exit);
            crate::syscall::stats::report_at_exit();
            hypercall::exit(status);
        }
    }
}

/// The timer interrupt, taken in application code: let others run, then
/// deliver what was sent to this thread meanwhile.
#[no_mangle]
extern "C" fn ov_timer_dispatch(frame: &mut crate::arch::entry::ExceptionFrame) {
    crate::syscall::stats::TICKS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    #[cfg(feature = "net")]
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
