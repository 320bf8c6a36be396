//! TCP sockets on the stack.
//!
//! A socket of the application is a [`TcpSock`] in the stack's table,
//! named by an [`Id`] (what an open file holds). It gets smoltcp sockets
//! only when it connects (one, on the interface that reaches the peer) or
//! listens. A listening socket keeps a small pool of smoltcp sockets in the
//! `Listen` state on each interface; each takes one connection, which moves
//! to the accept queue once established, and the pool is refilled while the
//! backlog has room (`crate::net::gate` holds connection requests until
//! then). Closed sockets linger as orphans until their FIN exchange ends.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::socket::tcp::{self, State as TcpState};
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint, Ipv4Address};

use crate::errno::*;
use crate::net::gate::PortGate;
use crate::net::stack::{
    ephemeral, now, poll_and_wake, with_stack, with_stack_ro, Net, Sock, Stack,
};

/// Names a TCP socket of the application.
pub type Id = u32;

/// Default receive and send buffer per connection.
pub const DEFAULT_BUFFER: usize = 64 * 1024;
/// Range SO_RCVBUF/SO_SNDBUF are clamped to.
pub const MIN_BUFFER: usize = 4 * 1024;
pub const MAX_BUFFER: usize = 4 * 1024 * 1024;
/// Listening smoltcp sockets kept ready per listener on the device and on
/// the loopback.
const SPARE_ETH: usize = 8;
const SPARE_LO: usize = 2;
/// Largest backlog (Linux's somaxconn).
pub const MAX_BACKLOG: usize = 4096;
/// How long an active open may wait for the peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(75);
/// How long a closed socket may linger in FIN-WAIT-2 and the like.
const ORPHAN_TIMEOUT_US: i64 = 60_000_000;

/// Options an application can set (SOL_SOCKET and IPPROTO_TCP levels).
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    pub nodelay: bool,
    pub keepalive: bool,
    /// TCP_KEEPIDLE, seconds.
    pub keepidle: u32,
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    /// SO_LINGER: `Some(0)` closes with a reset.
    pub linger: Option<u32>,
    /// SO_RCVTIMEO and SO_SNDTIMEO, ns (0 = wait forever).
    pub rcvtimeo_ns: u64,
    pub sndtimeo_ns: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            nodelay: false,
            keepalive: false,
            keepidle: 7200,
            reuseaddr: false,
            reuseport: false,
            rcvbuf: DEFAULT_BUFFER,
            sndbuf: DEFAULT_BUFFER,
            linger: None,
            rcvtimeo_ns: 0,
            sndtimeo_ns: 0,
        }
    }
}

struct Listener {
    backlog: usize,
    /// Sockets in `Listen`, waiting for a SYN.
    spare: Vec<Sock>,
    /// Sockets in the handshake.
    embryos: Vec<Sock>,
    /// Established connections waiting for accept.
    ready: VecDeque<Sock>,
}

enum State {
    /// Neither connected nor listening.
    Fresh,
    Listening(Listener),
    /// Connecting (until `connect` reports the outcome) or connected.
    Stream {
        sock: Sock,
        connecting: bool,
    },
}

/// An application's TCP socket.
pub struct TcpSock {
    /// Bound address (`None` = any) and port.
    local: Option<(Option<Ipv4Address>, u16)>,
    state: State,
    pub opts: Opts,
    /// Pending SO_ERROR.
    error: i64,
    shut_rd: bool,
    /// The active open failed (refused or timed out): the socket stays
    /// writable and hung up, as on Linux, whoever looked first.
    open_failed: bool,
    /// When the active open started (to tell a refusal from a time-out).
    since: i64,
    /// Bumped when the socket's readiness may have changed (epoll edges).
    generation: u64,
    /// What the last look at the socket saw (see [`refresh`]).
    snap: Snap,
}

/// The parts of a socket's state its readiness depends on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Snap {
    state: u8,
    recv_queue: usize,
    send_queue: usize,
    ready: usize,
}

impl TcpSock {
    fn new(local: Option<(Option<Ipv4Address>, u16)>, state: State, opts: Opts) -> Self {
        Self {
            local,
            state,
            opts,
            error: 0,
            shut_rd: false,
            open_failed: false,
            since: 0,
            generation: 0,
            snap: Snap::default(),
        }
    }
}

