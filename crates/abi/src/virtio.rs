//! Shared-memory layout of the virtio devices, which the library OS's
//! drivers and the monitor's device models must compute identically.
//!
//! A split virtqueue (virtio 1.x, section 2.7) lives in one contiguous
//! region: descriptor table, available ring, used ring. A network device
//! region holds a receive queue, a transmit queue (each page-aligned) and
//! a pool of fixed-size frame buffers for each.

/// Largest queue size the split format allows.
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Bytes per descriptor.
pub const DESC_SIZE: usize = 16;
/// Bytes per used-ring element.
pub const USED_ELEM_SIZE: usize = 8;

/// Byte offsets of the three parts of a split queue inside one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitLayout {
    /// Queue size (number of descriptors), a power of two.
    pub size: u16,
    /// Offset of the descriptor table (16-byte aligned).
    pub desc: usize,
    /// Offset of the available ring (2-byte aligned).
    pub avail: usize,
    /// Offset of the used ring (4-byte aligned).
    pub used: usize,
    /// Bytes the whole queue needs.
    pub total: usize,
}

impl SplitLayout {
    /// Layout of a queue of `size` descriptors, or `None` when `size` is not
    /// a power of two in `1..=32768`.
    pub fn new(size: u16) -> Option<Self> {
        if size == 0 || !size.is_power_of_two() || size > MAX_QUEUE_SIZE {
            return None;
        }
        let n = size as usize;
        let desc = 0;
        let avail = desc + DESC_SIZE * n;
        // flags, idx, ring[n], used_event
        let avail_end = avail + 2 * (3 + n);
        let used = (avail_end + 3) & !3;
        // flags, idx, ring[n] of (id, len), avail_event
        let total = used + 4 + USED_ELEM_SIZE * n + 2;
        Some(Self {
            size,
            desc,
            avail,
            used,
            total,
        })
    }
}

/// Size of `virtio_net_hdr_v1`, which precedes each frame.
pub const NET_HDR_LEN: usize = 12;
/// Bytes per buffer: header and a 1514-byte frame, rounded up.
pub const BUF_LEN: usize = 2048;

/// Where each part of the device's shared region lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioNetLayout {
    pub queue: SplitLayout,
    pub rx_queue: usize,
    pub tx_queue: usize,
    pub rx_bufs: usize,
    pub tx_bufs: usize,
    pub total: usize,
}

impl VirtioNetLayout {
    /// The layout for queues of `size` entries (a power of two), or `None`.
    pub fn new(size: u16) -> Option<Self> {
        let queue = SplitLayout::new(size)?;
        let q = (queue.total + 4095) & !4095;
        let bufs = BUF_LEN * size as usize;
        Some(Self {
            queue,
            rx_queue: 0,
            tx_queue: q,
            rx_bufs: 2 * q,
            tx_bufs: 2 * q + bufs,
            total: 2 * q + 2 * bufs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_the_alignment_rules() {
        for size in [1u16, 2, 8, 256, 1024, 32768] {
            let l = SplitLayout::new(size).unwrap();
            assert_eq!(l.desc % 16, 0);
            assert_eq!(l.avail, 16 * size as usize);
            assert_eq!(l.used % 4, 0);
            assert!(l.used >= l.avail + 6 + 2 * size as usize);
            assert_eq!(l.total, l.used + 6 + 8 * size as usize);
        }
        for bad in [0u16, 3, 100, 32767] {
            assert_eq!(SplitLayout::new(bad), None);
        }
    }

    #[test]
    fn net_region_parts_are_page_aligned_and_disjoint() {
        let l = VirtioNetLayout::new(256).unwrap();
        for off in [l.rx_queue, l.tx_queue, l.rx_bufs, l.tx_bufs] {
            assert_eq!(off % 4096, 0);
        }
        assert!(l.rx_queue + l.queue.total <= l.tx_queue);
        assert!(l.tx_queue + l.queue.total <= l.rx_bufs);
        assert_eq!(l.tx_bufs - l.rx_bufs, 256 * BUF_LEN);
        assert_eq!(l.total - l.tx_bufs, 256 * BUF_LEN);
        assert_eq!(VirtioNetLayout::new(3), None);
    }
}
