//! Memory management: physical frames, page tables, the application's VMA map.
pub mod frame;
#[cfg(feature = "guest")]
pub mod heap;
pub mod paging;
pub mod shared;
pub mod space;
pub mod vma;

/// Page size.
pub const PAGE: u64 = 4096;

/// Rounds down to a page boundary.
pub const fn page_down(x: u64) -> u64 {
    x & !(PAGE - 1)
}

/// Rounds up to a page boundary, `None` on overflow.
pub const fn page_up(x: u64) -> Option<u64> {
    match x.checked_add(PAGE - 1) {
        Some(v) => Some(v & !(PAGE - 1)),
        None => None,
    }
}
