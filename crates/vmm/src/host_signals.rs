//! Signals sent to the monitor's process (`volt stop`'s SIGTERM, a
//! terminal's SIGINT, SIGHUP, SIGUSR1/2) passed on to the guest program, as
//! a process would receive them: the handler only records the signal and
//! wakes the vCPU thread if it sleeps in BLOCK; the vCPU loop hands the set
//! to the guest (`SchedShared::host_signals`) and makes it schedule soon (a
//! tick into application code, or at the end of the system call in
//! progress). A third SIGINT ends the monitor itself, for a guest that no
//! longer answers.
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

static PENDING: AtomicU32 = AtomicU32::new(0);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

/// The signals passed on.
pub const FORWARDED: &[libc::c_int] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGINT && INTERRUPTS.fetch_add(1, Ordering::SeqCst) >= 2 {
        // SAFETY: signal and raise are async-signal-safe; the default
        // action of SIGINT then ends the process.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::raise(libc::SIGINT);
        }
        return;
    }
    if (1..32).contains(&sig) {
        PENDING.fetch_or(1 << sig, Ordering::SeqCst);
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: write(2) of 8 bytes from a live local to an eventfd; it is
        // async-signal-safe and its result does not matter (a full counter
        // already wakes the reader).
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

/// Installs the handlers; `wake` is an eventfd the vCPU thread polls while
/// the guest sleeps.
pub fn forward(wake: RawFd) {
    WAKE_FD.store(wake, Ordering::SeqCst);
    for &sig in FORWARDED {
        // SAFETY: a zeroed sigaction with a handler that only touches
        // atomics and calls async-signal-safe functions.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Takes the signals received since the last call (bit N = signal N).
pub fn take() -> u32 {
    PENDING.swap(0, Ordering::SeqCst)
}

/// Whether a signal waits to be passed on.
pub fn pending() -> bool {
    PENDING.load(Ordering::SeqCst) != 0
}
