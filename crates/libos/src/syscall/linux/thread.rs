//! Thread system calls: clone/clone3, futex, sleeping, tgkill.
use crate::arch::cpu::{fs_base, rdtsc};
use crate::arch::entry::SyscallFrame;
use crate::errno::*;
use crate::kernel::Kernel;
use crate::task::sched::{self, Wake};

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SYSVSEM: u64 = 0x40000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_DETACHED: u64 = 0x400000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
const CSIGNAL: u64 = 0xff;

/// The flag combinations threads are created with (pthreads, Go, Rust std).
const SUPPORTED: u64 = CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_CHILD_SETTID
    | CSIGNAL;

/// clone(2) for threads. Processes (fork, vfork, a new address space) do not
/// exist in a unikernel: ENOSYS, so that callers fall back or report it.
pub fn clone(
    k: &mut Kernel,
    frame: &SyscallFrame,
    flags: u64,
    stack: u64,
    ptid: u64,
    ctid: u64,
    tls: u64,
) -> SysResult {
    if flags & CLONE_VM == 0 || flags & CLONE_VFORK != 0 || flags & CLONE_THREAD == 0 {
        return Err(ENOSYS);
    }
    if flags & !SUPPORTED != 0 || flags & CLONE_SIGHAND == 0 {
        return Err(EINVAL);
    }
    let mut child = frame.clone();
    child.regs.rax = 0;
    if stack != 0 {
        child.rsp = stack;
    }
    let fs = if flags & CLONE_SETTLS != 0 {
        tls
    } else {
        fs_base()
    };
    let clear = if flags & CLONE_CHILD_CLEARTID != 0 {
        ctid
    } else {
        0
    };
    let mask = sched::with_current(|t| t.sigmask);
    // Write the tids before the child can run (it runs only after we yield).
    let tid = sched::spawn(&child, fs, clear, mask)?;
    if flags & CLONE_PARENT_SETTID != 0 {
        k.mem.write_obj(ptid, &tid)?;
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        k.mem.write_obj(ctid, &tid)?;
    }
    Ok(tid as i64)
}

/// `struct clone_args`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// clone3(2).
pub fn clone3(k: &mut Kernel, frame: &SyscallFrame, args: u64, size: u64) -> SysResult {
    if size < 64 {
        return Err(EINVAL);
    }
    let a: CloneArgs = k.mem.read_obj(args)?;
    if a.exit_signal > CSIGNAL || a.pidfd != 0 && a.flags & 0x1000 != 0 {
        return Err(EINVAL);
    }
    let stack = if a.stack != 0 {
        a.stack.checked_add(a.stack_size).ok_or(EINVAL)?
    } else {
        0
    };
    clone(
        k,
        frame,
        a.flags | a.exit_signal,
        stack,
        a.parent_tid,
        a.child_tid,
        a.tls,
    )
}

/// On thread exit: clear and wake the CLONE_CHILD_CLEARTID word (pthread_join).
pub fn clear_child_tid(k: &mut Kernel) {
    let addr = sched::with_current(|t| core::mem::take(&mut t.clear_child_tid));
    if addr != 0 && k.mem.write_obj(addr, &0u32).is_ok() {
        sched::futex_wake(addr, 1, u32::MAX);
    }
}

/// A timeout as a TSC deadline: `ts` is relative, or absolute on `clock`.
fn deadline(k: &mut Kernel, ts: u64, absolute: bool, clock: u64) -> Result<Option<u64>, i64> {
    if ts == 0 {
        return Ok(None);
    }
    let [sec, nsec]: [i64; 2] = k.mem.read_obj(ts)?;
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(EINVAL);
    }
    let want = (sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec as u64);
    let rel = if absolute {
        want.saturating_sub(k.clock_ns(clock)?)
    } else {
        want
    };
    Ok(Some(rdtsc().saturating_add(sched::ns_to_tsc(rel))))
}

const FUTEX_WAIT: u32 = 0;
const FUTEX_WAKE: u32 = 1;
const FUTEX_REQUEUE: u32 = 3;
const FUTEX_CMP_REQUEUE: u32 = 4;
const FUTEX_WAKE_OP: u32 = 5;
const FUTEX_WAIT_BITSET: u32 = 9;
const FUTEX_WAKE_BITSET: u32 = 10;
const FUTEX_PRIVATE: u32 = 128;
const FUTEX_CLOCK_REALTIME: u32 = 256;

