//! The scheduler's queues on the host: futex queues, deadlines, timers,
//! signals against blocked threads.
use alloc::boxed::Box;

use super::sched::*;
use super::testing::globals;

/// Adds thread `tid` (no stack: it is never switched to here).
fn add_thread(tid: u32) {
    with(|s| {
        s.threads
            .insert(tid, Box::new(Thread::new(tid, None, 0, 0)));
    });
}

/// Runs `f` as if thread `tid` were running.
fn as_thread<R>(tid: u32, f: impl FnOnce() -> R) -> R {
    let prev = with(|s| core::mem::replace(&mut s.current, tid));
    let r = f();
    with(|s| s.current = prev);
    r
}

fn run_queue() -> alloc::vec::Vec<u32> {
    with(|s| s.run_queue.iter().copied().collect())
}

fn wake_of(tid: u32) -> Option<Wake> {
    as_thread(tid, take_wake)
}

#[test]
fn futex_waiters_wake_in_arrival_order_and_only_as_many_as_asked() {
    let _g = globals();
    for tid in [2, 3, 4] {
        add_thread(tid);
        as_thread(tid, || block_on_futex(0x1000, u32::MAX, None));
    }
    assert_eq!(futex_wake(0x1000, 2, u32::MAX), 2);
    assert_eq!(run_queue(), [2, 3]);
    assert_eq!(wake_of(2), Some(Wake::Event));
    assert_eq!(futex_wake(0x1000, 10, u32::MAX), 1);
    assert_eq!(run_queue(), [2, 3, 4]);
    assert_eq!(futex_wake(0x1000, 10, u32::MAX), 0, "the queue is empty");
}

#[test]
fn a_futex_wake_skips_waiters_whose_bitset_does_not_match() {
    let _g = globals();
    add_thread(2);
    add_thread(3);
    as_thread(2, || block_on_futex(0x2000, 0b01, None));
    as_thread(3, || block_on_futex(0x2000, 0b10, None));
    assert_eq!(futex_wake(0x2000, 10, 0b10), 1);
    assert_eq!(run_queue(), [3]);
    assert!(!run_queue().contains(&2));
}

#[test]
fn requeued_waiters_are_woken_from_the_new_futex_only() {
    let _g = globals();
    for tid in [2, 3, 4] {
        add_thread(tid);
        as_thread(tid, || block_on_futex(0xa000, u32::MAX, None));
    }
    assert_eq!(futex_requeue(0xa000, 0xb000, 2), 2);
    assert_eq!(futex_wake(0xa000, 10, u32::MAX), 1, "only 4 stayed");
    assert_eq!(run_queue(), [4]);
    assert_eq!(futex_wake(0xb000, 10, u32::MAX), 2);
    assert_eq!(run_queue(), [4, 2, 3]);
}

#[test]
fn deadlines_wake_sleepers_with_timeout_and_the_earliest_counts() {
    let _g = globals();
    add_thread(2);
    add_thread(3);
    as_thread(2, || block_current(Some(500)));
    as_thread(3, || block_on_futex(0x3000, u32::MAX, Some(300)));
    with(|s| {
        assert_eq!(s.earliest_deadline(), Some(300));
        s.wake_expired(299);
        assert!(s.run_queue.is_empty());
        s.wake_expired(300);
        assert_eq!(s.earliest_deadline(), Some(500));
    });
    assert_eq!(run_queue(), [3]);
    assert_eq!(wake_of(3), Some(Wake::Timeout));
    // A timed-out futex waiter left its queue.
    assert_eq!(futex_wake(0x3000, 10, u32::MAX), 0);
    with(|s| s.wake_expired(u64::MAX));
    assert_eq!(run_queue(), [3, 2]);
}

