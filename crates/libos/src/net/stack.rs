//! The running guest's network stack: smoltcp over two interfaces.
//!
//! - `eth`: the virtio-net device the monitor attached (`BootInfo::net`),
//!   with the address from the command line;
//! - `lo`: the in-guest loopback (127.0.0.1/8 and the guest's own address),
//!   always there, so programs that talk to themselves work with or without
//!   a device.
//!
//! Each interface has its own socket set; a socket lives in the set of the
//! interface its traffic crosses ([`Sock`]). The stack is polled when the
//! scheduler goes idle, on the timer tick while threads run, and after
//! socket calls that queue data; a poll that changed sockets bumps the
//! generation (for epoll edges) and wakes threads waiting for I/O.
//!
//! Sockets for applications: [`udp`] and [`tcp`]; the system-call side is
//! the socket handlers of the system-call layer.

use core::sync::atomic::{AtomicU64, Ordering};

use alloc::vec;

use optivolt_abi::boot::BootInfo;
use optivolt_abi::hypercall as hc;
use optivolt_abi::layout::phys_to_virt;
use optivolt_abi::virtio::VirtioNetLayout;
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};
use spin::Mutex;

use super::{tcp, udp, LoopDevice, StackDevice};
use crate::arch::{cpu::rdtsc, hypercall};
use crate::drivers::net::virtio::VirtioNet;
use crate::drivers::net::NetDevice;

/// Which interface (and socket set) a socket belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Net {
    /// The virtio-net device.
    Eth,
    /// The in-guest loopback.
    Lo,
}

/// A smoltcp socket: its set and its handle there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sock {
    pub net: Net,
    pub h: SocketHandle,
}

pub(super) struct Eth {
    pub(super) dev: StackDevice<VirtioNet>,
    pub(super) iface: Interface,
    pub(super) sockets: SocketSet<'static>,
    pub(super) addr: Option<Ipv4Address>,
}

pub(super) struct Lo {
    pub(super) dev: LoopDevice,
    pub(super) iface: Interface,
    pub(super) sockets: SocketSet<'static>,
}

/// The whole stack.
pub struct Stack {
    pub(super) eth: Option<Eth>,
    pub(super) lo: Lo,
    /// Bumped whenever a poll may have changed a socket (for epoll edges).
    pub(super) generation: u64,
    pub(super) udp: udp::Table,
    pub(super) tcp: tcp::Table,
    /// smoltcp's next timer, computed once per change (`None`: unknown);
    /// every call that may change a socket clears it.
    next_poll: Option<Option<Instant>>,
}

pub(super) static NET: Mutex<Option<Stack>> = Mutex::new(None);
static TSC_KHZ: AtomicU64 = AtomicU64::new(0);

pub(super) fn now() -> Instant {
    let khz = TSC_KHZ.load(Ordering::Relaxed).max(1);
    let us = crate::time::ticks_to_ns(rdtsc(), khz) / 1000;
    Instant::from_micros(us as i64)
}

fn loopback(own: Option<Ipv4Address>) -> Lo {
    let mut dev = LoopDevice::new();
    let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8));
        if let Some(a) = own {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(a), 32));
        }
    });
    Lo {
        dev,
        iface,
        sockets: SocketSet::new(vec![]),
    }
}

impl Stack {
    fn new(eth: Option<Eth>) -> Self {
        let own = eth.as_ref().and_then(|e| e.addr);
        Self {
            lo: loopback(own),
            eth,
            generation: 0,
            udp: udp::Table::default(),
            tcp: tcp::Table::default(),
            next_poll: None,
        }
    }

