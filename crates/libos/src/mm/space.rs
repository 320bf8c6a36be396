//! The application's address space: VMAs, page tables and frames together,
//! plus checked access to user memory (always through the physmap after a
//! page-table walk, so a bad pointer from the application is an EFAULT, never
//! a fault inside the library OS).
use alloc::vec::Vec;

use optivolt_abi::hypercall as hc;
use optivolt_abi::layout::{phys_to_virt, USER_MMAP_MIN, USER_TOP};

use crate::arch::hypercall;
use crate::errno::{EFAULT, EINVAL, ENOMEM};
use crate::mm::frame::FrameAllocator;
use crate::mm::paging::{
    PageTables, TableMemory, PTE_A, PTE_ADDR, PTE_D, PTE_NX, PTE_P, PTE_SOFT_NONE, PTE_U, PTE_W,
};
use crate::mm::vma::{Vma, VmaError, VmaKind, VmaMap, PROT_EXEC, PROT_WRITE};
use crate::mm::{page_down, page_up, PAGE};

/// Frames and page-table pages, reached through the physmap.
pub struct GuestMem {
    /// The frame allocator.
    pub frames: FrameAllocator,
}

fn zero_frame(pa: u64) {
    // SAFETY: `pa` is a frame we own; the physmap maps all guest RAM.
    unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, PAGE as usize) };
}

impl GuestMem {
    /// A zeroed frame.
    pub fn alloc_zeroed(&mut self) -> Option<u64> {
        let f = self.frames.alloc()?;
        if !f.zeroed {
            zero_frame(f.pa);
        }
        Some(f.pa)
    }
}

impl TableMemory for GuestMem {
    unsafe fn table(&self, pa: u64) -> *mut [u64; 512] {
        phys_to_virt(pa) as *mut [u64; 512]
    }
    fn alloc_table(&mut self) -> Option<u64> {
        self.alloc_zeroed()
    }
}

/// Page-table flags for a protection.
pub fn pte_flags(prot: u32) -> u64 {
    if prot == 0 {
        return PTE_SOFT_NONE;
    }
    let mut f = PTE_P | PTE_U;
    if prot & PROT_WRITE != 0 {
        f |= PTE_W | PTE_D;
    }
    if prot & PROT_EXEC == 0 {
        f |= PTE_NX;
    }
    f
}

/// Whether the TLB may hold a translation for entry `e`: it is present and
/// was used. Entries are created without the Accessed bit, which the CPU
/// (under PVM, the shadow MMU, which caches nothing for an entry without it)
/// sets before it caches the translation; so changing or removing an entry
/// never used needs no flush. ld.so's reservation of a library's whole span
/// is mostly replaced before it is touched.
fn may_be_cached(e: u64) -> bool {
    e & PTE_P != 0 && e & PTE_A != 0
}

/// See the module documentation.
pub struct Memory {
    /// Page tables (the monitor's, extended by us).
    pub pt: PageTables<GuestMem>,
    /// The application's areas.
    pub vmas: VmaMap,
    /// Start of the program break area.
    pub brk_start: u64,
    /// Current program break (byte granular, as the application set it).
    pub brk: u64,
    /// Present entries were changed since the last TLB flush.
    pub(super) flush_pending: bool,
    /// Frames to give back to the host, coalesced, sent in one hypercall.
    release: Vec<(u64, u64)>,
    /// The files mapped, for /proc/self/maps: `(start, end, path, offset)`.
    pub files: Vec<(u64, u64, Vec<u8>, u64)>,
    /// Guest-physical frames that belong to the rootfs `[start, end)`: user
    /// mappings may read them (see `mm::shared`), never write or free them.
    pub shared: (u64, u64),
}

/// What a page fault turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The page is mapped now.
    Handled,
    /// No area allows the access: a segmentation fault.
    Segv,
    /// The access is valid but no frame is left.
    OutOfMemory,
}

/// Pages mapped together on a demand fault (each demand fault costs a #PF
/// delivery, ~40 µs here: a Go hello takes ~14 with
/// 256 KiB, ~56 with 64 KiB).
pub const FAULT_AROUND: u64 = 256 * 1024;

