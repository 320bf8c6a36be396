//! Switching threads: spawning one on its own kernel stack, yielding,
//! exiting, and the scheduler loop that sleeps in the monitor when nothing
//! can run (guest only: it is assembly underneath).
use alloc::boxed::Box;
use alloc::vec::Vec;

use optivolt_abi::hypercall::{self as hc, Block};

use super::sched::*;
use crate::arch::cpu::rdtsc;
use crate::arch::entry::{ov_switch_to, thread_stack, SyscallFrame};
use crate::arch::hypercall;

/// Creates a thread whose first run returns to user mode with `frame`.
pub fn spawn(
    frame: &SyscallFrame,
    fs_base: u64,
    clear_child_tid: u64,
    sigmask: u64,
) -> Result<u32, i64> {
    let mut stack: Box<[u128]> = alloc::vec![0u128; KSTACK_SIZE / 16].into_boxed_slice();
    let top = stack.as_mut_ptr() as u64 + KSTACK_SIZE as u64;
    // SAFETY: `stack` is a fresh, 16-byte aligned allocation of KSTACK_SIZE bytes.
    let ksp = unsafe { thread_stack(top, frame) };
    with(|s| {
        let tid = s.next_tid;
        s.next_tid += 1;
        let t = Thread {
            fs_base,
            clear_child_tid,
            sigmask,
            ..Thread::new(tid, Some(stack), top, ksp)
        };
        s.threads.insert(tid, Box::new(t));
        s.run_queue.push_back(tid);
        publish_want_tick(s);
        Ok(tid)
    })
}

/// Ends the running thread (its stack is freed by the next thread to run).
pub fn exit_current() -> ! {
    with(|s| {
        let c = s.current;
        let mut left = 0u64;
        if let Some(t) = s.threads.get_mut(&c) {
            t.state = State::Dead;
            left = core::mem::take(&mut t.pending);
        }
        s.zombies.push(c);
        // Signals sent to the process that this thread had not taken yet
        // (a host SIGTERM can land on a thread on its way out) go to
        // another thread, as Linux keeps them pending for the process.
        while left != 0 {
            let sig = left.trailing_zeros() + 1;
            left &= left - 1;
            if let Some(tid) = s.thread_for_signal(sig) {
                s.post_signal(tid, sig);
            }
        }
    });
    schedule();
    crate::arch::hypercall::abort(b"a dead thread was scheduled")
}

/// Puts the running thread at the back of the run queue and runs another.
pub fn yield_now() {
    with(|s| {
        let c = s.current;
        if s.threads
            .get(&c)
            .is_some_and(|t| t.state == State::Runnable)
            && !s.run_queue.is_empty()
        {
            s.run_queue.push_back(c);
        }
    });
    schedule();
}

/// Called by a new thread on its first run.
#[no_mangle]
extern "C" fn ov_thread_started() {
    reap();
}

fn reap() {
    let dead: Vec<Box<Thread>> = with(|s| {
        let c = s.current;
        let z: Vec<u32> = s.zombies.iter().copied().filter(|&t| t != c).collect();
        s.zombies.retain(|&t| t == c);
        let gone: Vec<Box<Thread>> = z.iter().filter_map(|t| s.threads.remove(t)).collect();
        s.dead_cpu += gone.iter().map(|t| t.cpu).sum::<u64>();
        gone
    });
    drop(dead); // frees kernel stacks outside the lock
}

/// Runs the next runnable thread (round robin); sleeps in the monitor while
/// none is. Returns when the calling thread is chosen again.
pub fn schedule() {
    loop {
        let now = rdtsc();
        let step = with(|s| {
            s.wake_expired(now);
            s.fire_timers(now);
            s.fire_real_timer(now);
            s.take_host_signals();
            let prev = s.current;
            let prev_runnable = s
                .threads
                .get(&prev)
                .is_some_and(|t| t.state == State::Runnable);
            let next = match s.run_queue.pop_front() {
                Some(n) => n,
                None if prev_runnable => {
                    publish_want_tick(s);
                    return Step::Stay;
                }
                None => {
                    // The CPU goes idle: charge the time so far to the thread.
                    let since = core::mem::replace(&mut s.since, now);
                    if let Some(t) = s.threads.get_mut(&prev) {
                        t.cpu += now.saturating_sub(since);
                    }
                    return Step::Idle(s.earliest_deadline());
                }
            };
            if next == prev {
                publish_want_tick(s);
                return Step::Stay;
            }
            if prev_runnable && !s.run_queue.contains(&prev) {
                // Preempted or yielding: it goes to the back.
                s.run_queue.push_back(prev);
            }
            let fs_now = crate::arch::cpu::fs_base();
            let since = core::mem::replace(&mut s.since, now);
            let prev_ksp: *mut u64 = match s.threads.get_mut(&prev) {
                Some(t) => {
                    t.fs_base = fs_now;
                    t.cpu += now.saturating_sub(since);
                    &mut t.ksp
                }
                None => core::ptr::null_mut(),
            };
            let Some(n) = s.threads.get(&next) else {
                return Step::Stay;
            };
            let (next_ksp, next_top, next_fs) = (n.ksp, n.kstack_top, n.fs_base);
            s.current = next;
            publish_want_tick(s);
            Step::Switch(prev_ksp, next_ksp, next_top, next_fs)
        });
        match step {
            Step::Stay => return,
            Step::Idle(deadline) => {
                // The network stack runs here; with work pending, no sleep.
                let idle = with(|s| s.idle);
                let Some(deadline) = idle.map_or(Some(deadline), |hook| hook(deadline)) else {
                    continue;
                };
                let stdin = with(|s| core::mem::take(&mut s.stdin_wanted));
                let mut b = Block {
                    deadline_tsc: deadline.unwrap_or(0),
                    flags: if stdin { hc::BLOCK_WAKE_ON_STDIN } else { 0 },
                };
                hypercall::call_with(hc::BLOCK, &mut b);
                // Time asleep in the monitor is nobody's CPU time.
                with(|s| s.since = rdtsc());
                if stdin {
                    // Its readers look again (and ask again if still empty).
                    io_event();
                }
            }
            Step::Switch(prev_ksp, next_ksp, next_top, next_fs) => {
                if prev_ksp.is_null() {
                    crate::arch::hypercall::abort(b"switch from a missing thread");
                }
                crate::arch::cpu::set_fs_base(next_fs);
                // SAFETY: single vCPU; the global is read only by the entry
                // code of the thread that runs next.
                unsafe { crate::arch::entry::ov_syscall_stack_top = next_top };
                // SAFETY: `prev_ksp` points into a boxed Thread that stays in
                // the map until it is reaped (never while it is switched out
                // and alive); `next_ksp` was saved by ov_switch_to or built by
                // thread_stack.
                unsafe { ov_switch_to(prev_ksp, next_ksp) };
                reap();
                return;
            }
        }
    }
}

enum Step {
    Stay,
    Idle(Option<u64>),
    Switch(*mut u64, u64, u64, u64),
}