/// The TCP sockets of the stack.
#[derive(Default)]
pub struct Table {
    socks: BTreeMap<Id, TcpSock>,
    next: Id,
    /// Closed by the application, finishing their FIN exchange; with the
    /// time they were closed.
    orphans: Vec<(Sock, i64)>,
    /// Numbered record of sockets whose readiness may have changed, for
    /// epoll (the newest `CHANGES_KEPT`).
    seq: u64,
    changed: VecDeque<(u64, Id)>,
}

/// Changes remembered for epoll; an instance that fell further behind
/// looks at every socket.
const CHANGES_KEPT: usize = 4096;

impl Table {
    /// Records that socket `id` may have become ready.
    fn touch(&mut self, id: Id) {
        if let Some(me) = self.socks.get_mut(&id) {
            me.generation = me.generation.wrapping_add(1);
        }
        self.seq += 1;
        self.changed.push_back((self.seq, id));
        if self.changed.len() > CHANGES_KEPT {
            self.changed.pop_front();
        }
    }
}

/// Calls `f` with every socket that may have changed after change number
/// `since`; returns the newest change number, or `None` when the record
/// does not reach back that far (then look at every socket).
pub fn changed_since(since: u64, mut f: impl FnMut(Id)) -> Option<u64> {
    with_stack_ro(|s| {
        let t = &s.tcp;
        if since < t.seq && t.changed.front().is_none_or(|(q, _)| *q > since + 1) {
            return Ok(None);
        }
        for (_, id) in t.changed.iter().rev().take_while(|(q, _)| *q > since) {
            f(*id);
        }
        Ok(Some(t.seq))
    })
    .ok()
    .flatten()
}

/// The newest change number.
pub fn change_number() -> u64 {
    with_stack_ro(|s| Ok(s.tcp.seq)).unwrap_or(0)
}

fn sock_ref(s: &Stack, k: Sock) -> &tcp::Socket<'static> {
    // As in `sock_mut`.
    match s.set_ref(k.net) {
        Some(set) => set.get::<tcp::Socket>(k.h),
        None => unreachable!("TCP socket on a missing interface"),
    }
}

fn sock_mut(s: &mut Stack, k: Sock) -> &mut tcp::Socket<'static> {
    // A `Sock` of the TCP table always names a TCP socket of a set that
    // exists (sockets on the device are only made when it is there).
    match s.set(k.net) {
        Some(set) => set.get_mut::<tcp::Socket>(k.h),
        None => unreachable!("TCP socket on a missing interface"),
    }
}

fn new_socket(opts: &Opts) -> tcp::Socket<'static> {
    let rx = tcp::SocketBuffer::new(vec![0u8; opts.rcvbuf]);
    let tx = tcp::SocketBuffer::new(vec![0u8; opts.sndbuf]);
    let mut t = tcp::Socket::new(rx, tx);
    apply(&mut t, opts);
    t
}

/// Carries options over to a live smoltcp socket.
fn apply(t: &mut tcp::Socket<'static>, opts: &Opts) {
    t.set_nagle_enabled(!opts.nodelay);
    t.set_keep_alive(
        opts.keepalive
            .then(|| Duration::from_secs(u64::from(opts.keepidle.max(1)))),
    );
}

fn remove(s: &mut Stack, k: Sock) {
    if let Some(set) = s.set(k.net) {
        set.remove(k.h);
    }
}

fn get(s: &mut Stack, id: Id) -> Result<&mut TcpSock, i64> {
    s.tcp.socks.get_mut(&id).ok_or(EBADF)
}

/// A new socket.
pub fn open() -> Result<Id, i64> {
    with_stack(|s| {
        let id = s.tcp.next;
        s.tcp.next = s.tcp.next.wrapping_add(1);
        s.tcp
            .socks
            .insert(id, TcpSock::new(None, State::Fresh, Opts::default()));
        Ok(id)
    })
}

