//! The network path without the VM: the guest's smoltcp and virtio-net
//! driver run on one thread, the monitor's I/O thread serves the device on
//! another, and the host kernel talks TCP to the "guest" through a real tap
//! — all inside a private network namespace, so nothing leaves the test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use optivolt_libos::drivers::net::virtio::{VirtioNet, VirtioNetLayout};
use optivolt_libos::drivers::net::NetDevice;
use optivolt_libos::net::StackDevice;
use optivolt_vmm::devices::net::split_queue;
use optivolt_vmm::devices::net::NetDevice as NetModel;
use optivolt_vmm::devices::net_worker::NetWorker;
use optivolt_vmm::devices::tap::Tap;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const REGION: u64 = 0x40_0000;

fn queue(size: u16, (d, a, u): (u64, u64, u64), mem: &GuestMemoryMmap) -> Queue {
    let q = split_queue(size, d, a, u).unwrap();
    assert!(q.is_valid(mem));
    q
}

fn ip(args: &[&str]) {
    assert!(optivolt_testnet::ip(args), "ip {args:?}");
}

/// The guest: smoltcp echoing TCP on port 8080 until `stop`.
fn guest(
    driver: VirtioNet,
    doorbell: Arc<EventFd>,
    wake: Arc<EventFd>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let start = std::time::Instant::now();
    let now = || smoltcp::time::Instant::from_micros(start.elapsed().as_micros() as i64);
    let mut dev = StackDevice::new(driver);
    let cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(
        dev.inner().mac(),
    )));
    let mut iface = Interface::new(cfg, &mut dev, now());
    iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(10, 0, 7, 2), 24)).unwrap());
    let mut sockets = SocketSet::new(vec![]);
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 256 * 1024]),
        tcp::SocketBuffer::new(vec![0; 256 * 1024]),
    );
    s.listen(8080).unwrap();
    let h = sockets.add(s);
    let mut buf = vec![0u8; 64 * 1024];
    let mut kicks = 0;
    while !stop.load(Ordering::Acquire) {
        iface.poll(now(), &mut dev, &mut sockets);
        let s = sockets.get_mut::<tcp::Socket>(h);
        while s.can_recv() && s.can_send() {
            let take = (s.send_capacity() - s.send_queue()).min(buf.len());
            let n = s.recv_slice(&mut buf[..take]).unwrap();
            if n == 0 {
                break;
            }
            s.send_slice(&buf[..n]).unwrap();
        }
        if s.state() == tcp::State::CloseWait && s.send_queue() == 0 {
            s.close();
        }
        if !s.is_open() {
            s.listen(8080).unwrap();
        }
        iface.poll(now(), &mut dev, &mut sockets);
        if dev.inner().flush() {
            kicks += 1;
            doorbell.write(1).unwrap();
        }
        // Sleep until the device has used buffers or smoltcp has a timer.
        if !dev.inner().enable_rx_interrupts() {
            let ms = iface
                .poll_delay(now(), &sockets)
                .map_or(10, |d| d.total_millis().min(10)) as i32;
            let mut pfd = libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            unsafe { libc::poll(&mut pfd, 1, ms) };
            let _ = wake.read();
        }
    }
    kicks
}

#[test]
fn host_kernel_tcp_reaches_the_guest_stack_through_tap_and_io_thread() {
    optivolt_testnet::in_private_netns(
        "host_kernel_tcp_reaches_the_guest_stack_through_tap_and_io_thread",
        run,
    );
}

fn run() {
    let tap = Tap::open("ovnet0").expect("create the tap");
    ip(&["addr", "add", "10.0.7.1/24", "dev", "ovnet0"]);
    ip(&["link", "set", "ovnet0", "up"]);
    ip(&["link", "set", "lo", "up"]);

    let size = 256;
    let layout = VirtioNetLayout::new(size).unwrap();
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(REGION), layout.total)]).unwrap();
    let host = mem.get_host_address(GuestAddress(REGION)).unwrap();
    // SAFETY: a fresh zeroed mapping that outlives both threads (the
    // worker holds a clone of `mem`, the guest thread is joined below).
    let mut driver = unsafe { VirtioNet::new(layout, host, REGION, [2, 0, 0, 0, 0, 2]) };
    driver.flush();
    let [rxa, txa] = driver.queue_addresses();
    let model = NetModel::new(queue(size, rxa, &mem), queue(size, txa, &mem));
    let wake = Arc::new(EventFd::new(EFD_NONBLOCK).unwrap());
    let worker = NetWorker::spawn(mem.clone(), model, tap, wake.clone()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let g = {
        let (db, st) = (worker.doorbell(), stop.clone());
        std::thread::spawn(move || guest(driver, db, wake, st))
    };

    let total = 8 << 20;
    let data: Vec<u8> = (0..total)
        .map(|i: usize| (i * 13 + i / 1000) as u8)
        .collect();
    let addr: SocketAddr = "10.0.7.2:8080".parse().unwrap();
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut w = conn.try_clone().unwrap();
    let to_send = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&to_send).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut echoed = Vec::with_capacity(total);
    conn.read_to_end(&mut echoed).expect("read the echo");
    writer.join().unwrap();
    stop.store(true, Ordering::Release);
    let kicks = g.join().unwrap();
    let stats = worker.stop().unwrap();
    assert_eq!(echoed.len(), total);
    assert!(echoed == data, "echoed bytes differ");
    assert_eq!(stats.malformed_chains, 0);
    eprintln!("8 MiB echoed: {stats:?}, {kicks} guest kicks");
    assert!(
        kicks < stats.tx_frames / 4,
        "{kicks} kicks for {} frames",
        stats.tx_frames
    );
}
