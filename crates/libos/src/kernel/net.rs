//! The running guest's network: the virtio-net device the monitor attached
//! (`BootInfo::net`) under smoltcp, polled whenever the scheduler goes idle
//! (and so after every wake-up the device causes).
//!
//! It answers ARP and ICMP echo on the configured address and carries the
//! applications' UDP sockets (`super::inet`); TCP sockets come next.

use alloc::collections::BTreeMap;
use alloc::vec;

use optivolt_abi::boot::BootInfo;
use optivolt_abi::hypercall as hc;
use optivolt_abi::layout::phys_to_virt;
use optivolt_abi::virtio::VirtioNetLayout;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::udp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address};
use spin::Mutex;

use crate::arch::{cpu::rdtsc, hypercall};
use crate::drivers::net::virtio::VirtioNet;
use crate::drivers::net::NetDevice;
use crate::net::StackDevice;
use crate::syscall::errno::{EADDRINUSE, EAFNOSUPPORT, EAGAIN, EINVAL, EMSGSIZE};

struct Stack {
    dev: StackDevice<VirtioNet>,
    iface: Interface,
    sockets: SocketSet<'static>,
    tsc_khz: u64,
    /// Bumped whenever a poll may have changed a socket (for epoll edges).
    generation: u64,
    /// Peers of connected UDP sockets.
    peers: BTreeMap<SocketHandle, IpEndpoint>,
}

static NET: Mutex<Option<Stack>> = Mutex::new(None);

fn now(tsc_khz: u64) -> Instant {
    let us = crate::time::ticks_to_ns(rdtsc(), tsc_khz) / 1000;
    Instant::from_micros(us as i64)
}

impl Stack {
    fn now(&self) -> Instant {
        now(self.tsc_khz)
    }

    fn flush(&mut self) {
        if self.dev.inner().flush() {
            hypercall::call(hc::NET_KICK, 0);
        }
    }
}

/// Brings the device and the stack up if the monitor attached a device.
pub fn init(boot: &BootInfo) -> Result<(), &'static str> {
    let n = boot.net;
    if n.present == 0 {
        return Ok(());
    }
    let layout = VirtioNetLayout::new(n.queue_size).ok_or("bad network queue size")?;
    if n.region.len() < layout.total as u64
        || n.region.end > boot.ram_size
        || !n.region.start.is_multiple_of(4096)
    {
        return Err("bad network region");
    }
    // SAFETY: the region is guest RAM the monitor excluded from the free
    // ranges and zeroed (fresh anonymous memory), page-aligned, large enough
    // for the layout; only this driver and the device use it.
    let drv = unsafe {
        VirtioNet::new(
            layout,
            phys_to_virt(n.region.start) as *mut u8,
            n.region.start,
            n.mac,
        )
    };
    let mut dev = StackDevice::new(drv);
    let cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(n.mac)));
    let mut stack = Stack {
        iface: Interface::new(cfg, &mut dev, now(boot.tsc_khz)),
        dev,
        sockets: SocketSet::new(vec![]),
        tsc_khz: boot.tsc_khz,
        generation: 0,
        peers: BTreeMap::new(),
    };
    if n.ipv4 != [0; 4] {
        let [a, b, c, d] = n.ipv4;
        stack.iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::v4(a, b, c, d), n.prefix));
        });
    }
    if n.gateway != [0; 4] {
        let [a, b, c, d] = n.gateway;
        let _ = stack
            .iface
            .routes_mut()
            .add_default_ipv4_route(Ipv4Address::new(a, b, c, d));
    }
    stack.flush();
    *NET.lock() = Some(stack);
    Ok(())
}

/// Runs the stack before the scheduler sleeps. Returns `None` when there
/// is work already (do not sleep), else the TSC deadline to sleep until,
/// the earlier of `deadline` and the stack's own timers.
pub fn idle_poll(deadline: Option<u64>) -> Option<Option<u64>> {
    let Some(mut guard) = NET.try_lock() else {
        return Some(deadline);
    };
    let Some(s) = guard.as_mut() else {
        return Some(deadline);
    };
    let now = s.now();
    if s.iface.poll(now, &mut s.dev, &mut s.sockets) != smoltcp::iface::PollResult::None {
        // Sockets may have changed: threads waiting for I/O re-check, and
        // the scheduler must look again instead of sleeping.
        s.generation = s.generation.wrapping_add(1);
        s.flush();
        drop(guard);
        super::sched::io_event();
        return None;
    }
    s.flush();
    if s.dev.inner().enable_rx_interrupts() {
        return None;
    }
    let mine = s
        .iface
        .poll_delay(now, &s.sockets)
        .map(|d| rdtsc() + crate::time::ns_to_ticks(d.total_micros() * 1000, s.tsc_khz));
    Some(match (deadline, mine) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Bytes of payload buffered per UDP socket in each direction.
const UDP_BUFFER: usize = 64 * 1024;
/// Datagrams buffered per UDP socket in each direction.
const UDP_PACKETS: usize = 64;

/// Runs `f` on the stack; `Err(EAFNOSUPPORT)` when the VM has no network.
fn with_stack<R>(f: impl FnOnce(&mut Stack) -> Result<R, i64>) -> Result<R, i64> {
    let mut g = NET.lock();
    let s = g.as_mut().ok_or(EAFNOSUPPORT)?;
    f(s)
}

/// A new UDP socket.
pub fn udp_open() -> Result<SocketHandle, i64> {
    with_stack(|s| {
        let buf = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0u8; UDP_BUFFER],
            )
        };
        Ok(s.sockets.add(udp::Socket::new(buf(), buf())))
    })
}

