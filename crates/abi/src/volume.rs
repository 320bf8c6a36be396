//! Volumes: host directories the guest reaches through the monitor.
//!
//! A volume is a directory on the host that the user mounted at a path in the
//! guest (`volt run -v HOST:GUEST[:ro]`). The library OS resolves paths
//! itself, one component at a time as Linux does, so that symlinks inside a
//! volume mean what they mean in the guest; every operation then names a
//! *relative path* inside one volume. The monitor re-resolves that path below
//! the volume's root with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`,
//! so no path the guest sends, and no race with a process on the host that
//! swaps a directory for a symlink, reaches outside the volume.
//!
//! Each operation is one [`hypercall::VOLUME`](crate::hypercall::VOLUME) exit
//! with a [`VolumeCall`] whose buffers are guest-physical.
//!
//! Relative paths are `/`-separated names, never empty components, `.` or
//! `..`; the empty path is the volume's root.

use crate::hypercall::Segment;

/// Most volumes per VM.
pub const MAX_VOLUMES: usize = 16;
/// Most host files and directories one VM may hold open at once.
pub const MAX_HANDLES: usize = 4096;
/// Largest read or write in one call.
pub const MAX_IO: u64 = 1 << 20;
/// Longest relative path.
pub const MAX_PATH: u64 = 4096;

/// Operations ([`VolumeCall::op`]).
pub mod op {
    /// Walk `path`: `result` 0 and `stat` filled when every component
    /// exists and none is a symlink (the last one may be, with
    /// [`super::NOFOLLOW`]); 1 when a component is a symlink: `offset` is
    /// the length of the prefix of `path` that names it and its target is in
    /// `buf` (length in `stat.size`).
    pub const WALK: u32 = 0;
    /// Open `path` with Linux `flags` and `mode`: `result` is a handle.
    pub const OPEN: u32 = 1;
    /// Close `handle`.
    pub const CLOSE: u32 = 2;
    /// Read from `handle` at `offset` into `buf`: bytes read.
    pub const READ: u32 = 3;
    /// Write `buf` to `handle` at `offset` ([`APPEND`]: at the end): bytes written.
    pub const WRITE: u32 = 4;
    /// `stat` of `handle`.
    pub const FSTAT: u32 = 5;
    /// Truncate `handle` to `offset` bytes.
    pub const FTRUNCATE: u32 = 6;
    /// Flush `handle` to the host's disk.
    pub const FSYNC: u32 = 7;
    /// Directory entries of `handle` from index `offset` into `buf`, as
    /// [`super::DirentHeader`] + name records: bytes filled.
    pub const READDIR: u32 = 8;
    /// Make directory `path` with `mode`.
    pub const MKDIR: u32 = 9;
    /// Remove file `path`.
    pub const UNLINK: u32 = 10;
    /// Remove empty directory `path`.
    pub const RMDIR: u32 = 11;
    /// Make symlink `path` pointing at `path2` (any bytes).
    pub const SYMLINK: u32 = 12;
    /// Rename `path` to `path2` (both in this volume); `flags` 1 = no replace.
    pub const RENAME: u32 = 13;
    /// Hard link `path2` to `path`.
    pub const LINK: u32 = 14;
    /// Set the permission bits of `path` to `mode`.
    pub const CHMOD: u32 = 15;
    /// Set the access and modification times of `path` (not following a
    /// final symlink): `offset` and `mode` are the two times in ns since the
    /// epoch; [`super::TIME_OMIT`] leaves one unchanged.
    pub const UTIMES: u32 = 16;
    /// Target of symlink `path` into `buf`: its length.
    pub const READLINK: u32 = 17;
}

/// [`op::WALK`] flag: do not follow a symlink in the last component.
pub const NOFOLLOW: u64 = 1;
/// [`op::WRITE`] offset: append.
pub const APPEND: u64 = u64::MAX;
/// [`op::UTIMES`]: leave this time as it is.
pub const TIME_OMIT: u64 = u64::MAX;

/// Metadata, as the host's `statx` found it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolumeStat {
    /// `st_mode`: type and permissions.
    pub mode: u32,
    /// Hard links.
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    /// Host inode number.
    pub ino: u64,
    /// Times: seconds since the epoch, then their nanoseconds.
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    pub atime_ns: u32,
    pub mtime_ns: u32,
    pub ctime_ns: u32,
    /// Reserved, zero.
    pub _reserved: u32,
}

/// One entry as [`op::READDIR`] packs it; the name's bytes follow, and the
/// next record starts at the next multiple of 8.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirentHeader {
    /// Host inode number.
    pub ino: u64,
    /// Length of the name.
    pub name_len: u16,
    /// `DT_*` type.
    pub dtype: u8,
    /// Reserved, zero.
    pub _reserved: [u8; 5],
}

/// Arguments of [`hypercall::VOLUME`](crate::hypercall::VOLUME).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VolumeCall {
    /// One of [`op`].
    pub op: u32,
    /// Which volume (index in the boot information's list), for path operations.
    pub volume: u32,
    /// An open host file, for descriptor operations.
    pub handle: u64,
    /// Linux open flags, [`NOFOLLOW`], or the rename flags.
    pub flags: u64,
    /// Permission bits.
    pub mode: u64,
    /// File offset, entry index or length, depending on `op`.
    pub offset: u64,
    /// The relative path, guest-physical.
    pub path: Segment,
    /// The second path (rename, link, symlink target).
    pub path2: Segment,
    /// Data in or out, guest-physical.
    pub buf: Segment,
    /// Filled in by the monitor: the result, or a negative errno.
    pub result: i64,
    /// Filled in by WALK and FSTAT.
    pub stat: VolumeStat,
}

/// Whether `rel` is a path the protocol allows: names separated by single
/// `/`, none empty, `.` or `..`, none longer than 255 bytes, no NUL, and not
/// longer than [`MAX_PATH`]. The empty path (the root) is allowed.
pub fn valid_relative(rel: &[u8]) -> bool {
    if rel.is_empty() {
        return true;
    }
    if rel.len() as u64 > MAX_PATH {
        return false;
    }
    rel.split(|&b| b == b'/').all(valid_name)
}

/// Whether `name` is one directory entry's name.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name != b"."
        && name != b".."
        && name.len() <= 255
        && !name.contains(&0)
        && !name.contains(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_never_climb() {
        for ok in [&b""[..], b"a", b"a/b", b"a/.b/c..", b"...", b"a b"] {
            assert!(valid_relative(ok), "{ok:?}");
        }
        for bad in [
            &b"/"[..],
            b"/a",
            b"a/",
            b"a//b",
            b".",
            b"..",
            b"a/../b",
            b"./a",
            b"a/.",
            b"a\0b",
        ] {
            assert!(!valid_relative(bad), "{bad:?}");
        }
        assert!(!valid_relative(&[b'a'; 256]));
        assert!(valid_relative(&[b'a'; 255]));
    }
}
