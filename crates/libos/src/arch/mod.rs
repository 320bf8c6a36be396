//! x86-64 glue for a library OS that lives at CPL 3 (see `docs/architecture.md`).
//!
//! * [`entry`] — the image header, `_start`, the CPL-0 `syscall` stub and the
//!   CPL-3 system-call, exception and interrupt entry code (assembly).
//! * [`hypercall`] — the port-I/O hypercalls.
//! * [`cpu`] — RDTSC, FS base, RDRAND.
pub mod cpu;
#[cfg(feature = "guest")]
pub mod entry;
pub mod hypercall;
pub mod patch;

use optivolt_abi::boot::BootInfo;

/// The boot information as the monitor wrote it (physmap address), for code
/// that must not take the kernel lock (fault and panic paths, timestamps).
pub fn boot_info_ptr() -> *mut BootInfo {
    optivolt_abi::layout::phys_to_virt(optivolt_abi::layout::BOOT_INFO_PA) as *mut BootInfo
}

/// Which running total of [`optivolt_abi::boot::GuestCounters`].
#[derive(Clone, Copy)]
pub enum Counter {
    SyscallsByJump = 0,
    SyscallsByTrap = 1,
    PatchedSites = 2,
    PageFaults = 3,
}

/// Adds one to a running total the monitor reads (its metrics).
#[inline]
pub fn bump(c: Counter) {
    if cfg!(not(feature = "guest")) {
        return; // host unit tests: no BootInfo
    }
    let at = optivolt_abi::layout::phys_to_virt(optivolt_abi::layout::BOOT_INFO_PA)
        + optivolt_abi::boot::COUNTERS_OFFSET as u64
        + 8 * c as u64;
    // SAFETY: the counters are naturally aligned u64s in the BootInfo page,
    // mapped for the VM's whole life; the guest changes them only here,
    // atomically, and the monitor only reads them.
    unsafe {
        (*(at as *const core::sync::atomic::AtomicU64))
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed)
    };
}

/// Records a boot milestone in the shared BootInfo.
pub fn stamp(f: impl FnOnce(&mut optivolt_abi::boot::Timestamps) -> &mut u64) {
    let t = cpu::rdtsc();
    if cfg!(not(feature = "guest")) {
        return; // host unit tests: no BootInfo
    }
    // SAFETY: BootInfo lives at a fixed physmap address for the VM's whole
    // life; only this vCPU writes the timestamps, with interrupts disabled.
    unsafe {
        let b = &mut *boot_info_ptr();
        *f(&mut b.timestamps) = t;
    }
}
