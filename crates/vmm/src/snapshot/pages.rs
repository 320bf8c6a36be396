//! Which guest pages a snapshot must hold, and writing them.
//!
//! The host's page tables say what the guest touched: `/proc/self/pagemap`
//! tells for each page of guest RAM whether it is present and whether it is
//! still the page of a mapped file. So:
//! - anonymous RAM: every present page;
//! - a file mapped over RAM (the rootfs, the program's segments): only the
//!   pages the guest wrote (copied on write, so no longer the file's); the
//!   rest comes from the file again at restore;
//! - RAM that is itself a snapshot mapped privately (a restored VM): every
//!   page present now, and every page the old snapshot held.
//!
//! Pages that read as zero are left out: restore reads holes as zero.
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use optivolt_abi::layout::PAGE_SIZE;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::SnapshotError;
use crate::memory::GuestRam;

const PAGE: usize = PAGE_SIZE as usize;

/// One line of /proc/self/maps that covers part of guest RAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical range.
    pub pa: u64,
    pub len: u64,
    /// Offset in the file, its device and inode (0 for anonymous memory).
    pub offset: u64,
    pub dev: u64,
    pub ino: u64,
    pub path: Option<PathBuf>,
}

/// `major:minor` (hex) as st_dev would hold it.
fn parse_dev(s: &str) -> Option<u64> {
    let (ma, mi) = s.split_once(':')?;
    let (ma, mi) = (
        u32::from_str_radix(ma, 16).ok()?,
        u32::from_str_radix(mi, 16).ok()?,
    );
    Some(libc::makedev(ma, mi))
}

/// Parses /proc/self/maps text, keeping the parts inside `[base, base+len)`,
/// as guest-physical ranges.
pub fn segments_in(maps: &str, base: u64, len: u64) -> Vec<Segment> {
    let mut out = Vec::new();
    for line in maps.lines() {
        let mut f = line.splitn(6, ' ');
        let (Some(range), Some(_perms), Some(off), Some(dev), Some(ino)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let path = f.next().map(str::trim_start).filter(|p| !p.is_empty());
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let (lo, hi) = (a.max(base), b.min(base + len));
        if lo >= hi {
            continue;
        }
        let ino: u64 = ino.parse().unwrap_or(0);
        let offset = u64::from_str_radix(off, 16).unwrap_or(0) + (lo - a);
        out.push(Segment {
            pa: lo - base,
            len: hi - lo,
            offset,
            dev: parse_dev(dev).unwrap_or(0),
            ino,
            path: (ino != 0).then(|| path.map(PathBuf::from)).flatten(),
        });
    }
    out
}

/// The segments of guest RAM as mapped now.
pub fn segments(mem: &GuestRam) -> Result<Vec<Segment>, SnapshotError> {
    let (base, len) = host_range(mem)?;
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| SnapshotError::Io("read /proc/self/maps", e))?;
    Ok(segments_in(&maps, base, len))
}

/// Guest RAM's host address and length.
pub fn host_range(mem: &GuestRam) -> Result<(u64, u64), SnapshotError> {
    let region = mem
        .iter()
        .next()
        .ok_or_else(|| SnapshotError::Encode("no guest memory".into()))?;
    let len = vm_memory::GuestMemoryRegion::len(region);
    let host = mem
        .get_host_address(GuestAddress(0))
        .map_err(|e| SnapshotError::Encode(e.to_string()))?;
    Ok((host as u64, len))
}

/// Pagemap bits.
const PM_PRESENT: u64 = 1 << 63;
const PM_SWAPPED: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;

