//! Exceptions: demand paging for areas that were not populated eagerly, and
//! a clear report to the monitor for everything else.
use optivolt_abi::hypercall::{self as hc, FaultReport};
use optivolt_abi::layout::USER_TOP;

use crate::arch::entry::ExceptionFrame;
use crate::arch::hypercall;

const PAGE_FAULT: u64 = 14;

/// The faulting address of the last page fault, as the CPL-0 page-fault
/// stub found it in CR2 (see `arch::entry`).
fn read_cr2() -> u64 {
    extern "C" {
        static ov_fault_cr2: u64;
    }
    // SAFETY: the stub writes the slot at CPL 0 before entering the CPL-3
    // handler that calls us; nothing else writes it, and a volatile read
    // sees that write.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(ov_fault_cr2)) }
}

/// Reports an unrecoverable fault; the monitor ends the VM.
pub fn report(frame: &ExceptionFrame) -> ! {
    let mut r = FaultReport {
        vector: frame.vector,
        error_code: frame.error_code,
        rip: frame.rip,
        rsp: frame.rsp,
        rflags: frame.rflags,
        cs: frame.cs,
        in_app: (frame.rip < USER_TOP) as u64,
        regs: frame.regs,
    };
    loop {
        hypercall::call_with(hc::FAULT, &mut r);
    }
}

/// The signal Linux sends for an exception vector.
fn signal_for(vector: u64) -> u32 {
    match vector {
        0 | 16 | 19 => 8, // SIGFPE
        1 | 3 => 5,       // SIGTRAP
        6 => 4,           // SIGILL
        17 => 7,          // SIGBUS
        _ => 11,          // SIGSEGV
    }
}

/// Page faults the library OS resolved (demand paging), for `--stats`.
pub static PAGE_FAULTS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Called by the exception entry code with the saved state.
#[no_mangle]
extern "C" fn ov_exception_dispatch(frame: &mut ExceptionFrame) {
    if frame.rip >= USER_TOP && !crate::vdso::clock::contains(frame.rip) {
        report(frame); // a library-OS bug
    }
    let mut addr = frame.rip;
    if frame.vector == PAGE_FAULT {
        addr = read_cr2();
        // The library OS never faults while holding the lock (it reaches user
        // memory only through checked physmap copies), so a held lock here
        // means a library-OS bug: report it rather than deadlock.
        if let Some(mut guard) = crate::kernel::KERNEL.try_lock() {
            if let Some(k) = guard.as_mut() {
                match k.mem.handle_app_fault(addr, frame.error_code) {
                    crate::mm::space::Fault::Handled => {
                        PAGE_FAULTS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                        crate::arch::bump(crate::arch::Counter::PageFaults);
                        return;
                    }
                    crate::mm::space::Fault::OutOfMemory => {
                        let (used, _) = k.mem.frame_usage();
                        drop(guard);
                        let mut buf = [0u8; 200];
                        let mut w = crate::util::BufWriter::new(&mut buf);
                        let _ = core::fmt::Write::write_fmt(
                            &mut w,
                            format_args!(
                                "out of memory: the application touched {addr:#x} with all {} MiB of guest memory in use (try a larger --memory)",
                                (used * 4096) >> 20
                            ),
                        );
                        let n = w.len();
                        hypercall::abort(&buf[..n]);
                    }
                    crate::mm::space::Fault::Segv => {}
                }
            }
        }
    }
    // A synchronous signal: to the application's handler if it has one.
    let sig = signal_for(frame.vector);
    let bit = 1u64 << (sig - 1);
    let blocked = crate::task::sched::with_current(|t| t.sigmask) & bit != 0;
    if let Some(mut guard) = crate::kernel::KERNEL.try_lock() {
        if let Some(k) = guard.as_mut() {
            let handler = k.proc.actions[sig as usize - 1].handler;
            if handler > 1 && !blocked {
                let code = match frame.vector {
                    PAGE_FAULT if frame.error_code & 1 != 0 => 2, // SEGV_ACCERR
                    PAGE_FAULT => 1,                              // SEGV_MAPERR
                    _ => 0x80,                                    // SI_KERNEL
                };
                let info = crate::task::signal::Info {
                    code,
                    addr,
                    trapno: frame.vector,
                    err: frame.error_code,
                };
                let fa = frame as *mut ExceptionFrame as u64;
                // SAFETY: as in syscalls::fx_area: the entry code saved the
                // FXSAVE image right below the 16-byte aligned frame.
                let fx = unsafe { &mut *(((fa & !15) - 512) as *mut [u8; 512]) };
                let ctx = crate::task::signal::UserContext {
                    regs: &mut frame.regs,
                    rip: &mut frame.rip,
                    rflags: &mut frame.rflags,
                    rsp: &mut frame.rsp,
                    fx,
                };
                if crate::task::signal::deliver(&mut k.mem, &mut k.proc, k.trace, sig, info, ctx)
                    .is_ok()
                {
                    return;
                }
            }
        }
    }
    report(frame)
}

static PANIC_BUF: spin::Mutex<[u8; 1024]> = spin::Mutex::new([0; 1024]);

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    // A panic while formatting a panic must not deadlock: fall back to a fixed text.
    match PANIC_BUF.try_lock() {
        Some(mut buf) => {
            let mut w = crate::util::BufWriter::new(&mut buf[..]);
            let _ = write!(w, "library OS panic: {info}");
            let n = w.len();
            hypercall::abort(&buf[..n])
        }
        None => hypercall::abort(b"library OS panic while panicking"),
    }
}
