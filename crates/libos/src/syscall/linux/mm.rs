//! Memory: mmap, munmap, mprotect, madvise, mremap (brk is one line in the table).
use optivolt_abi::layout::USER_TOP;

use crate::errno::*;
use crate::kernel::Kernel;
use crate::mm::vma::{Vma, VmaKind, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::mm::{page_up, PAGE};
use crate::syscall::linux::file as fs;

const MAP_SHARED: u32 = 0x01;
const MAP_PRIVATE: u32 = 0x02;
const MAP_FIXED: u32 = 0x10;
const MAP_ANONYMOUS: u32 = 0x20;
const MAP_NORESERVE: u32 = 0x4000;
const MAP_FIXED_NOREPLACE: u32 = 0x100000;

pub fn sys_mmap(
    k: &mut Kernel,
    addr: u64,
    len: u64,
    prot: u32,
    flags: u32,
    fd: u64,
    off: u64,
) -> SysResult {
    if len == 0 || prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(EINVAL);
    }
    if flags & (MAP_SHARED | MAP_PRIVATE) == 0 {
        return Err(EINVAL);
    }
    let file = flags & MAP_ANONYMOUS == 0;
    if file {
        if !off.is_multiple_of(PAGE) {
            return Err(EINVAL);
        }
        fs::file_for_mmap(k, fd, off, 0)?;
    }
    let len = page_up(len).ok_or(ENOMEM)?;
    let start = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
        if !addr.is_multiple_of(PAGE) || addr.checked_add(len).is_none_or(|e| e > USER_TOP) {
            return Err(EINVAL);
        }
        if k.mem.vmas.overlaps(addr, addr + len) {
            if flags & MAP_FIXED_NOREPLACE != 0 {
                return Err(EEXIST);
            }
            k.mem.unmap(addr, addr + len)?;
        }
        addr
    } else if addr != 0
        && addr.is_multiple_of(PAGE)
        && addr.checked_add(len).is_some_and(|e| e <= USER_TOP)
        && !k.mem.vmas.overlaps(addr, addr + len)
    {
        addr
    } else {
        k.mem.find_free(len)?
    };
    // MAP_NORESERVE and PROT_NONE areas get frames on first touch; everything
    // else is populated now (cheap: untouched frames cost no host memory).
    // File mappings are private copies of the file (MAP_SHARED writes are not
    // written back: files live in memory and nothing else maps them).
    const MAP_POPULATE: u32 = 0x8000;
    let populate = file
        || flags & MAP_POPULATE != 0
        || (flags & MAP_NORESERVE == 0 && len <= crate::mm::space::EAGER_MAX);
    let vma = Vma {
        start,
        end: start + len,
        prot,
        kind: VmaKind::Anonymous,
    };
    // The whole pages of a file that lies page-aligned in the rootfs are
    // mapped from it (shared, copied on write); the rest is copied.
    let shared = if file {
        shared_pages(k, fd, off, len)?
    } else {
        None
    };
    match shared {
        Some((pa, n)) => k.mem.map_shared(vma, pa, n)?,
        None => k.mem.map(vma, populate)?,
    }
    if file {
        let skip = shared.map_or(0, |(_, n)| n);
        let copy;
        let data: &[u8] = match fs::file_for_mmap(k, fd, off, len)? {
            fs::MapSource::Mem(data) => {
                let s = (off.saturating_add(skip).min(data.len() as u64)) as usize;
                let e = (off.saturating_add(len).min(data.len() as u64)) as usize;
                // SAFETY: see fs_calls::unsafe_extend — the VFS is not touched while copying.
                unsafe { core::slice::from_raw_parts(data[s..e.max(s)].as_ptr(), e.max(s) - s) }
            }
            fs::MapSource::Host(v) => {
                copy = v;
                &copy
            }
        };
        if let Err(e) = k.mem.load(start + skip, data) {
            let _ = k.mem.unmap(start, start + len);
            return Err(e);
        }
        if prot & PROT_EXEC != 0 {
            // A library volt scanned: its sites become patchable here.
            k.note_exec_mapping(fd, start, len, off);
        }
        if let Some(path) = fs::path_of_fd(k, fd) {
            k.mem.files.push((start, start + len, path, off));
        }
    }
    if !file || prot & PROT_EXEC == 0 {
        k.sites.forget(start, start + len);
    }
    Ok(start as i64)
}

