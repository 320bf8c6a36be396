//! Readiness, and the system calls that wait for it: pipe2, eventfd2,
//! epoll_*, poll/ppoll, select/pselect6. Pipe and eventfd reads and writes
//! live here too (they are what blocks).
use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::Mutex;

use crate::arch::cpu::rdtsc;
use crate::errno::*;
use crate::fd::epoll::*;
use crate::fd::file::*;
use crate::fd::pipe::{EventFd, Pipe};
use crate::kernel::Kernel;
use crate::task::sched::{self, Wake};

use crate::fd::ready::readiness;
use crate::uapi::poll::*;

static TIMER_IDS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

/// timerfd_create(2).
pub fn timerfd_create(k: &mut Kernel, clock: u64, flags: u32) -> SysResult {
    if !matches!(clock, 0 | 1 | 7 | 8 | 9) || flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(EINVAL);
    }
    let id = TIMER_IDS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let t = crate::fd::pipe::TimerFd {
        id,
        clock,
        ..Default::default()
    };
    let f = OpenFile {
        kind: FileKind::TimerFd(Arc::new(Mutex::new(t))),
        offset: 0,
        flags: O_RDWR | (flags & O_NONBLOCK),
    };
    k.fds.install(f, flags & O_CLOEXEC != 0).map(|fd| fd as i64)
}

fn timerfd_of(k: &Kernel, fd: u64) -> Result<crate::fd::pipe::TimerFdRef, i64> {
    let f = k.fds.file(fd)?;
    let f = f.lock();
    match &f.kind {
        FileKind::TimerFd(t) => Ok(t.clone()),
        _ => Err(EINVAL),
    }
}

fn itimerspec(t: &crate::fd::pipe::TimerFd, now: u64, khz: u64) -> [i64; 4] {
    let ns = |ticks: u64| crate::time::ticks_to_ns(ticks, khz);
    let (is, ins) = crate::time::split_ns(ns(t.interval));
    let (vs, vns) = match t.next {
        Some(n) => crate::time::split_ns(ns(n.saturating_sub(now)).max(1)),
        None => (0, 0),
    };
    [is, ins, vs, vns]
}

/// timerfd_settime(2).
pub fn timerfd_settime(k: &mut Kernel, fd: u64, flags: u32, new: u64, old: u64) -> SysResult {
    const TFD_TIMER_ABSTIME: u32 = 1;
    let t = timerfd_of(k, fd)?;
    let spec: [i64; 4] = k.mem.read_obj(new)?;
    if spec.iter().any(|&v| v < 0) || spec[1] >= 1_000_000_000 || spec[3] >= 1_000_000_000 {
        return Err(EINVAL);
    }
    let now = rdtsc();
    let khz = k.boot.tsc_khz;
    let mut t = t.lock();
    t.update(now);
    if old != 0 {
        k.mem.write_obj(old, &itimerspec(&t, now, khz))?;
    }
    let to_ns = |s: i64, ns: i64| {
        (s as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ns as u64)
    };
    let value = to_ns(spec[2], spec[3]);
    t.interval = crate::time::ns_to_ticks(to_ns(spec[0], spec[1]), khz);
    t.expired = 0;
    t.generation += 1;
    t.next = if value == 0 {
        None
    } else if flags & TFD_TIMER_ABSTIME != 0 {
        let rel = value.saturating_sub(k.clock_ns(t.clock)?);
        Some(now.saturating_add(crate::time::ns_to_ticks(rel, khz)))
    } else {
        Some(now.saturating_add(crate::time::ns_to_ticks(value, khz)))
    };
    sched::set_timer(t.id, t.next);
    Ok(0)
}

/// timerfd_gettime(2).
pub fn timerfd_gettime(k: &mut Kernel, fd: u64, cur: u64) -> SysResult {
    let t = timerfd_of(k, fd)?;
    let now = rdtsc();
    let mut t = t.lock();
    t.update(now);
    let v = itimerspec(&t, now, k.boot.tsc_khz);
    k.mem.write_obj(cur, &v)?;
    Ok(0)
}

