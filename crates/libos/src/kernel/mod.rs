//! The guest runtime: boot, the kernel state, system calls, faults.
//!
//! All of it runs at CPL 3 with interrupts disabled (the system-call and
//! exception gates clear IF), on one vCPU; the global state is behind a spin
//! lock so that SMP stays possible.
pub mod boot;
pub mod console;
pub mod fault;
pub mod heap;
pub mod memory;
pub mod process;
pub mod syscalls;

use optivolt_abi::boot::BootInfo;
use spin::Mutex;

use crate::rand::Csprng;

/// Everything the library OS knows.
pub struct Kernel {
    /// A copy of the boot information.
    pub boot: BootInfo,
    /// Page tables, frames and the application's address space.
    pub mem: memory::Memory,
    /// The (single) process.
    pub proc: process::Process,
    /// Randomness for getrandom(2) when RDRAND is missing.
    pub rng: Csprng,
    /// `--trace-syscalls`.
    pub trace: bool,
}

/// The kernel state, set once by [`boot`].
pub static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

/// The boot information as the monitor wrote it (physmap address), for code
/// that must not take the kernel lock (fault and panic paths, timestamps).
pub fn boot_info_ptr() -> *mut BootInfo {
    optivolt_abi::layout::phys_to_virt(optivolt_abi::layout::BOOT_INFO_PA) as *mut BootInfo
}

/// Records a boot milestone in the shared BootInfo.
pub fn stamp(f: impl FnOnce(&mut optivolt_abi::boot::Timestamps) -> &mut u64) {
    let t = crate::arch::cpu::rdtsc();
    // SAFETY: BootInfo lives at a fixed physmap address for the VM's whole
    // life; only this vCPU writes the timestamps, with interrupts disabled.
    unsafe {
        let b = &mut *boot_info_ptr();
        *f(&mut b.timestamps) = t;
    }
}
