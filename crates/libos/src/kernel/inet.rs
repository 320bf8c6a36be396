//! AF_INET sockets on the network stack (`super::net`). UDP today; TCP
//! comes next.

use smoltcp::wire::{IpAddress, IpEndpoint};

use super::files::{FileKind, OpenFile, O_NONBLOCK, O_RDWR};
use super::sched::{self, BLOCKED};
use super::{net, Kernel};
use crate::syscall::errno::*;

type Ret = Result<i64, i64>;

const AF_INET: u64 = 2;
const SOCK_STREAM: u64 = 1;
const SOCK_DGRAM: u64 = 2;
const SOCK_NONBLOCK: u64 = 0o4000;
const SOCK_CLOEXEC: u64 = 0o2000000;
const IPPROTO_UDP: u64 = 17;
const MSG_DONTWAIT: u64 = 0x40;
/// Largest datagram we copy in one call (the socket buffer's size).
const MAX_DATAGRAM: u64 = 64 * 1024;

/// socket(2) for AF_INET.
pub fn socket(k: &mut Kernel, domain: u64, ty: u64, proto: u64) -> Ret {
    if domain != AF_INET {
        return Err(EAFNOSUPPORT);
    }
    if ty & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    match ty & 0xf {
        SOCK_DGRAM if proto == 0 || proto == IPPROTO_UDP => {}
        SOCK_STREAM => return Err(EPROTONOSUPPORT),
        _ => return Err(EPROTONOSUPPORT),
    }
    let h = net::udp_open()?;
    let flags = O_RDWR
        | if ty & SOCK_NONBLOCK != 0 {
            O_NONBLOCK
        } else {
            0
        };
    let f = OpenFile {
        kind: FileKind::Udp(h),
        offset: 0,
        flags,
    };
    k.fds.install(f, ty & SOCK_CLOEXEC != 0).map(|fd| fd as i64)
}

fn udp_handle(k: &mut Kernel, fd: u64) -> Result<(smoltcp::iface::SocketHandle, bool), i64> {
    let f = k.fds.file(fd)?;
    let f = f.lock();
    match f.kind {
        FileKind::Udp(h) => Ok((h, f.flags & O_NONBLOCK != 0)),
        _ => Err(ENOTSOCK),
    }
}

/// Whether `fd` is one of ours (AF_INET).
pub fn is_inet(k: &mut Kernel, fd: u64) -> bool {
    udp_handle(k, fd).is_ok()
}

/// Reads a `sockaddr_in`.
fn read_addr(k: &mut Kernel, addr: u64, len: u64) -> Result<IpEndpoint, i64> {
    if len < 16 {
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
fn write_addr(k: &mut Kernel, ep: IpEndpoint, addr: u64, len_ptr: u64) -> Result<(), i64> {
    if addr == 0 || len_ptr == 0 {
        return Ok(());
    }
    let room: u32 = k.mem.read_obj(len_ptr)?;
    let mut raw = [0u8; 16];
    raw[..2].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
    raw[2..4].copy_from_slice(&ep.port.to_be_bytes());
    let IpAddress::Ipv4(v4) = ep.addr;
    raw[4..8].copy_from_slice(&v4.octets());
    let n = (room as usize).min(16);
    k.mem.copy_to_user(addr, &raw[..n])?;
    k.mem.write_obj(len_ptr, &16u32)
}

/// bind(2).
pub fn bind(k: &mut Kernel, fd: u64, addr: u64, len: u64) -> Ret {
    let (h, _) = udp_handle(k, fd)?;
    let ep = read_addr(k, addr, len)?;
    net::udp_bind(h, ep.port).map(|_| 0)
}

/// getsockname(2).
pub fn getsockname(k: &mut Kernel, fd: u64, addr: u64, len_ptr: u64) -> Ret {
    let (h, _) = udp_handle(k, fd)?;
    let ep = IpEndpoint::new(IpAddress::v4(0, 0, 0, 0), net::udp_local_port(h));
    write_addr(k, ep, addr, len_ptr).map(|_| 0)
}

/// connect(2) of a UDP socket: sets the default destination and filter.
pub fn connect(k: &mut Kernel, fd: u64, addr: u64, len: u64) -> Ret {
    let (h, _) = udp_handle(k, fd)?;
    let ep = read_addr(k, addr, len)?;
    net::udp_connect(h, ep).map(|_| 0)
}

/// getpeername(2).
pub fn getpeername(k: &mut Kernel, fd: u64, addr: u64, len_ptr: u64) -> Ret {
    let (h, _) = udp_handle(k, fd)?;
    let ep = net::udp_peer(h).ok_or(ENOTCONN)?;
    write_addr(k, ep, addr, len_ptr).map(|_| 0)
}

/// sendto(2) on a UDP socket (and write(2), without an address).
pub fn sendto(k: &mut Kernel, fd: u64, buf: u64, len: u64, addr: u64, alen: u64) -> Ret {
    let (h, _) = udp_handle(k, fd)?;
    send_on(k, h, buf, len, addr, alen)
}

/// Sends on socket `h` to `addr`, or to its peer when `addr` is 0.
pub fn send_on(
    k: &mut Kernel,
    h: smoltcp::iface::SocketHandle,
    buf: u64,
    len: u64,
    addr: u64,
    alen: u64,
) -> Ret {
    let to = if addr == 0 {
        net::udp_peer(h).ok_or(EDESTADDRREQ)?
    } else {
        read_addr(k, addr, alen)?
    };
    if len > MAX_DATAGRAM {
        return Err(EMSGSIZE);
    }
    let mut data = alloc::vec![0u8; len as usize];
    k.mem.copy_from_user(buf, &mut data)?;
    net::udp_send(h, to, &data).map(|n| n as i64)
}

/// recvfrom(2) (and read(2)) on a UDP socket; blocks unless non-blocking.
pub fn recvfrom(
    k: &mut Kernel,
    fd: u64,
    buf: u64,
    len: u64,
    flags: u64,
    addr: u64,
    alen: u64,
) -> Ret {
    let (h, nonblock) = udp_handle(k, fd)?;
    recv_on(k, h, nonblock, buf, len, flags, addr, alen)
}

/// Receives on socket `h` (recvfrom and read).
#[allow(clippy::too_many_arguments)]
pub fn recv_on(
    k: &mut Kernel,
    h: smoltcp::iface::SocketHandle,
    nonblock: bool,
    buf: u64,
    len: u64,
    flags: u64,
    addr: u64,
    alen: u64,
) -> Ret {
    let mut data = alloc::vec![0u8; len.min(MAX_DATAGRAM) as usize];
    match net::udp_recv(h, &mut data) {
        Ok((full, from)) => {
            let n = full.min(data.len());
            k.mem.copy_to_user(buf, &data[..n])?;
            write_addr(k, from, addr, alen)?;
            Ok(n as i64)
        }
        Err(EAGAIN) if !(nonblock || flags & MSG_DONTWAIT != 0) => {
            sched::block_io(None);
            Err(BLOCKED)
        }
        Err(e) => Err(e),
    }
}

/// poll(2) readiness of a UDP socket: (mask, change counter).
pub fn readiness(h: smoltcp::iface::SocketHandle) -> (u32, u64) {
    const POLLIN: u32 = 0x1;
    const POLLOUT: u32 = 0x4;
    const POLLRDNORM: u32 = 0x40;
    const POLLWRNORM: u32 = 0x100;
    let (r, w, g) = net::udp_readiness(h);
    let mut m = 0;
    if r {
        m |= POLLIN | POLLRDNORM;
    }
    if w {
        m |= POLLOUT | POLLWRNORM;
    }
    (m, g)
}