/// read(2) of a timerfd: the number of expirations, blocking until one.
pub fn read_timerfd(k: &mut Kernel, f: &OpenFile, buf: u64, len: u64) -> Option<SysResult> {
    let FileKind::TimerFd(t) = &f.kind else {
        return None;
    };
    if len < 8 {
        return Some(Err(EINVAL));
    }
    let now = rdtsc();
    let mut t = t.lock();
    t.update(now);
    if t.expired == 0 {
        if f.flags & O_NONBLOCK != 0 {
            return Some(Err(EAGAIN));
        }
        let next = t.next;
        drop(t);
        sched::block_io(next);
        return Some(Err(BLOCKED));
    }
    let n = core::mem::take(&mut t.expired);
    t.generation += 1;
    let (id, next) = (t.id, t.next);
    drop(t);
    sched::set_timer(id, next);
    Some(k.mem.write_obj(buf, &n).map(|_| 8))
}

/// Installs two new open files and stores their descriptors at `out`
/// (pipe2, socketpair); nothing is left behind on failure.
fn install_pair(k: &mut Kernel, a: OpenFile, b: OpenFile, cloexec: bool, out: u64) -> SysResult {
    let x = k.fds.install(a, cloexec)?;
    let y = match k.fds.install(b, cloexec) {
        Ok(y) => y,
        Err(e) => {
            let _ = k.fds.close(x);
            return Err(e);
        }
    };
    if let Err(e) = k.mem.write_obj(out, &[x as i32, y as i32]) {
        let _ = k.fds.close(x);
        let _ = k.fds.close(y);
        return Err(e);
    }
    Ok(0)
}

fn new_pipe() -> crate::fd::pipe::PipeRef {
    Arc::new(Mutex::new(Pipe {
        readers: 1,
        writers: 1,
        ..Default::default()
    }))
}

/// pipe2(2).
pub fn pipe2(k: &mut Kernel, fds: u64, flags: u32) -> SysResult {
    if flags & !(O_CLOEXEC | O_NONBLOCK | 0o40000) != 0 {
        return Err(EINVAL);
    }
    let p = new_pipe();
    let nb = flags & O_NONBLOCK;
    let r = OpenFile {
        kind: FileKind::PipeRead(p.clone()),
        offset: 0,
        flags: O_RDONLY | nb,
    };
    let w = OpenFile {
        kind: FileKind::PipeWrite(p),
        offset: 0,
        flags: O_WRONLY | nb,
    };
    install_pair(k, r, w, flags & O_CLOEXEC != 0, fds)
}

/// eventfd2(2).
pub fn eventfd2(k: &mut Kernel, initval: u32, flags: u32) -> SysResult {
    const EFD_SEMAPHORE: u32 = 1;
    if flags & !(O_CLOEXEC | O_NONBLOCK | EFD_SEMAPHORE) != 0 {
        return Err(EINVAL);
    }
    let e = EventFd {
        count: initval as u64,
        semaphore: flags & EFD_SEMAPHORE != 0,
        generation: 0,
    };
    let f = OpenFile {
        kind: FileKind::EventFd(Arc::new(Mutex::new(e))),
        offset: 0,
        flags: O_RDWR | (flags & O_NONBLOCK),
    };
    k.fds.install(f, flags & O_CLOEXEC != 0).map(|fd| fd as i64)
}

fn pipe_read(
    k: &mut Kernel,
    p: &crate::fd::pipe::PipeRef,
    nonblock: bool,
    buf: u64,
    len: u64,
) -> SysResult {
    // A null read succeeds at once, as on Linux, even on an empty pipe.
    if len == 0 {
        return Ok(0);
    }
    let mut p = p.lock();
    if p.data.is_empty() {
        if p.writers == 0 {
            return Ok(0);
        }
        if nonblock {
            return Err(EAGAIN);
        }
        drop(p);
        sched::block_io(None);
        return Err(BLOCKED);
    }
    let n = (len as usize).min(p.data.len());
    let chunk: Vec<u8> = p.data.drain(..n).collect();
    p.generation += 1;
    drop(p);
    sched::io_event();
    k.mem.copy_to_user(buf, &chunk).map(|_| n as i64)
}

