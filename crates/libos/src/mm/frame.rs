//! Physical frame allocator: bump allocation over the free ranges the monitor
//! reported, plus a free list of returned frames.
//!
//! Frames that come from the bump pointer have never been touched by the guest,
//! so they are zero (and not yet backed by host memory); recycled frames are
//! reported as dirty so the caller zeroes them.

use alloc::vec::Vec;
use optivolt_abi::boot::PhysRange;

use super::PAGE;

/// A frame handed out by [`FrameAllocator::alloc`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Guest-physical address (page aligned).
    pub pa: u64,
    /// Whether the frame is known to be all zeroes.
    pub zeroed: bool,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct FrameAllocator {
    ranges: Vec<PhysRange>,
    current: usize,
    next: u64,
    /// Returned frames and whether they are known to be zero (released to the host).
    free: Vec<(u64, bool)>,
    total: u64,
    used: u64,
}

impl FrameAllocator {
    /// An allocator over `ranges` (rounded inwards to page boundaries).
    pub fn new(ranges: &[PhysRange]) -> Self {
        let mut v: Vec<PhysRange> = ranges
            .iter()
            .filter_map(|r| {
                let s = super::page_up(r.start)?;
                let e = super::page_down(r.end);
                (s < e).then_some(PhysRange { start: s, end: e })
            })
            .collect();
        v.sort_by_key(|r| r.start);
        let total = v.iter().map(|r| r.len() / PAGE).sum();
        let next = v.first().map(|r| r.start).unwrap_or(0);
        FrameAllocator {
            ranges: v,
            current: 0,
            next,
            free: Vec::new(),
            total,
            used: 0,
        }
    }

    /// Allocates one frame, recycled frames first.
    pub fn alloc(&mut self) -> Option<Frame> {
        if let Some((pa, zeroed)) = self.free.pop() {
            self.used += 1;
            return Some(Frame { pa, zeroed });
        }
        while let Some(r) = self.ranges.get(self.current) {
            if self.next.max(r.start) + PAGE <= r.end {
                let pa = self.next.max(r.start);
                self.next = pa + PAGE;
                self.used += 1;
                return Some(Frame { pa, zeroed: true });
            }
            self.current += 1;
            self.next = self.ranges.get(self.current).map(|r| r.start).unwrap_or(0);
        }
        None
    }

    /// Allocates `n` physically contiguous fresh frames (never from the free list).
    pub fn alloc_contiguous(&mut self, n: u64) -> Option<u64> {
        let bytes = n.checked_mul(PAGE)?;
        while let Some(r) = self.ranges.get(self.current) {
            let s = self.next.max(r.start);
            if s.checked_add(bytes)? <= r.end {
                self.next = s + bytes;
                self.used += n;
                return Some(s);
            }
            self.current += 1;
            self.next = self.ranges.get(self.current).map(|r| r.start).unwrap_or(0);
        }
        None
    }

    /// Returns a frame. The caller guarantees it is no longer mapped.
    pub fn free(&mut self, pa: u64) {
        debug_assert_eq!(pa % PAGE, 0);
        self.used = self.used.saturating_sub(1);
        self.free.push((pa, false));
    }

    /// Returns a frame whose host page was released (it reads as zero).
    pub fn free_zeroed(&mut self, pa: u64) {
        debug_assert_eq!(pa % PAGE, 0);
        self.used = self.used.saturating_sub(1);
        self.free.push((pa, true));
    }

    /// Frames currently handed out.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Frames available (free list plus untouched).
    pub fn available(&self) -> u64 {
        self.total.saturating_sub(self.used)
    }

    /// All frames managed.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_then_recycles() {
        let mut f = FrameAllocator::new(&[
            PhysRange {
                start: 0x5000,
                end: 0x7000,
            },
            PhysRange {
                start: 0x1001,
                end: 0x3000,
            },
        ]);
        assert_eq!(f.total(), 3);
        let a = f.alloc().unwrap();
        assert_eq!(
            a,
            Frame {
                pa: 0x2000,
                zeroed: true
            }
        );
        assert_eq!(f.alloc().unwrap().pa, 0x5000);
        assert_eq!(f.alloc().unwrap().pa, 0x6000);
        assert!(f.alloc().is_none());
        f.free(0x5000);
        assert_eq!(f.available(), 1);
        assert_eq!(
            f.alloc().unwrap(),
            Frame {
                pa: 0x5000,
                zeroed: false
            }
        );
    }

    #[test]
    fn contiguous_skips_short_ranges() {
        let mut f = FrameAllocator::new(&[
            PhysRange {
                start: 0x1000,
                end: 0x2000,
            },
            PhysRange {
                start: 0x10000,
                end: 0x20000,
            },
        ]);
        assert_eq!(f.alloc_contiguous(4), Some(0x10000));
        assert_eq!(f.alloc().unwrap().pa, 0x14000);
        assert_eq!(f.alloc_contiguous(100), None);
    }
}
