//! The functions the vDSO exports (`crate::vdso` builds the image). They
//! run as application code: on the caller's stack, holding no lock, and a
//! bad pointer from the application faults like the application's own
//! access would (the exception path treats this section as application
//! code). Only clocks that need no kernel state are answered here; others
//! fall back to the system call.
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use alloc::boxed::Box;
use optivolt_abi::boot::BootInfo;

use crate::arch::cpu::rdtsc;
use crate::vdso::{build_into, image_size, Export};

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static TSC_KHZ: AtomicU64 = AtomicU64::new(0);
static WALLCLOCK_NS: AtomicU64 = AtomicU64::new(0);

extern "C" {
    static __vdso_text_start: u8;
    static __vdso_text_end: u8;
}

/// Whether `rip` is in the vDSO's functions.
pub fn contains(rip: u64) -> bool {
    // SAFETY: only the addresses of the linker-script symbols are taken.
    let (start, end) = unsafe {
        (
            &__vdso_text_start as *const u8 as u64,
            &__vdso_text_end as *const u8 as u64,
        )
    };
    (start..end).contains(&rip)
}

/// Records the clock parameters and builds the image; returns its address
/// for `AT_SYSINFO_EHDR`.
pub fn init(boot: &BootInfo) -> u64 {
    BOOT_TSC.store(boot.boot_tsc, Relaxed);
    TSC_KHZ.store(boot.tsc_khz, Relaxed);
    WALLCLOCK_NS.store(boot.wallclock_ns, Relaxed);
    let clock_gettime = vdso_clock_gettime as *const () as u64;
    let gettimeofday = vdso_gettimeofday as *const () as u64;
    let time = vdso_time as *const () as u64;
    let clock_getres = vdso_clock_getres as *const () as u64;
    let getcpu = vdso_getcpu as *const () as u64;
    let exports = [
        Export {
            name: "__vdso_clock_gettime",
            addr: clock_gettime,
        },
        Export {
            name: "clock_gettime",
            addr: clock_gettime,
        },
        Export {
            name: "__vdso_gettimeofday",
            addr: gettimeofday,
        },
        Export {
            name: "gettimeofday",
            addr: gettimeofday,
        },
        Export {
            name: "__vdso_time",
            addr: time,
        },
        Export {
            name: "time",
            addr: time,
        },
        Export {
            name: "__vdso_clock_getres",
            addr: clock_getres,
        },
        Export {
            name: "clock_getres",
            addr: clock_getres,
        },
        Export {
            name: "__vdso_getcpu",
            addr: getcpu,
        },
        Export {
            name: "getcpu",
            addr: getcpu,
        },
    ];
    // The image is built for the address it ends up at.
    let buf: &'static mut [u8] =
        Box::leak(alloc::vec![0u8; image_size(&exports)].into_boxed_slice());
    let base = buf.as_ptr() as u64;
    build_into(buf, base, &exports);
    base
}

#[link_section = ".text.vdso"]
#[inline(always)]
fn monotonic_ns() -> u64 {
    let ticks = rdtsc().wrapping_sub(BOOT_TSC.load(Relaxed));
    crate::time::ticks_to_ns(ticks, TSC_KHZ.load(Relaxed))
}

/// The clocks computed from the TSC alone; `None` for the others.
#[link_section = ".text.vdso"]
#[inline(always)]
fn clock_ns(clock: i32) -> Option<u64> {
    match clock {
        0 | 5 | 11 => Some(WALLCLOCK_NS.load(Relaxed) + monotonic_ns()),
        1 | 4 | 6 | 7 | 8 | 9 => Some(monotonic_ns()),
        _ => None,
    }
}

#[link_section = ".text.vdso"]
#[inline(always)]
fn syscall2(nr: u64, a: u64, b: u64) -> i64 {
    let r: i64;
    // SAFETY: a system call like the application's own, with the Linux
    // calling convention (rcx and r11 clobbered).
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => r, in("rdi") a, in("rsi") b,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    r
}

#[link_section = ".text.vdso"]
unsafe extern "C" fn vdso_clock_gettime(clock: i32, ts: *mut [i64; 2]) -> i64 {
    match clock_ns(clock) {
        Some(ns) => {
            let (s, n) = crate::time::split_ns(ns);
            // SAFETY: the application's pointer, written as its own store
            // would be (a fault here is the application's fault).
            unsafe { ts.write_volatile([s, n]) };
            0
        }
        None => syscall2(228, clock as i64 as u64, ts as u64),
    }
}

#[link_section = ".text.vdso"]
unsafe extern "C" fn vdso_gettimeofday(tv: *mut [i64; 2], tz: *mut [i32; 2]) -> i64 {
    let ns = WALLCLOCK_NS.load(Relaxed) + monotonic_ns();
    if !tv.is_null() {
        let (s, n) = crate::time::split_ns(ns);
        // SAFETY: as in vdso_clock_gettime.
        unsafe { tv.write_volatile([s, n / 1000]) };
    }
    if !tz.is_null() {
        // SAFETY: as in vdso_clock_gettime.
        unsafe { tz.write_volatile([0, 0]) };
    }
    0
}

#[link_section = ".text.vdso"]
unsafe extern "C" fn vdso_time(t: *mut i64) -> i64 {
    let s = ((WALLCLOCK_NS.load(Relaxed) + monotonic_ns()) / 1_000_000_000) as i64;
    if !t.is_null() {
        // SAFETY: as in vdso_clock_gettime.
        unsafe { t.write_volatile(s) };
    }
    s
}

#[link_section = ".text.vdso"]
unsafe extern "C" fn vdso_clock_getres(clock: i32, res: *mut [i64; 2]) -> i64 {
    syscall2(229, clock as i64 as u64, res as u64)
}

#[link_section = ".text.vdso"]
unsafe extern "C" fn vdso_getcpu(cpu: *mut u32, node: *mut u32, _cache: *mut u8) -> i64 {
    // SAFETY: as in vdso_clock_gettime; one CPU, one node.
    unsafe {
        if !cpu.is_null() {
            cpu.write_volatile(0);
        }
        if !node.is_null() {
            node.write_volatile(0);
        }
    }
    0
}
