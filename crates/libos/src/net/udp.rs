//! UDP sockets on the stack. A socket lives on the device's interface when
//! there is one, else on the loopback; once bound, a socket on the device
//! also gets a twin on the loopback with the same port, so datagrams to and
//! from 127.0.0.1 (or the guest's own address) work too.

use alloc::collections::BTreeMap;
use alloc::vec;

use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint, Ipv4Address};

use crate::errno::{EADDRINUSE, EADDRNOTAVAIL, EAGAIN, EINVAL, EMSGSIZE, ENETUNREACH};
use crate::net::stack::{ephemeral, poll_and_wake, with_stack, with_stack_ro, Net, Sock, Stack};

/// Bytes of payload buffered per UDP socket in each direction.
const UDP_BUFFER: usize = 64 * 1024;
/// Datagrams buffered per UDP socket in each direction.
const UDP_PACKETS: usize = 64;
/// The loopback twin's buffers: the same bytes, fewer of them.
const TWIN_BUFFER: usize = 16 * 1024;
const TWIN_PACKETS: usize = 16;

/// UDP state kept beside smoltcp's sockets.
#[derive(Default)]
pub struct Table {
    /// Peers of connected sockets.
    peers: BTreeMap<Sock, IpEndpoint>,
    /// SO_RCVTIMEO and SO_SNDTIMEO of sockets that set them, ns.
    timeouts: BTreeMap<Sock, (u64, u64)>,
    /// Loopback twins of bound sockets on the device.
    twins: BTreeMap<Sock, Sock>,
}

fn buffer(packets: usize, bytes: usize) -> udp::PacketBuffer<'static> {
    udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; packets], vec![0u8; bytes])
}

fn sock_mut(s: &mut Stack, k: Sock) -> Result<&mut udp::Socket<'static>, i64> {
    Ok(s.set(k.net).ok_or(EINVAL)?.get_mut::<udp::Socket>(k.h))
}

/// A new UDP socket.
pub fn open() -> Result<Sock, i64> {
    with_stack(|s| {
        let buf = || buffer(UDP_PACKETS, UDP_BUFFER);
        let net = if s.eth.is_some() { Net::Eth } else { Net::Lo };
        let set = s.set(net).ok_or(ENETUNREACH)?;
        let h = set.add(udp::Socket::new(buf(), buf()));
        Ok(Sock { net, h })
    })
}

/// Frees a socket (its last descriptor was closed).
pub fn close(k: Sock) {
    let _ = with_stack(|s| {
        let twin = s.udp.twins.remove(&k);
        for k in [Some(k), twin].into_iter().flatten() {
            if let Some(set) = s.set(k.net) {
                set.get_mut::<udp::Socket>(k.h).close();
                set.remove(k.h);
            }
        }
        s.udp.peers.remove(&k);
        s.udp.timeouts.remove(&k);
        Ok(())
    });
}

fn port_in_use(s: &Stack, p: u16) -> bool {
    let sets = [s.eth.as_ref().map(|e| &e.sockets), Some(&s.lo.sockets)];
    sets.into_iter().flatten().any(|set| {
        set.iter().any(|(_, sock)| match sock {
            smoltcp::socket::Socket::Udp(u) => u.endpoint().port == p,
            _ => false,
        })
    })
}

/// Binds to `addr` (`None` = any) and `port` (0 = an ephemeral port).
pub fn bind(k: Sock, addr: Option<Ipv4Address>, port: u16) -> Result<u16, i64> {
    with_stack(|s| {
        if addr.is_some_and(|a| !s.is_local(a)) {
            return Err(EADDRNOTAVAIL);
        }
        bind_in(s, k, addr, port)
    })
}

fn bind_in(s: &mut Stack, k: Sock, addr: Option<Ipv4Address>, port: u16) -> Result<u16, i64> {
    let port = if port == 0 {
        ephemeral(|p| port_in_use(s, p)).ok_or(EADDRINUSE)?
    } else if port_in_use(s, port) {
        return Err(EADDRINUSE);
    } else {
        port
    };
    let bind_err = |e| match e {
        udp::BindError::InvalidState => EINVAL,
        udp::BindError::Unaddressable => EADDRINUSE,
    };
    let ep = IpListenEndpoint {
        addr: addr.map(IpAddress::Ipv4),
        port,
    };
    // A socket on the device bound to a loopback address only needs its twin.
    if k.net != Net::Eth || addr.is_none_or(|a| !a.is_loopback()) {
        sock_mut(s, k)?.bind(ep).map_err(bind_err)?;
    } else {
        sock_mut(s, k)?.bind(port).map_err(bind_err)?;
    }
    if k.net == Net::Eth {
        let buf = || buffer(TWIN_PACKETS, TWIN_BUFFER);
        let mut twin = udp::Socket::new(buf(), buf());
        twin.bind(ep).map_err(bind_err)?;
        let h = s.lo.sockets.add(twin);
        s.udp.twins.insert(k, Sock { net: Net::Lo, h });
    }
    Ok(port)
}

