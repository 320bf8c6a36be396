//! The virtio-net device model: frames cross between the guest's queues and
//! a host backend (a tap device in production, memory in tests).
//!
//! Everything the guest supplies is hostile: descriptor addresses and
//! lengths are checked by the guest-memory accessors, chains are bounded, a
//! transmit chain with device-writable buffers or a receive chain with
//! read-only ones is returned unused and counted, never trusted. Neither
//! path allocates per frame: one scratch buffer of the largest frame is
//! reused.

use std::io;

use thiserror::Error;
use virtio_queue::{DescriptorChain, Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemory};

/// `struct virtio_net_hdr_v1` precedes every frame in both directions.
pub use optivolt_abi::virtio::NET_HDR_LEN;
/// The largest Ethernet frame the device carries (64 KiB, for TSO later).
pub const MAX_FRAME_LEN: usize = 65_550;

/// Where frames come from and go to.
pub trait NetBackend {
    /// Sends one Ethernet frame to the host side.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// Receives one frame into `buf`; `Ok(None)` when none is waiting.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
}

/// A failure of the host side; guest mistakes are counted, not returned.
#[derive(Debug, Error)]
pub enum NetError {
    #[error("network backend: {0}")]
    Backend(#[source] io::Error),
    #[error("virtio queue: {0}")]
    Queue(#[from] virtio_queue::Error),
}

/// A ready split queue of `size` entries at the given guest-physical
/// addresses, with `VIRTIO_F_EVENT_IDX` (the contract: our driver always
/// uses it).
pub fn split_queue(size: u16, desc: u64, avail: u64, used: u64) -> Result<Queue, NetError> {
    let mut q = Queue::new(size)?;
    q.try_set_desc_table_address(GuestAddress(desc))?;
    q.try_set_avail_ring_address(GuestAddress(avail))?;
    q.try_set_used_ring_address(GuestAddress(used))?;
    q.set_event_idx(true);
    q.set_ready(true);
    Ok(q)
}

/// Counters, exported later as metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Chains the guest built wrongly (bad address, wrong direction, too
    /// long, too short for a header).
    pub malformed_chains: u64,
    /// Received frames dropped because the guest's buffers were too small.
    pub rx_dropped: u64,
}

/// The state of one virtio-net device.
pub struct NetDevice {
    pub rx: Queue,
    pub tx: Queue,
    pub stats: NetStats,
    scratch: Vec<u8>,
    /// A frame read from the backend while the guest had no receive buffer.
    pending_rx: Option<usize>,
}

/// What a round of queue processing asks of the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Chains completed in this round.
    pub completed: u32,
    /// The guest asked to be woken for them.
    pub notify_guest: bool,
}

impl NetDevice {
    pub fn new(rx: Queue, tx: Queue) -> Self {
        Self {
            rx,
            tx,
            stats: NetStats::default(),
            scratch: vec![0; NET_HDR_LEN + MAX_FRAME_LEN],
            pending_rx: None,
        }
    }

    /// Whether a received frame waits for a guest buffer (the backend need
    /// not be read until the guest adds buffers).
    pub fn rx_waits_for_buffers(&self) -> bool {
        self.pending_rx.is_some()
    }