/// Where the file open on `fd` has the bytes `[off, off + len)` as whole
/// pages of the rootfs: (their guest-physical address, how many bytes of
/// whole pages, never past the file's last full page). `None` when the
/// file's data is not page-aligned rootfs data (written files, generated
/// ones, most small files).
fn shared_pages(k: &Kernel, fd: u64, off: u64, len: u64) -> Result<Option<(u64, u64)>, i64> {
    let fs::MapSource::Mem(data) = fs::file_for_mmap(k, fd, off, 0)? else {
        return Ok(None);
    };
    let Some(pa) = optivolt_abi::layout::virt_to_phys(data.as_ptr() as u64) else {
        return Ok(None);
    };
    let full = (data.len() as u64).saturating_sub(off) & !(PAGE - 1);
    let n = full.min(len & !(PAGE - 1));
    let at = pa.wrapping_add(off);
    if n == 0 || !pa.is_multiple_of(PAGE) || !k.mem.is_shared(at) || !k.mem.is_shared(at + n - 1) {
        return Ok(None);
    }
    Ok(Some((at, n)))
}

pub fn user_range(addr: u64, len: u64) -> Result<(u64, u64), i64> {
    if !addr.is_multiple_of(PAGE) || len == 0 {
        return Err(EINVAL);
    }
    let end = page_up(addr.checked_add(len).ok_or(EINVAL)?).ok_or(EINVAL)?;
    if end > USER_TOP {
        return Err(EINVAL);
    }
    Ok((addr, end))
}

pub fn sys_madvise(k: &mut Kernel, addr: u64, len: u64, advice: u64) -> SysResult {
    const MADV_DONTNEED: u64 = 4;
    const MADV_FREE: u64 = 8;
    if !addr.is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let end = page_up(addr.checked_add(len).ok_or(EINVAL)?).ok_or(EINVAL)?;
    if end > USER_TOP {
        return Err(EINVAL);
    }
    match advice {
        MADV_DONTNEED | MADV_FREE => k.mem.discard(addr, end).map(|_| 0),
        // Hints (NORMAL, RANDOM, SEQUENTIAL, WILLNEED, HUGEPAGE, …): accepted.
        _ => Ok(0),
    }
}

pub fn sys_mremap(
    k: &mut Kernel,
    old: u64,
    old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
) -> SysResult {
    const MREMAP_MAYMOVE: u64 = 1;
    const MREMAP_FIXED: u64 = 2;
    if !old.is_multiple_of(PAGE) || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED) != 0 || new_len == 0 {
        return Err(EINVAL);
    }
    if flags & MREMAP_FIXED != 0 && (flags & MREMAP_MAYMOVE == 0 || !new_addr.is_multiple_of(PAGE))
    {
        return Err(EINVAL);
    }
    let old_len = page_up(old_len).ok_or(EINVAL)?;
    let new_len = page_up(new_len).ok_or(ENOMEM)?;
    let fixed = (flags & MREMAP_FIXED != 0).then_some(new_addr);
    // Whatever moves or grows, the sites known there are not known any more.
    k.sites.forget(old, old.saturating_add(old_len));
    if let Some(a) = fixed {
        k.sites.forget(a, a.saturating_add(new_len));
    }
    k.mem
        .remap(old, old_len, new_len, flags & MREMAP_MAYMOVE != 0, fixed)
        .map(|a| a as i64)
}

pub fn sys_munmap(k: &mut Kernel, addr: u64, len: u64) -> SysResult {
    let (s, e) = user_range(addr, len)?;
    k.mem.unmap(s, e)?;
    k.sites.forget(s, e);
    Ok(0)
}

pub fn sys_mprotect(k: &mut Kernel, addr: u64, len: u64, prot: u32) -> SysResult {
    let (s, e) = user_range(addr, len)?;
    // Linux ignores PROT_GROWSDOWN/UP here for our purposes.
    k.mem.protect(s, e, prot & 7)?;
    Ok(0)
}
