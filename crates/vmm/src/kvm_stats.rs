//! KVM's own per-vCPU counters (the binary statistics of `KVM_GET_STATS_FD`):
//! how many shadow-paging faults the host fixed behind the guest's back, how
//! many faults it passed to the guest, how many exits it saw. They explain
//! costs the guest cannot see (`volt run --stats=all`).
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

/// `_IO(KVMIO, 0xce)`.
const KVM_GET_STATS_FD: libc::c_ulong = 0xae_ce;
/// Size of `struct kvm_stats_header`.
const HEADER_LEN: usize = 24;
/// Size of `struct kvm_stats_desc` before its name.
const DESC_LEN: usize = 16;
/// The counters worth showing, in the order shown.
pub const SHOWN: &[&str] = &[
    "pf_fixed",
    "pf_guest",
    "pf_spurious",
    "pf_emulate",
    "mmu_unsync",
    "mmu_shadow_zapped",
    "tlb_flush",
    "insn_emulation",
    "exits",
];

/// An open statistics file and where each counter lies in it.
pub struct KvmStats {
    file: File,
    data_offset: u64,
    /// (name, index of its first u64 in the data block).
    counters: Vec<(String, usize)>,
    words: usize,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

impl KvmStats {
    /// Opens the statistics of a vCPU (or VM) file descriptor; `None` where
    /// the host kernel has none (before Linux 5.14) or they do not parse.
    pub fn open(fd: &impl AsRawFd) -> Option<KvmStats> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new file
        // descriptor (or -1); nothing of ours is read or written.
        let raw = unsafe { libc::ioctl(fd.as_raw_fd(), KVM_GET_STATS_FD, 0) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(raw) };
        let mut h = [0u8; HEADER_LEN];
        file.read_exact_at(&mut h, 0).ok()?;
        let name_size = u32_at(&h, 4)? as usize;
        let count = u32_at(&h, 8)? as usize;
        let desc_offset = u32_at(&h, 16)? as u64;
        let data_offset = u32_at(&h, 20)? as u64;
        if count > 4096 || name_size > 4096 {
            return None;
        }
        let stride = DESC_LEN + name_size;
        let mut d = vec![0u8; stride * count];
        file.read_exact_at(&mut d, desc_offset).ok()?;
        let mut counters = Vec::new();
        let mut words = 0;
        for i in 0..count {
            let base = i * stride;
            let size = u16_at(&d, base + 6)? as usize;
            let offset = u32_at(&d, base + 8)? as usize;
            let name = d.get(base + DESC_LEN..base + stride)?;
            let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
            let name = String::from_utf8_lossy(&name[..end]).into_owned();
            if !offset.is_multiple_of(8) {
                return None;
            }
            words = words.max(offset / 8 + size);
            if size == 1 {
                counters.push((name, offset / 8));
            }
        }
        Some(KvmStats {
            file,
            data_offset,
            counters,
            words,
        })
    }

    /// The current value of every single-valued counter.
    pub fn read(&self) -> Vec<(String, u64)> {
        let mut data = vec![0u8; self.words * 8];
        if self
            .file
            .read_exact_at(&mut data, self.data_offset)
            .is_err()
        {
            return Vec::new();
        }
        self.counters
            .iter()
            .filter_map(|(name, i)| {
                let w = data.get(i * 8..i * 8 + 8)?;
                Some((name.clone(), u64::from_le_bytes(w.try_into().ok()?)))
            })
            .collect()
    }

    /// The counters of [`SHOWN`] that this host has.
    pub fn shown(&self) -> Vec<(&'static str, u64)> {
        let all = self.read();
        SHOWN
            .iter()
            .filter_map(|&n| all.iter().find(|(m, _)| m == n).map(|(_, v)| (n, *v)))
            .collect()
    }
}
