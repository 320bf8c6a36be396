//! The library OS's heap: linked-list allocators over physically
//! contiguous regions. The first region is carved out of free memory at
//! boot; when it is full, the heap takes further regions, each twice the
//! last, from the top of the highest free range (`mm::frame::take_top`), so
//! socket buffers and kernel stacks can use memory the application has not.
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use optivolt_abi::layout::phys_to_virt;
use spin::Mutex;

use crate::mm::{frame, PAGE};

/// Most regions the heap can have.
const MAX_REGIONS: usize = 24;
/// Smallest region added when the heap grows.
const MIN_GROWTH: u64 = 1 << 20;

struct Regions {
    heaps: [Heap; MAX_REGIONS],
    n: usize,
}

impl Regions {
    fn alloc(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        // Newest (largest) regions first.
        for h in self.heaps[..self.n].iter_mut().rev() {
            if let Ok(p) = h.allocate_first_fit(layout) {
                return Some(p);
            }
        }
        self.grow(layout)?;
        self.heaps[self.n - 1].allocate_first_fit(layout).ok()
    }

    fn grow(&mut self, layout: Layout) -> Option<()> {
        if self.n == MAX_REGIONS {
            return None;
        }
        let last = self.heaps[..self.n]
            .last()
            .map(|h| h.size() as u64)
            .unwrap_or(0);
        let need = (layout.size() + layout.align()) as u64 + PAGE;
        let size = crate::mm::page_up(need.max(last * 2).max(MIN_GROWTH))?;
        let pa = frame::take_top(size)?;
        // SAFETY: the range was just taken from free RAM for the heap alone
        // (the frame allocator stops below it) and stays the heap's forever.
        unsafe { self.heaps[self.n].init(phys_to_virt(pa) as *mut u8, size as usize) };
        self.n += 1;
        Some(())
    }

    fn owner(&mut self, p: NonNull<u8>) -> Option<&mut Heap> {
        let a = p.as_ptr() as usize;
        self.heaps[..self.n]
            .iter_mut()
            .find(|h| (h.bottom() as usize) <= a && a < h.top() as usize)
    }
}

struct LockedHeap(Mutex<Regions>);

// SAFETY: allocation and deallocation are delegated to `Heap`s over disjoint
// regions, which hand out disjoint, properly aligned blocks; a block is
// returned to the region it came from; the mutex serialises access.
unsafe impl GlobalAlloc for LockedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .alloc(layout)
            .map(|p| p.as_ptr())
            .unwrap_or(core::ptr::null_mut())
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            if let Some(h) = self.0.lock().owner(p) {
                // SAFETY: `ptr` came from this region's `allocate_first_fit`
                // with this `layout` (GlobalAlloc contract).
                unsafe { h.deallocate(p, layout) }
            }
        }
    }
}

#[global_allocator]
static HEAP: LockedHeap = LockedHeap(Mutex::new(Regions {
    heaps: [const { Heap::empty() }; MAX_REGIONS],
    n: 0,
}));

/// Hands `[start, start + size)` (physmap addresses) to the heap.
///
/// # Safety
/// The range must be unused memory that stays reserved for the heap forever.
pub unsafe fn init(start: u64, size: u64) {
    let mut r = HEAP.0.lock();
    // SAFETY: forwarded from the caller.
    unsafe { r.heaps[0].init(start as *mut u8, size as usize) };
    r.n = 1;
}

/// Bytes of heap in use and in total.
pub fn usage() -> (usize, usize) {
    let r = HEAP.0.lock();
    r.heaps[..r.n]
        .iter()
        .fold((0, 0), |(u, s), h| (u + h.used(), s + h.size()))
}