/// Anonymous mappings up to this size are backed when created; larger ones
/// on first touch (Go maps its heap 8 MiB at a time; glibc thread stacks are
/// 8 MiB): frames are the guest's physical memory, untouched ones are wasted.
pub const EAGER_MAX: u64 = 256 * 1024;

/// Frees of at least this much are given back to the host (smaller ones are
/// kept: one exit costs more than the memory is worth).
pub const RELEASE_MIN: u64 = 64 * 1024;

fn vma_err(e: VmaError) -> i64 {
    match e {
        VmaError::NoSpace => ENOMEM,
        _ => EINVAL,
    }
}

impl Memory {
    /// A memory manager over the monitor's page tables at `root`.
    pub fn new(root: u64, frames: FrameAllocator) -> Self {
        Memory {
            pt: PageTables::new(root, GuestMem { frames }),
            vmas: VmaMap::new(PAGE, USER_TOP),
            brk_start: 0,
            brk: 0,
            flush_pending: false,
            release: Vec::new(),
            files: Vec::new(),
            shared: (0, 0),
        }
    }

    /// `[start, end)` maps no file any more; what is left of a file mapping
    /// on either side keeps its name.
    fn forget_files(&mut self, start: u64, end: u64) {
        let mut kept = Vec::new();
        for (s, e, path, off) in core::mem::take(&mut self.files) {
            if e <= start || s >= end {
                kept.push((s, e, path, off));
                continue;
            }
            if s < start {
                kept.push((s, start, path.clone(), off));
            }
            if e > end {
                kept.push((end, e, path, off + (end - s)));
            }
        }
        self.files = kept;
    }

    /// The file mapped at `va` (for /proc/self/maps): its path and the file
    /// offset `va` maps.
    pub fn file_at(&self, va: u64) -> Option<(&[u8], u64)> {
        self.files
            .iter()
            .find(|f| (f.0..f.1).contains(&va))
            .map(|f| (f.2.as_slice(), f.3 + (va - f.0)))
    }

    /// Frames in use and available.
    pub fn frame_usage(&mut self) -> (u64, u64) {
        let f = &self.pt.memory().frames;
        (f.used(), f.available())
    }

    /// Backs one page of `vma` with a zeroed frame (if not backed yet).
    fn populate_page(&mut self, va: u64, prot: u32) -> Result<u64, i64> {
        let e = self.pt.entry(va);
        if e & (PTE_P | PTE_SOFT_NONE) != 0 {
            return Ok(e & PTE_ADDR);
        }
        let pa = self.pt.memory().alloc_zeroed().ok_or(ENOMEM)?;
        if self.pt.set_entry(va, pa | pte_flags(prot)).is_err() {
            self.pt.memory().frames.free(pa);
            return Err(ENOMEM);
        }
        Ok(pa)
    }

    /// Backs `[start, end)` with frames. On failure the pages stay as they are
    /// (the caller unmaps the VMA).
    pub fn populate(&mut self, start: u64, end: u64, prot: u32) -> Result<(), i64> {
        let mut va = start;
        while va < end {
            self.populate_page(va, prot)?;
            va += PAGE;
        }
        Ok(())
    }

    /// Backs the pages of `[start, end)` that can be backed for free: while
    /// the allocator's next frame is clean (see
    /// [`FrameAllocator::next_is_clean`]). A recycled frame would have to be
    /// zeroed, which costs a host page the program may never touch; those
    /// pages are left to their first touch.
    fn populate_clean(&mut self, start: u64, end: u64, prot: u32) -> Result<(), i64> {
        let mut va = start;
        while va < end {
            if !self.pt.memory().frames.next_is_clean() {
                return Ok(());
            }
            self.populate_page(va, prot)?;
            va += PAGE;
        }
        Ok(())
    }