/// Closes a socket (its last descriptor went away): a connection ends with
/// FIN, or with RST when unread data is left or SO_LINGER is zero; a
/// listener resets the connections nobody accepted.
pub fn close(id: Id) {
    let _ = with_stack(|s| {
        let Some(t) = s.tcp.socks.remove(&id) else {
            return Ok(());
        };
        match t.state {
            State::Fresh => {}
            State::Listening(l) => {
                for k in l.spare.iter().chain(&l.embryos).chain(&l.ready) {
                    sock_mut(s, *k).abort();
                    s.tcp.orphans.push((*k, now().total_micros()));
                }
            }
            State::Stream { sock, .. } => {
                let reset = t.opts.linger == Some(0);
                let sk = sock_mut(s, sock);
                if reset || sk.recv_queue() > 0 {
                    sk.abort();
                } else {
                    sk.close();
                }
                s.tcp.orphans.push((sock, now().total_micros()));
            }
        }
        poll_and_wake(s);
        Ok(())
    });
}

/// Ports taken by bound, listening or connected sockets and by orphans.
fn port_users(s: &Stack, port: u16) -> impl Iterator<Item = &TcpSock> {
    s.tcp
        .socks
        .values()
        .filter(move |t| t.local.is_some_and(|(_, p)| p == port))
}

fn port_in_use(s: &Stack, port: u16) -> bool {
    port_users(s, port).next().is_some()
        || s.tcp.orphans.iter().any(|(k, _)| {
            sock_ref(s, *k)
                .local_endpoint()
                .is_some_and(|e| e.port == port)
        })
}

/// bind(2): `addr` `None` is INADDR_ANY; port 0 picks an ephemeral port.
pub fn bind(id: Id, addr: Option<Ipv4Address>, port: u16) -> Result<u16, i64> {
    with_stack(|s| {
        if addr.is_some_and(|a| !s.is_local(a)) {
            return Err(EADDRNOTAVAIL);
        }
        let me = get(s, id)?;
        if me.local.is_some() || !matches!(me.state, State::Fresh) {
            return Err(EINVAL);
        }
        let opts = me.opts;
        let port = if port == 0 {
            ephemeral(|p| port_in_use(s, p)).ok_or(EADDRINUSE)?
        } else {
            let conflict = port_users(s, port).any(|o| {
                let overlap = match (o.local.and_then(|l| l.0), addr) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                let shared = (opts.reuseport && o.opts.reuseport)
                    || (opts.reuseaddr
                        && o.opts.reuseaddr
                        && !matches!(o.state, State::Listening(_)));
                overlap && !shared
            });
            if conflict {
                return Err(EADDRINUSE);
            }
            port
        };
        get(s, id)?.local = Some((addr, port));
        Ok(port)
    })
}

/// listen(2).
pub fn listen(id: Id, backlog: i32) -> Result<(), i64> {
    let backlog = (backlog.max(1) as usize).min(MAX_BACKLOG);
    if with_stack(|s| Ok(get(s, id)?.local.is_none()))? {
        bind(id, None, 0)?;
    }
    with_stack(|s| {
        let me = get(s, id)?;
        match &mut me.state {
            State::Listening(l) => l.backlog = backlog,
            State::Fresh => {
                me.state = State::Listening(Listener {
                    backlog,
                    spare: Vec::new(),
                    embryos: Vec::new(),
                    ready: VecDeque::new(),
                })
            }
            State::Stream { .. } => return Err(EINVAL),
        }
        maintain(s);
        Ok(())
    })
}

/// accept(2): the next established connection, as a new socket, and its
/// peer; `EAGAIN` when none waits.
pub fn accept(id: Id) -> Result<(Id, IpEndpoint), i64> {
    with_stack(|s| {
        let me = get(s, id)?;
        let opts = me.opts;
        let State::Listening(l) = &mut me.state else {
            return Err(EINVAL);
        };
        let k = l.ready.pop_front().ok_or(EAGAIN)?;
        // A pool socket may be taken again by the gate now.
        maintain(s);
        let sk = sock_mut(s, k);
        apply(sk, &opts);
        let peer = sk
            .remote_endpoint()
            .unwrap_or(IpEndpoint::new(IpAddress::v4(0, 0, 0, 0), 0));
        let local = sk.local_endpoint().map(|e| {
            let IpAddress::Ipv4(a) = e.addr;
            (Some(a), e.port)
        });
        let nid = s.tcp.next;
        s.tcp.next = s.tcp.next.wrapping_add(1);
        let state = State::Stream {
            sock: k,
            connecting: false,
        };
        s.tcp.socks.insert(nid, TcpSock::new(local, state, opts));
        resnap(s, id);
        resnap(s, nid);
        Ok((nid, peer))
    })
}

