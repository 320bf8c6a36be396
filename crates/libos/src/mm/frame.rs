//! Physical frame allocator: bump allocation over the free ranges the monitor
//! reported, plus a free list of returned frames.
//!
//! Frames that come from the bump pointer have never been touched by the guest,
//! so they are zero (and not yet backed by host memory); recycled frames are
//! reported as dirty so the caller zeroes them.

use core::sync::atomic::{AtomicU64, Ordering};

use alloc::vec::Vec;
use optivolt_abi::boot::PhysRange;

use super::PAGE;

/// The highest free range is shared with the kernel heap, which grows
/// downwards from its end ([`take_top`]) while the bump pointer climbs from
/// its start. The boundary lives in atomics: the heap grows from inside the
/// global allocator, where the frame allocator (behind the kernel lock)
/// cannot be reached.
#[derive(Debug)]
pub struct TopShare {
    /// Lowest address the heap took.
    floor: AtomicU64,
    /// Where the bump pointer stands in the shared range.
    bump: AtomicU64,
    /// End of the shared range.
    end: AtomicU64,
}

impl TopShare {
    const fn new() -> Self {
        Self {
            floor: AtomicU64::new(0),
            bump: AtomicU64::new(0),
            end: AtomicU64::new(0),
        }
    }

    /// Takes `bytes` (page multiple) from the top of the shared range;
    /// `None` when the bump allocator's frames are in the way.
    pub fn take(&self, bytes: u64) -> Option<u64> {
        let floor = self.floor.load(Ordering::Acquire);
        let new = floor.checked_sub(bytes)? & !(PAGE - 1);
        if new < self.bump.load(Ordering::Acquire) {
            return None;
        }
        self.floor.store(new, Ordering::Release);
        Some(new)
    }

    /// Bytes taken with [`Self::take`].
    pub fn taken(&self) -> u64 {
        self.end.load(Ordering::Relaxed) - self.floor.load(Ordering::Relaxed)
    }
}

/// The guest's shared range.
static TOP: TopShare = TopShare::new();

/// Takes `bytes` from the top of the guest's shared range (for the heap).
pub fn take_top(bytes: u64) -> Option<u64> {
    TOP.take(bytes)
}

/// A frame handed out by [`FrameAllocator::alloc`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Guest-physical address (page aligned).
    pub pa: u64,
    /// Whether the frame is known to be all zeroes.
    pub zeroed: bool,
}

/// See the module documentation.
/// Most frames the guest's allocator had handed out at once (for `volt run
/// --stats`: the memory the application and its page tables took).
pub static PEAK_FRAMES: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
pub struct FrameAllocator {
    ranges: Vec<PhysRange>,
    current: usize,
    next: u64,
    /// Returned frames and whether they are known to be zero (released to the host).
    free: Vec<(u64, bool)>,
    total: u64,
    used: u64,
    top: &'static TopShare,
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
        #[cfg(not(test))]
        let top = &TOP;
        // Each test's allocator has its own shared range.
        #[cfg(test)]
        let top: &'static TopShare =
            alloc::boxed::Box::leak(alloc::boxed::Box::new(TopShare::new()));
        if let Some(last) = v.last() {
            top.end.store(last.end, Ordering::Relaxed);
            top.floor.store(last.end, Ordering::Relaxed);
            let bump = if v.len() == 1 { next } else { last.start };
            top.bump.store(bump, Ordering::Relaxed);
        }
        FrameAllocator {
            ranges: v,
            current: 0,
            next,
            free: Vec::new(),
            total,
            used: 0,
            top,
        }
    }

    /// Allocates one frame, recycled frames first.
    pub fn alloc(&mut self) -> Option<Frame> {
        if let Some((pa, zeroed)) = self.free.pop() {
            self.used += 1;
            PEAK_FRAMES.fetch_max(self.used, Ordering::Relaxed);
            return Some(Frame { pa, zeroed });
        }
        while let Some(r) = self.ranges.get(self.current) {
            if self.next.max(r.start) + PAGE <= self.end_of(self.current) {
                let pa = self.next.max(r.start);
                self.next = pa + PAGE;
                self.used += 1;
                PEAK_FRAMES.fetch_max(self.used, Ordering::Relaxed);
                self.publish();
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
            if s.checked_add(bytes)? <= self.end_of(self.current) {
                self.next = s + bytes;
                self.used += n;
                PEAK_FRAMES.fetch_max(self.used, Ordering::Relaxed);
                self.publish();
                return Some(s);
            }
            self.current += 1;
            self.next = self.ranges.get(self.current).map(|r| r.start).unwrap_or(0);
        }
        None
    }

    /// End of range `i` for the bump pointer (the shared range stops at the
    /// heap's floor).
    fn end_of(&self, i: usize) -> u64 {
        let end = self.ranges[i].end;
        if i + 1 == self.ranges.len() {
            end.min(self.top.floor.load(Ordering::Acquire))
        } else {
            end
        }
    }

    /// Tells the heap where the bump pointer stands in the shared range.
    fn publish(&self) {
        if self.current + 1 == self.ranges.len() {
            self.top.bump.store(self.next, Ordering::Release);
        }
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

    /// Whether the next frame [`Self::alloc`] hands out reads as zero
    /// without being written (fresh, or released to the host): backing a
    /// page ahead of its first touch with it costs no host memory.
    pub fn next_is_clean(&self) -> bool {
        self.free.last().is_none_or(|&(_, zeroed)| zeroed)
    }

    /// Frames currently handed out.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Frames available (free list plus untouched).
    pub fn available(&self) -> u64 {
        self.total
            .saturating_sub(self.used)
            .saturating_sub(self.top.taken() / PAGE)
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
    fn the_heap_and_the_bump_pointer_share_the_top_range() {
        let mut f = FrameAllocator::new(&[PhysRange {
            start: 0x10000,
            end: 0x20000,
        }]);
        assert_eq!(f.available(), 16);
        assert_eq!(f.top.take(0x4000), Some(0x1c000));
        assert_eq!(f.available(), 12);
        for _ in 0..12 {
            assert!(f.alloc().is_some());
        }
        assert_eq!(f.alloc(), None, "the bump pointer stops at the heap");
        assert_eq!(
            f.top.take(0x1000),
            None,
            "the heap stops at the bump pointer"
        );
    }

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