/// The pagemap entries of `pages` pages from host address `host`.
fn pagemap(host: u64, pages: usize) -> Result<Vec<u64>, SnapshotError> {
    let pm = File::open("/proc/self/pagemap")
        .map_err(|e| SnapshotError::Io("open /proc/self/pagemap", e))?;
    let mut raw = vec![0u8; pages * 8];
    pm.read_exact_at(&mut raw, host / PAGE_SIZE * 8)
        .map_err(|e| SnapshotError::Io("read /proc/self/pagemap", e))?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// How many pages of guest RAM the host backs now.
pub fn present_pages(mem: &GuestRam) -> Result<u64, SnapshotError> {
    let (host, len) = host_range(mem)?;
    let pm = pagemap(host, (len / PAGE_SIZE) as usize)?;
    Ok(pm
        .iter()
        .filter(|&&e| e & (PM_PRESENT | PM_SWAPPED) != 0)
        .count() as u64)
}

/// The data extents (byte ranges) of `file` within `[from, to)`.
pub fn data_extents(file: &File, from: u64, to: u64) -> Vec<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        // SAFETY: lseek on a descriptor we own; no memory is involved.
        let d = unsafe { libc::lseek(file.as_raw_fd(), at as libc::off_t, libc::SEEK_DATA) };
        if d < 0 || d as u64 >= to {
            break;
        }
        // SAFETY: as above.
        let h = unsafe { libc::lseek(file.as_raw_fd(), d, libc::SEEK_HOLE) };
        let end = if h < 0 { to } else { (h as u64).min(to) };
        out.push((d as u64, end));
        at = end;
    }
    out
}

/// What a page of guest RAM is backed by, for the choice of what to save.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backing {
    Anonymous,
    /// A file mapped over RAM: only pages the guest changed are saved.
    Overlay,
    /// The snapshot this VM was restored from.
    Snapshot,
}

/// The guest-physical pages to save, in order.
pub fn pages_to_save(
    mem: &GuestRam,
    segs: &[Segment],
    restored_from: Option<&(u64, u64, File, u64)>,
) -> Result<Vec<u64>, SnapshotError> {
    let (host, len) = host_range(mem)?;
    let n = (len / PAGE_SIZE) as usize;
    let pm = pagemap(host, n)?;
    let mut kind = vec![Backing::Anonymous; n];
    for s in segs {
        let k = match (s.path.is_some(), restored_from) {
            (false, _) => Backing::Anonymous,
            (true, Some((dev, ino, ..))) if s.dev == *dev && s.ino == *ino => Backing::Snapshot,
            (true, _) => Backing::Overlay,
        };
        let first = (s.pa / PAGE_SIZE) as usize;
        let last = ((s.pa + s.len) / PAGE_SIZE) as usize;
        for k2 in &mut kind[first.min(n)..last.min(n)] {
            *k2 = k;
        }
    }
    let mut keep = vec![false; n];
    for (i, (&e, &k)) in pm.iter().zip(&kind).enumerate() {
        keep[i] = match k {
            Backing::Anonymous | Backing::Snapshot => e & (PM_PRESENT | PM_SWAPPED) != 0,
            Backing::Overlay => e & PM_PRESENT != 0 && e & PM_FILE == 0 || e & PM_SWAPPED != 0,
        };
    }
    if let Some((_, _, file, mem_offset)) = restored_from {
        for (a, b) in data_extents(file, *mem_offset, mem_offset + len) {
            let (a, b) = (
                (a - mem_offset) / PAGE_SIZE,
                (b - mem_offset).div_ceil(PAGE_SIZE),
            );
            for (i, k) in keep
                .iter_mut()
                .enumerate()
                .take((b as usize).min(n))
                .skip(a as usize)
            {
                *k |= kind[i] == Backing::Snapshot;
            }
        }
    }
    Ok(keep
        .iter()
        .enumerate()
        .filter(|(_, k)| **k)
        .map(|(i, _)| i as u64 * PAGE_SIZE)
        .collect())
}

