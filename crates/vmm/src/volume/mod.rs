//! Volumes: host directories the guest mounts (`volt run -v`), served on
//! the VOLUME hypercall (see `optivolt_abi::volume`).
//!
//! The monitor holds each volume's root open (`O_PATH`) from before the
//! guest starts, and a bounded table of the files the guest opened. All
//! guest memory is reached through checked accessors; a bad address ends the
//! VM, a bad path or handle is an errno for the guest.
mod beneath;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use optivolt_abi::volume::{
    op, DirentHeader, VolumeCall, VolumeStat, APPEND, MAX_HANDLES, MAX_IO, MAX_PATH, MAX_VOLUMES,
    NOFOLLOW, TIME_OMIT,
};
use rustix::fs::{Mode, OFlags};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use crate::hypercall::BadHypercall;
use crate::memory::{read_bytes, GuestRam, Pod};
use beneath::Res;

/// A volume as the user gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeConfig {
    /// The host directory.
    pub host: PathBuf,
    /// Where the guest sees it (absolute).
    pub guest: String,
    /// Refuse every change.
    pub readonly: bool,
}

struct Volume {
    root: OwnedFd,
    readonly: bool,
}

struct Handle {
    fd: OwnedFd,
    volume: usize,
    /// A directory's entries, read when the guest starts from index 0.
    listing: Vec<(u64, u8, Vec<u8>)>,
}

/// The volumes of one VM and the host files its guest holds open.
pub struct Volumes {
    volumes: Vec<Volume>,
    handles: Vec<Option<Handle>>,
}

/// Why a volume could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {0}: {1}")]
    Open(PathBuf, std::io::Error),
    #[error("volume {0}: not a directory")]
    NotDir(PathBuf),
    #[error("at most {MAX_VOLUMES} volumes")]
    TooMany,
}

impl Volumes {
    /// Opens every volume's root, before the guest runs.
    pub fn open(list: &[VolumeConfig]) -> Result<Volumes, VolumeError> {
        if list.len() > MAX_VOLUMES {
            return Err(VolumeError::TooMany);
        }
        let mut volumes = Vec::new();
        for v in list {
            volumes.push(Volume {
                root: open_root(&v.host)?,
                readonly: v.readonly,
            });
        }
        Ok(Volumes {
            volumes,
            handles: Vec::new(),
        })
    }

    /// How many host files the guest holds open.
    pub fn open_handles(&self) -> usize {
        self.handles.iter().filter(|h| h.is_some()).count()
    }

    /// Serves one VOLUME hypercall whose arguments are at `pa`.
    pub fn serve(&mut self, mem: &GuestRam, pa: u64) -> Result<(), BadHypercall> {
        let bad = || {
            BadHypercall(format!(
                "volume arguments at {pa:#x} lie outside guest memory"
            ))
        };
        let mut c = mem
            .read_obj::<Pod<VolumeCall>>(GuestAddress(pa))
            .map_err(|_| bad())?
            .0;
        c.result = match self.call(mem, &mut c)? {
            Ok(v) => v,
            Err(e) => -(e as i64),
        };
        mem.write_obj(Pod(c), GuestAddress(pa)).map_err(|_| bad())
    }