fn pipe_write(
    k: &mut Kernel,
    p: &crate::fd::pipe::PipeRef,
    nonblock: bool,
    buf: u64,
    len: u64,
) -> SysResult {
    let mut p = p.lock();
    if p.readers == 0 {
        return Err(EPIPE);
    }
    let room = p.room();
    if room == 0 {
        if nonblock {
            return Err(EAGAIN);
        }
        drop(p);
        sched::block_io(None);
        return Err(BLOCKED);
    }
    let n = (len as usize).min(room);
    let mut data = alloc::vec![0u8; n];
    k.mem.copy_from_user(buf, &mut data)?;
    p.data.extend(data);
    p.generation += 1;
    drop(p);
    sched::io_event();
    Ok(n as i64)
}

/// socketpair(2): AF_UNIX stream pairs (two pipes crossed).
pub fn socketpair(k: &mut Kernel, domain: u64, ty: u64, proto: u64, sv: u64) -> SysResult {
    const AF_UNIX: u64 = 1;
    const SOCK_STREAM: u64 = 1;
    const SOCK_NONBLOCK: u64 = 0o4000;
    const SOCK_CLOEXEC: u64 = 0o2000000;
    if domain != AF_UNIX {
        return Err(EAFNOSUPPORT);
    }
    if ty & 0xf != SOCK_STREAM || ty & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EOPNOTSUPP);
    }
    if proto != 0 {
        return Err(EPROTONOSUPPORT);
    }
    let (a, b) = (new_pipe(), new_pipe());
    let flags = O_RDWR
        | if ty & SOCK_NONBLOCK != 0 {
            O_NONBLOCK
        } else {
            0
        };
    let x = OpenFile {
        kind: FileKind::UnixStream {
            rx: a.clone(),
            tx: b.clone(),
        },
        offset: 0,
        flags,
    };
    let y = OpenFile {
        kind: FileKind::UnixStream { rx: b, tx: a },
        offset: 0,
        flags,
    };
    install_pair(k, x, y, ty & SOCK_CLOEXEC != 0, sv)
}

/// shutdown(2) of a socket pair end.
pub fn shutdown(k: &mut Kernel, fd: u64, how: u64) -> SysResult {
    #[cfg(feature = "net")]
    if crate::syscall::linux::socket::is_inet(k, fd) {
        return crate::syscall::linux::socket::shutdown(k, fd, how);
    }
    let f = k.fds.file(fd)?;
    let f = f.lock();
    let FileKind::UnixStream { rx, tx } = &f.kind else {
        return Err(ENOTSOCK);
    };
    if how > 2 {
        return Err(EINVAL);
    }
    // SHUT_RD: the peer's writes fail; SHUT_WR: the peer reads EOF. Counted
    // once per socket: the ends are marked with generation bumps only.
    if how == 0 || how == 2 {
        let mut r = rx.lock();
        r.readers = 0;
        r.generation += 1;
    }
    if how == 1 || how == 2 {
        let mut t = tx.lock();
        t.writers = 0;
        t.generation += 1;
    }
    drop(f);
    sched::io_event();
    Ok(0)
}

/// sendto/recvfrom on a socket pair end (addresses are ignored: connected).
pub fn sock_io(k: &mut Kernel, fd: u64, buf: u64, len: u64, flags: u64, send: bool) -> SysResult {
    const MSG_DONTWAIT: u64 = 0x40;
    let f = k.fds.file(fd)?;
    let f = f.lock();
    let FileKind::UnixStream { rx, tx } = &f.kind else {
        return Err(ENOTSOCK);
    };
    let nonblock = f.flags & O_NONBLOCK != 0 || flags & MSG_DONTWAIT != 0;
    let (rx, tx) = (rx.clone(), tx.clone());
    drop(f);
    if send {
        pipe_write(k, &tx, nonblock, buf, len)
    } else {
        pipe_read(k, &rx, nonblock, buf, len)
    }
}

/// The AF_INET socket `f` is, if it is one.
#[cfg(feature = "net")]
fn inet_of(f: &OpenFile) -> Option<crate::syscall::linux::socket::Inet> {
    match f.kind {
        FileKind::Udp(s) => Some(crate::syscall::linux::socket::Inet::Udp(s)),
        FileKind::Tcp(id) => Some(crate::syscall::linux::socket::Inet::Tcp(id)),
        _ => None,
    }
}

