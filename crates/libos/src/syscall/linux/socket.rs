//! AF_INET sockets: the system calls on top of the stack (`crate::net::stack`).
//!
//! A socket is an open file holding a [`net::tcp::Id`] or a UDP
//! [`net::Sock`]; this module reads the calls' arguments from user memory,
//! picks the protocol, and turns "would block" into blocking (restartable:
//! the call runs again when the stack changes) unless the socket or the
//! call is non-blocking. Options are in [`sockopt`], message calls in
//! [`msg`].

use alloc::vec;

use smoltcp::wire::{IpAddress, IpEndpoint};

use crate::arch::cpu::rdtsc;
use crate::errno::*;
use crate::fd::file::{FileKind, OpenFile, O_NONBLOCK, O_RDWR};
use crate::kernel::Kernel;
use crate::net::{stack as net, tcp, udp};
use crate::task::sched;

pub use crate::uapi::socket::*;

/// Largest datagram we copy in one call (the socket buffer's size).
const MAX_DATAGRAM: u64 = 64 * 1024;
/// Largest chunk a stream call moves at once.
pub(super) const MAX_CHUNK: u64 = 1024 * 1024;

/// The buffer one call on `s` needs for `len` bytes: no more than a TCP
/// connection's buffer holds in that direction, or a datagram received
/// (a UDP send keeps the whole datagram: its size is checked).
pub(super) fn chunk(s: Inet, len: u64, sending: bool) -> usize {
    let cap = match s {
        Inet::Tcp(id) => tcp::capacities(id).map_or(
            MAX_CHUNK,
            |(rcv, snd)| if sending { snd } else { rcv } as u64,
        ),
        Inet::Udp(_) if sending => MAX_CHUNK,
        Inet::Udp(_) => MAX_DATAGRAM,
    };
    len.min(cap).min(MAX_CHUNK) as usize
}

/// An AF_INET socket behind a descriptor.
#[derive(Clone, Copy, Debug)]
pub enum Inet {
    Tcp(tcp::Id),
    Udp(net::Sock),
}

/// socket(2) for AF_INET.
pub fn socket(k: &mut Kernel, domain: u64, ty: u64, proto: u64) -> SysResult {
    if domain != AF_INET {
        return Err(EAFNOSUPPORT);
    }
    if ty & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let kind = match ty & 0xf {
        SOCK_DGRAM if proto == 0 || proto == IPPROTO_UDP => FileKind::Udp(udp::open()?),
        SOCK_STREAM if proto == 0 || proto == IPPROTO_TCP => FileKind::Tcp(tcp::open()?),
        SOCK_DGRAM | SOCK_STREAM => return Err(EPROTONOSUPPORT),
        _ => return Err(ESOCKTNOSUPPORT),
    };
    install(k, kind, ty & SOCK_NONBLOCK != 0, ty & SOCK_CLOEXEC != 0)
}

fn install(k: &mut Kernel, kind: FileKind, nonblock: bool, cloexec: bool) -> SysResult {
    let flags = O_RDWR | if nonblock { O_NONBLOCK } else { 0 };
    let f = OpenFile {
        kind,
        offset: 0,
        flags,
    };
    k.fds.install(f, cloexec).map(|fd| fd as i64)
}

/// The AF_INET socket behind `fd` and whether it is non-blocking.
pub fn lookup(k: &mut Kernel, fd: u64) -> Result<(Inet, bool), i64> {
    let f = k.fds.file(fd)?;
    let f = f.lock();
    let nb = f.flags & O_NONBLOCK != 0;
    match f.kind {
        FileKind::Udp(s) => Ok((Inet::Udp(s), nb)),
        FileKind::Tcp(id) => Ok((Inet::Tcp(id), nb)),
        _ => Err(ENOTSOCK),
    }
}

/// Whether `fd` is one of ours (AF_INET).
pub fn is_inet(k: &mut Kernel, fd: u64) -> bool {
    lookup(k, fd).is_ok()
}

/// Reads a `sockaddr_in`.
pub fn read_addr(k: &mut Kernel, addr: u64, len: u64) -> Result<IpEndpoint, i64> {
    if !(16..=128).contains(&len) {
        return Err(EINVAL);
    }
    let raw: [u8; 16] = k.mem.read_obj(addr)?;
    if u16::from_ne_bytes([raw[0], raw[1]]) as u64 != AF_INET {
        return Err(EAFNOSUPPORT);
    }
    let port = u16::from_be_bytes([raw[2], raw[3]]);
    let ip = IpAddress::v4(raw[4], raw[5], raw[6], raw[7]);
    Ok(IpEndpoint::new(ip, port))
}