    fn call(&mut self, mem: &GuestRam, c: &mut VolumeCall) -> Result<Res<i64>, BadHypercall> {
        let path = guest_bytes(mem, c.path, MAX_PATH, "path")?;
        Ok(match c.op {
            op::WALK => {
                let buf = checked_out(mem, c.buf, 4096, "walk buffer")?;
                match self
                    .root(c.volume)
                    .and_then(|v| beneath::walk(&v.root, &path, c.flags & NOFOLLOW == 0))
                {
                    Ok(beneath::Walk::Found(st)) => {
                        c.stat = st;
                        Ok(0)
                    }
                    Ok(beneath::Walk::Link { prefix, target }) => {
                        let n = target.len().min(buf.len as usize);
                        put(mem, buf.addr, &target[..n])?;
                        c.offset = prefix as u64;
                        c.stat = VolumeStat {
                            size: n as u64,
                            ..Default::default()
                        };
                        Ok(1)
                    }
                    Err(e) => Err(e),
                }
            }
            op::OPEN => self.open_file(c.volume, &path, c.flags as u32, c.mode as u32),
            op::CLOSE => match self.handles.get_mut(c.handle as usize) {
                Some(h @ Some(_)) => {
                    *h = None;
                    Ok(0)
                }
                _ => Err(libc::EBADF),
            },
            op::READ => {
                let buf = checked_out(mem, c.buf, MAX_IO, "read buffer")?;
                match self.handle(c.handle) {
                    Ok(h) => {
                        let mut data = vec![0u8; buf.len as usize];
                        match rustix::io::pread(&h.fd, &mut data[..], c.offset) {
                            Ok(n) => {
                                put(mem, buf.addr, &data[..n])?;
                                Ok(n as i64)
                            }
                            Err(e) => Err(e.raw_os_error()),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            op::WRITE => {
                let data = guest_bytes(mem, c.buf, MAX_IO, "write buffer")?;
                self.writable_handle(c.handle).and_then(|h| {
                    let at = if c.offset == APPEND {
                        rustix::fs::fstat(&h.fd)
                            .map_err(|e| e.raw_os_error())?
                            .st_size as u64
                    } else {
                        c.offset
                    };
                    rustix::io::pwrite(&h.fd, &data, at)
                        .map(|n| n as i64)
                        .map_err(|e| e.raw_os_error())
                })
            }
            op::FSTAT => self.handle(c.handle).and_then(|h| {
                c.stat = beneath::stat_fd(&h.fd)?;
                Ok(0)
            }),
            op::FTRUNCATE => self.writable_handle(c.handle).and_then(|h| {
                rustix::fs::ftruncate(&h.fd, c.offset)
                    .map(|_| 0)
                    .map_err(|e| e.raw_os_error())
            }),
            op::FSYNC => self.handle(c.handle).and_then(|h| {
                rustix::fs::fsync(&h.fd)
                    .map(|_| 0)
                    .map_err(|e| e.raw_os_error())
            }),
            op::READDIR => {
                let buf = checked_out(mem, c.buf, 64 << 10, "directory buffer")?;
                match self.readdir(c.handle, c.offset, buf.len as usize) {
                    Ok(out) => {
                        put(mem, buf.addr, &out)?;
                        Ok(out.len() as i64)
                    }
                    Err(e) => Err(e),
                }
            }
            op::READLINK => {
                let buf = checked_out(mem, c.buf, 4096, "link buffer")?;
                match self
                    .root(c.volume)
                    .and_then(|v| beneath::readlink(&v.root, &path))
                {
                    Ok(t) => {
                        let n = t.len().min(buf.len as usize);
                        put(mem, buf.addr, &t[..n])?;
                        Ok(n as i64)
                    }
                    Err(e) => Err(e),
                }
            }
            op::MKDIR
            | op::UNLINK
            | op::RMDIR
            | op::SYMLINK
            | op::RENAME
            | op::LINK
            | op::CHMOD
            | op::UTIMES => {
                let path2 = guest_bytes(mem, c.path2, MAX_PATH, "second path")?;
                self.change(c, &path, &path2)
            }
            _ => Err(libc::ENOSYS),
        })
    }

    fn root(&self, v: u32) -> Res<&Volume> {
        self.volumes.get(v as usize).ok_or(libc::ENODEV)
    }

    fn handle(&self, h: u64) -> Res<&Handle> {
        self.handles
            .get(h as usize)
            .and_then(|h| h.as_ref())
            .ok_or(libc::EBADF)
    }

    fn writable_handle(&self, h: u64) -> Res<&Handle> {
        let h = self.handle(h)?;
        if self.volumes[h.volume].readonly {
            return Err(libc::EROFS);
        }
        Ok(h)
    }

    fn open_file(&mut self, v: u32, rel: &[u8], flags: u32, mode: u32) -> Res<i64> {
        let f = flags as i32;
        let writes =
            f & libc::O_ACCMODE != libc::O_RDONLY || f & (libc::O_CREAT | libc::O_TRUNC) != 0;
        if self.root(v)?.readonly && writes && f & libc::O_PATH == 0 {
            return Err(libc::EROFS);
        }
        let slot = match self.handles.iter().position(|h| h.is_none()) {
            Some(i) => i,
            None if self.handles.len() < MAX_HANDLES => {
                self.handles.push(None);
                self.handles.len() - 1
            }
            None => return Err(libc::EMFILE),
        };
        let fd = beneath::open(&self.root(v)?.root, rel, flags, mode)?;
        self.handles[slot] = Some(Handle {
            fd,
            volume: v as usize,
            listing: Vec::new(),
        });
        Ok(slot as i64)
    }

    fn readdir(&mut self, h: u64, from: u64, room: usize) -> Res<Vec<u8>> {
        let h = self
            .handles
            .get_mut(h as usize)
            .and_then(|h| h.as_mut())
            .ok_or(libc::EBADF)?;
        if from == 0 || h.listing.is_empty() {
            let dir = rustix::fs::Dir::read_from(&h.fd).map_err(|e| e.raw_os_error())?;
            h.listing = dir
                .filter_map(|e| e.ok())
                .map(|e| {
                    let t = beneath::dtype(e.file_type());
                    (e.ino(), t, e.file_name().to_bytes().to_vec())
                })
                .collect();
        }
        let mut out = Vec::new();
        let head = std::mem::size_of::<DirentHeader>();
        for (ino, t, name) in h.listing.iter().skip(from as usize) {
            let len = (head + name.len()).div_ceil(8) * 8;
            if out.len() + len > room {
                break;
            }
            out.extend_from_slice(&ino.to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.push(*t);
            out.extend_from_slice(&[0; 5]);
            out.extend_from_slice(name);
            out.resize(out.len().div_ceil(8) * 8, 0);
        }
        Ok(out)
    }

    fn change(&self, c: &VolumeCall, path: &[u8], path2: &[u8]) -> Res<i64> {
        let vol = self.root(c.volume)?;
        if vol.readonly {
            return Err(libc::EROFS);
        }
        let r = &vol.root;
        match c.op {
            op::MKDIR => beneath::mkdir(r, path, c.mode as u32),
            op::UNLINK => beneath::unlink(r, path, false),
            op::RMDIR => beneath::unlink(r, path, true),
            op::SYMLINK => beneath::symlink(r, path, path2),
            op::RENAME => beneath::rename(r, path, path2, c.flags & 1 != 0),
            op::LINK => beneath::link(r, path, path2),
            op::CHMOD => beneath::chmod(r, path, c.mode as u32),
            op::UTIMES => {
                let t = |v: u64| (v != TIME_OMIT).then_some(v);
                beneath::utimes(r, path, t(c.offset), t(c.mode))
            }
            _ => Err(libc::ENOSYS),
        }
        .map(|_| 0)
    }
}

fn open_root(p: &Path) -> Result<OwnedFd, VolumeError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open(p, flags, Mode::empty()).map_err(|e| {
        if e == rustix::io::Errno::NOTDIR {
            VolumeError::NotDir(p.to_path_buf())
        } else {
            VolumeError::Open(p.to_path_buf(), std::io::Error::from(e))
        }
    })
}

/// The guest's bytes of `seg` (at most `max`), or the VM ends.
fn guest_bytes(
    mem: &GuestRam,
    seg: optivolt_abi::hypercall::Segment,
    max: u64,
    what: &str,
) -> Result<Vec<u8>, BadHypercall> {
    if seg.len > max {
        return Err(BadHypercall(format!("volume {what} of {} bytes", seg.len)));
    }
    if seg.len == 0 {
        return Ok(Vec::new());
    }
    read_bytes(mem, seg.addr, seg.len)
        .ok_or_else(|| BadHypercall(format!("volume {what} lies outside guest memory")))
}

/// `seg` as an output buffer: inside guest RAM, capped at `max` bytes.
fn checked_out(
    mem: &GuestRam,
    mut seg: optivolt_abi::hypercall::Segment,
    max: u64,
    what: &str,
) -> Result<optivolt_abi::hypercall::Segment, BadHypercall> {
    seg.len = seg.len.min(max);
    let inside = |a: u64| mem.address_in_range(GuestAddress(a));
    let ok = seg.len == 0
        || seg
            .addr
            .checked_add(seg.len - 1)
            .is_some_and(|end| inside(seg.addr) && inside(end));
    if !ok {
        return Err(BadHypercall(format!(
            "volume {what} lies outside guest memory"
        )));
    }
    Ok(seg)
}

fn put(mem: &GuestRam, addr: u64, data: &[u8]) -> Result<(), BadHypercall> {
    crate::memory::write_bytes(mem, addr, data)
        .map_err(|_| BadHypercall("volume buffer lies outside guest memory".into()))
}

#[cfg(test)]
mod tests;
