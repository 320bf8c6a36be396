//! Open files and the descriptor table.
use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::Mutex;

use crate::errno::*;
use crate::fs::vfs::Ino;

pub use crate::uapi::fcntl::*;

/// The network stack's handles for the socket kinds; without the `net`
/// feature there are no sockets and these kinds cannot exist.
#[cfg(feature = "net")]
pub use crate::net::{stack::Sock as UdpSock, tcp::Id as TcpId};
/// No UDP socket without the network.
#[cfg(not(feature = "net"))]
pub type UdpSock = core::convert::Infallible;
/// No TCP socket without the network.
#[cfg(not(feature = "net"))]
pub type TcpId = core::convert::Infallible;

/// What an open file refers to.
#[derive(Debug)]
pub enum FileKind {
    /// An inode of the VFS (file, directory, device).
    Inode(Ino),
    /// A file or directory in a volume, open on the host.
    Host(crate::fs::volume::HostFile),
    /// The console: 0 = stdin, 1 = stdout, 2 = stderr.
    Console(u8),
    /// A generated file's contents, taken when it was opened.
    Snapshot(Ino, Vec<u8>),
    /// The read end of a pipe.
    PipeRead(crate::fd::pipe::PipeRef),
    /// The write end of a pipe.
    PipeWrite(crate::fd::pipe::PipeRef),
    /// An eventfd.
    EventFd(crate::fd::pipe::EventFdRef),
    /// An epoll instance.
    Epoll(crate::fd::epoll::EpollRef),
    /// A timerfd.
    TimerFd(crate::fd::pipe::TimerFdRef),
    /// An AF_INET datagram socket of the network stack.
    Udp(UdpSock),
    /// An AF_INET stream socket of the network stack.
    Tcp(TcpId),
    /// One end of an AF_UNIX stream socket pair: reads `rx`, writes `tx`.
    UnixStream {
        /// Data from the peer.
        rx: crate::fd::pipe::PipeRef,
        /// Data to the peer.
        tx: crate::fd::pipe::PipeRef,
    },
}

impl FileKind {
    /// Whether the file is a stream with no position (pipes, eventfds,
    /// epoll, timerfds, sockets): pread/pwrite refuse it with ESPIPE.
    pub fn is_channel(&self) -> bool {
        match self {
            FileKind::Inode(_)
            | FileKind::Host(_)
            | FileKind::Console(_)
            | FileKind::Snapshot(..) => false,
            FileKind::PipeRead(_)
            | FileKind::PipeWrite(_)
            | FileKind::EventFd(_)
            | FileKind::Epoll(_)
            | FileKind::TimerFd(_)
            | FileKind::Udp(_)
            | FileKind::Tcp(_)
            | FileKind::UnixStream { .. } => true,
        }
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        // The last descriptor of this open file went away: the other end of a
        // pipe sees EOF or EPIPE, and waiters re-check.
        let changed = match &self.kind {
            FileKind::PipeRead(p) => {
                let mut p = p.lock();
                p.readers = p.readers.saturating_sub(1);
                p.generation += 1;
                true
            }
            FileKind::PipeWrite(p) => {
                let mut p = p.lock();
                p.writers = p.writers.saturating_sub(1);
                p.generation += 1;
                true
            }
            FileKind::UnixStream { rx, tx } => {
                for (p, reader) in [(rx, true), (tx, false)] {
                    let mut p = p.lock();
                    if reader {
                        p.readers = p.readers.saturating_sub(1);
                    } else {
                        p.writers = p.writers.saturating_sub(1);
                    }
                    p.generation += 1;
                }
                true
            }
            #[cfg(feature = "net")]
            FileKind::Tcp(id) => {
                crate::net::tcp::close(*id);
                false
            }
            #[cfg(feature = "net")]
            FileKind::Udp(h) => {
                crate::net::udp::close(*h);
                false
            }
            #[cfg(not(feature = "net"))]
            FileKind::Tcp(never) | FileKind::Udp(never) => match *never {},
            FileKind::TimerFd(t) => {
                crate::task::sched::set_timer(t.lock().id, None);
                false
            }
            _ => false,
        };
        if changed {
            crate::task::sched::io_event();
        }
    }
}