    /// Sends every frame the guest has queued for transmission.
    pub fn process_tx<M: GuestMemory, B: NetBackend>(
        &mut self,
        mem: &M,
        backend: &mut B,
    ) -> Result<Progress, NetError> {
        let mut done = Progress::default();
        while let Some(chain) = self.tx.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            match gather(chain, &mut self.scratch) {
                Some(len) if len >= NET_HDR_LEN => {
                    let frame = &self.scratch[NET_HDR_LEN..len];
                    backend.send(frame).map_err(NetError::Backend)?;
                    self.stats.tx_frames += 1;
                    self.stats.tx_bytes += frame.len() as u64;
                }
                _ => self.stats.malformed_chains += 1,
            }
            self.tx.add_used(mem, head, 0)?;
            done.completed += 1;
        }
        if done.completed > 0 {
            done.notify_guest = self.tx.needs_notification(mem)?;
        }
        Ok(done)
    }

    /// Moves frames waiting in the backend into the guest's receive
    /// buffers, as long as both last.
    pub fn process_rx<M: GuestMemory, B: NetBackend>(
        &mut self,
        mem: &M,
        backend: &mut B,
    ) -> Result<Progress, NetError> {
        let mut done = Progress::default();
        let mut rechecked = false;
        loop {
            let len = match self.pending_rx.take() {
                Some(len) => len,
                None => match backend
                    .recv(&mut self.scratch[NET_HDR_LEN..])
                    .map_err(NetError::Backend)?
                {
                    Some(len) => NET_HDR_LEN + len.min(MAX_FRAME_LEN),
                    None => break,
                },
            };
            let Some(chain) = self.rx.pop_descriptor_chain(mem) else {
                // No buffer: keep the frame and ask to hear about new ones.
                self.pending_rx = Some(len);
                // Buffers the guest added after the pop and before it could
                // see notifications on were not kicked: look again, or the
                // worker would sleep until its one-second poll timeout
                // (seen as 1-second wakes from snapshots, where a burst of
                // queued SYNs empties the ring).
                // Once per call: a hostile ring whose index never matches
                // must not spin this thread.
                if !rechecked && self.rx.enable_notification(mem)? {
                    rechecked = true;
                    continue;
                }
                break;
            };
            let head = chain.head_index();
            // Header: no offloads, one buffer.
            self.scratch[..NET_HDR_LEN].fill(0);
            self.scratch[10] = 1;
            let written = match scatter(chain, &self.scratch[..len]) {
                Scatter::Done => {
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += (len - NET_HDR_LEN) as u64;
                    len as u32
                }
                Scatter::TooSmall => {
                    self.stats.rx_dropped += 1;
                    0
                }
                Scatter::Malformed => {
                    self.stats.malformed_chains += 1;
                    0
                }
            };
            self.rx.add_used(mem, head, written)?;
            done.completed += 1;
        }
        if done.completed > 0 {
            done.notify_guest = self.rx.needs_notification(mem)?;
        }
        Ok(done)
    }
}

/// Copies a transmit chain into `buf`; `None` if the chain is malformed or
/// longer than `buf`.
fn gather<M>(chain: DescriptorChain<M>, buf: &mut [u8]) -> Option<usize>
where
    M: std::ops::Deref + Clone,
    M::Target: GuestMemory,
{
    let mem = chain.memory();
    let mut len = 0usize;
    // Clone: `memory()` borrows the chain that iteration consumes.
    for desc in chain.clone() {
        if desc.is_write_only() {
            return None;
        }
        let n = desc.len() as usize;
        let dst = buf.get_mut(len..len.checked_add(n)?)?;
        mem.read_slice(dst, desc.addr()).ok()?;
        len += n;
    }
    Some(len)
}

enum Scatter {
    Done,
    TooSmall,
    Malformed,
}

