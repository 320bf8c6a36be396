//! The running guest's network: the virtio-net device the monitor attached
//! (`BootInfo::net`) under smoltcp, polled whenever the scheduler goes idle
//! (and so after every wake-up the device causes).
//!
//! Sockets for applications come next; today the stack answers ARP and
//! ICMP echo on the configured address.

use alloc::vec;

use optivolt_abi::boot::BootInfo;
use optivolt_abi::hypercall as hc;
use optivolt_abi::layout::phys_to_virt;
use optivolt_abi::virtio::VirtioNetLayout;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};
use spin::Mutex;

use crate::arch::{cpu::rdtsc, hypercall};
use crate::drivers::net::virtio::VirtioNet;
use crate::drivers::net::NetDevice;
use crate::net::StackDevice;

struct Stack {
    dev: StackDevice<VirtioNet>,
    iface: Interface,
    sockets: SocketSet<'static>,
    tsc_khz: u64,
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
    s.iface.poll(now, &mut s.dev, &mut s.sockets);
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
