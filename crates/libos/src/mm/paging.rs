//! x86-64 four-level page tables, edited by the library OS at CPL 3 through
//! the physmap (page tables are ordinary guest memory to us).
//!
//! Under PVM a fresh not-present → present entry needs no TLB flush, which is
//! the only transition the eager mapper makes on its fast path.

/// Present.
pub const PTE_P: u64 = 1 << 0;
/// Writable.
pub const PTE_W: u64 = 1 << 1;
/// User-accessible (everything is: the guest runs at CPL 3).
pub const PTE_U: u64 = 1 << 2;
/// Accessed. Set on the tables we create; leaf entries start without it, so
/// that an entry the CPU never used is known not to be in the TLB (see
/// `mm::space`).
pub const PTE_A: u64 = 1 << 5;
/// Dirty. Set on writable leaf entries when they are made: a clean writable
/// entry would cost a shadow MMU (PVM) a second host fault on its first write.
pub const PTE_D: u64 = 1 << 6;
/// Large page (in a PD or PDPT entry).
pub const PTE_PS: u64 = 1 << 7;
/// No-execute.
pub const PTE_NX: u64 = 1 << 63;
/// Software bit: a PROT_NONE page that still owns its frame (P is clear).
pub const PTE_SOFT_NONE: u64 = 1 << 9;
/// Physical address bits of an entry.
pub const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Access to page-table pages by physical address.
pub trait TableMemory {
    /// Returns a pointer to the 512 entries of the table at `pa`.
    ///
    /// # Safety
    /// `pa` must be a page-aligned table page owned by this page-table tree.
    unsafe fn table(&self, pa: u64) -> *mut [u64; 512];
    /// Allocates a zeroed page for a new table.
    fn alloc_table(&mut self) -> Option<u64>;
}

/// Errors from page-table edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No memory for an intermediate table.
    NoMemory,
    /// The range is covered by a large page we do not split.
    LargePage,
}

fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 511) as usize
}

/// A page-table tree rooted at a PML4.
pub struct PageTables<M: TableMemory> {
    root: u64,
    mem: M,
}

impl<M: TableMemory> PageTables<M> {
    /// Wraps an existing tree.
    pub fn new(root: u64, mem: M) -> Self {
        PageTables { root, mem }
    }

    /// The PML4's physical address.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The table memory.
    pub fn memory(&mut self) -> &mut M {
        &mut self.mem
    }

    /// Walks to the level-0 entry for `va`, creating tables if `create`.
    fn leaf(&mut self, va: u64, create: bool) -> Result<Option<*mut u64>, MapError> {
        let mut table = self.root;
        for level in (1..4).rev() {
            // SAFETY: `table` is the root or an address read from a present,
            // non-large entry of this tree, hence a table page of the tree.
            let t = unsafe { &mut *self.mem.table(table) };
            let e = &mut t[index(va, level)];
            if *e & PTE_P == 0 {
                if !create {
                    return Ok(None);
                }
                let new = self.mem.alloc_table().ok_or(MapError::NoMemory)?;
                *e = new | PTE_P | PTE_W | PTE_U | PTE_A;
            } else if *e & PTE_PS != 0 {
                return Err(MapError::LargePage);
            }
            table = *e & PTE_ADDR;
        }
        // SAFETY: as above, `table` is a level-0 table page of this tree.
        let t = unsafe { &mut *self.mem.table(table) };
        Ok(Some(&mut t[index(va, 0)] as *mut u64))
    }

    /// Maps the page at `va` to frame `pa` with `flags` (PTE_P is added).
    /// Returns the previous entry if one was present.
    pub fn map(&mut self, va: u64, pa: u64, flags: u64) -> Result<Option<u64>, MapError> {
        let e = self.leaf(va, true)?.ok_or(MapError::NoMemory)?;
        // SAFETY: `e` points into a live table page of this tree.
        unsafe {
            let old = *e;
            *e = (pa & PTE_ADDR) | flags | PTE_P;
            Ok((old & PTE_P != 0).then_some(old))
        }
    }

    /// The raw leaf entry for `va` (0 if no table covers it).
    pub fn entry(&mut self, va: u64) -> u64 {
        match self.leaf(va, false) {
            // SAFETY: `e` points into a live table page of this tree.
            Ok(Some(e)) => unsafe { *e },
            _ => 0,
        }
    }

    /// Writes the raw leaf entry for `va`, creating tables; returns the old one.
    pub fn set_entry(&mut self, va: u64, raw: u64) -> Result<u64, MapError> {
        let e = self.leaf(va, true)?.ok_or(MapError::NoMemory)?;
        // SAFETY: `e` points into a live table page of this tree.
        unsafe {
            let old = *e;
            *e = raw;
            Ok(old)
        }
    }