/// Copies `data` into a receive chain's buffers.
fn scatter<M>(chain: DescriptorChain<M>, mut data: &[u8]) -> Scatter
where
    M: std::ops::Deref + Clone,
    M::Target: GuestMemory,
{
    let mem = chain.memory();
    for desc in chain.clone() {
        if !desc.is_write_only() {
            return Scatter::Malformed;
        }
        if data.is_empty() {
            break;
        }
        let n = (desc.len() as usize).min(data.len());
        if mem.write_slice(&data[..n], desc.addr()).is_err() {
            return Scatter::Malformed;
        }
        data = &data[n..];
    }
    if data.is_empty() {
        Scatter::Done
    } else {
        Scatter::TooSmall
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use virtio_queue::desc::{split::Descriptor as SplitDesc, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    const F_NEXT: u16 = 1;
    const F_WRITE: u16 = 2;
    const DATA: u64 = 0x10_0000;

    #[derive(Default)]
    struct Wire {
        sent: Vec<Vec<u8>>,
        incoming: VecDeque<Vec<u8>>,
    }

    impl NetBackend for Wire {
        fn send(&mut self, frame: &[u8]) -> io::Result<()> {
            self.sent.push(frame.to_vec());
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
            Ok(self.incoming.pop_front().map(|f| {
                buf[..f.len()].copy_from_slice(&f);
                f.len()
            }))
        }
    }

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
    }

    fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
        RawDescriptor::from(SplitDesc::new(addr, len, flags, next))
    }

    /// One device whose TX queue holds `tx` chains and RX queue `rx` chains.
    fn device(m: &GuestMemoryMmap, tx: &[RawDescriptor], rx: &[RawDescriptor]) -> NetDevice {
        let txq = MockSplitQueue::create(m, GuestAddress(0), 16);
        txq.add_desc_chains(tx, 0).unwrap();
        let rxq = MockSplitQueue::create(m, GuestAddress(0x8000), 16);
        rxq.add_desc_chains(rx, 0).unwrap();
        NetDevice::new(rxq.create_queue().unwrap(), txq.create_queue().unwrap())
    }

    #[test]
    fn transmits_frames_split_across_descriptors() {
        let m = mem();
        m.write_slice(&[0u8; NET_HDR_LEN], GuestAddress(DATA))
            .unwrap();
        m.write_slice(b"ethernet-frame", GuestAddress(DATA + 0x100))
            .unwrap();
        m.write_slice(b"second", GuestAddress(DATA + 0x200))
            .unwrap();
        let tx = [
            desc(DATA, NET_HDR_LEN as u32, F_NEXT, 1),
            desc(DATA + 0x100, 14, 0, 0),
            desc(DATA + 0x1f4, NET_HDR_LEN as u32 + 6, 0, 0),
        ];
        let mut d = device(&m, &tx, &[]);
        let mut wire = Wire::default();
        let p = d.process_tx(&m, &mut wire).unwrap();
        assert_eq!(p.completed, 2);
        assert_eq!(
            wire.sent,
            vec![b"ethernet-frame".to_vec(), b"second".to_vec()]
        );
        assert_eq!(d.stats.tx_frames, 2);
        assert_eq!(d.stats.tx_bytes, 20);
        assert_eq!(d.stats.malformed_chains, 0);
    }

    #[test]
    fn hostile_transmit_chains_are_returned_and_counted() {
        let m = mem();
        let tx = [
            desc(0xffff_ffff_0000, 64, 0, 0),     // outside guest memory
            desc(DATA, 64, F_WRITE, 0),           // device-writable in TX
            desc(DATA, 4, 0, 0),                  // shorter than a header
            desc(DATA, u32::MAX, 0, 0),           // longer than any frame
            desc(0x1f_fff0, 64, 0, 0),            // runs off the end
            desc(DATA, NET_HDR_LEN as u32, 0, 0), // empty frame: fine
        ];
        let mut d = device(&m, &tx, &[]);
        let mut wire = Wire::default();
        let p = d.process_tx(&m, &mut wire).unwrap();
        assert_eq!(p.completed, 6, "every chain goes back to the guest");
        assert_eq!(d.stats.malformed_chains, 5);
        assert_eq!(wire.sent, vec![Vec::<u8>::new()]);
    }

    #[test]
    fn receives_into_chained_buffers_with_a_header() {
        let m = mem();
        let rx = [
            desc(DATA, 8, F_WRITE | F_NEXT, 1),
            desc(DATA + 0x100, 100, F_WRITE, 0),
        ];
        let mut d = device(&m, &[], &rx);
        let mut wire = Wire::default();
        wire.incoming.push_back(b"a frame from the host".to_vec());
        let p = d.process_rx(&m, &mut wire).unwrap();
        assert_eq!(p.completed, 1);
        let mut hdr = [0u8; 8];
        m.read_slice(&mut hdr, GuestAddress(DATA)).unwrap();
        assert_eq!(hdr, [0; 8]);
        let mut rest = [0u8; 4 + 21];
        m.read_slice(&mut rest, GuestAddress(DATA + 0x100)).unwrap();
        assert_eq!(&rest[..4], &[0, 0, 1, 0], "num_buffers = 1");
        assert_eq!(&rest[4..], b"a frame from the host");
        assert_eq!(d.stats.rx_frames, 1);
        assert_eq!(d.stats.rx_bytes, 21);
    }

    #[test]
    fn a_frame_waits_for_a_buffer_and_small_or_readonly_buffers_do_not_take_it() {
        let m = mem();
        let rx = [
            desc(DATA, 16, F_WRITE, 0),         // too small for hdr + 10
            desc(DATA + 0x100, 64, 0, 0),       // read-only: malformed
            desc(DATA + 0x200, 64, F_WRITE, 0), // fits
        ];
        let mut d = device(&m, &[], &rx);
        let mut wire = Wire::default();
        for f in [b"0123456789", b"abcdefghij", b"klmnopqrst", b"uvwxyz0123"] {
            wire.incoming.push_back(f.to_vec());
        }
        let p = d.process_rx(&m, &mut wire).unwrap();
        assert_eq!(p.completed, 3);
        assert_eq!(d.stats.rx_dropped, 1);
        assert_eq!(d.stats.malformed_chains, 1);
        assert_eq!(d.stats.rx_frames, 1);
        let mut got = [0u8; 10];
        m.read_slice(&mut got, GuestAddress(DATA + 0x200 + NET_HDR_LEN as u64))
            .unwrap();
        assert_eq!(&got, b"klmnopqrst");
        // The fourth frame was read and is held until the guest adds a buffer.
        assert!(wire.incoming.is_empty());
        assert_eq!(d.pending_rx, Some(NET_HDR_LEN + 10));
        let p = d.process_rx(&m, &mut wire).unwrap();
        assert_eq!(p.completed, 0);
        assert_eq!(d.pending_rx, Some(NET_HDR_LEN + 10));
    }
}
