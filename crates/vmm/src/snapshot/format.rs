//! The snapshot file: one page of header, the VM's state (postcard, with a
//! CRC-32), then guest RAM from guest-physical 0 at a page-aligned offset,
//! as a sparse region (only the pages that held data are written; holes
//! read as zero). Restore maps that region privately, so it reads only what
//! the guest touches.
//!
//! Everything read back is checked before any VM exists: the magic and
//! version, both checksums, that the file is as long as the header says
//! (a truncated snapshot is refused, never half-mapped) and that every
//! size and address lies within guest RAM. Guest memory itself carries no
//! checksum (as in Firecracker): a damaged page can only hurt the guest.
use std::fs::File;
use std::os::unix::fs::FileExt;

use optivolt_abi::layout::{LARGE_PAGE_SIZE, MIN_RAM, PAGE_SIZE};
use serde::{Deserialize, Serialize};

use super::vcpu_state::VcpuState;
use super::SnapshotError;

/// The file's first bytes.
pub const MAGIC: [u8; 8] = *b"OVSNAP\r\n";
/// The format version; restore refuses any other.
pub const VERSION: u32 = 1;
/// Bytes of the header area (the state starts here).
pub const HEADER_AREA: u64 = PAGE_SIZE;
/// Largest state accepted (it holds registers and a few lists).
const STATE_MAX: u64 = 1 << 20;
/// Largest guest RAM accepted.
const RAM_MAX: u64 = 1 << 40;

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub state_len: u64,
    pub state_crc: u32,
    /// Where guest RAM starts in the file (page-aligned).
    pub mem_offset: u64,
    /// Bytes of guest RAM.
    pub mem_len: u64,
}

const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8 + 8 + 4;

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.state_crc.to_le_bytes());
        b[16..24].copy_from_slice(&self.state_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.mem_offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.mem_len.to_le_bytes());
        let crc = crc32fast::hash(&b[..40]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Header, SnapshotError> {
        let bad = |m: &str| SnapshotError::Corrupt(m.to_string());
        if b.len() < HEADER_LEN || b[..8] != MAGIC {
            return Err(SnapshotError::NotASnapshot);
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        if crc32fast::hash(&b[..40]) != u32_at(40) {
            return Err(bad("the header's checksum does not match"));
        }
        let version = u32_at(8);
        if version != VERSION {
            return Err(SnapshotError::Version(version));
        }
        let h = Header {
            state_crc: u32_at(12),
            state_len: u64_at(16),
            mem_offset: u64_at(24),
            mem_len: u64_at(32),
        };
        if h.state_len == 0 || h.state_len > STATE_MAX {
            return Err(bad("the state's length is out of range"));
        }
        if !h.mem_offset.is_multiple_of(PAGE_SIZE) || h.mem_offset < HEADER_AREA + h.state_len {
            return Err(bad("guest memory's offset is misplaced"));
        }
        if h.mem_len < MIN_RAM || h.mem_len > RAM_MAX || !h.mem_len.is_multiple_of(LARGE_PAGE_SIZE)
        {
            return Err(bad("guest memory's size is out of range"));
        }
        Ok(h)
    }

    /// Bytes the whole file spans.
    pub fn file_len(&self) -> u64 {
        self.mem_offset + self.mem_len
    }
}

/// Where guest RAM starts for a state of `state_len` bytes.
pub fn mem_offset(state_len: u64) -> u64 {
    (HEADER_AREA + state_len).div_ceil(PAGE_SIZE) * PAGE_SIZE
}

/// A file mapped over part of guest RAM (the rootfs or the program's
/// read-only segments, shared through the host's page cache): it is not
/// copied into the snapshot, only the pages the guest changed are; restore
/// maps the same file again, if it is still the same file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    pub path: std::path::PathBuf,
    /// Guest-physical start and length (page-aligned).
    pub pa: u64,
    pub len: u64,
    /// Offset in the file.
    pub offset: u64,
    /// The file's identity when the snapshot was taken.
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

/// The network device: its address (the host side is set up again on
/// restore) and where its queues stood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetState {
    pub mac: [u8; 6],
    pub ipv4: [u8; 4],
    pub prefix: u8,
    pub gateway: [u8; 4],
    /// Guest-physical start of the device's region.
    pub region: u64,
    pub rx_next_avail: u16,
    pub rx_next_used: u16,
    pub tx_next_avail: u16,
    pub tx_next_used: u16,
}

/// A mounted host directory (the guest's side lives in its memory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeState {
    pub host: std::path::PathBuf,
    pub guest: String,
    pub readonly: bool,
}

