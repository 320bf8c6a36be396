//! Unprivileged CPU instructions the library OS uses (all legal at CPL 3).
use core::arch::asm;

/// Reads the time-stamp counter (no VM exit).
#[inline(always)]
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: RDTSC has no memory effects; CR4.TSD is clear so it is legal at CPL 3.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    ((hi as u64) << 32) | lo as u64
}

/// Sets the FS base (thread pointer). The monitor enables CR4.FSGSBASE.
#[inline(always)]
pub fn set_fs_base(v: u64) {
    // SAFETY: WRFSBASE only changes the FS segment base, which the library OS
    // does not use itself; CR4.FSGSBASE is set by the monitor.
    unsafe { asm!("wrfsbase {}", in(reg) v, options(nostack, preserves_flags)) };
}

/// Reads the FS base.
#[inline(always)]
pub fn fs_base() -> u64 {
    let v: u64;
    // SAFETY: RDFSBASE reads a register; CR4.FSGSBASE is set by the monitor.
    unsafe { asm!("rdfsbase {}", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// One RDRAND value, retried a few times; `None` if the DRNG keeps failing.
#[inline]
pub fn rdrand() -> Option<u64> {
    for _ in 0..10 {
        let v: u64;
        let ok: u8;
        // SAFETY: RDRAND writes a register and CF; the caller checked CPUID via BootInfo.
        unsafe {
            asm!("rdrand {}", "setc {}", out(reg) v, out(reg_byte) ok, options(nomem, nostack))
        };
        if ok != 0 {
            return Some(v);
        }
    }
    None
}
