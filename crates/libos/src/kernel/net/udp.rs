//! UDP sockets on the stack. A socket lives on the device's interface when
//! there is one, else on the loopback.

use alloc::collections::BTreeMap;
use alloc::vec;

use smoltcp::socket::udp;
use smoltcp::wire::IpEndpoint;

use super::{ephemeral, poll_and_wake, with_stack, Net, Sock, Stack};
use crate::syscall::errno::{EADDRINUSE, EAGAIN, EINVAL, EMSGSIZE, ENETUNREACH};

/// Bytes of payload buffered per UDP socket in each direction.
const UDP_BUFFER: usize = 64 * 1024;
/// Datagrams buffered per UDP socket in each direction.
const UDP_PACKETS: usize = 64;

/// UDP state kept beside smoltcp's sockets.
#[derive(Default)]
pub struct Table {
    /// Peers of connected sockets.
    peers: BTreeMap<Sock, IpEndpoint>,
    /// SO_RCVTIMEO and SO_SNDTIMEO of sockets that set them, ns.
    timeouts: BTreeMap<Sock, (u64, u64)>,
}

fn sock_mut(s: &mut Stack, k: Sock) -> Result<&mut udp::Socket<'static>, i64> {
    Ok(s.set(k.net).ok_or(EINVAL)?.get_mut::<udp::Socket>(k.h))
}

/// A new UDP socket.
pub fn open() -> Result<Sock, i64> {
    with_stack(|s| {
        let buf = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0u8; UDP_BUFFER],
            )
        };
        let net = if s.eth.is_some() { Net::Eth } else { Net::Lo };
        let set = s.set(net).ok_or(ENETUNREACH)?;
        let h = set.add(udp::Socket::new(buf(), buf()));
        Ok(Sock { net, h })
    })
}

/// Frees a socket (its last descriptor was closed).
pub fn close(k: Sock) {
    let _ = with_stack(|s| {
        if let Some(set) = s.set(k.net) {
            set.get_mut::<udp::Socket>(k.h).close();
            set.remove(k.h);
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

/// Binds to `port` (0 = an ephemeral port).
pub fn bind(k: Sock, port: u16) -> Result<u16, i64> {
    with_stack(|s| {
        let port = if port == 0 {
            ephemeral(|p| port_in_use(s, p)).ok_or(EADDRINUSE)?
        } else {
            port
        };
        sock_mut(s, k)?.bind(port).map_err(|e| match e {
            udp::BindError::InvalidState => EINVAL,
            udp::BindError::Unaddressable => EADDRINUSE,
        })?;
        Ok(port)
    })
}

/// The local port, 0 if unbound.
pub fn local_port(k: Sock) -> u16 {
    with_stack(|s| Ok(sock_mut(s, k)?.endpoint().port)).unwrap_or(0)
}

/// Gives an unbound socket an ephemeral port, as Linux does on first send
/// or connect.
fn bind_if_unbound(s: &mut Stack, k: Sock) -> Result<(), i64> {
    if sock_mut(s, k)?.endpoint().port == 0 {
        let p = ephemeral(|p| port_in_use(s, p)).ok_or(EADDRINUSE)?;
        let _ = sock_mut(s, k)?.bind(p);
    }
    Ok(())
}

/// Queues a datagram to `to` and pushes it out at once.
pub fn send(k: Sock, to: IpEndpoint, data: &[u8]) -> Result<usize, i64> {
    with_stack(|s| {
        bind_if_unbound(s, k)?;
        let sock = sock_mut(s, k)?;
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
    with_stack(|s| Ok(s.udp.peers.get(&k).copied()))
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
        let sock = sock_mut(s, k)?;
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
    })
}

/// Readable, writable, and the change counter.
pub fn readiness(k: Sock) -> (bool, bool, u64) {
    with_stack(|s| {
        let g = super::generation(s);
        let sock = sock_mut(s, k)?;
        Ok((sock.can_recv(), sock.can_send(), g))
    })
    .unwrap_or((false, false, 0))
}

/// The receive and send time limits, ns (0 = none).
pub fn timeouts(k: Sock) -> (u64, u64) {
    with_stack(|s| Ok(s.udp.timeouts.get(&k).copied().unwrap_or((0, 0)))).unwrap_or((0, 0))
}

/// Changes the time limits with `f`.
pub fn set_timeouts(k: Sock, f: impl FnOnce(&mut (u64, u64))) {
    let _ = with_stack(|s| {
        f(s.udp.timeouts.entry(k).or_insert((0, 0)));
        Ok(())
    });
}
