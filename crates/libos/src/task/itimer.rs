//! The process's real-time interval timer (setitimer ITIMER_REAL, alarm):
//! when it expires the process gets SIGALRM, and it re-arms itself by its
//! interval. It is noticed at scheduling points: while the application
//! computes without system calls, the monitor's preemption tick (armed
//! while the timer is) bounds the lateness by one tick.
#![cfg_attr(not(feature = "guest"), allow(dead_code))]
use super::sched::{publish_want_tick, with, Scheduler};

/// SIGALRM's number.
pub const SIGALRM: u32 = 14;

/// The timer: the next expiry (TSC; `None` when disarmed) and the interval
/// (TSC ticks; 0 for a one-shot timer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealTimer {
    pub next: Option<u64>,
    pub interval: u64,
}

/// Arms (or, with `next: None`, disarms) the timer; returns the old setting.
pub fn set_real_timer(t: RealTimer) -> RealTimer {
    with(|s| {
        let old = core::mem::replace(&mut s.real_timer, t);
        publish_want_tick(s);
        old
    })
}

/// The timer's current setting.
pub fn real_timer() -> RealTimer {
    with(|s| s.real_timer)
}

impl Scheduler {
    /// Sends SIGALRM if the timer has expired by `now`, and re-arms it at
    /// its next period after `now` (expiries missed meanwhile merge into
    /// one signal, as on Linux).
    pub(super) fn fire_real_timer(&mut self, now: u64) {
        let RealTimer {
            next: Some(due),
            interval,
        } = self.real_timer
        else {
            return;
        };
        if due > now {
            return;
        }
        self.real_timer.next = match interval {
            0 => None,
            i => Some(due.saturating_add(((now - due) / i + 1).saturating_mul(i))),
        };
        let tid = self.thread_for_signal(SIGALRM).unwrap_or(self.current);
        self.post_signal(tid, SIGALRM);
    }
}
