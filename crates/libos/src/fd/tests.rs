//! Readiness of open files (pipes, socket pairs, eventfds, timerfds, the
//! console, sockets) and what an epoll registration holds, on the host.
use alloc::sync::Arc;

use spin::Mutex;

use super::epoll::{Epoll, Interest, EPOLLIN};
use super::file::{FileKind, FileRef, OpenFile, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY};
use super::pipe::{EventFd, Pipe, PipeRef, TimerFd, PIPE_CAPACITY};
use super::ready::readiness;
use crate::task::testing::globals;
use crate::uapi::poll::*;

/// A pipe with one read end and one write end, built as pipe2 does.
fn pipe() -> (OpenFile, OpenFile, PipeRef) {
    let p = Arc::new(Mutex::new(Pipe {
        readers: 1,
        writers: 1,
        ..Default::default()
    }));
    let r = OpenFile {
        kind: FileKind::PipeRead(p.clone()),
        offset: 0,
        flags: O_RDONLY | O_NONBLOCK,
    };
    let w = OpenFile {
        kind: FileKind::PipeWrite(p.clone()),
        offset: 0,
        flags: O_WRONLY | O_NONBLOCK,
    };
    (r, w, p)
}

/// Queues `n` bytes as a write does.
fn put(p: &PipeRef, n: usize) {
    let mut p = p.lock();
    p.data.extend(core::iter::repeat_n(b'x', n));
    p.generation += 1;
}

fn eventfd(count: u64) -> OpenFile {
    OpenFile {
        kind: FileKind::EventFd(Arc::new(Mutex::new(EventFd {
            count,
            semaphore: false,
            generation: 0,
        }))),
        offset: 0,
        flags: O_RDWR,
    }
}

#[test]
fn an_empty_pipe_is_writable_but_not_readable() {
    let _g = globals();
    let (r, w, _p) = pipe();
    assert_eq!(readiness(&r).0, 0);
    assert_eq!(readiness(&w).0, POLLOUT | POLLWRNORM);
}

#[test]
fn a_pipe_with_data_is_readable() {
    let _g = globals();
    let (r, w, p) = pipe();
    put(&p, 1);
    assert_eq!(readiness(&r).0, POLLIN | POLLRDNORM);
    assert_eq!(readiness(&w).0, POLLOUT | POLLWRNORM, "still room");
    p.lock().data.clear();
    assert_eq!(readiness(&r).0, 0, "drained");
}

#[test]
fn a_pipe_write_end_is_writable_until_the_pipe_is_full() {
    let _g = globals();
    let (r, w, p) = pipe();
    put(&p, PIPE_CAPACITY - 1);
    assert_eq!(p.lock().room(), 1);
    assert_eq!(readiness(&w).0, POLLOUT | POLLWRNORM, "one byte of room");
    put(&p, 1);
    assert_eq!(p.lock().room(), 0);
    assert_eq!(readiness(&w).0, 0, "full");
    assert_eq!(readiness(&r).0, POLLIN | POLLRDNORM);
    p.lock().data.pop_front();
    assert_eq!(readiness(&w).0, POLLOUT | POLLWRNORM, "room again");
}

#[test]
fn the_read_end_hangs_up_when_the_last_write_end_is_dropped() {
    let _g = globals();
    let (r, w, p) = pipe();
    // A dup'ed descriptor shares the open file: only the last one counts.
    let w: FileRef = Arc::new(Mutex::new(w));
    let dup = w.clone();
    drop(w);
    assert_eq!(p.lock().writers, 1, "a descriptor is left");
    assert_eq!(readiness(&r).0 & POLLHUP, 0);
    put(&p, 3);
    drop(dup);
    assert_eq!(p.lock().writers, 0);
    assert_eq!(
        readiness(&r).0,
        POLLIN | POLLRDNORM | POLLHUP,
        "unread data stays readable beside the hang-up"
    );
    p.lock().data.clear();
    assert_eq!(
        readiness(&r).0,
        POLLHUP,
        "then only the hang-up (reads see EOF)"
    );
}