/// Progress of an active open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connect {
    Done,
    InProgress,
}

/// connect(2): starts an active open, or reports how the one started
/// earlier went (`EALREADY` while it goes on). A non-blocking open is
/// always in progress at first, as on Linux, even when the loopback
/// already settled it: the outcome is for SO_ERROR.
pub fn connect(id: Id, remote: IpEndpoint, nonblock: bool) -> Result<Connect, i64> {
    with_stack(|s| {
        let me = get(s, id)?;
        match me.state {
            State::Listening(_) => return Err(EINVAL),
            State::Stream {
                connecting: false, ..
            } => {
                // A failed open is reported once: here or by SO_ERROR.
                return match core::mem::take(&mut me.error) {
                    0 => Err(EISCONN),
                    e => Err(e),
                };
            }
            State::Stream {
                connecting: true, ..
            } => return settle(s, id)?.ok_or(EALREADY),
            State::Fresh => {}
        }
        let IpAddress::Ipv4(mut dst) = remote.addr;
        if dst.is_unspecified() {
            dst = Ipv4Address::new(127, 0, 0, 1);
        }
        if remote.port == 0 {
            return Err(ECONNREFUSED);
        }
        let net = s.route(dst).ok_or(ENETUNREACH)?;
        let (addr, port) = match get(s, id)?.local {
            Some(l) => l,
            None => {
                let p = ephemeral(|p| port_in_use(s, p)).ok_or(EADDRNOTAVAIL)?;
                get(s, id)?.local = Some((None, p));
                (None, p)
            }
        };
        let opts = get(s, id)?.opts;
        let mut t = new_socket(&opts);
        t.set_timeout(Some(CONNECT_TIMEOUT));
        let (iface, set) = s.iface_and_set(net).ok_or(ENETUNREACH)?;
        let local = IpListenEndpoint {
            addr: addr.map(IpAddress::Ipv4),
            port,
        };
        t.connect(
            iface.context(),
            IpEndpoint::new(IpAddress::Ipv4(dst), remote.port),
            local,
        )
        .map_err(|e| match e {
            tcp::ConnectError::InvalidState => EISCONN,
            tcp::ConnectError::Unaddressable => ENETUNREACH,
        })?;
        let h = set.add(t);
        let me = get(s, id)?;
        me.state = State::Stream {
            sock: Sock { net, h },
            connecting: true,
        };
        me.since = now().total_micros();
        poll_and_wake(s);
        if nonblock {
            return Ok(Connect::InProgress);
        }
        Ok(settle(s, id)?.unwrap_or(Connect::InProgress))
    })
}

/// What connect(2) reports of an active open: done (the socket is
/// connected from now on), its failure (handed over: SO_ERROR then reads
/// 0), or `None` while it goes on.
fn settle(s: &mut Stack, id: Id) -> Result<Option<Connect>, i64> {
    match outcome(s, id)? {
        Some(Ok(())) => {
            if let State::Stream { connecting, .. } = &mut get(s, id)?.state {
                *connecting = false;
            }
            Ok(Some(Connect::Done))
        }
        Some(Err(e)) => {
            get(s, id)?.error = 0;
            Err(e)
        }
        None => Ok(None),
    }
}

/// How an active open ended: `None` while it goes on.
fn outcome(s: &mut Stack, id: Id) -> Result<Option<Result<(), i64>>, i64> {
    let me = get(s, id)?;
    let (State::Stream { sock, connecting }, since) = (&me.state, me.since) else {
        return Ok(None);
    };
    let (sock, connecting) = (*sock, *connecting);
    let st = sock_mut(s, sock).state();
    Ok(match st {
        TcpState::SynSent | TcpState::SynReceived => None,
        TcpState::Closed if connecting => {
            let timed_out = now().total_micros() - since >= CONNECT_TIMEOUT.total_micros() as i64;
            let e = if timed_out { ETIMEDOUT } else { ECONNREFUSED };
            let me = get(s, id)?;
            // Reported once: the open is over.
            me.error = e;
            me.open_failed = true;
            if let State::Stream { connecting, .. } = &mut me.state {
                *connecting = false;
            }
            Some(Err(e))
        }
        _ => {
            if connecting {
                sock_mut(s, sock).set_timeout(None);
            }
            Some(Ok(()))
        }
    })
}

