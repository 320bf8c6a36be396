//! When a trapped `syscall` site becomes a jump (the encoding is in
//! `arch::patch`). Sites are patched lazily, on their first trap: the site
//! is then known to be a real instruction that the program executes, with
//! the number it loads. A site that cannot be patched keeps trapping: only
//! slower, and counted.
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use optivolt_abi::layout::USER_TOP;

use crate::arch::patch::{site_at, site_jump, trampoline, LOOK_BEHIND, MAX_WINDOW};
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
    match patch_listed(k, ret).or_else(|| patch(k, ret, nr)) {
        Some(Patch::Done) => {
            PATCHED.fetch_add(1, Relaxed);
            crate::arch::bump(crate::arch::Counter::PatchedSites);
        }
        // A restarted call re-runs the `syscall` the patch kept: it traps,
        // and its site must not be patched again (the window now holds
        // our jump).
        Some(Patch::Already) => {}
        None => {
            UNPATCHABLE.fetch_add(1, Relaxed);
        }
    }
}

/// What became of a trapped site.
enum Patch {
    /// Rewritten now.
    Done,
    /// Rewritten before (the trap came from the `syscall` the patch keeps).
    Already,
}

/// Whether `window` (the bytes before a `syscall`) holds our jump: `jmp
/// rel32` and `int3` up to the `syscall`. Original code never looks like
/// this: windows and the `mov`s of patterns hold no control flow.
fn our_jump(window: &[u8]) -> bool {
    window.len() >= 5 && window[0] == 0xe9 && window[5..].iter().all(|&b| b == 0xcc)
}

/// The window start of the site whose `syscall` is at `at`, from the table
/// volt made ahead of time.
fn listed(table: &[u8], at: u64) -> Option<u64> {
    let n = table.len() / 16;
    let word = |i: usize| {
        let b = table.get(i..i + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let key = word(mid * 16)?;
        if key == at {
            return word(mid * 16 + 8);
        }
        if key < at {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    None
}

/// Patches a site volt's disassembler found: its window of instructions
/// moves into the trampoline.
fn patch_listed(k: &mut Kernel, ret: u64) -> Option<Patch> {
    let at = ret - 2;
    let start = listed(k.sites.program(), at).or_else(|| {
        let (pairs, bias) = k.sites.library_at(at)?;
        listed(pairs, at.wrapping_sub(bias)).map(|s| s.wrapping_add(bias))
    })?;
    let len = usize::try_from(at.checked_sub(start)?).ok()?;
    if !(5..=MAX_WINDOW).contains(&len) {
        return None;
    }
    let mut bytes = [0u8; MAX_WINDOW + 2];
    let bytes = &mut bytes[..len + 2];
    k.mem.copy_from_user(start, bytes).ok()?;
    // Still the code the host read: the `syscall` is where it was.
    if bytes[len..] != [0x0f, 0x05] {
        return None;
    }
    if our_jump(&bytes[..len]) {
        return Some(Patch::Already);
    }
    install(k, start, &bytes[..len])
}

/// Patches a site of the `mov eax|rax, imm32; syscall` shape.
fn patch(k: &mut Kernel, ret: u64, nr: u64) -> Option<Patch> {
    let mut before = [0u8; LOOK_BEHIND];
    k.mem
        .copy_from_user(ret - LOOK_BEHIND as u64, &mut before)
        .ok()?;
    let n = LOOK_BEHIND - 2;
    if before[n..] == [0x0f, 0x05] && (our_jump(&before[n - 5..n]) || our_jump(&before[n - 7..n])) {
        return Some(Patch::Already);
    }
    let found = site_at(&before)?;
    // The value the site loads is the one the call carries: the `mov` really
    // is the one that feeds this `syscall`.
    if found.rax != nr {
        return None;
    }
    let len = found.mov_len as usize;
    install(k, ret - 2 - found.mov_len, &before[n - len..n])
}

/// Moves `window`, the instructions at `start` right before a `syscall`,
/// into a new trampoline and replaces them with a jump to it.
fn install(k: &mut Kernel, start: u64, window: &[u8]) -> Option<Patch> {
    let at = start + window.len() as u64; // the `syscall`
                                          // Only code the program maps executable, whole.
    let vma = k.mem.vmas.find(start)?;
    if vma.prot & PROT_EXEC == 0 || vma.end < at + 2 {
        return None;
    }
    let entry = crate::arch::entry::ov_syscall_jump_entry as *const () as usize as u64;
    // The first pool with a trampoline left in reach of a `jmp rel32`.
    let (pool, probe, t, jump) = k.trampolines.iter_mut().find_map(|pool| {
        let mut probe = *pool;
        let t = probe.take()?;
        let jump = site_jump(start, window.len(), t)?;
        Some((pool, probe, t, jump))
    })?;
    let code = trampoline(t, at, window, entry)?;
    // The trampoline first, then the jump to it: one vCPU, and no other
    // thread runs inside the library OS, so nothing sees half of it.
    k.mem.load(t, &code).ok()?;
    k.mem.load(start, &jump[..window.len()]).ok()?;
    *pool = probe;
    Some(Patch::Done)
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
