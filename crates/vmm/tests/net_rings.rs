//! Both ends of the network rings in one process: the library OS's
//! virtio-net driver against the monitor's device model, over guest memory
//! as the monitor maps it and an in-memory wire. What the guest sends must
//! reach the wire byte for byte, and the other way round, across many laps
//! of the rings and with notifications suppressed while traffic flows.

use std::collections::VecDeque;
use std::io;

use optivolt_libos::drivers::net::virtio::{VirtioNet, VirtioNetLayout};
use optivolt_libos::drivers::net::NetDevice;
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
    let mut q = Queue::new(size).unwrap();
    q.try_set_desc_table_address(GuestAddress(d)).unwrap();
    q.try_set_avail_ring_address(GuestAddress(a)).unwrap();
    q.try_set_used_ring_address(GuestAddress(u)).unwrap();
    q.set_event_idx(true);
    q.set_ready(true);
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