    /// Removes the mapping of `va`; returns the old entry if it was present.
    pub fn unmap(&mut self, va: u64) -> Option<u64> {
        let e = self.leaf(va, false).ok()??;
        // SAFETY: `e` points into a live table page of this tree.
        unsafe {
            let old = *e;
            *e = 0;
            (old & PTE_P != 0).then_some(old)
        }
    }

    /// Replaces the flags of a present mapping; false if `va` is not mapped.
    pub fn protect(&mut self, va: u64, flags: u64) -> bool {
        match self.leaf(va, false) {
            // SAFETY: `e` points into a live table page of this tree.
            Ok(Some(e)) => unsafe {
                if *e & PTE_P == 0 {
                    return false;
                }
                *e = (*e & PTE_ADDR) | flags | PTE_P;
                true
            },
            _ => false,
        }
    }

    /// Translates `va` to (physical address, leaf entry flags) if mapped.
    /// Large pages in the walk are understood.
    pub fn translate(&self, va: u64) -> Option<(u64, u64)> {
        let mut table = self.root;
        for level in (0..4).rev() {
            // SAFETY: as in `leaf`.
            let e = unsafe { (*self.mem.table(table))[index(va, level)] };
            if e & PTE_P == 0 {
                return None;
            }
            if level == 0 || e & PTE_PS != 0 {
                let size = 1u64 << (12 + 9 * level);
                let base = e & PTE_ADDR & !(size - 1);
                return Some((base + (va & (size - 1)), e & !PTE_ADDR));
            }
            table = e & PTE_ADDR;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// Page-table pages in a hash map, allocated from 0x100000 upwards.
    #[derive(Default)]
    struct FakeMem {
        pages: RefCell<HashMap<u64, Box<[u64; 512]>>>,
        next: u64,
        limit: u64,
    }

    impl TableMemory for FakeMem {
        unsafe fn table(&self, pa: u64) -> *mut [u64; 512] {
            let mut p = self.pages.borrow_mut();
            let b = p.entry(pa).or_insert_with(|| Box::new([0; 512]));
            &mut **b as *mut [u64; 512]
        }
        fn alloc_table(&mut self) -> Option<u64> {
            if self.next >= self.limit {
                return None;
            }
            self.next += 4096;
            Some(0x100000 + self.next)
        }
    }

    #[test]
    fn map_translate_protect_unmap() {
        let mem = FakeMem {
            limit: 1 << 30,
            ..Default::default()
        };
        let mut pt = PageTables::new(0x1000, mem);
        assert_eq!(pt.translate(0x400000), None);
        assert_eq!(pt.map(0x400000, 0x9000, PTE_U | PTE_W).unwrap(), None);
        assert_eq!(
            pt.translate(0x400123),
            Some((0x9123, PTE_P | PTE_U | PTE_W))
        );
        assert!(pt.protect(0x400000, PTE_U | PTE_NX));
        assert_eq!(pt.translate(0x400000).unwrap().1, PTE_P | PTE_U | PTE_NX);
        assert!(!pt.protect(0x800000, PTE_U));
        assert!(pt.unmap(0x400000).is_some());
        assert_eq!(pt.translate(0x400000), None);
        assert!(pt.unmap(0x400000).is_none());
    }

    #[test]
    fn large_pages_translate_and_refuse_small_maps() {
        let mem = FakeMem {
            limit: 1 << 30,
            ..Default::default()
        };
        let mut pt = PageTables::new(0x1000, mem);
        pt.map(0x0, 0x5000, PTE_U).unwrap();
        // Turn the PD entry for 0x200000 into a 2 MiB page at 0x40000000.
        // SAFETY: the fake memory hands out boxed tables that live as long as `pt`.
        unsafe {
            let pml4 = &*pt.memory().table(0x1000);
            let pdpt = &*pt.memory().table(pml4[0] & PTE_ADDR);
            let pd = &mut *pt.memory().table(pdpt[0] & PTE_ADDR);
            pd[1] = 0x4000_0000 | PTE_P | PTE_PS | PTE_U;
        }
        assert_eq!(pt.translate(0x201234).unwrap().0, 0x4000_1234);
        assert_eq!(pt.map(0x201000, 0x1000, PTE_U), Err(MapError::LargePage));
    }

    #[test]
    fn out_of_table_memory_is_an_error() {
        let mem = FakeMem {
            limit: 4096,
            ..Default::default()
        };
        let mut pt = PageTables::new(0x1000, mem);
        assert_eq!(pt.map(0x400000, 0x9000, PTE_U), Err(MapError::NoMemory));
    }
}
