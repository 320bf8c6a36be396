//! The application's virtual memory areas: which ranges are reserved, with
//! which protection. Page tables follow this map; it is the source of truth
//! for mmap/munmap/mprotect/brk and for telling a segmentation fault from a
//! valid access.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Readable.
pub const PROT_READ: u32 = 1;
/// Writable.
pub const PROT_WRITE: u32 = 2;
/// Executable.
pub const PROT_EXEC: u32 = 4;

/// What backs an area (for /proc/self/maps and later for file mappings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaKind {
    /// Anonymous memory.
    Anonymous,
    /// A segment of the executable.
    Image,
    /// The program break.
    Heap,
    /// The main thread's stack.
    Stack,
}

/// One area `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vma {
    /// First address (page aligned).
    pub start: u64,
    /// One past the last address (page aligned).
    pub end: u64,
    /// PROT_* bits.
    pub prot: u32,
    /// What backs it.
    pub kind: VmaKind,
}

/// Errors from VMA operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaError {
    /// No gap large enough.
    NoSpace,
    /// The range overlaps an existing area and the caller did not ask to replace.
    Overlap,
    /// Misaligned, empty or outside the application's half.
    Invalid,
}

/// The map, keyed by start address.
#[derive(Debug)]
pub struct VmaMap {
    areas: BTreeMap<u64, Vma>,
    low: u64,
    high: u64,
}

impl VmaMap {
    /// An empty map managing `[low, high)`.
    pub fn new(low: u64, high: u64) -> Self {
        VmaMap {
            areas: BTreeMap::new(),
            low,
            high,
        }
    }

