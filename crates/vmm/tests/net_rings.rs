//! Both ends of the network rings in one process: the library OS's
//! virtio-net driver against the monitor's device model, over guest memory
//! as the monitor maps it and an in-memory wire. What the guest sends must
//! reach the wire byte for byte, and the other way round, across many laps
//! of the rings and with notifications suppressed while traffic flows.

use std::collections::VecDeque;
use std::io;

use optivolt_libos::drivers::net::virtio::{VirtioNet, VirtioNetLayout};
use optivolt_libos::drivers::net::NetDevice;
use optivolt_vmm::devices::net::split_queue;
use optivolt_vmm::devices::net::{NetBackend, NetDevice as NetModel};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

const REGION: u64 = 0x40_0000;

#[derive(Default)]
struct Wire {
    to_host: Vec<Vec<u8>>,
    to_guest: VecDeque<Vec<u8>>,
}

impl NetBackend for Wire {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.to_host.push(frame.to_vec());
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        Ok(self.to_guest.pop_front().map(|f| {
            buf[..f.len()].copy_from_slice(&f);
            f.len()
        }))
    }
}

fn queue(size: u16, (d, a, u): (u64, u64, u64), mem: &GuestMemoryMmap) -> Queue {
    let q = split_queue(size, d, a, u).unwrap();
    assert!(q.is_valid(mem));
    q
}

fn frame(i: usize) -> Vec<u8> {
    let len = 60 + (i * 37) % 1455; // 60..=1514 bytes
    (0..len).map(|k| (i * 31 + k) as u8).collect()
}

#[test]
fn frames_cross_both_ways_intact_over_many_laps() {
    let size = 32;
    let layout = VirtioNetLayout::new(size).unwrap();
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(REGION), layout.total)]).unwrap();
    let host = mem.get_host_address(GuestAddress(REGION)).unwrap();
    // SAFETY: a fresh zeroed mapping, page-aligned, that outlives the
    // driver; only the device model shares it.
    let mut guest = unsafe { VirtioNet::new(layout, host, REGION, [2, 0, 0, 0, 0, 1]) };
    assert!(
        guest.flush(),
        "offering the receive buffers rings the doorbell"
    );
    let [rxa, txa] = guest.queue_addresses();
    let mut dev = NetModel::new(queue(size, rxa, &mem), queue(size, txa, &mem));
    let mut wire = Wire::default();

    let mut doorbells = 0;
    let mut sent = 0;
    let mut received = Vec::new();
    for round in 0..200 {
        // The guest sends a burst, bigger than the queue every few rounds.
        let burst = 1 + round % 45;
        for _ in 0..burst {
            let f = frame(sent);
            if guest
                .transmit(f.len(), &mut |b| b.copy_from_slice(&f))
                .is_err()
            {
                break; // ring full: the device must drain first
            }
            sent += 1;
        }
        if guest.flush() {
            doorbells += 1;
        }
        // The host answers with frames of its own.
        for k in 0..(round % 7) {
            wire.to_guest.push_back(frame(100_000 + round * 7 + k));
        }
        dev.process_tx(&mem, &mut wire).unwrap();
        dev.process_rx(&mem, &mut wire).unwrap();
        while guest.receive(&mut |f| received.push(f.to_vec())) {}
        guest.flush();
    }
    // Drain what is left.
    dev.process_rx(&mem, &mut wire).unwrap();
    while guest.receive(&mut |f| received.push(f.to_vec())) {}

    assert_eq!(wire.to_host.len(), sent);
    for (i, f) in wire.to_host.iter().enumerate() {
        assert_eq!(f, &frame(i), "guest → host frame {i}");
    }
    let expected: Vec<Vec<u8>> = (0..200)
        .flat_map(|r| (0..(r % 7)).map(move |k| frame(100_000 + r * 7 + k)))
        .collect();
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "host → guest frames differ");
    assert_eq!(dev.stats.malformed_chains, 0);
    assert_eq!(dev.stats.rx_dropped, 0);
    assert!(sent > 4 * size as usize, "the rings wrapped");
    // The device drains after every doorbell, so each burst rings once; the
    // point is one exit per batch, never one per frame.
    assert!(
        doorbells <= 200 && doorbells < sent / 4,
        "{doorbells} doorbells for {sent} frames"
    );
}

/// The host's end of the link for the stack test: frames from the guest
/// land in `inbox`, frames for the guest wait in `outbox`. It is the device
/// model's backend and the host stack's device at once.
#[derive(Default)]
struct HostLink {
    inbox: VecDeque<Vec<u8>>,
    outbox: VecDeque<Vec<u8>>,
}

impl NetBackend for HostLink {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.inbox.push_back(frame.to_vec());
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        Ok(self.outbox.pop_front().map(|f| {
            buf[..f.len()].copy_from_slice(&f);
            f.len()
        }))
    }
}

struct HostRx(Vec<u8>);
struct HostTx<'a>(&'a mut VecDeque<Vec<u8>>);

