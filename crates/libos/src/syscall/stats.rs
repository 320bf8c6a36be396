//! What the guest counts (`volt run --stats`): system calls by number and
//! by how they arrived, patched sites, page faults, timer ticks, CPU time.
//! Printed on stderr when the program exits.
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::patch::{PATCHED, UNPATCHABLE};
use core::fmt::Write;

use crate::drivers::console::write_kernel;
use crate::util::BufWriter;

/// Numbers counted one by one; larger ones share the last slot.
const SLOTS: usize = 512;

static BY_JUMP: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static BY_TRAP: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
/// Timer interrupts taken in application code.
pub static TICKS: AtomicU64 = AtomicU64::new(0);

/// Counts one call of `nr`.
pub fn count(nr: u64, jumped: bool) {
    let i = (nr as usize).min(SLOTS - 1);
    let t = if jumped { &BY_JUMP } else { &BY_TRAP };
    t[i].fetch_add(1, Relaxed);
    crate::arch::bump(if jumped {
        crate::arch::Counter::SyscallsByJump
    } else {
        crate::arch::Counter::SyscallsByTrap
    });
}

fn sum(t: &[AtomicU64; SLOTS]) -> u64 {
    t.iter().map(|c| c.load(Relaxed)).sum()
}

/// Calls that arrived by a jump and by a trap.
fn totals() -> (u64, u64) {
    (sum(&BY_JUMP), sum(&BY_TRAP))
}

/// Prints the counts if the user asked for them (`--stats`, `--stats=all`).
pub fn report_at_exit() {
    use optivolt_abi::boot::flags;
    // SAFETY: BootInfo lives at a fixed physmap address; its flags and TSC
    // frequency are never written after boot.
    let (f, khz) = unsafe {
        let b = &*crate::arch::boot_info_ptr();
        (b.flags, b.tsc_khz)
    };
    if f & flags::STATS == 0 {
        return;
    }
    let (j, t) = totals();
    let cpu_ns = crate::time::ticks_to_ns(crate::task::sched::cpu_ticks(true), khz);
    // One console write for the whole report (each write is an exit).
    let mut buf = [0u8; 4096];
    let mut w = BufWriter::new(&mut buf);
    let _ = w.write_fmt(format_args!(
        "volt stats (guest):\n  {:<20}{}: {} by jump, {} by trap\n  {:<20}{} ({} traps from sites left as they are)\n",
        "system calls",
        j + t,
        j,
        t,
        "patched sites",
        PATCHED.load(Relaxed),
        UNPATCHABLE.load(Relaxed),
    ));
    let _ = w.write_fmt(format_args!(
        "  {:<20}{}\n  {:<20}{}\n  {:<20}{}.{:03} ms\n",
        "page faults",
        crate::kernel::fault::PAGE_FAULTS.load(Relaxed),
        "ticks taken",
        TICKS.load(Relaxed),
        "guest CPU time",
        cpu_ns / 1_000_000,
        (cpu_ns / 1000) % 1000,
    ));
    let (heap_used, heap_size) = crate::mm::heap::usage();
    let _ = w.write_fmt(format_args!(
        "  {:<20}{} KiB at most in frames; library OS heap {} of {} KiB\n",
        "guest memory",
        crate::mm::frame::PEAK_FRAMES.load(Relaxed) * 4,
        heap_used / 1024,
        heap_size / 1024,
    ));
    for i in 0..SLOTS {
        if f & flags::STATS_ALL == 0 {
            break;
        }
        let (j, t) = (BY_JUMP[i].load(Relaxed), BY_TRAP[i].load(Relaxed));
        if j + t == 0 {
            continue;
        }
        let name = crate::uapi::unistd::name(i as u64).unwrap_or("?");
        let _ = w.write_fmt(format_args!(
            "  {name:<20}{}: {j} by jump, {t} by trap\n",
            j + t
        ));
    }
    let n = w.len();
    write_kernel(2, &buf[..n]);
}