/// Takes the pending SO_ERROR (resolving a finished active open).
pub fn take_error(id: Id) -> Result<i64, i64> {
    with_stack(|s| {
        let _ = outcome(s, id)?;
        let me = get(s, id)?;
        Ok(core::mem::take(&mut me.error))
    })
}

fn stream(s: &mut Stack, id: Id) -> Result<(Sock, bool), i64> {
    match get(s, id)?.state {
        State::Stream { sock, connecting } => Ok((sock, connecting)),
        _ => Err(ENOTCONN),
    }
}

/// Queues `data`; returns how much fit (`EAGAIN` when nothing did).
pub fn send(id: Id, data: &[u8]) -> Result<usize, i64> {
    with_stack(|s| {
        let (k, _) = stream(s, id)?;
        let sk = sock_mut(s, k);
        match sk.state() {
            TcpState::SynSent | TcpState::SynReceived => return Err(EAGAIN),
            TcpState::Closed if sk.remote_endpoint().is_none() => return Err(ENOTCONN),
            _ => {}
        }
        if !sk.may_send() {
            return Err(EPIPE);
        }
        let n = sk.send_slice(data).map_err(|_| EPIPE)?;
        if n == 0 && !data.is_empty() {
            resnap(s, id);
            return Err(EAGAIN);
        }
        s.push(k.net);
        resnap(s, id);
        Ok(n)
    })
}

/// Takes received bytes into `buf` (or copies them, with `peek`); 0 at
/// end of stream, `EAGAIN` when none wait.
pub fn recv(id: Id, buf: &mut [u8], peek: bool) -> Result<usize, i64> {
    with_stack(|s| {
        let (k, connecting) = stream(s, id)?;
        if get(s, id)?.shut_rd {
            return Ok(0);
        }
        let sk = sock_mut(s, k);
        // A buffer more than half full may have closed the peer's window.
        let was_full = sk.recv_queue() * 2 > sk.recv_capacity();
        let r = if peek {
            sk.peek_slice(buf)
        } else {
            sk.recv_slice(buf)
        };
        let st = sk.state();
        resnap(s, id);
        match r {
            Ok(0) if !buf.is_empty() => Err(EAGAIN),
            Ok(n) => {
                if was_full && !peek {
                    // The window opened: tell the peer now.
                    s.push(k.net);
                }
                Ok(n)
            }
            Err(tcp::RecvError::Finished) => Ok(0),
            Err(tcp::RecvError::InvalidState) => match st {
                TcpState::SynSent | TcpState::SynReceived => Err(EAGAIN),
                TcpState::Closed if connecting => Err(ENOTCONN),
                _ => Err(ECONNRESET),
            },
        }
    })
}

/// shutdown(2): `rd` stops reading (reads see end of stream), `wr` sends FIN.
pub fn shutdown(id: Id, rd: bool, wr: bool) -> Result<(), i64> {
    with_stack(|s| {
        let (k, _) = stream(s, id)?;
        if rd {
            get(s, id)?.shut_rd = true;
            // Readable now (end of stream), though the stack saw nothing.
            s.tcp.touch(id);
        }
        if wr {
            sock_mut(s, k).close();
        }
        poll_and_wake(s);
        s.generation = s.generation.wrapping_add(1);
        crate::task::sched::io_event();
        Ok(())
    })
}

