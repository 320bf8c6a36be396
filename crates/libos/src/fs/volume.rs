//! The client side of volumes: host directories mounted in the guest, whose
//! operations the monitor performs (see `optivolt_abi::volume`).
//!
//! Every call is one exit. Data goes through a bounce buffer in library-OS
//! memory (the physmap is linear, so one guest-physical segment).
use alloc::vec;
use alloc::vec::Vec;

use optivolt_abi::hypercall::{self as hc, Segment};
use optivolt_abi::layout::virt_to_phys;
pub use optivolt_abi::volume::{op, VolumeStat, MAX_IO, NOFOLLOW};
use optivolt_abi::volume::{DirentHeader, VolumeCall};

use crate::arch::hypercall;
use crate::errno::*;

type R<T> = Result<T, i64>;

/// A place in a volume: which one, and the relative path (no `.`, `..` or
/// empty component; empty for the volume's root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPath {
    pub vol: u32,
    pub rel: Vec<u8>,
}

impl HostPath {
    /// `name` inside this directory.
    pub fn join(&self, name: &[u8]) -> HostPath {
        let mut rel = self.rel.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name);
        HostPath { vol: self.vol, rel }
    }

    /// The parent directory, or `None` at the volume's root.
    pub fn parent(&self) -> Option<HostPath> {
        if self.rel.is_empty() {
            return None;
        }
        let cut = self.rel.iter().rposition(|&b| b == b'/').unwrap_or(0);
        Some(HostPath {
            vol: self.vol,
            rel: self.rel[..cut].to_vec(),
        })
    }
}

/// A host file or directory the guest holds open; closed on the host when
/// the last descriptor goes.
#[derive(Debug)]
pub struct HostFile {
    /// The monitor's handle.
    pub handle: u64,
    /// Where it was opened.
    pub path: HostPath,
    /// Whether it is a directory.
    pub dir: bool,
}

impl Drop for HostFile {
    fn drop(&mut self) {
        close(self.handle);
    }
}

/// What a walk found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Walked {
    /// Every component exists and none is a symlink (but a last one not followed).
    Found(VolumeStat),
    /// The first `prefix` bytes of the path name a symlink to `target`.
    Link { prefix: usize, target: Vec<u8> },
}

/// What path resolution needs from the host (a trait, so that host tests can
/// resolve against a model of a volume).
pub trait Walker {
    /// Walks `rel` in volume `vol`.
    fn walk(&mut self, vol: u32, rel: &[u8], nofollow_last: bool) -> R<Walked>;
}

/// The monitor, through the VOLUME hypercall.
pub struct Host;

fn seg(b: &[u8]) -> Segment {
    if b.is_empty() {
        return Segment::default();
    }
    Segment {
        addr: virt_to_phys(b.as_ptr() as u64).unwrap_or(u64::MAX),
        len: b.len() as u64,
    }
}

fn call(c: &mut VolumeCall) -> R<i64> {
    c.result = -ENOSYS;
    hypercall::call_with(hc::VOLUME, c);
    if c.result < 0 {
        Err(-c.result)
    } else {
        Ok(c.result)
    }
}

fn path_call(o: u32, p: &HostPath) -> VolumeCall {
    VolumeCall {
        op: o,
        volume: p.vol,
        path: seg(&p.rel),
        ..Default::default()
    }
}

impl Walker for Host {
    fn walk(&mut self, vol: u32, rel: &[u8], nofollow_last: bool) -> R<Walked> {
        let mut target = vec![0u8; 4096];
        let mut c = VolumeCall {
            op: op::WALK,
            volume: vol,
            path: seg(rel),
            buf: seg(&target),
            flags: if nofollow_last { NOFOLLOW } else { 0 },
            ..Default::default()
        };
        match call(&mut c)? {
            0 => Ok(Walked::Found(c.stat)),
            _ => {
                target.truncate((c.stat.size as usize).min(4096));
                let prefix = (c.offset as usize).min(rel.len());
                Ok(Walked::Link { prefix, target })
            }
        }
    }
}

/// Opens a file or directory: a handle.
pub fn open(p: &HostPath, flags: u32, mode: u32) -> R<u64> {
    let mut c = path_call(op::OPEN, p);
    c.flags = flags as u64;
    c.mode = mode as u64;
    call(&mut c).map(|h| h as u64)
}

