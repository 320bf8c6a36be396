//! The virtio-net driver: one receive and one transmit split queue, each
//! with a fixed pool of frame buffers in the same shared region.
//!
//! Region layout, all offsets from the region's base (see
//! [`VirtioNetLayout`]): receive queue, transmit queue, receive buffers,
//! transmit buffers. Each buffer is one descriptor: the 12-byte
//! `virtio_net_hdr_v1` followed by the frame.

use alloc::vec;
use alloc::vec::Vec;

use super::{NetDevice, TxFull};
use crate::drivers::virtio::split::Buffer;
use crate::drivers::virtio::SplitQueue;

pub use optivolt_abi::virtio::{VirtioNetLayout, BUF_LEN, NET_HDR_LEN};

/// A virtio-net device driven through shared memory.
pub struct VirtioNet {
    mac: [u8; 6],
    base: *mut u8,
    layout: VirtioNetLayout,
    phys: u64,
    rx: SplitQueue,
    tx: SplitQueue,
    /// Receive buffer behind each receive descriptor head.
    rx_buf_of_head: Vec<u16>,
    /// Transmit buffer behind each transmit descriptor head.
    tx_buf_of_head: Vec<u16>,
    free_tx: Vec<u16>,
}

// SAFETY: the driver owns its region exclusively (see `new`).
unsafe impl Send for VirtioNet {}

impl VirtioNet {
    /// Sets the device up in a zeroed region of `layout.total` bytes at
    /// virtual address `base`, which the device sees at `phys`, and offers
    /// every receive buffer to the device. Call [`NetDevice::flush`] next.
    ///
    /// # Safety
    /// `base` must be valid for reads and writes of `layout.total` bytes,
    /// page-aligned, zeroed and shared with nothing but the device for as
    /// long as the driver lives.
    pub unsafe fn new(layout: VirtioNetLayout, base: *mut u8, phys: u64, mac: [u8; 6]) -> Self {
        let size = layout.queue.size;
        // SAFETY: both queue areas lie inside the region the caller vouched
        // for, page-aligned and disjoint.
        let (rx, tx) = unsafe {
            (
                SplitQueue::new(
                    layout.queue,
                    base.add(layout.rx_queue),
                    phys + layout.rx_queue as u64,
                    true,
                ),
                SplitQueue::new(
                    layout.queue,
                    base.add(layout.tx_queue),
                    phys + layout.tx_queue as u64,
                    true,
                ),
            )
        };
        let mut dev = Self {
            mac,
            base,
            layout,
            phys,
            rx,
            tx,
            rx_buf_of_head: vec![0; size as usize],
            tx_buf_of_head: vec![0; size as usize],
            free_tx: (0..size).rev().collect(),
        };
        for b in 0..size {
            dev.offer_rx(b);
        }
        dev
    }

    /// Guest-physical addresses of (descriptors, available, used) of the
    /// receive and the transmit queue.
    pub fn queue_addresses(&self) -> [(u64, u64, u64); 2] {
        [self.rx.addresses(), self.tx.addresses()]
    }

    /// Asks the device to wake the guest when frames arrive; `true` means
    /// frames arrived meanwhile and the caller must not sleep.
    pub fn enable_rx_interrupts(&mut self) -> bool {
        self.rx.enable_interrupts()
    }

    /// Whether received frames wait in the ring.
    pub fn rx_pending(&self) -> bool {
        self.rx.has_used()
    }

    fn offer_rx(&mut self, buf: u16) {
        let off = self.layout.rx_bufs + BUF_LEN * buf as usize;
        let b = Buffer {
            addr: self.phys + off as u64,
            len: BUF_LEN as u32,
            device_writes: true,
        };
        if let Ok(head) = self.rx.push(&[b]) {
            self.rx_buf_of_head[head as usize] = buf;
        }
    }

    fn reclaim_tx(&mut self) {
        while let Some((head, _)) = self.tx.pop_used() {
            self.free_tx.push(self.tx_buf_of_head[head as usize]);
        }
    }

    fn buf(&mut self, off: usize) -> &mut [u8] {
        // SAFETY: every buffer offset comes from the layout and lies inside
        // the region; the device does not write a buffer while the driver
        // holds it (it is not in any published chain).
        unsafe { core::slice::from_raw_parts_mut(self.base.add(off), BUF_LEN) }
    }
}

impl NetDevice for VirtioNet {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn max_frame_len(&self) -> usize {
        BUF_LEN - NET_HDR_LEN
    }

    fn receive(&mut self, f: &mut dyn FnMut(&[u8])) -> bool {
        let Some((head, len)) = self.rx.pop_used() else {
            return false;
        };
        let b = self.rx_buf_of_head[head as usize];
        let off = self.layout.rx_bufs + BUF_LEN * b as usize;
        // The device's length is clamped: a bogus one cannot widen the slice.
        let len = (len as usize).clamp(NET_HDR_LEN, BUF_LEN);
        f(&self.buf(off)[NET_HDR_LEN..len]);
        self.offer_rx(b);
        true
    }

    fn can_transmit(&mut self) -> bool {
        if self.free_tx.is_empty() {
            self.reclaim_tx();
        }
        !self.free_tx.is_empty()
    }

    fn transmit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), TxFull> {
        if len > self.max_frame_len() {
            return Err(TxFull);
        }
        if self.free_tx.is_empty() {
            self.reclaim_tx();
        }
        let b = self.free_tx.pop().ok_or(TxFull)?;
        let off = self.layout.tx_bufs + BUF_LEN * b as usize;
        let buf = self.buf(off);
        buf[..NET_HDR_LEN].fill(0);
        fill(&mut buf[NET_HDR_LEN..NET_HDR_LEN + len]);
        let desc = Buffer {
            addr: self.phys + off as u64,
            len: (NET_HDR_LEN + len) as u32,
            device_writes: false,
        };
        match self.tx.push(&[desc]) {
            Ok(head) => {
                self.tx_buf_of_head[head as usize] = b;
                Ok(())
            }
            Err(_) => {
                self.free_tx.push(b);
                Err(TxFull)
            }
        }
    }

    fn flush(&mut self) -> bool {
        let rx = self.rx.publish();
        let tx = self.tx.publish();
        rx || tx
    }
}
