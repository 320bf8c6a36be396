//! Pages of the rootfs mapped straight into the application: a private file
//! mapping of a file whose data lies page-aligned in the archive (volt lays
//! shared libraries out that way) points its page-table entries at the
//! archive's own frames, read-only. The archive is the host's page cache,
//! mapped into guest RAM, so every instance of an image shares those pages.
//! A write (the program's, after mprotect, or the library OS patching a
//! `syscall` site) first copies the page; unmapping never frees such a
//! frame.
use super::paging::{PTE_ADDR, PTE_P, PTE_W};
use super::space::{pte_flags, Memory};
use super::vma::Vma;
use super::{page_down, PAGE};
use crate::errno::*;
use optivolt_abi::layout::phys_to_virt;

impl Memory {
    /// Whether frame `pa` belongs to the rootfs.
    pub fn is_shared(&self, pa: u64) -> bool {
        (self.shared.0..self.shared.1).contains(&pa)
    }

    /// Creates `vma` with its first `len` bytes (whole pages) mapped to the
    /// rootfs frames from `pa` on, read-only; the rest is left to first
    /// touch. The caller checked that `[pa, pa + len)` is rootfs.
    pub fn map_shared(&mut self, vma: Vma, pa: u64, len: u64) -> Result<(), i64> {
        if !pa.is_multiple_of(PAGE)
            || !len.is_multiple_of(PAGE)
            || !self.is_shared(pa)
            || (len > 0 && !self.is_shared(pa + len - 1))
        {
            return Err(EINVAL);
        }
        self.vmas.insert(vma).map_err(|_| ENOMEM)?;
        let flags = pte_flags(vma.prot) & !PTE_W;
        let mut off = 0;
        while off < len.min(vma.end - vma.start) {
            if vma.prot != 0
                && self
                    .pt
                    .set_entry(vma.start + off, (pa + off) | flags)
                    .is_err()
            {
                let _ = self.unmap(vma.start, vma.end);
                return Err(ENOMEM);
            }
            off += PAGE;
        }
        Ok(())
    }

    /// Gives page `va` (mapped to a rootfs frame) a frame of its own with
    /// the same bytes, mapped with `prot`; flushes the TLB if `flush` (not
    /// needed when the application's own write faulted on the page).
    pub(super) fn copy_shared(&mut self, va: u64, prot: u32, flush: bool) -> Result<(), i64> {
        let va = page_down(va);
        let old = self.pt.entry(va) & PTE_ADDR;
        let new = self.pt.memory().alloc_zeroed().ok_or(ENOMEM)?;
        // SAFETY: both are whole guest frames in the physmap; `new` was just
        // allocated, so the two do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(
                phys_to_virt(old) as *const u8,
                phys_to_virt(new) as *mut u8,
                PAGE as usize,
            )
        };
        if self.pt.set_entry(va, new | pte_flags(prot)).is_err() {
            self.pt.memory().frames.free(new);
            return Err(ENOMEM);
        }
        if flush {
            self.flush_pending = true;
            self.flush_tlb_if_needed();
        }
        Ok(())
    }

    /// Copies the rootfs pages of `[va, va + len)` that are mapped, so that
    /// the range can be written.
    pub(super) fn unshare(&mut self, va: u64, len: u64) -> Result<(), i64> {
        let end = va.checked_add(len).ok_or(EFAULT)?;
        let mut p = page_down(va);
        while p < end {
            let e = self.pt.entry(p);
            if e & PTE_P != 0 && self.is_shared(e & PTE_ADDR) {
                let prot = self.vmas.find(p).map(|v| v.prot).ok_or(EFAULT)?;
                self.copy_shared(p, prot, true)?;
            }
            p += PAGE;
        }
        Ok(())
    }
}
