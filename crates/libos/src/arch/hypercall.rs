//! Hypercalls: one `out` to a port the monitor serves (see `optivolt_abi::hypercall`).
#[cfg(feature = "guest")]
use core::arch::asm;

use optivolt_abi::hypercall as hc;
use optivolt_abi::layout::virt_to_phys;

/// Issues hypercall `nr` with a 32-bit value.
#[inline(always)]
pub fn call(nr: u16, value: u32) {
    let port = hc::PORT_BASE + nr;
    // Host unit tests have no monitor: hypercalls do nothing there.
    #[cfg(not(feature = "guest"))]
    let _ = (port, value);
    // SAFETY: port I/O to a hypercall port exits to the monitor, which reads
    // `value`; it has no other effect on guest state than what the hypercall
    // documents (it may write into the argument struct).
    #[cfg(feature = "guest")]
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nostack, preserves_flags))
    };
}

/// Issues hypercall `nr` with a pointer to an argument struct that lives in
/// the physmap below 4 GiB (library OS statics and stacks always do).
#[inline(always)]
pub fn call_with<T>(nr: u16, args: &mut T) {
    let pa = virt_to_phys(args as *mut T as u64).unwrap_or(u64::MAX);
    // A bad address here is a library-OS bug; the monitor rejects it and stops the VM.
    let pa = u32::try_from(pa).unwrap_or(u32::MAX);
    // Make the struct's contents visible before the exit and re-read it after.
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    call(nr, pa);
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

/// Ends the VM with `status`.
pub fn exit(status: i32) -> ! {
    if cfg!(not(feature = "guest")) {
        panic!("library OS exit({status}) on the host");
    }
    loop {
        call(hc::EXIT, status as u32);
    }
}

/// Stops the VM with a message (library-OS panics and fatal boot errors).
pub fn abort(msg: &[u8]) -> ! {
    if cfg!(not(feature = "guest")) {
        panic!(
            "library OS abort: {}",
            core::str::from_utf8(msg).unwrap_or("?")
        );
    }
    let pa = optivolt_abi::layout::virt_to_phys(msg.as_ptr() as u64).unwrap_or(0);
    let mut a = hc::Abort {
        msg: pa,
        len: msg.len() as u64,
    };
    loop {
        call_with(hc::ABORT, &mut a);
    }
}