/// Reads from a pipe or an eventfd; `None` if `f` is neither.
pub fn read_channel(k: &mut Kernel, f: &OpenFile, buf: u64, len: u64) -> Option<SysResult> {
    #[cfg(feature = "net")]
    if let Some(s) = inet_of(f) {
        return Some(crate::syscall::linux::socket::read(
            k,
            s,
            f.flags & O_NONBLOCK != 0,
            buf,
            len,
        ));
    }
    if let FileKind::UnixStream { rx, .. } = &f.kind {
        return Some(pipe_read(k, rx, f.flags & O_NONBLOCK != 0, buf, len));
    }
    if let Some(r) = read_timerfd(k, f, buf, len) {
        return Some(r);
    }
    let nonblock = f.flags & O_NONBLOCK != 0;
    Some(match &f.kind {
        FileKind::PipeRead(p) => pipe_read(k, p, nonblock, buf, len),
        FileKind::EventFd(e) => {
            if len < 8 {
                return Some(Err(EINVAL));
            }
            let mut e = e.lock();
            if e.count == 0 {
                if nonblock {
                    return Some(Err(EAGAIN));
                }
                drop(e);
                sched::block_io(None);
                return Some(Err(BLOCKED));
            }
            let v = if e.semaphore { 1 } else { e.count };
            e.count -= v;
            e.generation += 1;
            drop(e);
            sched::io_event();
            k.mem.write_obj(buf, &v).map(|_| 8)
        }
        _ => return None,
    })
}

/// Writes to a pipe or an eventfd; `None` if `f` is neither.
pub fn write_channel(k: &mut Kernel, f: &OpenFile, buf: u64, len: u64) -> Option<SysResult> {
    #[cfg(feature = "net")]
    if let Some(s) = inet_of(f) {
        return Some(crate::syscall::linux::socket::write(
            k,
            s,
            f.flags & O_NONBLOCK != 0,
            buf,
            len,
        ));
    }
    if let FileKind::UnixStream { tx, .. } = &f.kind {
        return Some(pipe_write(k, tx, f.flags & O_NONBLOCK != 0, buf, len));
    }
    let nonblock = f.flags & O_NONBLOCK != 0;
    Some(match &f.kind {
        FileKind::PipeWrite(p) => pipe_write(k, p, nonblock, buf, len),
        FileKind::EventFd(e) => {
            if len < 8 {
                return Some(Err(EINVAL));
            }
            let v: u64 = match k.mem.read_obj(buf) {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            };
            if v == u64::MAX {
                return Some(Err(EINVAL));
            }
            let mut e = e.lock();
            if e.count.checked_add(v).is_none_or(|c| c > u64::MAX - 1) {
                if nonblock {
                    return Some(Err(EAGAIN));
                }
                drop(e);
                sched::block_io(None);
                return Some(Err(BLOCKED));
            }
            e.count += v;
            e.generation += 1;
            drop(e);
            sched::io_event();
            Ok(8)
        }
        _ => return None,
    })
}

/// epoll_create1(2) / epoll_create(2).
pub fn epoll_create(k: &mut Kernel, flags: u32) -> SysResult {
    if flags & !O_CLOEXEC != 0 {
        return Err(EINVAL);
    }
    let f = OpenFile {
        kind: FileKind::Epoll(Arc::new(Mutex::new(Epoll::default()))),
        offset: 0,
        flags: O_RDWR,
    };
    k.fds.install(f, flags & O_CLOEXEC != 0).map(|fd| fd as i64)
}

fn epoll_of(k: &Kernel, epfd: u64) -> Result<EpollRef, i64> {
    let f = k.fds.file(epfd)?;
    let f = f.lock();
    match &f.kind {
        FileKind::Epoll(e) => Ok(e.clone()),
        _ => Err(EINVAL),
    }
}

/// epoll_ctl(2).
pub fn epoll_ctl(k: &mut Kernel, epfd: u64, op: u32, fd: u64, event: u64) -> SysResult {
    const ADD: u32 = 1;
    const DEL: u32 = 2;
    const MOD: u32 = 3;
    let ep = epoll_of(k, epfd)?;
    let target = k.fds.file(fd)?;
    if fd == epfd
        || matches!(
            target.lock().kind,
            FileKind::Inode(_) | FileKind::Snapshot(..)
        )
    {
        return Err(if fd == epfd { EINVAL } else { EPERM });
    }
    let mut e = ep.lock();
    let key = fd as i32;
    match op {
        ADD | MOD => {
            let events: u32 = k.mem.read_obj(event)?;
            let data: u64 = k.mem.read_obj(event + 4)?;
            if op == ADD && e.interests.contains_key(&key) {
                return Err(EEXIST);
            }
            if op == MOD && !e.interests.contains_key(&key) {
                return Err(ENOENT);
            }
            let tcp = match target.lock().kind {
                FileKind::Tcp(id) => Some(id),
                _ => None,
            };
            e.interests.insert(
                key,
                Interest {
                    file: target,
                    events,
                    data,
                    reported_generation: None,
                    disabled: false,
                    tcp,
                    cached: None,
                },
            );
            Ok(0)
        }
        DEL => e.interests.remove(&key).map(|_| 0).ok_or(ENOENT),
        _ => Err(EINVAL),
    }
}