/// Frees a socket (its last descriptor was closed).
pub fn udp_close(h: SocketHandle) {
    let _ = with_stack(|s| {
        s.sockets.get_mut::<udp::Socket>(h).close();
        s.sockets.remove(h);
        s.peers.remove(&h);
        Ok(())
    });
}

/// Binds to `port` (0 = an ephemeral port).
pub fn udp_bind(h: SocketHandle, port: u16) -> Result<u16, i64> {
    with_stack(|s| {
        let port = if port == 0 { ephemeral(s) } else { port };
        s.sockets
            .get_mut::<udp::Socket>(h)
            .bind(port)
            .map_err(|e| match e {
                udp::BindError::InvalidState => EINVAL,
                udp::BindError::Unaddressable => EADDRINUSE,
            })?;
        Ok(port)
    })
}

/// The local port, 0 if unbound.
pub fn udp_local_port(h: SocketHandle) -> u16 {
    with_stack(|s| Ok(s.sockets.get::<udp::Socket>(h).endpoint().port)).unwrap_or(0)
}

/// Gives an unbound socket an ephemeral port, as Linux does on first send
/// or connect.
fn bind_if_unbound(s: &mut Stack, h: SocketHandle) {
    if s.sockets.get::<udp::Socket>(h).endpoint().port == 0 {
        let p = ephemeral(s);
        let _ = s.sockets.get_mut::<udp::Socket>(h).bind(p);
    }
}

fn ephemeral(s: &mut Stack) -> u16 {
    // Linux's default range, 32768-60999, walked from a TSC-derived start.
    let start = (rdtsc() % 28232) as u16;
    for i in 0..28232u16 {
        let p = 32768 + (start + i) % 28232;
        let used = s.sockets.iter().any(|(_, sock)| match sock {
            smoltcp::socket::Socket::Udp(u) => u.endpoint().port == p,
            _ => false,
        });
        if !used {
            return p;
        }
    }
    32768
}

/// Queues a datagram to `to` and pushes it out at once.
pub fn udp_send(h: SocketHandle, to: IpEndpoint, data: &[u8]) -> Result<usize, i64> {
    with_stack(|s| {
        bind_if_unbound(s, h);
        let sock = s.sockets.get_mut::<udp::Socket>(h);
        if data.len() > sock.payload_send_capacity() {
            return Err(EMSGSIZE);
        }
        sock.send_slice(data, to).map_err(|e| match e {
            udp::SendError::BufferFull => EAGAIN,
            udp::SendError::Unaddressable => EINVAL,
        })?;
        let now = s.now();
        s.iface.poll(now, &mut s.dev, &mut s.sockets);
        s.flush();
        Ok(data.len())
    })
}

/// Connects a UDP socket: `peer` becomes the default destination and the
/// only accepted source. Binds an ephemeral port if needed.
pub fn udp_connect(h: SocketHandle, peer: IpEndpoint) -> Result<(), i64> {
    with_stack(|s| {
        bind_if_unbound(s, h);
        s.peers.insert(h, peer);
        Ok(())
    })
}

/// The peer of a connected UDP socket.
pub fn udp_peer(h: SocketHandle) -> Option<IpEndpoint> {
    with_stack(|s| Ok(s.peers.get(&h).copied())).ok().flatten()
}

/// Takes the next datagram into `buf` (truncating, as Linux does):
/// `(its full length, sender)`, or `EAGAIN` when none is queued. A
/// connected socket drops datagrams from anyone but its peer.
pub fn udp_recv(h: SocketHandle, buf: &mut [u8]) -> Result<(usize, IpEndpoint), i64> {
    with_stack(|s| {
        let peer = s.peers.get(&h).copied();
        let sock = s.sockets.get_mut::<udp::Socket>(h);
        loop {
            let (data, meta) = sock.recv().map_err(|_| EAGAIN)?;
            if peer.is_some_and(|p| p != meta.endpoint) {
                continue;
            }
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            return Ok((data.len(), meta.endpoint));
        }
    })
}

/// poll(2) bits (POLLIN, POLLOUT) and the change counter of a socket.
pub fn udp_readiness(h: SocketHandle) -> (bool, bool, u64) {
    with_stack(|s| {
        let g = s.generation;
        let sock = s.sockets.get::<udp::Socket>(h);
        Ok((sock.can_recv(), sock.can_send(), g))
    })
    .unwrap_or((false, false, 0))
}
