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