impl smoltcp::phy::RxToken for HostRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl smoltcp::phy::TxToken for HostTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0; len];
        let r = f(&mut b);
        self.0.push_back(b);
        r
    }
}

impl smoltcp::phy::Device for HostLink {
    type RxToken<'a> = HostRx;
    type TxToken<'a> = HostTx<'a>;
    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let f = self.inbox.pop_front()?;
        Some((HostRx(f), HostTx(&mut self.outbox)))
    }
    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(HostTx(&mut self.outbox))
    }
    fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
        let mut c = smoltcp::phy::DeviceCapabilities::default();
        c.medium = smoltcp::phy::Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

/// smoltcp in the guest over the virtio-net driver, the monitor's device
/// model, and smoltcp on the host side: ARP, a TCP handshake, 1 MiB echoed
/// back intact, an orderly close.
#[test]
fn tcp_echo_over_the_rings_through_smoltcp() {
    use optivolt_libos::net::StackDevice;
    use smoltcp::iface::{Config, Interface, SocketSet};
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant;
    use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

    let size = 64;
    let layout = VirtioNetLayout::new(size).unwrap();
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(REGION), layout.total)]).unwrap();
    let host_ptr = mem.get_host_address(GuestAddress(REGION)).unwrap();
    // SAFETY: as in the test above.
    let driver = unsafe { VirtioNet::new(layout, host_ptr, REGION, [2, 0, 0, 0, 0, 2]) };
    let [rxa, txa] = driver.queue_addresses();
    let mut model = NetModel::new(queue(size, rxa, &mem), queue(size, txa, &mem));
    let mut gdev = StackDevice::new(driver);
    gdev.inner().flush();
    let mut link = HostLink::default();

    let iface = |mac: [u8; 6], ip: [u8; 4], dev: &mut dyn FnMut(Config) -> Interface| {
        let mut i = dev(Config::new(HardwareAddress::Ethernet(EthernetAddress(mac))));
        i.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(ip[0], ip[1], ip[2], ip[3]), 24))
                .unwrap()
        });
        i
    };
    let t0 = Instant::from_millis(0);
    let mut giface = iface([2, 0, 0, 0, 0, 2], [10, 0, 7, 2], &mut |c| {
        Interface::new(c, &mut gdev, t0)
    });
    let mut hiface = iface([2, 0, 0, 0, 0, 1], [10, 0, 7, 1], &mut |c| {
        Interface::new(c, &mut link, t0)
    });
    let sock = || {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        )
    };
    let mut gsockets = SocketSet::new(vec![]);
    let mut hsockets = SocketSet::new(vec![]);
    let mut server = sock();
    server.listen(8080).unwrap();
    let gs = gsockets.add(server);
    let mut client = sock();
    client
        .connect(hiface.context(), (IpAddress::v4(10, 0, 7, 2), 8080), 49152)
        .unwrap();
    let hs = hsockets.add(client);

    let total = 1 << 20;
    let data: Vec<u8> = (0..total).map(|i| (i * 7 + i / 4096) as u8).collect();
    let (mut sent, mut echoed) = (0, Vec::with_capacity(total));
    let mut buf = vec![0u8; 16 * 1024];
    for step in 0..200_000i64 {
        let now = Instant::from_millis(step);
        giface.poll(now, &mut gdev, &mut gsockets);
        let s = gsockets.get_mut::<tcp::Socket>(gs);
        while s.can_recv() && s.can_send() {
            let room = s.send_capacity() - s.send_queue();
            let take = room.min(buf.len());
            let n = s.recv_slice(&mut buf[..take]).unwrap();
            if n == 0 {
                break;
            }
            assert_eq!(s.send_slice(&buf[..n]).unwrap(), n);
        }
        if s.state() == tcp::State::CloseWait && s.send_queue() == 0 {
            s.close();
        }
        giface.poll(now, &mut gdev, &mut gsockets);
        gdev.inner().flush();
        model.process_tx(&mem, &mut link).unwrap();

        hiface.poll(now, &mut link, &mut hsockets);
        let c = hsockets.get_mut::<tcp::Socket>(hs);
        if c.can_send() && sent < total {
            sent += c.send_slice(&data[sent..]).unwrap();
            if sent == total {
                c.close();
            }
        }
        while c.can_recv() {
            let n = c.recv_slice(&mut buf).unwrap();
            echoed.extend_from_slice(&buf[..n]);
        }
        let done = echoed.len() == total && !c.is_open();
        hiface.poll(now, &mut link, &mut hsockets);
        model.process_rx(&mem, &mut link).unwrap();
        if done {
            break;
        }
    }
    assert_eq!(sent, total, "the host could not send everything");
    assert_eq!(echoed.len(), total, "echo incomplete");
    assert!(echoed == data, "echoed bytes differ");
    assert_eq!(model.stats.malformed_chains, 0);
    assert!(model.stats.tx_frames > (total / 1514) as u64);
}