#[test]
fn the_write_end_is_in_error_when_the_last_read_end_is_gone() {
    let _g = globals();
    let (r, w, p) = pipe();
    drop(r);
    assert_eq!(p.lock().readers, 0);
    assert_eq!(readiness(&w).0, POLLOUT | POLLWRNORM | POLLERR);
}

#[test]
fn pipe_readiness_carries_a_generation_that_every_change_bumps() {
    let _g = globals();
    let (r, w, p) = pipe();
    let (_, g0) = readiness(&r);
    assert_eq!(readiness(&w).1, g0, "both ends share the pipe's generation");
    put(&p, 1);
    let (_, g1) = readiness(&r);
    assert_ne!(g1, g0, "a write");
    assert_eq!(readiness(&r).1, g1, "looking changes nothing");
    drop(w);
    let (_, g2) = readiness(&r);
    assert_ne!(g2, g1, "closing the write end");
    let (r2, w2, p2) = pipe();
    let (_, h0) = readiness(&w2);
    drop(r2);
    assert_ne!(readiness(&w2).1, h0, "closing the read end");
    let g = p2.lock().generation;
    assert_eq!(readiness(&w2).1, g);
    drop(r);
}

#[test]
fn an_eventfd_is_readable_with_a_count_and_writable_below_the_maximum() {
    let _g = globals();
    assert_eq!(readiness(&eventfd(0)).0, POLLOUT | POLLWRNORM);
    assert_eq!(
        readiness(&eventfd(1)).0,
        POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM
    );
    assert_eq!(
        readiness(&eventfd(u64::MAX - 2)).0,
        POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM,
        "one more can still be added"
    );
    assert_eq!(
        readiness(&eventfd(u64::MAX - 1)).0,
        POLLIN | POLLRDNORM,
        "at the maximum a write would block"
    );
    let e = eventfd(0);
    let FileKind::EventFd(c) = &e.kind else {
        unreachable!()
    };
    c.lock().generation = 7;
    assert_eq!(readiness(&e).1, 7, "the eventfd's generation");
}

#[test]
fn socket_pair_ends_see_each_other_and_the_peers_close() {
    let _g = globals();
    let new = || {
        Arc::new(Mutex::new(Pipe {
            readers: 1,
            writers: 1,
            ..Default::default()
        }))
    };
    let (a, b): (PipeRef, PipeRef) = (new(), new());
    let x = OpenFile {
        kind: FileKind::UnixStream {
            rx: a.clone(),
            tx: b.clone(),
        },
        offset: 0,
        flags: O_RDWR,
    };
    let y = OpenFile {
        kind: FileKind::UnixStream {
            rx: b.clone(),
            tx: a.clone(),
        },
        offset: 0,
        flags: O_RDWR,
    };
    assert_eq!(readiness(&x).0, POLLOUT | POLLWRNORM);
    put(&b, 5); // x writes 5 bytes to y
    assert_eq!(readiness(&y).0, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM);
    assert_eq!(readiness(&x).0, POLLOUT | POLLWRNORM);
    drop(x);
    assert_eq!(
        readiness(&y).0,
        POLLIN | POLLRDNORM | POLLHUP | POLLRDHUP | POLLERR,
        "peer gone: EOF after the data, and writes fail"
    );
}

#[test]
fn the_console_is_readable_on_stdin_and_writable_on_stdout_and_stderr() {
    let _g = globals();
    let con = |n| OpenFile {
        kind: FileKind::Console(n),
        offset: 0,
        flags: if n == 0 { O_RDONLY } else { O_WRONLY },
    };
    assert_eq!(readiness(&con(0)).0, POLLIN | POLLRDNORM);
    assert_eq!(readiness(&con(1)).0, POLLOUT | POLLWRNORM);
    assert_eq!(readiness(&con(2)).0, POLLOUT | POLLWRNORM);
}

