//! Putting the image into guest RAM before the first instruction: the
//! rootfs (a lone binary's copy mapped from the host's page cache), the
//! program's segments, the table of patchable sites.
use optivolt_abi::boot::{PhysRange, PreloadedImage, PreloadedSegment, MAX_PRELOADED_SEGMENTS};
use optivolt_abi::elf::{Elf, LoadPlan};
use optivolt_abi::layout::*;
use vm_memory::{GuestAddress, GuestMemoryBackend};

use crate::builder::Sizes;
use crate::memory::{write_bytes, GuestRam};
use crate::{Error, Result};

/// Places an executable's segments at guest-physical `pa` (the image's
/// first page) and describes them for the library OS. Returns the descriptor
/// and the end of the placed frames. With `file` (the file `program` is),
/// read-only segments that own their pages are mapped from the page cache
/// (private: a write, such as a patched `syscall` site, copies the page)
/// instead of copied; the rest is copied.
pub fn place_program(
    mem: &GuestRam,
    program: &[u8],
    file: Option<(&std::fs::File, u64)>,
    pa: u64,
) -> Result<(PreloadedImage, u64)> {
    let (elf, plan) = plan_program(program)?;
    let mut img = PreloadedImage {
        present: 1,
        pa,
        start: plan.start,
        end: plan.end,
        entry: plan.entry,
        phdr: plan.phdr,
        phnum: plan.phnum,
        ..Default::default()
    };
    let segs: Vec<_> = elf.load_segments().collect();
    if segs.len() > MAX_PRELOADED_SEGMENTS {
        return Err(Error::Program(format!(
            "{} loadable segments (at most {MAX_PRELOADED_SEGMENTS})",
            segs.len()
        )));
    }
    let pages = |ph: &optivolt_abi::elf::ProgramHeader| {
        let s = ph.p_vaddr & !(PAGE_SIZE - 1);
        (
            s,
            align_up(ph.p_vaddr + ph.p_memsz, PAGE_SIZE).unwrap_or(u64::MAX),
        )
    };
    for (i, ph) in segs.iter().enumerate() {
        let vaddr = ph.p_vaddr + plan.bias;
        let at = pa + (vaddr - plan.start);
        let (s, e) = pages(ph);
        let alone = segs
            .iter()
            .enumerate()
            .all(|(j, o)| j == i || pages(o).1 <= s || pages(o).0 >= e);
        let shareable = ph.p_flags & optivolt_abi::elf::PF_W == 0
            && ph.p_filesz == ph.p_memsz
            && ph.p_offset % PAGE_SIZE == ph.p_vaddr % PAGE_SIZE
            && alone;
        let mapped = match file {
            Some((f, base)) if shareable && base % PAGE_SIZE == 0 => map_file_range(
                mem,
                f,
                at & !(PAGE_SIZE - 1),
                base + (ph.p_offset & !(PAGE_SIZE - 1)),
                e - s,
                true,
            )?,
            _ => false,
        };
        if !mapped {
            populate(mem, at, ph.p_memsz);
            write_bytes(mem, at, elf.segment_data(ph))?;
        }
        img.segs[i] = PreloadedSegment {
            vaddr,
            memsz: ph.p_memsz,
            prot: optivolt_abi::elf::segment_prot(ph),
            _reserved: 0,
        };
    }
    img.nsegs = segs.len() as u32;
    Ok((img, pa + (plan.end - plan.start)))
}

/// Bytes of address space an executable spans once loaded (for [`crate::builder::min_memory`]).
pub fn program_span(program: &[u8]) -> u64 {
    match Elf::parse(program) {
        Ok(e) => {
            let (lo, hi) = e.load_bounds();
            align_up(hi, PAGE_SIZE)
                .unwrap_or(hi)
                .saturating_sub(lo & !(PAGE_SIZE - 1))
        }
        Err(_) => 0,
    }
}

/// The main stack area the library OS reserves below USER_TOP.
const STACK_AREA: u64 = 8 << 20;

/// Pre-faults `[pa, pa + len)` of guest memory on the host (best effort:
/// kernels before 5.14 lack MADV_POPULATE_WRITE and simply fault later).
fn populate(mem: &GuestRam, pa: u64, len: u64) {
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    let start = pa & !(PAGE_SIZE - 1);
    let Ok(host) = mem.get_host_address(GuestAddress(start)) else {
        return;
    };
    let len = align_up(len + (pa - start), PAGE_SIZE).unwrap_or(0);
    if len == 0 || len < 64 * 1024 {
        return;
    }
    // SAFETY: the range lies inside the guest's private anonymous mapping
    // (clamped to RAM by the caller); populating it only allocates pages.
    unsafe { libc::madvise(host.cast(), len as usize, MADV_POPULATE_WRITE) };
}