/// futex(2).
pub fn futex(
    k: &mut Kernel,
    uaddr: u64,
    op: u32,
    val: u32,
    timeout: u64,
    uaddr2: u64,
    val3: u32,
) -> SysResult {
    let cmd = op & !(FUTEX_PRIVATE | FUTEX_CLOCK_REALTIME);
    if !uaddr.is_multiple_of(4) {
        return Err(EINVAL);
    }
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            if let Some(w) = sched::take_wake() {
                return match w {
                    Wake::Event => Ok(0),
                    Wake::Timeout => Err(ETIMEDOUT),
                    Wake::Signal => Err(EINTR),
                };
            }
            let bitset = if cmd == FUTEX_WAIT_BITSET {
                val3
            } else {
                u32::MAX
            };
            if bitset == 0 {
                return Err(EINVAL);
            }
            let cur: u32 = k.mem.read_obj(uaddr)?;
            if cur != val {
                return Err(EAGAIN);
            }
            let clock = if op & FUTEX_CLOCK_REALTIME != 0 { 0 } else { 1 };
            let dl = deadline(k, timeout, cmd == FUTEX_WAIT_BITSET, clock)?;
            sched::block_on_futex(uaddr, bitset, dl);
            Err(BLOCKED)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE_BITSET {
                val3
            } else {
                u32::MAX
            };
            if bitset == 0 {
                return Err(EINVAL);
            }
            Ok(sched::futex_wake(uaddr, val, bitset) as i64)
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            if cmd == FUTEX_CMP_REQUEUE {
                let cur: u32 = k.mem.read_obj(uaddr)?;
                if cur != val3 {
                    return Err(EAGAIN);
                }
            }
            let woken = sched::futex_wake(uaddr, val, u32::MAX);
            let moved = sched::futex_requeue(uaddr, uaddr2, timeout as u32);
            Ok((woken + moved) as i64)
        }
        FUTEX_WAKE_OP => {
            let oparg_raw = (val3 >> 12) & 0xfff;
            let cmparg = val3 & 0xfff;
            let op_kind = (val3 >> 28) & 7;
            let oparg = if (val3 >> 31) & 1 != 0 {
                1u32 << (oparg_raw & 31)
            } else {
                oparg_raw
            };
            let cmp = (val3 >> 24) & 15;
            if !uaddr2.is_multiple_of(4) {
                return Err(EINVAL);
            }
            let old: u32 = k.mem.read_obj(uaddr2)?;
            let new = match op_kind {
                0 => oparg,
                1 => old.wrapping_add(oparg),
                2 => old | oparg,
                3 => old & !oparg,
                4 => old ^ oparg,
                _ => return Err(ENOSYS),
            };
            k.mem.write_obj(uaddr2, &new)?;
            let mut woken = sched::futex_wake(uaddr, val, u32::MAX);
            let c = match cmp {
                0 => old == cmparg,
                1 => old != cmparg,
                2 => old < cmparg,
                3 => old <= cmparg,
                4 => old > cmparg,
                5 => old >= cmparg,
                _ => return Err(ENOSYS),
            };
            if c {
                woken += sched::futex_wake(uaddr2, timeout as u32, u32::MAX);
            }
            Ok(woken as i64)
        }
        _ => Err(ENOSYS),
    }
}

/// nanosleep(2) and clock_nanosleep(2): the thread sleeps; the vCPU runs
/// other threads or sleeps in the monitor.
pub fn nanosleep(k: &mut Kernel, clock: u64, flags: u64, req: u64, _rem: u64) -> SysResult {
    const TIMER_ABSTIME: u64 = 1;
    if sched::take_wake().is_some() {
        return Ok(0);
    }
    if !matches!(clock, 0 | 1 | 7 | 11) {
        return Err(EINVAL);
    }
    let Some(dl) = deadline(k, req, flags & TIMER_ABSTIME != 0, clock)? else {
        return Err(EFAULT);
    };
    if dl <= rdtsc() {
        return Ok(0);
    }
    sched::block_current(Some(dl));
    Err(BLOCKED)
}

/// tgkill(2)/tkill(2).
pub fn tgkill(_k: &mut Kernel, tgid: u64, tid: u64, sig: u64) -> SysResult {
    if sig > 64 {
        return Err(EINVAL);
    }
    if tgid as i64 != crate::task::process::PID
        || tid > u32::MAX as u64
        || !sched::thread_exists(tid as u32)
    {
        return Err(ESRCH);
    }
    if sig != 0 {
        sched::send_signal(tid as u32, sig as u32);
    }
    Ok(0)
}

/// kill(2): our process is pid 1 (0 and -1 also reach it).
pub fn kill(_k: &mut Kernel, pid: i64, sig: u64) -> SysResult {
    if sig > 64 {
        return Err(EINVAL);
    }
    if !matches!(pid, 0 | -1 | crate::task::process::PID) && pid != -crate::task::process::PID {
        return Err(ESRCH);
    }
    if sig != 0 {
        let tid = sched::thread_for_signal(sig as u32).unwrap_or_else(sched::current_tid);
        sched::send_signal(tid, sig as u32);
    }
    Ok(0)
}
