//! When a trapped `syscall` site becomes a jump (the encoding is in
//! `arch::patch`). Sites are patched lazily, on their first trap: the site
//! is then known to be a real instruction that the program executes, with
//! the number it loads. A site that cannot be patched keeps trapping: only
//! slower, and counted.
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use optivolt_abi::layout::USER_TOP;

use crate::arch::patch::{site_at, site_jump, trampoline, LOOK_BEHIND};
use crate::kernel::Kernel;
use crate::mm::vma::PROT_EXEC;

/// Sites rewritten into jumps.
pub static PATCHED: AtomicU64 = AtomicU64::new(0);
/// Traps from sites that could not be rewritten (other instruction shapes,
/// out of reach of the trampolines, or none left).
pub static UNPATCHABLE: AtomicU64 = AtomicU64::new(0);

/// Counts the call in progress and, if it trapped from a site that can be
/// patched, rewrites the site. `ret` is the address after the `syscall`,
/// `nr` the call's number.
pub fn on_entry(k: &mut Kernel, jumped: bool, ret: u64, nr: u64) {
    super::stats::count(nr, jumped);
    if jumped {
        return;
    }
    if !k.patching || !(LOOK_BEHIND as u64..USER_TOP).contains(&ret) {
        return;
    }
    if patch(k, ret, nr).is_none() {
        UNPATCHABLE.fetch_add(1, Relaxed);
    }
}

fn patch(k: &mut Kernel, ret: u64, nr: u64) -> Option<()> {
    let mut before = [0u8; LOOK_BEHIND];
    k.mem
        .copy_from_user(ret - LOOK_BEHIND as u64, &mut before)
        .ok()?;
    let found = site_at(&before)?;
    // The value the site loads is the one the call carries: the `mov` really
    // is the one that feeds this `syscall`.
    if found.rax != nr {
        return None;
    }
    let site = ret - 2 - found.mov_len;
    let mov = &before[LOOK_BEHIND - 2 - found.mov_len as usize..LOOK_BEHIND - 2];
    // Only code the program maps executable, whole.
    let vma = k.mem.vmas.find(site)?;
    if vma.prot & PROT_EXEC == 0 || vma.end < ret {
        return None;
    }
    let entry = crate::arch::entry::ov_syscall_jump_entry as *const () as usize as u64;
    let pool = k.trampolines.as_mut()?;
    let mut probe = *pool;
    let at = probe.take()?;
    let code = trampoline(at, site, mov, entry)?;
    let jump = site_jump(site, found.mov_len, at)?;
    // The trampoline first, then the jump to it: one vCPU, and no other
    // thread runs inside the library OS, so nothing sees half of it.
    k.mem.load(at, &code).ok()?;
    k.mem.load(site, &jump[..found.mov_len as usize]).ok()?;
    *pool = probe;
    PATCHED.fetch_add(1, Relaxed);
    Some(())
}

/// Whether the call in progress came through a patched site; clears the entry's mark.
pub fn take_jumped() -> bool {
    // SAFETY: one vCPU; the flag is written by the jump entry right before
    // the dispatcher runs, with no switch in between.
    unsafe {
        let j = crate::arch::entry::ov_entry_jumped != 0;
        crate::arch::entry::ov_entry_jumped = 0;
        j
    }
}