/// The bound address and port (0.0.0.0:0 if unbound).
pub fn local_endpoint(k: Sock) -> IpEndpoint {
    let any = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::UNSPECIFIED), 0);
    with_stack_ro(|s| {
        let bound = match s.udp.twins.get(&k).copied() {
            Some(t) => sock_mut(s, t)?.endpoint(),
            None => sock_mut(s, k)?.endpoint(),
        };
        let addr = bound
            .addr
            .unwrap_or(IpAddress::Ipv4(Ipv4Address::UNSPECIFIED));
        Ok(IpEndpoint::new(addr, bound.port))
    })
    .unwrap_or(any)
}

/// Gives an unbound socket an ephemeral port, as Linux does on first send
/// or connect.
fn bind_if_unbound(s: &mut Stack, k: Sock) -> Result<(), i64> {
    if sock_mut(s, k)?.endpoint().port == 0 {
        bind_in(s, k, None, 0)?;
    }
    Ok(())
}

/// Queues a datagram to `to` and pushes it out at once.
pub fn send(k: Sock, to: IpEndpoint, data: &[u8]) -> Result<usize, i64> {
    with_stack(|s| {
        bind_if_unbound(s, k)?;
        let IpAddress::Ipv4(mut dst) = to.addr;
        if dst.is_unspecified() {
            // "This host", as on Linux.
            dst = Ipv4Address::new(127, 0, 0, 1);
        }
        let to = IpEndpoint::new(IpAddress::Ipv4(dst), to.port);
        let via = match s.udp.twins.get(&k) {
            Some(t) if s.route(dst) == Some(Net::Lo) => *t,
            _ => k,
        };
        let sock = sock_mut(s, via)?;
        if data.len() > sock.payload_send_capacity() {
            return Err(EMSGSIZE);
        }
        sock.send_slice(data, to).map_err(|e| match e {
            udp::SendError::BufferFull => EAGAIN,
            udp::SendError::Unaddressable => EINVAL,
        })?;
        poll_and_wake(s);
        Ok(data.len())
    })
}

/// Connects a socket: `peer` becomes the default destination and the only
/// accepted source. Binds an ephemeral port if needed.
pub fn connect(k: Sock, peer: IpEndpoint) -> Result<(), i64> {
    with_stack(|s| {
        bind_if_unbound(s, k)?;
        s.udp.peers.insert(k, peer);
        Ok(())
    })
}

/// The peer of a connected socket.
pub fn peer(k: Sock) -> Option<IpEndpoint> {
    with_stack_ro(|s| Ok(s.udp.peers.get(&k).copied()))
        .ok()
        .flatten()
}

/// Takes the next datagram into `buf` (truncating, as Linux does):
/// `(its full length, sender)`, or `EAGAIN` when none is queued. A
/// connected socket drops datagrams from anyone but its peer. With `peek`
/// the datagram stays queued.
pub fn recv(k: Sock, buf: &mut [u8], peek: bool) -> Result<(usize, IpEndpoint), i64> {
    with_stack(|s| {
        let peer = s.udp.peers.get(&k).copied();
        let twin = s.udp.twins.get(&k).copied();
        match take(sock_mut(s, k)?, peer, buf, peek) {
            Err(EAGAIN) if twin.is_some() => take(sock_mut(s, twin.unwrap_or(k))?, peer, buf, peek),
            r => r,
        }
    })
}

/// The next datagram of one smoltcp socket from `peer` (anyone if `None`).
fn take(
    sock: &mut udp::Socket<'static>,
    peer: Option<IpEndpoint>,
    buf: &mut [u8],
    peek: bool,
) -> Result<(usize, IpEndpoint), i64> {
    loop {
        let (len, from) = {
            let (data, meta) = sock.peek().map_err(|_| EAGAIN)?;
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            (data.len(), meta.endpoint)
        };
        let foreign = peer.is_some_and(|p| p != from);
        if !peek || foreign {
            let _ = sock.recv();
        }
        if foreign {
            continue;
        }
        return Ok((len, from));
    }
}

/// Readable, writable, and the change counter.
pub fn readiness(k: Sock) -> (bool, bool, u64) {
    with_stack_ro(|s| {
        let g = s.generation;
        let twin_ready = match s.udp.twins.get(&k).copied() {
            Some(t) => sock_mut(s, t)?.can_recv(),
            None => false,
        };
        let sock = sock_mut(s, k)?;
        Ok((sock.can_recv() || twin_ready, sock.can_send(), g))
    })
    .unwrap_or((false, false, 0))
}

/// The receive and send time limits, ns (0 = none).
pub fn timeouts(k: Sock) -> (u64, u64) {
    with_stack_ro(|s| Ok(s.udp.timeouts.get(&k).copied().unwrap_or((0, 0)))).unwrap_or((0, 0))
}

/// Changes the time limits with `f`.
pub fn set_timeouts(k: Sock, f: impl FnOnce(&mut (u64, u64))) {
    let _ = with_stack(|s| {
        f(s.udp.timeouts.entry(k).or_insert((0, 0)));
        Ok(())
    });
}
