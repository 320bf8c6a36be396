//! Snapshots: a running VM's state saved to one file, and a new VM made
//! from it in another process.
//!
//! A snapshot is taken by the vCPU thread between two exits ([`control`]):
//! a pending port-I/O exit is completed first (KVM_RUN with
//! `immediate_exit`), the network thread is paused, and then the vCPU's
//! state ([`vcpu_state`]), the devices' plain state and the guest pages the
//! host saw touched ([`pages`]) go to a file ([`format`]), written beside
//! the target and renamed over it. The library OS needs nothing special:
//! to it, the snapshot is a BLOCK that returned early, or a tick.
//!
//! Restore maps guest RAM privately from the file (so it costs what the
//! guest touches afterwards, and every restore of one snapshot shares the
//! host's page cache), maps the image files over it again where the
//! original did, sets the vCPU, and gives the network device a fresh tap
//! with the same guest address. The guest's clocks continue as if it had
//! run meanwhile: its TSC is advanced by the wall-clock time the snapshot
//! spent on disk.
pub mod control;
pub mod format;
pub mod pages;
mod restore;
pub mod vcpu_state;

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use optivolt_abi::layout::PAGE_SIZE;
use virtio_queue::QueueT;

pub use control::{ControlHandle, SnapshotRequest};
use format::{NetState, Overlay, VmState, VolumeState, HEADER_AREA};
pub use restore::{inspect, RestoreConfig, TapMaker};
use vcpu_state::VcpuState;

use crate::devices::net_worker::NetWorker;
use crate::vm::Vm;

/// Why a snapshot could not be taken or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not an OptiVolt snapshot")]
    NotASnapshot,
    #[error("snapshot format version {0} is not supported (this volt reads version {v})", v = format::VERSION)]
    Version(u32),
    #[error("the snapshot is truncated ({have} bytes, the header says {want})")]
    Truncated { have: u64, want: u64 },
    #[error("the snapshot is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Refused(String),
    #[error("KVM {0} failed: {1}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    #[error("cannot {0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
    #[error("{0}")]
    Encode(String),
}

/// What a snapshot cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    /// Pages of guest memory written.
    pub pages: u64,
    /// Bytes the file occupies on disk (its blocks), and its length.
    pub disk_bytes: u64,
    pub file_len: u64,
    /// From the request's arrival at the vCPU thread to the rename.
    pub duration: Duration,
}

/// The snapshot a restored VM's RAM is mapped from: its device, inode, the
/// open file and where RAM starts in it.
pub(crate) type Backing = (u64, u64, File, u64);