#[test]
fn a_timerfd_counts_one_shot_and_periodic_expirations() {
    let mut t = TimerFd {
        next: Some(1000),
        ..Default::default()
    };
    t.update(999);
    assert_eq!((t.expired, t.generation), (0, 0), "not yet");
    t.update(1000);
    assert_eq!((t.expired, t.next), (1, None), "one-shot: disarmed");
    t.update(5000);
    assert_eq!(t.expired, 1, "disarmed timers do not expire");
    let mut p = TimerFd {
        next: Some(1000),
        interval: 100,
        ..Default::default()
    };
    p.update(1250);
    assert_eq!(p.expired, 3, "1000, 1100 and 1200");
    assert_eq!(p.next, Some(1300));
    assert_eq!(p.generation, 1);
    p.update(1299);
    assert_eq!(p.expired, 3);
    p.update(1300);
    assert_eq!((p.expired, p.next), (4, Some(1400)));
}

#[test]
fn a_timerfd_is_readable_once_it_expired() {
    let _g = globals();
    let t = Arc::new(Mutex::new(TimerFd {
        id: 42,
        next: Some(u64::MAX),
        ..Default::default()
    }));
    let f = OpenFile {
        kind: FileKind::TimerFd(t.clone()),
        offset: 0,
        flags: O_RDONLY,
    };
    assert_eq!(readiness(&f).0, 0, "armed far in the future");
    t.lock().next = Some(1);
    let (r, g) = readiness(&f);
    assert_eq!(r, POLLIN | POLLRDNORM, "the TSC passed 1 long ago");
    assert_eq!(t.lock().expired, 1);
    assert_eq!(g, t.lock().generation);
    t.lock().expired = 0;
    assert_eq!(readiness(&f).0, 0, "read: nothing pending");
}

#[test]
fn an_epoll_registration_holds_the_open_file_until_it_is_removed() {
    let _g = globals();
    let (r, w, p) = pipe();
    let w: FileRef = Arc::new(Mutex::new(w));
    let mut ep = Epoll::default();
    ep.interests.insert(
        4,
        Interest {
            file: w.clone(),
            events: EPOLLIN,
            data: 0xfeed,
            reported_generation: None,
            disabled: false,
            tcp: None,
            cached: None,
        },
    );
    drop(w);
    assert_eq!(
        readiness(&r).0 & POLLHUP,
        0,
        "the descriptor is closed but the registration keeps the end open"
    );
    let i = ep.interests.get(&4).expect("registered");
    assert_eq!(readiness(&i.file.lock()).0, POLLOUT | POLLWRNORM);
    assert_eq!(i.data, 0xfeed);
    ep.interests.remove(&4);
    assert_eq!(p.lock().writers, 0);
    assert_eq!(
        readiness(&r).0,
        POLLHUP,
        "dropping the registration closed it"
    );
}

#[test]
#[cfg(feature = "net")]
fn socket_files_report_the_stacks_readiness() {
    let _g = globals();
    let k = crate::net::udp::open().unwrap();
    let u = OpenFile {
        kind: FileKind::Udp(k),
        offset: 0,
        flags: O_RDWR,
    };
    assert_eq!(
        readiness(&u).0,
        POLLOUT | POLLWRNORM,
        "writable, nothing queued"
    );
    let id = crate::net::tcp::open().unwrap();
    let t = OpenFile {
        kind: FileKind::Tcp(id),
        offset: 0,
        flags: O_RDWR,
    };
    assert_eq!(readiness(&t), crate::net::tcp::readiness(id));
    assert_eq!(
        readiness(&t).0,
        POLLOUT | POLLWRNORM | POLLHUP,
        "unconnected"
    );
    drop(t);
    assert_eq!(
        crate::net::tcp::readiness(id).0,
        0,
        "dropping the file closed the socket"
    );
    drop(u);
}