/// Everything but guest memory.
#[derive(Debug, Serialize, Deserialize)]
pub struct VmState {
    pub ram: u64,
    pub tsc_khz: u64,
    /// The guest's TSC and the host's wall clock (ns since the epoch) when
    /// the snapshot was taken.
    pub guest_tsc: u64,
    pub wall_ns: u64,
    pub vcpu: VcpuState,
    pub net: Option<NetState>,
    pub overlays: Vec<Overlay>,
    pub volumes: Vec<VolumeState>,
}

impl VmState {
    /// Checks what restore relies on, against the header.
    fn check(&self, h: &Header) -> Result<(), SnapshotError> {
        let bad = |m: String| Err(SnapshotError::Corrupt(m));
        if self.ram != h.mem_len {
            return bad("the state and the header disagree on guest memory's size".into());
        }
        for o in &self.overlays {
            let end = o.pa.checked_add(o.len);
            if !o.pa.is_multiple_of(PAGE_SIZE)
                || !o.offset.is_multiple_of(PAGE_SIZE)
                || o.len == 0
                || end.is_none_or(|e| e > self.ram)
            {
                return bad(format!(
                    "a mapped file ({}) lies outside guest memory",
                    o.path.display()
                ));
            }
        }
        if let Some(n) = &self.net {
            if !n.region.is_multiple_of(PAGE_SIZE) || n.region >= self.ram {
                return bad("the network device lies outside guest memory".into());
            }
        }
        if self.tsc_khz == 0 {
            return bad("the TSC frequency is zero".into());
        }
        Ok(())
    }
}

/// Encodes the state; returns it with its header.
pub fn encode(state: &VmState) -> Result<(Header, Vec<u8>), SnapshotError> {
    let bytes = postcard::to_stdvec(state).map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let header = Header {
        state_len: bytes.len() as u64,
        state_crc: crc32fast::hash(&bytes),
        mem_offset: mem_offset(bytes.len() as u64),
        mem_len: state.ram,
    };
    Ok((header, bytes))
}

/// Reads and checks a snapshot's header and state.
pub fn read(file: &File) -> Result<(Header, VmState), SnapshotError> {
    let mut head = vec![0u8; HEADER_LEN];
    let n = read_at_most(file, &mut head, 0)?;
    if n < HEADER_LEN {
        return Err(SnapshotError::NotASnapshot);
    }
    let h = Header::decode(&head)?;
    let len = file
        .metadata()
        .map_err(|e| SnapshotError::Io("stat the snapshot", e))?
        .len();
    if len != h.file_len() {
        return Err(SnapshotError::Truncated {
            have: len,
            want: h.file_len(),
        });
    }
    let mut state = vec![0u8; h.state_len as usize];
    if read_at_most(file, &mut state, HEADER_AREA)? != state.len() {
        return Err(SnapshotError::Truncated {
            have: len,
            want: h.file_len(),
        });
    }
    if crc32fast::hash(&state) != h.state_crc {
        return Err(SnapshotError::Corrupt(
            "the state's checksum does not match".into(),
        ));
    }
    let s: VmState = postcard::from_bytes(&state)
        .map_err(|e| SnapshotError::Corrupt(format!("the state does not decode: {e}")))?;
    s.check(&h)?;
    Ok((h, s))
}

fn read_at_most(file: &File, buf: &mut [u8], at: u64) -> Result<usize, SnapshotError> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SnapshotError::Io("read the snapshot", e)),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            state_len: 100,
            state_crc: 7,
            mem_offset: 8192,
            mem_len: 4 << 20,
        }
    }

    #[test]
    fn the_header_round_trips() {
        assert_eq!(Header::decode(&header().encode()).unwrap(), header());
    }

    #[test]
    fn a_damaged_header_is_refused() {
        let good = header().encode();
        for i in 0..good.len() {
            let mut b = good;
            b[i] ^= 0x40;
            assert!(Header::decode(&b).is_err(), "byte {i}");
        }
        assert!(matches!(
            Header::decode(&good[..20]),
            Err(SnapshotError::NotASnapshot)
        ));
        assert!(matches!(
            Header::decode(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"),
            Err(SnapshotError::NotASnapshot)
        ));
    }

    #[test]
    fn sizes_out_of_range_are_refused() {
        for h in [
            Header {
                mem_len: 3 << 20,
                ..header()
            },
            Header {
                mem_offset: 4096,
                ..header()
            },
            Header {
                mem_offset: 8193,
                ..header()
            },
            Header {
                state_len: 0,
                ..header()
            },
            Header {
                state_len: u64::MAX,
                ..header()
            },
        ] {
            assert!(Header::decode(&h.encode()).is_err(), "{h:?}");
        }
    }
}
