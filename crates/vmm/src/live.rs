//! What other threads may read while the guest runs (voltd's metrics,
//! through the instance's control socket): the monitor's running totals
//! (exits, the network device's frames and bytes), the guest's own
//! ([`optivolt_abi::boot::GuestCounters`], read from its memory), and how
//! much guest memory the host backs.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use optivolt_abi::boot::{GuestCounters, COUNTERS_OFFSET};
use optivolt_abi::layout::BOOT_INFO_PA;
use vm_memory::{Bytes, GuestAddress};

use crate::memory::{GuestRam, Pod};

/// Totals kept by the vCPU and network threads.
#[derive(Debug, Default)]
pub struct Live {
    pub exits: AtomicU64,
    pub rx_frames: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_frames: AtomicU64,
    pub tx_bytes: AtomicU64,
}

/// A reading of everything at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    pub exits: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// The guest's own totals (as it reports them: not to be trusted for
    /// anything but a report).
    pub guest: GuestCounters,
    /// Guest RAM the host backs now (pages present), bytes.
    pub guest_memory_bytes: u64,
}

impl Live {
    /// Reads the totals, the guest's counters and the backed memory.
    pub fn read(&self, mem: &GuestRam) -> LiveStats {
        let guest = mem
            .read_obj::<Pod<GuestCounters>>(GuestAddress(BOOT_INFO_PA + COUNTERS_OFFSET as u64))
            .map(|p| p.0)
            .unwrap_or_default();
        LiveStats {
            exits: self.exits.load(Relaxed),
            rx_frames: self.rx_frames.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            tx_frames: self.tx_frames.load(Relaxed),
            tx_bytes: self.tx_bytes.load(Relaxed),
            guest,
            guest_memory_bytes: crate::snapshot::pages::present_pages(mem).unwrap_or(0)
                * optivolt_abi::layout::PAGE_SIZE,
        }
    }

    /// Records the network device's totals.
    pub fn set_net(&self, s: &crate::devices::net::NetStats) {
        self.rx_frames.store(s.rx_frames, Relaxed);
        self.rx_bytes.store(s.rx_bytes, Relaxed);
        self.tx_frames.store(s.tx_frames, Relaxed);
        self.tx_bytes.store(s.tx_bytes, Relaxed);
    }
}
