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
