//! epoll instances: interest lists evaluated against the files' readiness.
use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use spin::Mutex;

use crate::fd::file::FileRef;

/// EPOLLIN.
pub const EPOLLIN: u32 = 0x001;
/// EPOLLPRI.
pub const EPOLLPRI: u32 = 0x002;
/// EPOLLOUT.
pub const EPOLLOUT: u32 = 0x004;
/// EPOLLERR.
pub const EPOLLERR: u32 = 0x008;
/// EPOLLHUP.
pub const EPOLLHUP: u32 = 0x010;
/// EPOLLRDHUP.
pub const EPOLLRDHUP: u32 = 0x2000;
/// EPOLLONESHOT.
pub const EPOLLONESHOT: u32 = 1 << 30;
/// EPOLLET.
pub const EPOLLET: u32 = 1 << 31;

/// One registered descriptor.
#[derive(Debug, Clone)]
pub struct Interest {
    /// The file registered (the registration ends when it is closed everywhere).
    pub file: FileRef,
    /// Requested events and flags.
    pub events: u32,
    /// User data returned with events.
    pub data: u64,
    /// Generation of the file when last reported (edge-triggered mode).
    pub reported_generation: Option<u64>,
    /// Disabled by EPOLLONESHOT until re-armed with EPOLL_CTL_MOD.
    pub disabled: bool,
    /// For a TCP socket: its id, and its readiness when last computed
    /// (`None`: compute again). A socket found not ready is looked at
    /// again only once the stack reports a change of it.
    pub tcp: Option<super::file::TcpId>,
    pub cached: Option<u32>,
}

/// An epoll instance, keyed by descriptor number.
#[derive(Debug, Default)]
pub struct Epoll {
    /// The interest list.
    pub interests: BTreeMap<i32, Interest>,
    /// The descriptor table's change count when registrations were last
    /// checked for closed files.
    pub fd_changes: u64,
    /// The TCP change number seen last (`net::tcp::changed_since`).
    pub tcp_seq: u64,
}

/// A shared epoll instance.
pub type EpollRef = Arc<Mutex<Epoll>>;