/// The guest's network address and where its device lies (kept for the
/// next snapshot).
#[derive(Clone, Copy, Debug)]
pub(crate) struct NetAddr {
    pub mac: [u8; 6],
    pub ipv4: [u8; 4],
    pub prefix: u8,
    pub gateway: [u8; 4],
    pub region: u64,
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Vm {
    /// A handle with which other threads ask this VM for snapshots while it runs.
    pub fn control(&self) -> ControlHandle {
        ControlHandle(self.control.clone())
    }

    /// Serves a pending snapshot request; `Some(path)` if the VM should end.
    pub(crate) fn serve_snapshot(&mut self) -> Option<PathBuf> {
        let (req, reply) = self.control.take()?;
        let t0 = Instant::now();
        let r = self.save(&req.path, req.stop, t0);
        let ok = r.is_ok();
        let _ = reply.send(r.map_err(|e| e.to_string()));
        // The file replaced, removed after the answer: now if the VM ends
        // (the process would not wait for a thread), else on a thread.
        if let Some(old) = self.leftover.take() {
            if req.stop {
                let _ = std::fs::remove_file(old);
            } else {
                std::thread::spawn(move || std::fs::remove_file(old));
            }
        }
        (ok && req.stop).then_some(req.path)
    }

    /// Writes the snapshot to `path`; with `stop`, the network device is
    /// not resumed (the VM ends).
    fn save(
        &mut self,
        path: &Path,
        stop: bool,
        t0: Instant,
    ) -> Result<SnapshotInfo, SnapshotError> {
        let open = self.volumes.open_handles();
        if open > 0 {
            return Err(SnapshotError::Refused(format!(
                "the guest has {open} files open on its volumes; a snapshot cannot hold them"
            )));
        }
        // An exit for port I/O is complete (RIP past the `out`) only once
        // KVM_RUN is entered again; with immediate_exit it returns at once.
        self.vcpu.set_kvm_immediate_exit(1);
        let completed = self.vcpu.run().map(|_| ());
        self.vcpu.set_kvm_immediate_exit(0);
        if let Err(e) = completed {
            if e.errno() != libc::EINTR && e.errno() != libc::EAGAIN {
                return Err(SnapshotError::Kvm("complete the last exit", e));
            }
        }
        let paused = match self.net.take() {
            Some(w) => Some(
                w.pause()
                    .map_err(|e| SnapshotError::Encode(format!("pause the network: {e}")))?,
            ),
            None => None,
        };
        let net = match (&paused, self.net_addr) {
            (Some((dev, _)), Some(a)) => Some(NetState {
                mac: a.mac,
                ipv4: a.ipv4,
                prefix: a.prefix,
                gateway: a.gateway,
                region: a.region,
                rx_next_avail: dev.rx.next_avail(),
                rx_next_used: dev.rx.next_used(),
                tx_next_avail: dev.tx.next_avail(),
                tx_next_used: dev.tx.next_used(),
            }),
            _ => None,
        };
        let result = self.write_snapshot(path, net, t0);
        if let (false, Some((dev, tap))) = (stop, paused) {
            let w = NetWorker::spawn_counted(
                self.mem.clone(),
                dev,
                tap,
                self.wake.clone(),
                self.control.live.clone(),
            )
            .map_err(|e| SnapshotError::Io("restart the network thread", e))?;
            self.net = Some(w);
        }
        result
    }

    fn write_snapshot(
        &mut self,
        path: &Path,
        net: Option<NetState>,
        t0: Instant,
    ) -> Result<SnapshotInfo, SnapshotError> {
        use vm_memory::GuestMemoryBackend;
        let vcpu = VcpuState::capture(&self.kvm, &self.vcpu)?;
        let guest_tsc = vcpu
            .tsc()
            .ok_or_else(|| SnapshotError::Refused("KVM did not report the guest's TSC".into()))?;
        let segs = pages::segments(&self.mem)?;
        let overlays = self.overlays(&segs)?;
        let pages = pages::pages_to_save(&self.mem, &segs, self.backing.as_ref())?;
        let state = VmState {
            ram: self.mem.last_addr().0 + 1,
            tsc_khz: self.tsc_khz,
            guest_tsc,
            wall_ns: wall_ns(),
            vcpu,
            net,
            overlays,
            volumes: self
                .volume_configs
                .iter()
                .map(|v| VolumeState {
                    host: v.host.clone(),
                    guest: v.guest.clone(),
                    readonly: v.readonly,
                })
                .collect(),
        };
        let (header, bytes) = format::encode(&state)?;
        let tmp = temp_beside(path)?;
        let written = (|| {
            let f = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| SnapshotError::Io("create the snapshot file", e))?;
            f.set_len(header.file_len())
                .map_err(|e| SnapshotError::Io("size the snapshot file", e))?;
            let n = pages::write_pages(&self.mem, &pages, &f, header.mem_offset)?;
            f.write_all_at(&header.encode(), 0)
                .and_then(|_| f.write_all_at(&bytes, HEADER_AREA))
                .map_err(|e| SnapshotError::Io("write the snapshot", e))?;
            let m = f
                .metadata()
                .map_err(|e| SnapshotError::Io("stat the snapshot", e))?;
            Ok::<_, SnapshotError>((n, m.blocks() * 512, m.len()))
        })();
        let (n, disk_bytes, file_len) = match written {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        // rename(2) over an existing file costs milliseconds on ext4 (it
        // forces the new file's blocks to be allocated, and frees the old
        // one's): swap the two atomically instead, and let the old one go
        // on another thread, after the answer.
        let swapped = rustix::fs::renameat_with(
            rustix::fs::CWD,
            &tmp,
            rustix::fs::CWD,
            path,
            rustix::fs::RenameFlags::EXCHANGE,
        );
        match swapped {
            Ok(()) => self.leftover = Some(tmp),
            Err(_) => std::fs::rename(&tmp, path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                SnapshotError::Io("move the snapshot into place", e)
            })?,
        }
        Ok(SnapshotInfo {
            path: path.to_path_buf(),
            pages: n,
            disk_bytes,
            file_len,
            duration: t0.elapsed(),
        })
    }

    /// The files mapped over guest RAM, other than the snapshot it was
    /// restored from, with their identity.
    fn overlays(&self, segs: &[pages::Segment]) -> Result<Vec<Overlay>, SnapshotError> {
        let mut out = Vec::new();
        for s in segs {
            let Some(p) = &s.path else { continue };
            if let Some((dev, ino, ..)) = &self.backing {
                if s.dev == *dev && s.ino == *ino {
                    continue;
                }
            }
            let m = std::fs::metadata(p)
                .ok()
                .filter(|m| m.ino() == s.ino && m.dev() == s.dev);
            let Some(m) = m else {
                return Err(SnapshotError::Refused(format!(
                    "the file {} mapped into the guest was replaced or removed since it started",
                    p.display()
                )));
            };
            out.push(Overlay {
                path: p.clone(),
                pa: s.pa,
                len: s.len.div_ceil(PAGE_SIZE) * PAGE_SIZE,
                offset: s.offset,
                dev: s.dev,
                ino: s.ino,
                size: m.len(),
                mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            });
        }
        Ok(out)
    }
}

/// A fresh name beside `path` for writing before the rename.
fn temp_beside(path: &Path) -> Result<PathBuf, SnapshotError> {
    let name = path
        .file_name()
        .ok_or_else(|| SnapshotError::Refused(format!("{} is not a file name", path.display())))?;
    let mut t = std::ffi::OsString::from(".");
    t.push(name);
    t.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(t);
    let _ = std::fs::remove_file(&tmp);
    Ok(tmp)
}