/// Blocks the calling thread until I/O happens or `timeout_ns` (< 0: no
/// limit) has passed since the call's first attempt; the call then runs
/// again (and finds `Wake::Timeout` when the time is up).
fn block_for_io(timeout_ns: i64) -> SysResult {
    let dl = sched::call_deadline(|| {
        (timeout_ns >= 0).then(|| rdtsc().saturating_add(sched::ns_to_tsc(timeout_ns as u64)))
    });
    sched::block_io(dl);
    Err(BLOCKED)
}

/// epoll_wait/epoll_pwait (the signal mask is not applied: no signals are queued).
pub fn epoll_wait(k: &mut Kernel, epfd: u64, events: u64, max: i32, timeout_ms: i64) -> SysResult {
    #[cfg(feature = "net")]
    crate::net::stack::tick_poll();
    if max <= 0 || max > 1 << 20 {
        return Err(EINVAL);
    }
    let wake = sched::take_wake();
    let ep = epoll_of(k, epfd)?;
    let mut out: Vec<(u32, u64)> = Vec::new();
    {
        let mut e = ep.lock();
        // Registrations whose descriptor was closed (or reused) are dropped
        // (looked for only when descriptors were closed since last time).
        if e.fd_changes != k.fds.changes() {
            e.fd_changes = k.fds.changes();
            let stale: Vec<i32> = e
                .interests
                .iter()
                .filter(|(fd, i)| {
                    k.fds
                        .file(**fd as u64)
                        .map(|f| !Arc::ptr_eq(&f, &i.file))
                        .unwrap_or(true)
                })
                .map(|(fd, _)| *fd)
                .collect();
            for fd in stale {
                e.interests.remove(&fd);
            }
        }
        // TCP sockets the stack changed since last time are looked at again.
        #[cfg(feature = "net")]
        {
            let mut dirty = Vec::new();
            match crate::net::tcp::changed_since(e.tcp_seq, |id| dirty.push(id)) {
                Some(seq) => {
                    e.tcp_seq = seq;
                    if !dirty.is_empty() {
                        dirty.sort_unstable();
                        for i in e.interests.values_mut() {
                            if i.tcp.is_some_and(|id| dirty.binary_search(&id).is_ok()) {
                                i.cached = None;
                            }
                        }
                    }
                }
                None => {
                    e.tcp_seq = crate::net::tcp::change_number();
                    for i in e.interests.values_mut() {
                        i.cached = None;
                    }
                }
            }
        }
        for i in e.interests.values_mut() {
            if out.len() >= max as usize {
                break;
            }
            // A TCP socket the stack did not change since it was last looked
            // at has nothing new: not ready then, or edge-triggered (already
            // reported). Level-triggered ready ones are looked at again.
            let unchanged =
                i.tcp.is_some() && i.cached.is_some_and(|m| m == 0 || i.events & EPOLLET != 0);
            if i.disabled || unchanged {
                continue;
            }
            let (ready, generation) = readiness(&i.file.lock());
            if i.tcp.is_some() {
                i.cached = Some(ready);
            }
            let hit = ready & (i.events | EPOLLERR | EPOLLHUP);
            if hit == 0 {
                continue;
            }
            if i.events & EPOLLET != 0 {
                if i.reported_generation == Some(generation) {
                    continue;
                }
                i.reported_generation = Some(generation);
            }
            if i.events & EPOLLONESHOT != 0 {
                i.disabled = true;
            }
            out.push((hit, i.data));
        }
    }
    if !out.is_empty() {
        let mut bytes = Vec::with_capacity(out.len() * 12);
        for (ev, data) in &out {
            bytes.extend_from_slice(&ev.to_le_bytes());
            bytes.extend_from_slice(&data.to_le_bytes());
        }
        k.mem.copy_to_user(events, &bytes)?;
        return Ok(out.len() as i64);
    }
    if timeout_ms == 0 || wake == Some(Wake::Timeout) {
        return Ok(0);
    }
    block_for_io(timeout_ms.saturating_mul(1_000_000))
}