#[test]
fn an_expired_timer_wakes_only_the_threads_waiting_for_io() {
    let _g = globals();
    add_thread(2);
    add_thread(3);
    as_thread(2, || block_io(None));
    with(|s| s.threads.get_mut(&2).map(|t| t.io_wait = true));
    as_thread(3, || block_current(None));
    set_timer(7, Some(1000));
    with(|s| {
        assert_eq!(s.earliest_deadline(), Some(1000));
        s.fire_timers(999);
        assert!(s.run_queue.is_empty());
        s.fire_timers(1000);
        assert!(s.timers.is_empty(), "a fired timer is disarmed");
    });
    assert_eq!(run_queue(), [2]);
}

#[test]
fn a_signal_interrupts_a_blocked_thread_unless_it_is_masked() {
    let _g = globals();
    add_thread(2);
    add_thread(3);
    as_thread(2, || block_on_futex(0x4000, u32::MAX, None));
    as_thread(3, || {
        with_current(|t| t.sigmask = 1 << (10 - 1));
        block_current(None);
    });
    assert!(send_signal(2, 10));
    assert!(send_signal(3, 10));
    assert!(!send_signal(99, 10), "no such thread");
    assert_eq!(run_queue(), [2]);
    assert!(as_thread(2, interrupted));
    assert_eq!(as_thread(2, take_signal), Some(10));
    assert_eq!(as_thread(3, take_signal), None, "masked: stays pending");
    assert_eq!(futex_wake(0x4000, 10, u32::MAX), 0, "2 left the queue");
}

#[test]
fn a_signal_that_finds_its_thread_woken_already_still_interrupts_the_wait() {
    let _g = globals();
    add_thread(2);
    as_thread(2, || block_on_futex(0x4100, u32::MAX, None));
    // Woken by its futex first (runnable again), then sent a signal: its
    // wait must end with the signal, not be retried with it pending.
    assert_eq!(futex_wake(0x4100, 1, u32::MAX), 1);
    assert!(send_signal(2, 15));
    assert!(!as_thread(2, interrupted), "it was woken by the futex");
    assert!(as_thread(2, signal_ready));
    assert_eq!(as_thread(2, take_signal), Some(15));
    assert!(!as_thread(2, signal_ready));
}

#[test]
fn a_call_keeps_its_deadline_across_restarts_until_it_is_done() {
    let _g = globals();
    assert_eq!(call_deadline(|| Some(42)), Some(42));
    assert_eq!(
        call_deadline(|| Some(7)),
        Some(42),
        "a restart keeps the first"
    );
    call_done();
    assert_eq!(call_deadline(|| Some(7)), Some(7));
    call_done();
}

#[test]
fn the_interval_timer_signals_a_thread_that_takes_sigalrm_and_rearms() {
    use super::itimer::{real_timer, set_real_timer, RealTimer, SIGALRM};
    let _g = globals();
    add_thread(2);
    // The main thread blocks SIGALRM; thread 2 sleeps and does not.
    with_current(|t| t.sigmask = 1 << (SIGALRM - 1));
    as_thread(2, || block_current(None));
    set_real_timer(RealTimer {
        next: Some(1000),
        interval: 100,
    });
    with(|s| {
        assert_eq!(s.earliest_deadline(), Some(1000));
        s.fire_real_timer(999);
        assert!(s.run_queue.is_empty(), "not yet due");
        // Late by two and a half periods: one signal, next expiry on the grid.
        s.fire_real_timer(1250);
    });
    assert_eq!(real_timer().next, Some(1300));
    assert_eq!(run_queue(), [2]);
    assert_eq!(wake_of(2), Some(Wake::Signal));
    assert_eq!(as_thread(2, take_signal), Some(SIGALRM));
    // A one-shot timer disarms itself.
    let old = set_real_timer(RealTimer {
        next: Some(2000),
        interval: 0,
    });
    assert_eq!(
        old,
        RealTimer {
            next: Some(1300),
            interval: 100
        }
    );
    with(|s| s.fire_real_timer(2000));
    assert_eq!(
        real_timer(),
        RealTimer {
            next: None,
            interval: 0
        }
    );
}