    /// Creates an area; `populate` backs it with frames now (the default:
    /// faults are expensive under PVM, untouched frames cost no host
    /// memory), as far as that is free (see [`Self::populate_clean`]).
    pub fn map(&mut self, vma: Vma, populate: bool) -> Result<(), i64> {
        self.vmas.insert(vma).map_err(vma_err)?;
        if populate && vma.prot != 0 {
            if let Err(e) = self.populate_clean(vma.start, vma.end, vma.prot) {
                let _ = self.unmap(vma.start, vma.end);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes `[start, end)`: areas, pages and frames. Large frees go back
    /// to the host.
    pub fn unmap(&mut self, start: u64, end: u64) -> Result<(), i64> {
        let removed = self.vmas.remove(start, end).map_err(vma_err)?;
        self.forget_files(start, end);
        let mut freed: Vec<u64> = Vec::new();
        for v in removed {
            let mut va = v.start;
            while va < v.end {
                let e = self.pt.entry(va);
                if e & (PTE_P | PTE_SOFT_NONE) != 0 {
                    let _ = self.pt.set_entry(va, 0);
                    if !self.is_shared(e & PTE_ADDR) {
                        freed.push(e & PTE_ADDR);
                    }
                    if may_be_cached(e) {
                        self.flush_pending = true;
                    }
                }
                va += PAGE;
            }
        }
        self.flush_tlb_if_needed();
        let give_back = freed.len() as u64 * PAGE >= RELEASE_MIN;
        for pa in freed {
            if give_back {
                self.queue_release(pa);
                self.pt.memory().frames.free_zeroed(pa);
            } else {
                self.pt.memory().frames.free(pa);
            }
        }
        self.flush_release();
        Ok(())
    }

    /// madvise(MADV_DONTNEED/MADV_FREE) on anonymous memory: the pages are
    /// unmapped and their frames go back to the allocator and to the host;
    /// the area stays, and the next touch gets zero pages on demand.
    pub fn discard(&mut self, start: u64, end: u64) -> Result<(), i64> {
        let mut va = start;
        let mut freed: Vec<u64> = Vec::new();
        while va < end {
            match self.vmas.find(va).map(|v| (v.kind, v.end)) {
                Some((k, vend)) if k != VmaKind::Image => {
                    let stop = vend.min(end);
                    while va < stop {
                        let e = self.pt.entry(va);
                        // A page of the rootfs still holds the file's bytes:
                        // what MADV_DONTNEED gives back on a file mapping.
                        if e & PTE_P != 0 && !self.is_shared(e & PTE_ADDR) {
                            let _ = self.pt.set_entry(va, 0);
                            freed.push(e & PTE_ADDR);
                            self.flush_pending |= may_be_cached(e);
                        }
                        va += PAGE;
                    }
                }
                Some((_, vend)) => va = vend.min(end),
                None => va += PAGE,
            }
        }
        self.flush_tlb_if_needed();
        for pa in freed {
            self.queue_release(pa);
            self.pt.memory().frames.free_zeroed(pa);
        }
        self.flush_release();
        Ok(())
    }

    fn queue_release(&mut self, pa: u64) {
        match self.release.last_mut() {
            Some((s, l)) if *s + *l == pa => *l += PAGE,
            _ => self.release.push((pa, PAGE)),
        }
    }

    fn flush_release(&mut self) {
        use optivolt_abi::hypercall::{Release, Segment, RELEASE_MAX_RANGES};
        for chunk in self.release.chunks(RELEASE_MAX_RANGES) {
            let mut r = Release {
                count: chunk.len() as u32,
                ..Default::default()
            };
            for (i, (a, l)) in chunk.iter().enumerate() {
                r.ranges[i] = Segment { addr: *a, len: *l };
            }
            hypercall::call_with(hc::RELEASE, &mut r);
        }
        self.release.clear();
    }

    /// Changes the protection of `[start, end)`.
    pub fn protect(&mut self, start: u64, end: u64, prot: u32) -> Result<(), i64> {
        let pieces = self.vmas.protect(start, end, prot).map_err(vma_err)?;
        for v in pieces {
            let mut va = v.start;
            while va < v.end {
                let e = self.pt.entry(va);
                if e & (PTE_P | PTE_SOFT_NONE) != 0 {
                    let mut flags = pte_flags(prot);
                    if self.is_shared(e & PTE_ADDR) {
                        flags &= !PTE_W; // written only after a copy
                    }
                    let _ = self.pt.set_entry(va, (e & PTE_ADDR) | flags);
                    if may_be_cached(e) {
                        self.flush_pending = true;
                    }
                }
                va += PAGE;
            }
        }
        self.flush_tlb_if_needed();
        Ok(())
    }

    pub(super) fn flush_tlb_if_needed(&mut self) {
        if self.flush_pending {
            self.flush_pending = false;
            hypercall::call(hc::TLB_FLUSH, 0);
        }
    }

    /// mremap(2): shrinks in place, grows in place when the pages after the
    /// area are free, else (MREMAP_MAYMOVE) moves the pages by moving their
    /// page-table entries — no copy.
    pub fn remap(
        &mut self,
        old: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        fixed: Option<u64>,
    ) -> Result<u64, i64> {
        let v = *self.vmas.find(old).ok_or(EFAULT)?;
        let old_end = old.checked_add(old_len).ok_or(EINVAL)?;
        if old_len == 0 || old_end > v.end || v.kind == VmaKind::Image {
            return Err(EFAULT);
        }
        // A remapped file area loses its name (it is a private copy anyway).
        self.forget_files(old, old_end);
        if fixed.is_none() && new_len <= old_len {
            if new_len < old_len {
                self.unmap(old + new_len, old_end)?;
            }
            return Ok(old);
        }
        let grow_end = old.checked_add(new_len).ok_or(ENOMEM)?;
        if fixed.is_none()
            && old_end == v.end
            && grow_end <= USER_TOP
            && !self.vmas.overlaps(old_end, grow_end)
        {
            // Grow in place: the area covers exactly to `old_end`.
            self.vmas.resize(v.start, grow_end).map_err(vma_err)?;
            return Ok(old);
        }
        if !may_move {
            return Err(ENOMEM);
        }
        let dest = match fixed {
            Some(a) => {
                let e = a.checked_add(new_len).ok_or(EINVAL)?;
                if e > USER_TOP || (a < old_end && old < e) {
                    return Err(EINVAL);
                }
                self.unmap(a, e)?;
                a
            }
            None => self.find_free(new_len)?,
        };
        // Move the entries of the pages that exist, then retire the old range.
        let keep = old_len.min(new_len);
        let mut moved: Vec<(u64, u64)> = Vec::new();
        let mut va = old;
        while va < old + keep {
            let e = self.pt.entry(va);
            if e & (PTE_P | PTE_SOFT_NONE) != 0 {
                let _ = self.pt.set_entry(va, 0);
                moved.push((va - old, e));
                if may_be_cached(e) {
                    self.flush_pending = true;
                }
            }
            va += PAGE;
        }
        self.vmas
            .insert(Vma {
                start: dest,
                end: dest + new_len,
                prot: v.prot,
                kind: v.kind,
            })
            .map_err(vma_err)?;
        for (off, e) in moved {
            if self.pt.set_entry(dest + off, e).is_err() {
                return Err(ENOMEM);
            }
        }
        self.unmap(old, old_end)?;
        self.flush_tlb_if_needed();
        Ok(dest)
    }

    /// Picks an address for an mmap of `len` bytes (top-down below the stack).
    pub fn find_free(&self, len: u64) -> Result<u64, i64> {
        let a = self.vmas.find_free(len, USER_TOP).map_err(|_| ENOMEM)?;
        if a < USER_MMAP_MIN {
            return Err(ENOMEM);
        }
        Ok(a)
    }

    /// Handles the application's page fault at `addr` with the CPU's
    /// error code: as [`Self::handle_fault`], and an instruction fetch from
    /// an area without PROT_EXEC (or a reserved-bit fault) is a SIGSEGV.
    pub fn handle_app_fault(&mut self, addr: u64, error_code: u64) -> Fault {
        const WRITE: u64 = 1 << 1;
        const RESERVED: u64 = 1 << 3;
        const FETCH: u64 = 1 << 4;
        if error_code & RESERVED != 0 {
            return Fault::Segv;
        }
        if error_code & FETCH != 0 && self.vmas.find(addr).is_none_or(|v| v.prot & PROT_EXEC == 0) {
            return Fault::Segv;
        }
        // The faulting access dropped the TLB's entry for `addr`, so a
        // copy-on-write needs no flush: the retried write finds the new entry.
        self.fault_in(addr, error_code & WRITE != 0, false)
    }

    /// Makes `addr` accessible for a write (`write`) or a read by the
    /// library OS, through the physmap: backs the page if an area allows the
    /// access, and its neighbours in the same FAULT_AROUND block.
    pub fn handle_fault(&mut self, addr: u64, write: bool) -> Fault {
        // A page copied here may still be in the TLB with its old frame,
        // which the application would read instead of what we write: flush.
        self.fault_in(addr, write, true)
    }

    fn fault_in(&mut self, addr: u64, write: bool, flush_copies: bool) -> Fault {
        let Some(v) = self.vmas.find(addr).copied() else {
            return Fault::Segv;
        };
        if v.prot == 0 || (write && v.prot & PROT_WRITE == 0) {
            return Fault::Segv;
        }
        let va = page_down(addr);
        let e = self.pt.entry(va);
        if e & PTE_P != 0 && write && self.is_shared(e & PTE_ADDR) {
            // A write to a rootfs page mapped from a file: copy it first.
            return match self.copy_shared(va, v.prot, flush_copies) {
                Ok(()) => Fault::Handled,
                Err(_) => Fault::OutOfMemory,
            };
        }
        if e & PTE_P != 0 {
            // Present and allowed: a stale TLB entry; flush and retry.
            hypercall::call(hc::TLB_FLUSH, 0);
            return Fault::Handled;
        }
        if self.populate_page(va, v.prot).is_err() {
            return Fault::OutOfMemory;
        }
        let block = va & !(FAULT_AROUND - 1);
        let mut p = block.max(v.start);
        while p < (block + FAULT_AROUND).min(v.end) {
            if self.pt.entry(p) & (PTE_P | PTE_SOFT_NONE) == 0
                && (!self.pt.memory().frames.next_is_clean()
                    || self.populate_page(p, v.prot).is_err())
            {
                // Out of clean frames (or of frames): the faulting page is
                // mapped, that is enough.
                break;
            }
            p += PAGE;
        }
        Fault::Handled
    }

    /// Physical address of user byte `va`, faulting the page in if an area
    /// allows it; EFAULT otherwise.
    fn user_pa(&mut self, va: u64, write: bool) -> Result<u64, i64> {
        if va >= USER_TOP {
            return Err(EFAULT);
        }
        if let Some((pa, flags)) = self.pt.translate(va) {
            if flags & PTE_U != 0 && (!write || flags & PTE_W != 0) {
                return Ok(pa);
            }
        }
        if self.handle_fault(va, write) == Fault::Handled {
            if let Some((pa, _)) = self.pt.translate(va) {
                return Ok(pa);
            }
        }
        Err(EFAULT)
    }

    /// Calls `f(pa, len)` for each physically contiguous piece of user range
    /// `[va, va + len)`, checking access first for the whole range.
    pub fn for_each_user_chunk(
        &mut self,
        va: u64,
        len: u64,
        write: bool,
        mut f: impl FnMut(u64, u64) -> Result<(), i64>,
    ) -> Result<(), i64> {
        if len == 0 {
            return Ok(());
        }
        let end = va.checked_add(len).ok_or(EFAULT)?;
        if end > USER_TOP {
            return Err(EFAULT);
        }
        let mut chunks: Vec<(u64, u64)> = Vec::new();
        let mut cur = va;
        while cur < end {
            let next = (page_down(cur) + PAGE).min(end);
            let pa = self.user_pa(cur, write)?;
            match chunks.last_mut() {
                Some((p, l)) if *p + *l == pa => *l += next - cur,
                _ => chunks.push((pa, next - cur)),
            }
            cur = next;
        }
        for (pa, l) in chunks {
            f(pa, l)?;
        }
        Ok(())
    }

    /// Copies `data` to user address `va`.
    pub fn copy_to_user(&mut self, va: u64, data: &[u8]) -> Result<(), i64> {
        self.copy_in(va, data, true)
    }

    /// Writes `data` at user address `va` whatever the page protection (the
    /// loader fills read-only segments this way, through the physmap, so that
    /// no protection change and no TLB flush is needed).
    pub fn load(&mut self, va: u64, data: &[u8]) -> Result<(), i64> {
        self.copy_in(va, data, false)
    }

    fn copy_in(&mut self, va: u64, data: &[u8], check_write: bool) -> Result<(), i64> {
        // The library OS writes what the page tables may not allow (code it
        // patches): a rootfs page in the way is copied first.
        self.unshare(va, data.len() as u64)?;
        let mut off = 0usize;
        self.for_each_user_chunk(va, data.len() as u64, check_write, |pa, l| {
            // SAFETY: `pa..pa+l` was checked to be a user page we own; the
            // physmap maps it; it cannot overlap `data` (library-OS memory or
            // the rootfs, never user frames).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    data[off..].as_ptr(),
                    phys_to_virt(pa) as *mut u8,
                    l as usize,
                );
            }
            off += l as usize;
            Ok(())
        })
    }

    /// Copies user memory at `va` into `buf`.
    pub fn copy_from_user(&mut self, va: u64, buf: &mut [u8]) -> Result<(), i64> {
        let mut off = 0usize;
        self.for_each_user_chunk(va, buf.len() as u64, false, |pa, l| {
            // SAFETY: as in `copy_to_user`, reading instead of writing.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    phys_to_virt(pa) as *const u8,
                    buf[off..].as_mut_ptr(),
                    l as usize,
                );
            }
            off += l as usize;
            Ok(())
        })
    }

    /// Writes a plain-old-data value to user memory.
    pub fn write_obj<T: Copy>(&mut self, va: u64, v: &T) -> Result<(), i64> {
        // SAFETY: `T: Copy` values used here are `#[repr(C)]` structs and
        // integers without padding-sensitive invariants; we only read bytes.
        let bytes = unsafe {
            core::slice::from_raw_parts(v as *const T as *const u8, core::mem::size_of::<T>())
        };
        self.copy_to_user(va, bytes)
    }

    /// Reads a plain-old-data value from user memory.
    pub fn read_obj<T: Copy + Default>(&mut self, va: u64) -> Result<T, i64> {
        let mut v = T::default();
        // SAFETY: `T` is an integer or `#[repr(C)]` struct of integers: every
        // byte pattern is a valid value.
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(&mut v as *mut T as *mut u8, core::mem::size_of::<T>())
        };
        self.copy_from_user(va, bytes)?;
        Ok(v)
    }

    /// Reads a NUL-terminated string of at most `max` bytes.
    pub fn read_cstr(&mut self, va: u64, max: usize) -> Result<Vec<u8>, i64> {
        let mut out = Vec::new();
        let mut cur = va;
        while out.len() < max {
            let pa = self.user_pa(cur, false)?;
            let page_left = (PAGE - (cur % PAGE)) as usize;
            let n = page_left.min(max - out.len());
            // SAFETY: `pa..pa+n` stays within one checked user page.
            let s = unsafe { core::slice::from_raw_parts(phys_to_virt(pa) as *const u8, n) };
            if let Some(z) = s.iter().position(|&c| c == 0) {
                out.extend_from_slice(&s[..z]);
                return Ok(out);
            }
            out.extend_from_slice(s);
            cur += n as u64;
        }
        Err(crate::errno::ENAMETOOLONG)
    }

    /// brk(2): returns the new (or unchanged) break.
    pub fn set_brk(&mut self, want: u64) -> u64 {
        if want < self.brk_start || want >= USER_TOP {
            return self.brk;
        }
        let Some(old_top) = page_up(self.brk) else {
            return self.brk;
        };
        let Some(new_top) = page_up(want) else {
            return self.brk;
        };
        if new_top > old_top {
            let v = Vma {
                start: old_top,
                end: new_top,
                prot: 3,
                kind: VmaKind::Heap,
            };
            if self.map(v, true).is_err() {
                return self.brk;
            }
        } else if new_top < old_top && self.unmap(new_top, old_top).is_err() {
            return self.brk;
        }
        self.brk = want;
        want
    }
}