/// poll(2)/ppoll(2): `timeout_ns` < 0 waits forever.
pub fn poll(k: &mut Kernel, fds: u64, n: u64, timeout_ns: i64) -> SysResult {
    #[cfg(feature = "net")]
    crate::net::stack::tick_poll();
    if n > MAX_FDS as u64 {
        return Err(EINVAL);
    }
    let wake = sched::take_wake();
    let mut ready = 0;
    for i in 0..n {
        let p = fds + i * 8;
        let fd: i32 = k.mem.read_obj(p)?;
        let events: i16 = k.mem.read_obj(p + 4)?;
        let revents = if fd < 0 {
            0
        } else {
            match k.fds.file(fd as u64) {
                Err(_) => POLLNVAL,
                Ok(f) => readiness(&f.lock()).0 & (events as u16 as u32 | POLLERR | POLLHUP),
            }
        };
        k.mem.write_obj(p + 6, &(revents as i16))?;
        if revents != 0 {
            ready += 1;
        }
    }
    if ready > 0 || timeout_ns == 0 || wake == Some(Wake::Timeout) {
        return Ok(ready);
    }
    block_for_io(timeout_ns)
}

/// A timeout from a `struct timespec` pointer (0 = forever) in ns, or -1.
pub fn timespec_ns(k: &mut Kernel, ts: u64) -> Result<i64, i64> {
    if ts == 0 {
        return Ok(-1);
    }
    let [s, ns]: [i64; 2] = k.mem.read_obj(ts)?;
    if s < 0 || !(0..1_000_000_000).contains(&ns) {
        return Err(EINVAL);
    }
    Ok(s.saturating_mul(1_000_000_000).saturating_add(ns))
}

/// select(2)/pselect6(2) over the bitmaps at `r`, `w`, `e`.
pub fn select(k: &mut Kernel, nfds: u64, r: u64, w: u64, e: u64, timeout_ns: i64) -> SysResult {
    #[cfg(feature = "net")]
    crate::net::stack::tick_poll();
    if nfds > MAX_FDS as u64 {
        return Err(EINVAL);
    }
    let wake = sched::take_wake();
    let words = nfds.div_ceil(64) as usize;
    let read_set = |k: &mut Kernel, p: u64| -> Result<Vec<u64>, i64> {
        let mut v = alloc::vec![0u64; words];
        if p != 0 {
            for (i, x) in v.iter_mut().enumerate() {
                *x = k.mem.read_obj(p + i as u64 * 8)?;
            }
        }
        Ok(v)
    };
    let (rs, ws, es) = (read_set(k, r)?, read_set(k, w)?, read_set(k, e)?);
    let mut out = [
        alloc::vec![0u64; words],
        alloc::vec![0u64; words],
        alloc::vec![0u64; words],
    ];
    let mut count = 0;
    for fd in 0..nfds {
        let (wi, bit) = ((fd / 64) as usize, 1u64 << (fd % 64));
        let want = [rs[wi] & bit != 0, ws[wi] & bit != 0, es[wi] & bit != 0];
        if !want.iter().any(|&x| x) {
            continue;
        }
        let ready = readiness(&k.fds.file(fd)?.lock()).0;
        let got = [
            ready & (POLLIN | POLLHUP | POLLERR) != 0,
            ready & (POLLOUT | POLLERR) != 0,
            false,
        ];
        for s in 0..3 {
            if want[s] && got[s] {
                out[s][wi] |= bit;
                count += 1;
            }
        }
    }
    if count > 0 || timeout_ns == 0 || wake == Some(Wake::Timeout) {
        for (p, set) in [(r, &out[0]), (w, &out[1]), (e, &out[2])] {
            if p != 0 {
                for (i, x) in set.iter().enumerate() {
                    k.mem.write_obj(p + i as u64 * 8, x)?;
                }
            }
        }
        return Ok(count);
    }
    block_for_io(timeout_ns)
}