/// Closes a handle.
pub fn close(handle: u64) {
    let mut c = VolumeCall {
        op: op::CLOSE,
        handle,
        ..Default::default()
    };
    let _ = call(&mut c);
}

/// Reads at `off` into library-OS memory.
pub fn read(handle: u64, off: u64, buf: &mut [u8]) -> R<usize> {
    let n = buf.len().min(MAX_IO as usize);
    let mut c = VolumeCall {
        op: op::READ,
        handle,
        offset: off,
        buf: seg(&buf[..n]),
        ..Default::default()
    };
    call(&mut c).map(|r| (r as usize).min(n))
}

/// Writes at `off` ([`optivolt_abi::volume::APPEND`]: at the end).
pub fn write(handle: u64, off: u64, data: &[u8]) -> R<usize> {
    let n = data.len().min(MAX_IO as usize);
    let mut c = VolumeCall {
        op: op::WRITE,
        handle,
        offset: off,
        buf: seg(&data[..n]),
        ..Default::default()
    };
    call(&mut c).map(|r| (r as usize).min(n))
}

/// Metadata of an open handle.
pub fn fstat(handle: u64) -> R<VolumeStat> {
    let mut c = VolumeCall {
        op: op::FSTAT,
        handle,
        ..Default::default()
    };
    call(&mut c).map(|_| c.stat)
}

/// Truncates or extends an open file.
pub fn ftruncate(handle: u64, len: u64) -> R<()> {
    let mut c = VolumeCall {
        op: op::FTRUNCATE,
        handle,
        offset: len,
        ..Default::default()
    };
    call(&mut c).map(|_| ())
}

/// fsync of an open file.
pub fn fsync(handle: u64) -> R<()> {
    let mut c = VolumeCall {
        op: op::FSYNC,
        handle,
        ..Default::default()
    };
    call(&mut c).map(|_| ())
}

/// One directory entry.
pub struct Entry {
    pub ino: u64,
    pub dtype: u8,
    pub name: Vec<u8>,
}

/// Directory entries of an open directory from index `from` (at most as
/// many as fit in 16 KiB).
pub fn readdir(handle: u64, from: u64) -> R<Vec<Entry>> {
    let buf = vec![0u8; 16 << 10];
    let mut c = VolumeCall {
        op: op::READDIR,
        handle,
        offset: from,
        buf: seg(&buf),
        ..Default::default()
    };
    let n = (call(&mut c)? as usize).min(buf.len());
    let mut out = Vec::new();
    let mut at = 0;
    let h = core::mem::size_of::<DirentHeader>();
    while at + h <= n {
        let ino = u64::from_le_bytes(buf[at..at + 8].try_into().unwrap_or([0; 8]));
        let len = u16::from_le_bytes([buf[at + 8], buf[at + 9]]) as usize;
        let dtype = buf[at + 10];
        let name_end = at + h + len;
        if name_end > n {
            break;
        }
        out.push(Entry {
            ino,
            dtype,
            name: buf[at + h..name_end].to_vec(),
        });
        at = name_end.div_ceil(8) * 8;
    }
    Ok(out)
}

/// A path operation with an optional second path and a mode.
pub fn path_op(o: u32, p: &HostPath, path2: &[u8], flags: u64, mode: u64) -> R<()> {
    let mut c = path_call(o, p);
    c.path2 = seg(path2);
    c.flags = flags;
    c.mode = mode;
    call(&mut c).map(|_| ())
}

/// Sets times (ns since the epoch; TIME_OMIT keeps one).
pub fn utimes(p: &HostPath, atime: u64, mtime: u64) -> R<()> {
    let mut c = path_call(op::UTIMES, p);
    c.offset = atime;
    c.mode = mtime;
    call(&mut c).map(|_| ())
}

/// A symlink's target.
pub fn readlink(p: &HostPath) -> R<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let mut c = path_call(op::READLINK, p);
    c.buf = seg(&buf);
    let n = call(&mut c)? as usize;
    buf.truncate(n.min(4096));
    Ok(buf)
}