/// poll(2) bits of a socket and the change counter.
pub fn readiness(id: Id) -> (u32, u64) {
    const POLLIN: u32 = 0x1;
    const POLLOUT: u32 = 0x4;
    const POLLERR: u32 = 0x8;
    const POLLHUP: u32 = 0x10;
    const POLLRDNORM: u32 = 0x40;
    const POLLWRNORM: u32 = 0x100;
    const POLLRDHUP: u32 = 0x2000;
    with_stack_ro(|s| {
        let me = get(s, id)?;
        let (error, shut_rd, open_failed, g) =
            (me.error, me.shut_rd, me.open_failed, me.generation);
        let m = match &me.state {
            State::Fresh => POLLOUT | POLLWRNORM | POLLHUP,
            State::Listening(l) => {
                if l.ready.is_empty() {
                    0
                } else {
                    POLLIN | POLLRDNORM
                }
            }
            State::Stream { sock, connecting } => {
                let (k, connecting) = (*sock, *connecting);
                let sk = sock_mut(s, k);
                let st = sk.state();
                // Looking changes nothing: a refused open not yet reported
                // (connect or SO_ERROR settle it) shows its error too.
                let refused = connecting && st == TcpState::Closed;
                let mut m = 0;
                if refused || open_failed {
                    m |= POLLOUT | POLLHUP;
                    if refused {
                        m |= POLLERR;
                    }
                } else if !matches!(st, TcpState::SynSent | TcpState::SynReceived) {
                    let eof = !sk.may_recv();
                    if sk.can_recv() || eof || shut_rd {
                        m |= POLLIN | POLLRDNORM;
                    }
                    if eof {
                        m |= POLLRDHUP;
                    }
                    if sk.may_send() && sk.can_send() {
                        m |= POLLOUT | POLLWRNORM;
                    }
                    if st == TcpState::Closed || (eof && !sk.may_send()) {
                        m |= POLLHUP;
                    }
                    if st == TcpState::Closed && sk.recv_queue() == 0 && !sk.is_open() {
                        // Reset by the peer (or timed out) before the app
                        // closed: reads report it.
                        m |= POLLIN | POLLRDNORM;
                    }
                }
                m
            }
        };
        Ok((if error != 0 { m | POLLERR } else { m }, g))
    })
    .unwrap_or((0, 0))
}

/// The bound or connected local address (0.0.0.0:0 when unbound).
pub fn local_endpoint(id: Id) -> Result<IpEndpoint, i64> {
    with_stack_ro(|s| {
        if let State::Stream { sock, .. } = get(s, id)?.state {
            if let Some(e) = sock_mut(s, sock).local_endpoint() {
                return Ok(e);
            }
        }
        let (a, p) = get(s, id)?.local.unwrap_or((None, 0));
        Ok(IpEndpoint::new(
            IpAddress::Ipv4(a.unwrap_or(Ipv4Address::UNSPECIFIED)),
            p,
        ))
    })
}

/// The peer of a connected socket.
pub fn peer(id: Id) -> Result<IpEndpoint, i64> {
    with_stack_ro(|s| {
        let (k, connecting) = stream(s, id)?;
        let sk = sock_mut(s, k);
        if connecting && sk.state() != TcpState::Established {
            return Err(ENOTCONN);
        }
        sk.remote_endpoint().ok_or(ENOTCONN)
    })
}

/// Whether the socket listens (SO_ACCEPTCONN).
pub fn is_listening(id: Id) -> bool {
    with_stack_ro(|s| Ok(matches!(get(s, id)?.state, State::Listening(_)))).unwrap_or(false)
}

/// The most one receive and one send can move: the connection's buffer
/// sizes (the configured ones before it has buffers).
pub fn capacities(id: Id) -> Result<(usize, usize), i64> {
    with_stack_ro(|s| {
        let me = get(s, id)?;
        let (rcv, snd) = (me.opts.rcvbuf, me.opts.sndbuf);
        Ok(match me.state {
            State::Stream { sock, .. } => {
                let sk = sock_ref(s, sock);
                (sk.recv_capacity(), sk.send_capacity())
            }
            _ => (rcv, snd),
        })
    })
}

/// The options, to look at.
pub fn opts(id: Id) -> Result<Opts, i64> {
    with_stack_ro(|s| Ok(get(s, id)?.opts))
}

/// Changes the options; changes reach a live connection.
pub fn with_opts<R>(id: Id, f: impl FnOnce(&mut Opts) -> R) -> Result<R, i64> {
    with_stack(|s| {
        let me = get(s, id)?;
        let r = f(&mut me.opts);
        let opts = me.opts;
        if let State::Stream { sock, .. } = me.state {
            apply(sock_mut(s, sock), &opts);
        }
        Ok(r)
    })
}

mod maintain;
use maintain::resnap;
pub(super) use maintain::{maintain, refresh};