/// Writes a `sockaddr_in` for `ep` to `addr`, with the usual length
/// in/out protocol at `len_ptr` (nothing when `addr` is 0).
pub fn write_addr(k: &mut Kernel, ep: IpEndpoint, addr: u64, len_ptr: u64) -> Result<(), i64> {
    if addr == 0 || len_ptr == 0 {
        return Ok(());
    }
    let room: u32 = k.mem.read_obj(len_ptr)?;
    if (room as i32) < 0 {
        return Err(EINVAL);
    }
    let mut raw = [0u8; 16];
    raw[..2].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
    raw[2..4].copy_from_slice(&ep.port.to_be_bytes());
    let IpAddress::Ipv4(v4) = ep.addr;
    raw[4..8].copy_from_slice(&v4.octets());
    let n = (room as usize).min(16);
    k.mem.copy_to_user(addr, &raw[..n])?;
    k.mem.write_obj(len_ptr, &16u32)
}

/// Blocks the calling thread until the stack changes (the call restarts),
/// or fails with `EAGAIN` for a non-blocking call, or once `timeout_ns`
/// (SO_RCVTIMEO/SO_SNDTIMEO, 0 = none) has passed since the call began.
fn would_block(nonblock: bool, timeout_ns: u64) -> SysResult {
    if nonblock {
        return Err(EAGAIN);
    }
    let deadline = (timeout_ns > 0).then(|| {
        sched::call_deadline(|| Some(rdtsc().saturating_add(sched::ns_to_tsc(timeout_ns))))
    });
    match deadline.flatten() {
        Some(d) if rdtsc() >= d => Err(EAGAIN),
        d => {
            sched::block_io(d);
            Err(BLOCKED)
        }
    }
}

/// The socket's receive and send time limits, ns (0 = none).
fn timeouts(s: Inet) -> (u64, u64) {
    match s {
        Inet::Tcp(id) => tcp::opts(id).map_or((0, 0), |o| (o.rcvtimeo_ns, o.sndtimeo_ns)),
        Inet::Udp(u) => udp::timeouts(u),
    }
}

/// bind(2).
pub fn bind(k: &mut Kernel, fd: u64, addr: u64, len: u64) -> SysResult {
    let (s, _) = lookup(k, fd)?;
    let ep = read_addr(k, addr, len)?;
    match s {
        Inet::Udp(u) => {
            let IpAddress::Ipv4(a) = ep.addr;
            udp::bind(u, (!a.is_unspecified()).then_some(a), ep.port).map(|_| 0)
        }
        Inet::Tcp(id) => {
            let IpAddress::Ipv4(a) = ep.addr;
            let a = (!a.is_unspecified()).then_some(a);
            tcp::bind(id, a, ep.port).map(|_| 0)
        }
    }
}

/// listen(2).
pub fn listen(k: &mut Kernel, fd: u64, backlog: u64) -> SysResult {
    match lookup(k, fd)?.0 {
        Inet::Tcp(id) => tcp::listen(id, backlog as i32).map(|_| 0),
        Inet::Udp(_) => Err(EOPNOTSUPP),
    }
}

/// accept4(2) (and accept(2), with no flags).
pub fn accept4(k: &mut Kernel, fd: u64, addr: u64, alen: u64, flags: u64) -> SysResult {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    let (Inet::Tcp(id), nonblock) = lookup(k, fd)? else {
        return Err(EOPNOTSUPP);
    };
    match tcp::accept(id) {
        Ok((nid, peer)) => {
            // Descriptors first: a failing copy of the address must not
            // lose the connection silently (Linux returns the error too).
            let fd = install(
                k,
                FileKind::Tcp(nid),
                flags & SOCK_NONBLOCK != 0,
                flags & SOCK_CLOEXEC != 0,
            );
            let fd = match fd {
                Ok(fd) => fd,
                Err(e) => {
                    tcp::close(nid);
                    return Err(e);
                }
            };
            write_addr(k, peer, addr, alen)?;
            Ok(fd)
        }
        Err(EAGAIN) => would_block(nonblock, timeouts(Inet::Tcp(id)).0),
        Err(e) => Err(e),
    }
}

/// connect(2).
pub fn connect(k: &mut Kernel, fd: u64, addr: u64, len: u64) -> SysResult {
    let (s, nonblock) = lookup(k, fd)?;
    let ep = read_addr(k, addr, len)?;
    match s {
        Inet::Udp(u) => udp::connect(u, ep).map(|_| 0),
        Inet::Tcp(id) => {
            // A blocking connect restarted after a wake-up finds its own
            // open in progress (EALREADY) and keeps waiting.
            match tcp::connect(id, ep, nonblock) {
                Ok(tcp::Connect::Done) => Ok(0),
                Ok(tcp::Connect::InProgress) if nonblock => Err(EINPROGRESS),
                Ok(tcp::Connect::InProgress) => connect_wait(id),
                Err(EALREADY) if !nonblock => connect_wait(id),
                Err(e) => Err(e),
            }
        }
    }
}

/// A blocking connect waits for the outcome; past SO_SNDTIMEO it fails
/// with EINPROGRESS, as on Linux, and the open goes on.
fn connect_wait(id: tcp::Id) -> SysResult {
    match would_block(false, timeouts(Inet::Tcp(id)).1) {
        Err(EAGAIN) => Err(EINPROGRESS),
        r => r,
    }
}

