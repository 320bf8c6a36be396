//! Pipes and eventfds: in-memory channels between threads.
use alloc::collections::VecDeque;
use alloc::sync::Arc;

use spin::Mutex;

/// Capacity of a pipe (as Linux's default).
pub const PIPE_CAPACITY: usize = 64 * 1024;

/// A pipe's buffer and its open ends.
#[derive(Debug, Default)]
pub struct Pipe {
    /// Bytes written and not yet read.
    pub data: VecDeque<u8>,
    /// Open read ends.
    pub readers: usize,
    /// Open write ends.
    pub writers: usize,
    /// Bumped on every state change (edge-triggered epoll).
    pub generation: u64,
}

/// A shared pipe.
pub type PipeRef = Arc<Mutex<Pipe>>;

/// An eventfd counter.
#[derive(Debug, Default)]
pub struct EventFd {
    /// The counter.
    pub count: u64,
    /// EFD_SEMAPHORE.
    pub semaphore: bool,
    /// Bumped on every state change.
    pub generation: u64,
}

/// A shared eventfd.
pub type EventFdRef = Arc<Mutex<EventFd>>;

impl Pipe {
    /// Free space.
    pub fn room(&self) -> usize {
        PIPE_CAPACITY.saturating_sub(self.data.len())
    }
}

/// A timerfd: expirations are computed from the TSC when looked at.
#[derive(Debug, Default)]
pub struct TimerFd {
    /// Identity for the scheduler's timer list.
    pub id: u64,
    /// The clock (for TFD_TIMER_ABSTIME and gettime).
    pub clock: u64,
    /// Next expiry (TSC), `None` when disarmed.
    pub next: Option<u64>,
    /// Period in TSC ticks (0 = one-shot).
    pub interval: u64,
    /// Expirations not yet read.
    pub expired: u64,
    /// Bumped on every state change.
    pub generation: u64,
}

impl TimerFd {
    /// Accounts the expirations up to `now`.
    pub fn update(&mut self, now: u64) {
        if let Some(n) = self.next {
            if now >= n {
                match (now - n).checked_div(self.interval) {
                    Some(periods) => {
                        let k = periods + 1;
                        self.expired += k;
                        self.next = Some(n + k * self.interval);
                    }
                    None => {
                        self.expired += 1;
                        self.next = None;
                    }
                }
                self.generation += 1;
            }
        }
    }
}

/// A shared timerfd.
pub type TimerFdRef = Arc<Mutex<TimerFd>>;
