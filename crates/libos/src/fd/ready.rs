//! What an open file is ready for (poll/select/epoll events), with the
//! generation of its state so that edge-triggered waiters see changes.
use super::file::{FileKind, OpenFile};
use crate::arch::cpu::rdtsc;
use crate::uapi::poll::*;

/// (ready events, state generation) of an open file.
pub fn readiness(f: &OpenFile) -> (u32, u64) {
    match &f.kind {
        FileKind::Console(0) => {
            if crate::drivers::console::stdin_ready() {
                (POLLIN | POLLRDNORM, 0)
            } else {
                crate::task::sched::note_stdin_wanted();
                (0, 0)
            }
        }
        FileKind::Console(_) => (POLLOUT | POLLWRNORM, 0),
        FileKind::Inode(_) | FileKind::Host(_) | FileKind::Snapshot(..) => {
            let mut r = 0;
            if f.readable() {
                r |= POLLIN | POLLRDNORM;
            }
            if f.writable() {
                r |= POLLOUT | POLLWRNORM;
            }
            (r, 0)
        }
        FileKind::PipeRead(p) => {
            let p = p.lock();
            let mut r = 0;
            if !p.data.is_empty() {
                r |= POLLIN | POLLRDNORM;
            }
            if p.writers == 0 {
                r |= POLLHUP;
            }
            (r, p.generation)
        }
        FileKind::PipeWrite(p) => {
            let p = p.lock();
            let mut r = 0;
            if p.room() > 0 {
                r |= POLLOUT | POLLWRNORM;
            }
            if p.readers == 0 {
                r |= POLLERR;
            }
            (r, p.generation)
        }
        FileKind::EventFd(e) => {
            let e = e.lock();
            let mut r = 0;
            if e.count > 0 {
                r |= POLLIN | POLLRDNORM;
            }
            if e.count < u64::MAX - 1 {
                r |= POLLOUT | POLLWRNORM;
            }
            (r, e.generation)
        }
        FileKind::Epoll(_) => (0, 0),
        #[cfg(feature = "net")]
        FileKind::Udp(u) => {
            let (r, w, g) = crate::net::udp::readiness(*u);
            let mut m = 0;
            if r {
                m |= POLLIN | POLLRDNORM;
            }
            if w {
                m |= POLLOUT | POLLWRNORM;
            }
            (m, g)
        }
        #[cfg(feature = "net")]
        FileKind::Tcp(id) => crate::net::tcp::readiness(*id),
        #[cfg(not(feature = "net"))]
        FileKind::Tcp(never) | FileKind::Udp(never) => match *never {},
        FileKind::UnixStream { rx, tx } => {
            let (rx, tx) = (rx.lock(), tx.lock());
            let mut r = 0;
            if !rx.data.is_empty() || rx.writers == 0 {
                r |= POLLIN | POLLRDNORM;
            }
            if rx.writers == 0 {
                r |= POLLHUP | POLLRDHUP;
            }
            if tx.room() > 0 && tx.readers > 0 {
                r |= POLLOUT | POLLWRNORM;
            }
            if tx.readers == 0 {
                r |= POLLERR;
            }
            (r, rx.generation.wrapping_add(tx.generation))
        }
        FileKind::TimerFd(t) => {
            let mut t = t.lock();
            t.update(rdtsc());
            (
                if t.expired > 0 {
                    POLLIN | POLLRDNORM
                } else {
                    0
                },
                t.generation,
            )
        }
    }
}