/// getsockname(2).
pub fn getsockname(k: &mut Kernel, fd: u64, addr: u64, len_ptr: u64) -> SysResult {
    let ep = match lookup(k, fd)?.0 {
        Inet::Udp(u) => udp::local_endpoint(u),
        Inet::Tcp(id) => tcp::local_endpoint(id)?,
    };
    write_addr(k, ep, addr, len_ptr).map(|_| 0)
}

/// getpeername(2).
pub fn getpeername(k: &mut Kernel, fd: u64, addr: u64, len_ptr: u64) -> SysResult {
    let ep = match lookup(k, fd)?.0 {
        Inet::Udp(u) => udp::peer(u).ok_or(ENOTCONN)?,
        Inet::Tcp(id) => tcp::peer(id)?,
    };
    write_addr(k, ep, addr, len_ptr).map(|_| 0)
}

/// shutdown(2).
pub fn shutdown(k: &mut Kernel, fd: u64, how: u64) -> SysResult {
    if how > 2 {
        return Err(EINVAL);
    }
    match lookup(k, fd)?.0 {
        Inet::Tcp(id) => tcp::shutdown(id, how != 1, how != 0).map(|_| 0),
        Inet::Udp(u) => udp::peer(u).map(|_| 0).ok_or(ENOTCONN),
    }
}

/// sendto(2).
pub fn sendto(
    k: &mut Kernel,
    fd: u64,
    buf: u64,
    len: u64,
    flags: u64,
    addr: u64,
    alen: u64,
) -> SysResult {
    let (s, nb) = lookup(k, fd)?;
    let to = if addr == 0 {
        None
    } else {
        Some(read_addr(k, addr, alen)?)
    };
    let mut data = vec![0u8; chunk(s, len, true)];
    k.mem.copy_from_user(buf, &mut data)?;
    send_bytes(s, nb || flags & MSG_DONTWAIT != 0, &data, to)
}

/// Sends `data` on socket `s` (to `to`, for an unconnected UDP socket).
pub fn send_bytes(s: Inet, nonblock: bool, data: &[u8], to: Option<IpEndpoint>) -> SysResult {
    match s {
        Inet::Udp(u) => {
            if data.len() as u64 > MAX_DATAGRAM {
                return Err(EMSGSIZE);
            }
            let to = match to {
                Some(t) => t,
                None => udp::peer(u).ok_or(EDESTADDRREQ)?,
            };
            match udp::send(u, to, data) {
                Err(EAGAIN) => would_block(nonblock, timeouts(s).1),
                r => r.map(|n| n as i64),
            }
        }
        Inet::Tcp(id) => match tcp::send(id, data) {
            Err(EAGAIN) => would_block(nonblock, timeouts(s).1),
            r => r.map(|n| n as i64),
        },
    }
}

/// recvfrom(2).
pub fn recvfrom(
    k: &mut Kernel,
    fd: u64,
    buf: u64,
    len: u64,
    flags: u64,
    addr: u64,
    alen: u64,
) -> SysResult {
    let (s, nb) = lookup(k, fd)?;
    let mut data = vec![0u8; chunk(s, len, false)];
    let (n, full, from) = recv_bytes(s, nb, flags, &mut data)?;
    k.mem.copy_to_user(buf, &data[..n])?;
    if let Some(from) = from {
        write_addr(k, from, addr, alen)?;
    } else if addr != 0 && alen != 0 {
        // Connected stream: Linux leaves the address alone, length 0.
        k.mem.write_obj(alen, &0u32)?;
    }
    Ok(if flags & MSG_TRUNC != 0 { full } else { n } as i64)
}

/// Receives into `data`: (bytes copied, full datagram length, sender).
pub fn recv_bytes(
    s: Inet,
    nonblock: bool,
    flags: u64,
    data: &mut [u8],
) -> Result<(usize, usize, Option<IpEndpoint>), i64> {
    let nonblock = nonblock || flags & MSG_DONTWAIT != 0;
    let peek = flags & MSG_PEEK != 0;
    let r = match s {
        Inet::Udp(u) => {
            udp::recv(u, data, peek).map(|(full, from)| (full.min(data.len()), full, Some(from)))
        }
        Inet::Tcp(id) => tcp::recv(id, data, peek).map(|n| (n, n, None)),
    };
    match r {
        Err(EAGAIN) => would_block(nonblock, timeouts(s).0).map(|_| (0, 0, None)),
        r => r,
    }
}

/// read(2) on a socket.
pub fn read(k: &mut Kernel, s: Inet, nonblock: bool, buf: u64, len: u64) -> SysResult {
    let mut data = vec![0u8; chunk(s, len, false)];
    let (n, _, _) = recv_bytes(s, nonblock, 0, &mut data)?;
    k.mem.copy_to_user(buf, &data[..n])?;
    Ok(n as i64)
}

/// write(2) on a socket.
pub fn write(k: &mut Kernel, s: Inet, nonblock: bool, buf: u64, len: u64) -> SysResult {
    let mut data = vec![0u8; chunk(s, len, true)];
    k.mem.copy_from_user(buf, &mut data)?;
    send_bytes(s, nonblock, &data, None)
}