/// Copies `pages` of guest memory into `file` at `mem_offset + pa`,
/// leaving out pages of zeros; returns the pages written.
pub fn write_pages(
    mem: &GuestRam,
    pages: &[u64],
    file: &File,
    mem_offset: u64,
) -> Result<u64, SnapshotError> {
    const BATCH: usize = 64;
    let mut buf = vec![0u8; BATCH * PAGE];
    let mut written = 0;
    let mut i = 0;
    while i < pages.len() {
        // A run of consecutive pages, at most BATCH long.
        let start = pages[i];
        let mut run = 1;
        while run < BATCH
            && i + run < pages.len()
            && pages[i + run] == start + run as u64 * PAGE_SIZE
        {
            run += 1;
        }
        let chunk = &mut buf[..run * PAGE];
        mem.read_slice(chunk, GuestAddress(start))
            .map_err(|e| SnapshotError::Encode(format!("read guest memory: {e}")))?;
        // Write the non-zero pages of the run, coalesced.
        let mut p = 0;
        while p < run {
            if is_zero(&chunk[p * PAGE..(p + 1) * PAGE]) {
                p += 1;
                continue;
            }
            let q = (p + 1..run)
                .find(|&q| is_zero(&chunk[q * PAGE..(q + 1) * PAGE]))
                .unwrap_or(run);
            file.write_all_at(
                &chunk[p * PAGE..q * PAGE],
                mem_offset + start + (p * PAGE) as u64,
            )
            .map_err(|e| SnapshotError::Io("write the snapshot", e))?;
            written += (q - p) as u64;
            p = q;
        }
        i += run;
    }
    Ok(written)
}

fn is_zero(page: &[u8]) -> bool {
    let (pre, words, post) = {
        // SAFETY: reinterpreting initialised bytes as u64 words is sound for
        // any bit pattern; align_to gives the aligned middle part only.
        unsafe { page.align_to::<u64>() }
    };
    pre.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && post.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_are_cut_to_guest_ram() {
        let maps = "\
7f0000000000-7f0000200000 rw-p 00000000 00:00 0 \n\
7f0000200000-7f0000400000 rw-p 00003000 08:01 1234                       /srv/images/app rootfs\n\
7f0000400000-7f0001000000 rw-p 00000000 00:00 0 \n\
7f0001000000-7f0002000000 r--p 00000000 08:01 99 /other\n";
        let s = segments_in(maps, 0x7f0000100000, 0xf00000);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].pa, s[0].len, s[0].path.as_ref()), (0, 0x100000, None));
        assert_eq!(s[1].pa, 0x100000);
        assert_eq!(s[1].offset, 0x3000);
        assert_eq!(s[1].ino, 1234);
        assert_eq!(s[1].dev, libc::makedev(8, 1));
        assert_eq!(
            s[1].path.as_deref(),
            Some(std::path::Path::new("/srv/images/app rootfs"))
        );
        assert_eq!((s[2].pa, s[2].len), (0x300000, 0xc00000));
    }

    #[test]
    fn zero_pages_are_recognised() {
        let mut p = vec![0u8; PAGE + 8];
        assert!(is_zero(&p[3..3 + PAGE]));
        p[PAGE] = 1;
        assert!(!is_zero(&p[3..3 + PAGE]));
    }

    #[test]
    fn touched_pages_are_saved_and_zeros_left_out() {
        let mem = crate::memory::create(4 << 20).unwrap();
        crate::memory::write_bytes(&mem, 0x3000, b"hello").unwrap();
        crate::memory::write_bytes(&mem, 0x5000, &[0u8; 16]).unwrap(); // touched, zero
        crate::memory::write_bytes(&mem, 0x201000, b"x").unwrap();
        let segs = segments(&mem).unwrap();
        let pages = pages_to_save(&mem, &segs, None).unwrap();
        assert!(pages.contains(&0x3000) && pages.contains(&0x201000));
        assert!(!pages.contains(&0x10000));
        let dir = std::env::temp_dir().join(format!("ov-pages-{}", std::process::id()));
        let f = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&dir)
            .unwrap();
        f.set_len(8192 + (4 << 20)).unwrap();
        let n = write_pages(&mem, &pages, &f, 8192).unwrap();
        assert_eq!(n, 2, "two pages hold data");
        let mut b = [0u8; 5];
        f.read_exact_at(&mut b, 8192 + 0x3000).unwrap();
        assert_eq!(&b, b"hello");
        let ext = data_extents(&f, 8192, 8192 + (4 << 20));
        assert!(ext.iter().all(|(a, b)| b - a <= 0x10000), "{ext:?}");
        std::fs::remove_file(&dir).unwrap();
    }
}