/// Copies the rootfs pieces right after the library OS image. A piece that
/// is a whole file is mapped from the page cache instead (the rootfs then
/// starts where that piece lands on a page boundary).
pub(crate) fn load_rootfs(
    mem: &GuestRam,
    parts: &[&[u8]],
    file: Option<(usize, &std::fs::File)>,
    start: u64,
    sizes: &Sizes,
) -> Result<PhysRange> {
    let before = |i: usize| parts[..i].iter().map(|p| p.len() as u64).sum::<u64>();
    let start = match file {
        Some((i, _)) if i < parts.len() => {
            let prefix = before(i);
            align_up(start + prefix, PAGE_SIZE).unwrap_or(start + prefix) - prefix
        }
        _ => start,
    };
    let mut mapped = None;
    if let Some((i, f)) = file.filter(|(i, _)| *i < parts.len()) {
        let at = start + before(i);
        if map_file(mem, f, at, parts[i].len() as u64)? {
            mapped = Some((i, at, at + parts[i].len() as u64));
        }
    }
    // Fault in, in one system call, the host pages we are about to fill
    // (not the mapped file): a page fault costs microseconds on nested hosts.
    // (The program's segments populate what they copy themselves.)
    let fill = sizes.rootfs_len + 3 * PAGE_SIZE;
    let end = (start + fill).min(sizes.ram);
    match mapped {
        Some((_, a, b)) => {
            populate(mem, start, a - start);
            let after = align_up(b, PAGE_SIZE).unwrap_or(b);
            populate(mem, after, end.saturating_sub(after));
        }
        None => populate(mem, start, end - start),
    }
    let mut at = start;
    for (i, part) in parts.iter().enumerate() {
        if mapped.map(|(m, ..)| m) != Some(i) {
            write_bytes(mem, at, part)?;
        }
        at += part.len() as u64;
    }
    Ok(PhysRange { start, end: at })
}

/// Maps `len` bytes of `file` at guest-physical `pa` (page-aligned),
/// privately: the guest reads the page cache, and a write copies the page.
/// `Ok(false)` if it cannot be (then nothing changed and the caller copies).
fn map_file(mem: &GuestRam, file: &std::fs::File, pa: u64, len: u64) -> Result<bool> {
    if file.metadata().map(|m| m.len()).ok() != Some(len) {
        return Ok(false);
    }
    // The rootfs: only the pages the guest reads become resident.
    map_file_range(mem, file, pa, 0, len, false)
}

/// Maps `len` bytes of `file` from `offset` (both page-aligned; the last
/// page may run past the end of the file, which reads as zeros) at
/// guest-physical `pa`, like [`map_file`]; with `populate`, the host maps
/// the page cache's pages now rather than at the guest's first touches.
pub(crate) fn map_file_range(
    mem: &GuestRam,
    file: &std::fs::File,
    pa: u64,
    offset: u64,
    len: u64,
    populate: bool,
) -> Result<bool> {
    use std::os::fd::AsRawFd;
    let bad = |m: &str| Error::Memory(format!("mapping the program into guest RAM: {m}"));
    let Some(size) = align_up(len, PAGE_SIZE) else {
        return Ok(false);
    };
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if !pa.is_multiple_of(PAGE_SIZE)
        || !offset.is_multiple_of(PAGE_SIZE)
        || len == 0
        || offset
            .checked_add(len)
            .is_none_or(|e| e > align_up(file_len, PAGE_SIZE).unwrap_or(0))
        || !mem.address_in_range(GuestAddress(pa + size - 1))
    {
        return Ok(false);
    }
    let Ok(host) = mem.get_host_address(GuestAddress(pa)) else {
        return Ok(false);
    };
    // SAFETY: `host..host+size` lies inside guest RAM's own mapping (checked
    // above), which nothing references yet but KVM's memory slot (KVM looks
    // pages up at fault time, so it sees the new mapping); MAP_FIXED
    // replaces those pages with a private mapping of the file, unmapped
    // with the rest of guest RAM when the VM goes.
    let p = unsafe {
        libc::mmap(
            host.cast(),
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_FIXED,
            file.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED || p != host.cast() {
        // The pages may be gone: this VM cannot be used.
        return Err(bad(&std::io::Error::last_os_error().to_string()));
    }
    // Map the page cache's pages now, in one call, rather than one host
    // fault at a time while the guest runs (best effort: before Linux 5.14
    // they simply fault later). Read-only: nothing is copied.
    const MADV_POPULATE_READ: libc::c_int = 22;
    if populate {
        // SAFETY: the range is the mapping just made.
        unsafe { libc::madvise(p, size as usize, MADV_POPULATE_READ) };
    }
    Ok(true)
}

/// Places the program's segments, if the monitor preloads it, after the
/// rootfs; returns its descriptor and where free memory starts.
pub(crate) fn load_program(
    mem: &GuestRam,
    program: Option<&[u8]>,
    file: Option<(&std::fs::File, u64)>,
    rootfs_end: u64,
    ram: u64,
) -> Result<(PreloadedImage, u64)> {
    let free_start = align_up(rootfs_end, PAGE_SIZE).unwrap_or(ram);
    match program {
        Some(p) => place_program(mem, p, file, free_start),
        None => Ok((PreloadedImage::default(), free_start)),
    }
}

/// The load bias the monitor gives `program` when it places it (0 for a
/// fixed-address executable), so that link-time addresses can be rebased.
pub fn program_bias(program: &[u8]) -> Result<u64> {
    Ok(plan_program(program)?.1.bias)
}

/// Parses a static executable and plans where its segments go.
fn plan_program(program: &[u8]) -> Result<(Elf<'_>, LoadPlan)> {
    let bad = |e: optivolt_abi::elf::ElfError| Error::Program(e.to_string());
    let elf = Elf::parse(program).map_err(bad)?;
    let plan = optivolt_abi::elf::plan(&elf, USER_PIE_BASE, USER_TOP - STACK_AREA).map_err(bad)?;
    Ok((elf, plan))
}

/// Copies the table of patchable sites after the program; returns where it
/// is and where free memory starts.
pub(crate) fn load_sites(mem: &GuestRam, sites: &[u8], at: u64) -> Result<(PhysRange, u64)> {
    if sites.is_empty() {
        return Ok((PhysRange { start: 0, end: 0 }, at));
    }
    write_bytes(mem, at, sites)?;
    let end = at + sites.len() as u64;
    Ok((
        PhysRange { start: at, end },
        align_up(end, PAGE_SIZE).unwrap_or(end),
    ))
}