    /// The area containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&Vma> {
        self.areas
            .range(..=addr)
            .next_back()
            .map(|(_, v)| v)
            .filter(|v| addr < v.end)
    }

    /// Whether any area overlaps `[start, end)`.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        if let Some((_, v)) = self.areas.range(..end).next_back() {
            return v.end > start;
        }
        false
    }

    fn check(&self, start: u64, end: u64) -> Result<(), VmaError> {
        if !start.is_multiple_of(super::PAGE)
            || !end.is_multiple_of(super::PAGE)
            || start >= end
            || start < self.low
            || end > self.high
        {
            return Err(VmaError::Invalid);
        }
        Ok(())
    }

    /// Inserts an area; it must not overlap anything.
    pub fn insert(&mut self, vma: Vma) -> Result<(), VmaError> {
        self.check(vma.start, vma.end)?;
        if self.overlaps(vma.start, vma.end) {
            return Err(VmaError::Overlap);
        }
        self.areas.insert(vma.start, vma);
        Ok(())
    }

    /// Finds the highest gap of `len` bytes below `below` (top-down, like Linux).
    pub fn find_free(&self, len: u64, below: u64) -> Result<u64, VmaError> {
        if len == 0 || !len.is_multiple_of(super::PAGE) {
            return Err(VmaError::Invalid);
        }
        let mut top = below.min(self.high);
        for (_, v) in self.areas.range(..top).rev() {
            if v.end <= top && top - v.end >= len {
                return Ok(top - len);
            }
            top = top.min(v.start);
        }
        if top >= self.low + len {
            Ok(top - len)
        } else {
            Err(VmaError::NoSpace)
        }
    }

    /// Removes `[start, end)` from the map, splitting areas at the edges.
    /// Returns the removed pieces (for unmapping their pages).
    pub fn remove(&mut self, start: u64, end: u64) -> Result<Vec<Vma>, VmaError> {
        self.check(start, end)?;
        let mut removed = Vec::new();
        let keys: Vec<u64> = self
            .areas
            .range(..end)
            .rev()
            .take_while(|(_, v)| v.end > start)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            let Some(v) = self.areas.remove(&k) else {
                continue;
            };
            if v.start < start {
                self.areas.insert(v.start, Vma { end: start, ..v });
            }
            if v.end > end {
                self.areas.insert(end, Vma { start: end, ..v });
            }
            removed.push(Vma {
                start: v.start.max(start),
                end: v.end.min(end),
                ..v
            });
        }
        removed.sort_by_key(|v| v.start);
        Ok(removed)
    }

    /// Changes the protection of `[start, end)`, which must be fully mapped.
    /// Returns the affected pieces with their new protection.
    pub fn protect(&mut self, start: u64, end: u64, prot: u32) -> Result<Vec<Vma>, VmaError> {
        self.check(start, end)?;
        // Every byte must be covered (Linux: ENOMEM otherwise).
        let mut cursor = start;
        for (_, v) in self.areas.range(..end) {
            if v.end <= cursor {
                continue;
            }
            if v.start > cursor {
                return Err(VmaError::NoSpace);
            }
            cursor = v.end;
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            return Err(VmaError::NoSpace);
        }
        let mut pieces = self.remove(start, end)?;
        for p in pieces.iter_mut() {
            p.prot = prot;
            self.areas.insert(p.start, *p);
        }
        Ok(pieces)
    }

    /// Grows or shrinks the area starting at `start` to end at `new_end`.
    pub fn resize(&mut self, start: u64, new_end: u64) -> Result<(), VmaError> {
        let v = *self.areas.get(&start).ok_or(VmaError::Invalid)?;
        if new_end > v.end {
            self.check(v.end, new_end)?;
            if self.overlaps(v.end, new_end) {
                return Err(VmaError::Overlap);
            }
        } else if new_end <= start {
            return Err(VmaError::Invalid);
        }
        self.areas.insert(start, Vma { end: new_end, ..v });
        Ok(())
    }

    /// All areas in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Vma> {
        self.areas.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon(start: u64, end: u64) -> Vma {
        Vma {
            start,
            end,
            prot: PROT_READ | PROT_WRITE,
            kind: VmaKind::Anonymous,
        }
    }

    #[test]
    fn insert_find_overlap() {
        let mut m = VmaMap::new(0x1000, 0x100000);
        m.insert(anon(0x2000, 0x4000)).unwrap();
        assert_eq!(m.insert(anon(0x3000, 0x5000)), Err(VmaError::Overlap));
        assert_eq!(m.insert(anon(0x3001, 0x5000)), Err(VmaError::Invalid));
        assert!(m.find(0x2fff).is_some());
        assert!(m.find(0x4000).is_none());
        assert!(m.find(0x1fff).is_none());
    }

    #[test]
    fn find_free_is_top_down() {
        let mut m = VmaMap::new(0x1000, 0x10000);
        assert_eq!(m.find_free(0x2000, u64::MAX), Ok(0xe000));
        m.insert(anon(0xe000, 0x10000)).unwrap();
        m.insert(anon(0x9000, 0xc000)).unwrap();
        assert_eq!(m.find_free(0x2000, u64::MAX), Ok(0xc000));
        assert_eq!(m.find_free(0x3000, u64::MAX), Ok(0x6000));
        assert_eq!(m.find_free(0x9000, u64::MAX), Err(VmaError::NoSpace));
    }

    #[test]
    fn remove_splits() {
        let mut m = VmaMap::new(0x1000, 0x100000);
        m.insert(anon(0x2000, 0x8000)).unwrap();
        m.insert(anon(0x9000, 0xa000)).unwrap();
        let r = m.remove(0x3000, 0x9800 & !0xfff).unwrap();
        assert_eq!(r, vec![anon(0x3000, 0x8000)]);
        assert_eq!(m.iter().count(), 2);
        let r = m.remove(0x1000, 0x20000).unwrap();
        assert_eq!(r, vec![anon(0x2000, 0x3000), anon(0x9000, 0xa000)]);
        assert_eq!(m.iter().count(), 0);
    }

    #[test]
    fn protect_requires_full_coverage() {
        let mut m = VmaMap::new(0x1000, 0x100000);
        m.insert(anon(0x2000, 0x4000)).unwrap();
        m.insert(anon(0x5000, 0x6000)).unwrap();
        assert_eq!(m.protect(0x2000, 0x6000, PROT_READ), Err(VmaError::NoSpace));
        let p = m.protect(0x3000, 0x4000, PROT_READ).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(m.find(0x3000).unwrap().prot, PROT_READ);
        assert_eq!(m.find(0x2000).unwrap().prot, PROT_READ | PROT_WRITE);
    }

    #[test]
    fn resize_grows_and_shrinks() {
        let mut m = VmaMap::new(0x1000, 0x100000);
        m.insert(anon(0x2000, 0x3000)).unwrap();
        m.insert(anon(0x8000, 0x9000)).unwrap();
        m.resize(0x2000, 0x6000).unwrap();
        assert_eq!(m.resize(0x2000, 0xa000), Err(VmaError::Overlap));
        m.resize(0x2000, 0x3000).unwrap();
        assert_eq!(m.find(0x2000).unwrap().end, 0x3000);
    }
}