/// An open file description (shared by dup'ed descriptors).
#[derive(Debug)]
pub struct OpenFile {
    /// What it is.
    pub kind: FileKind,
    /// File offset (or directory cursor).
    pub offset: u64,
    /// O_* status flags and access mode.
    pub flags: u32,
}

impl OpenFile {
    /// Whether reading is allowed.
    pub fn readable(&self) -> bool {
        self.flags & O_PATH == 0 && self.flags & O_ACCMODE != O_WRONLY
    }
    /// Whether writing is allowed.
    pub fn writable(&self) -> bool {
        self.flags & O_PATH == 0 && self.flags & O_ACCMODE != O_RDONLY
    }
}

/// A shared open file.
pub type FileRef = Arc<Mutex<OpenFile>>;

/// One descriptor.
#[derive(Clone, Debug)]
pub struct Fd {
    /// The open file.
    pub file: FileRef,
    /// FD_CLOEXEC.
    pub cloexec: bool,
}

/// The descriptor table.
#[derive(Debug, Default)]
pub struct FdTable {
    fds: Vec<Option<Fd>>,
    /// Bumped when a descriptor is closed or replaced (epoll drops its
    /// registrations of files no longer there only then).
    changes: u64,
}

/// RLIMIT_NOFILE.
pub const MAX_FDS: usize = 1024;

impl FdTable {
    /// A table with stdin, stdout and stderr.
    pub fn with_console() -> Self {
        let mut t = FdTable::default();
        for (fd, flags) in [(0u8, O_RDONLY), (1, O_WRONLY), (2, O_WRONLY)] {
            let f = OpenFile {
                kind: FileKind::Console(fd),
                offset: 0,
                flags,
            };
            t.fds.push(Some(Fd {
                file: Arc::new(Mutex::new(f)),
                cloexec: false,
            }));
        }
        t
    }

    /// The descriptor `fd`.
    pub fn get(&self, fd: u64) -> Result<&Fd, i64> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.fds.get(i))
            .and_then(|f| f.as_ref())
            .ok_or(EBADF)
    }

    /// The descriptor `fd`, mutably.
    pub fn get_mut(&mut self, fd: u64) -> Result<&mut Fd, i64> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.fds.get_mut(i))
            .and_then(|f| f.as_mut())
            .ok_or(EBADF)
    }

    /// The open file behind `fd`.
    pub fn file(&self, fd: u64) -> Result<FileRef, i64> {
        Ok(self.get(fd)?.file.clone())
    }

    /// Installs at the lowest free descriptor >= `min`.
    pub fn install_from(&mut self, min: usize, fd: Fd) -> Result<u64, i64> {
        let slot = (min..MAX_FDS)
            .find(|&i| self.fds.get(i).is_none_or(|f| f.is_none()))
            .ok_or(EMFILE)?;
        if self.fds.len() <= slot {
            self.fds.resize(slot + 1, None);
        }
        self.fds[slot] = Some(fd);
        Ok(slot as u64)
    }

    /// Installs at the lowest free descriptor.
    pub fn install(&mut self, file: OpenFile, cloexec: bool) -> Result<u64, i64> {
        self.install_from(
            0,
            Fd {
                file: Arc::new(Mutex::new(file)),
                cloexec,
            },
        )
    }

    /// Installs at exactly `fd`, closing what was there.
    pub fn install_at(&mut self, fd: u64, f: Fd) -> Result<u64, i64> {
        let i = usize::try_from(fd)
            .ok()
            .filter(|&i| i < MAX_FDS)
            .ok_or(EBADF)?;
        if self.fds.len() <= i {
            self.fds.resize(i + 1, None);
        }
        self.fds[i] = Some(f);
        self.changes += 1;
        Ok(fd)
    }

    /// The count of closes and replacements so far.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Closes `fd`.
    pub fn close(&mut self, fd: u64) -> Result<Fd, i64> {
        let i = usize::try_from(fd).map_err(|_| EBADF)?;
        self.changes += 1;
        self.fds.get_mut(i).and_then(|f| f.take()).ok_or(EBADF)
    }

    /// Descriptors in use (for /proc and close_range).
    pub fn open_fds(&self) -> impl Iterator<Item = u64> + '_ {
        self.fds
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_some())
            .map(|(i, _)| i as u64)
    }
}