    /// The socket set of `net`.
    pub(super) fn set(&mut self, net: Net) -> Option<&mut SocketSet<'static>> {
        match net {
            Net::Eth => self.eth.as_mut().map(|e| &mut e.sockets),
            Net::Lo => Some(&mut self.lo.sockets),
        }
    }

    /// The socket set of `net`, to look at.
    pub(super) fn set_ref(&self, net: Net) -> Option<&SocketSet<'static>> {
        match net {
            Net::Eth => self.eth.as_ref().map(|e| &e.sockets),
            Net::Lo => Some(&self.lo.sockets),
        }
    }

    /// The interface and socket set of `net` (for `connect`).
    pub(super) fn iface_and_set(
        &mut self,
        net: Net,
    ) -> Option<(&mut Interface, &mut SocketSet<'static>)> {
        match net {
            Net::Eth => self.eth.as_mut().map(|e| (&mut e.iface, &mut e.sockets)),
            Net::Lo => Some((&mut self.lo.iface, &mut self.lo.sockets)),
        }
    }

    /// The guest's own address on the device, if it has one.
    pub(super) fn own_addr(&self) -> Option<Ipv4Address> {
        self.eth.as_ref().and_then(|e| e.addr)
    }

    /// The interface that carries traffic to `dst`; `None` when no
    /// interface reaches it.
    pub(super) fn route(&self, dst: Ipv4Address) -> Option<Net> {
        if dst.is_loopback() || dst.is_unspecified() || Some(dst) == self.own_addr() {
            Some(Net::Lo)
        } else if self.eth.is_some() {
            Some(Net::Eth)
        } else {
            None
        }
    }

    /// Whether `a` is an address a socket may bind to.
    pub(super) fn is_local(&self, a: Ipv4Address) -> bool {
        a.is_unspecified() || a.is_loopback() || Some(a) == self.own_addr()
    }

    /// Runs both interfaces until nothing moves: received packets in,
    /// queued data out, loopback packets through, listening pools refilled
    /// for held connection requests. Returns whether any socket changed.
    fn poll(&mut self) -> bool {
        self.next_poll = None;
        let now = now();
        let mut changed = false;
        for _ in 0..1024 {
            let mut progress = false;
            if let Some(e) = self.eth.as_mut() {
                progress |= e.iface.poll(now, &mut e.dev, &mut e.sockets) != PollResult::None;
            }
            let lo = &mut self.lo;
            progress |= lo.iface.poll(now, &mut lo.dev, &mut lo.sockets) != PollResult::None;
            changed |= progress;
            let refilled = tcp::maintain(self);
            let held = self.eth.as_ref().is_some_and(|e| e.dev.holding()) || self.lo.dev.holding();
            let looped = self.lo.dev.pending();
            if !(looped && progress || held && refilled) {
                break;
            }
        }
        if changed {
            self.generation = self.generation.wrapping_add(1);
            tcp::refresh(self);
        }
        self.flush();
        changed
    }

    /// Sends what sockets on `net` queued, without taking anything in (after
    /// a write). The loopback needs the whole round trip.
    pub(super) fn push(&mut self, net: Net) {
        self.next_poll = None;
        match (net, self.eth.as_mut()) {
            (Net::Eth, Some(e)) => {
                e.iface.poll_egress(now(), &mut e.dev, &mut e.sockets);
                self.flush();
            }
            _ => poll_and_wake(self),
        }
    }

    /// Tells the device about queued frames (one doorbell per batch).
    fn flush(&mut self) {
        if let Some(e) = self.eth.as_mut() {
            if e.dev.inner().flush() {
                hypercall::call(hc::NET_KICK, 0);
            }
        }
    }

    /// The earliest time the stack wants to be polled again.
    fn poll_at(&mut self) -> Option<Instant> {
        if let Some(at) = self.next_poll {
            return at;
        }
        let at = self.compute_poll_at();
        self.next_poll = Some(at);
        at
    }

    fn compute_poll_at(&mut self) -> Option<Instant> {
        let now = now();
        let lo = self.lo.iface.poll_at(now, &self.lo.sockets);
        let eth = self
            .eth
            .as_mut()
            .and_then(|e| e.iface.poll_at(now, &e.sockets));
        match (lo, eth) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Brings the device and the stack up if the monitor attached a device.
pub fn init(boot: &BootInfo) -> Result<(), &'static str> {
    TSC_KHZ.store(boot.tsc_khz, Ordering::Relaxed);
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
    let mut iface = Interface::new(cfg, &mut dev, now());
    let addr = (n.ipv4 != [0; 4]).then(|| {
        let [a, b, c, d] = n.ipv4;
        Ipv4Address::new(a, b, c, d)
    });
    if let Some(a) = addr {
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(a), n.prefix));
        });
    }
    if n.gateway != [0; 4] {
        let [a, b, c, d] = n.gateway;
        let _ = iface
            .routes_mut()
            .add_default_ipv4_route(Ipv4Address::new(a, b, c, d));
    }
    let mut stack = Stack::new(Some(Eth {
        dev,
        iface,
        sockets: SocketSet::new(vec![]),
        addr,
    }));
    stack.flush();
    *NET.lock() = Some(stack);
    Ok(())
}

/// Runs `f` on the stack (created with only the loopback on first use when
/// the VM has no device).
pub(super) fn with_stack<R>(f: impl FnOnce(&mut Stack) -> Result<R, i64>) -> Result<R, i64> {
    let mut g = NET.lock();
    let s = g.get_or_insert_with(|| Stack::new(None));
    s.next_poll = None;
    f(s)
}

/// [`with_stack`] for calls that only look (readiness, addresses): the
/// cached next timer stays valid.
pub(super) fn with_stack_ro<R>(f: impl FnOnce(&mut Stack) -> Result<R, i64>) -> Result<R, i64> {
    let mut g = NET.lock();
    let s = g.get_or_insert_with(|| Stack::new(None));
    f(s)
}

/// Polls the stack; wakes I/O waiters when sockets changed.
pub(super) fn poll_and_wake(s: &mut Stack) {
    if s.poll() {
        crate::task::sched::io_event();
    }
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
    if s.poll() {
        // Sockets may have changed: threads waiting for I/O re-check, and
        // the scheduler must look again instead of sleeping.
        drop(guard);
        crate::task::sched::io_event();
        return None;
    }
    if let Some(e) = s.eth.as_mut() {
        if e.dev.inner().enable_rx_interrupts() {
            return None;
        }
    }
    let khz = TSC_KHZ.load(Ordering::Relaxed).max(1);
    let mine = s.poll_at().map(|at| {
        let wait_us = (at - now()).total_micros();
        rdtsc() + crate::time::ns_to_ticks(wait_us.saturating_mul(1000), khz)
    });
    Some(match (deadline, mine) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Polls the stack while threads run (from the timer tick and before
/// poll/select/epoll look at sockets), when the device has received frames
/// or a stack timer is due; wakes I/O waiters.
pub fn tick_poll() {
    let Some(mut guard) = NET.try_lock() else {
        return;
    };
    let Some(s) = guard.as_mut() else {
        return;
    };
    let due = s.eth.as_mut().is_some_and(|e| e.dev.inner().rx_pending())
        || s.poll_at().is_some_and(|at| at <= now());
    if due && s.poll() {
        drop(guard);
        crate::task::sched::io_event();
    }
}

/// Picks a free port in Linux's default ephemeral range, 32768-60999,
/// walking from a TSC-derived start; `in_use` says which are taken.
pub(super) fn ephemeral(mut in_use: impl FnMut(u16) -> bool) -> Option<u16> {
    const FIRST: u16 = 32768;
    const COUNT: u16 = 28232;
    let start = (rdtsc() % u64::from(COUNT)) as u16;
    (0..COUNT)
        .map(|i| FIRST + (start + i) % COUNT)
        .find(|&p| !in_use(p))
}
