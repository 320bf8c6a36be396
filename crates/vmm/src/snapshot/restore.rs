//! A VM made from a snapshot file, step by step; everything that can be
//! checked without a VM (the file, the image files it maps, the volumes,
//! the network configuration) is checked first.
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvm_ioctls::Kvm;
use virtio_queue::QueueT;
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::format::{self, NetState, Overlay, VmState};
use super::{pages, wall_ns, NetAddr, SnapshotError};
use crate::builder;
use crate::devices::tap::Tap;
use crate::memory::GuestRam;
use crate::vm::Vm;
use crate::{Error, Result, Timing};

/// A tap for the restored guest, being made by the caller on a thread of
/// its own (in a namespace of its own, say) while the VM is built.
pub type TapMaker = std::thread::JoinHandle<std::result::Result<Tap, String>>;

/// How to bring a snapshot back.
pub struct RestoreConfig<'a> {
    pub path: &'a Path,
    /// The fresh tap for the guest's network device (its address is the
    /// snapshot's). Required when the snapshot has a device.
    pub tap: Option<TapMaker>,
    pub timeout: Option<Duration>,
    pub started: Instant,
    pub timing: bool,
}

fn snap(e: SnapshotError) -> Error {
    Error::Snapshot(e.to_string())
}

/// Reads and checks a snapshot without making a VM: its state, and that
/// the files it maps are still the ones it saw.
pub fn inspect(path: &Path) -> std::result::Result<VmState, SnapshotError> {
    let f = File::open(path).map_err(|e| SnapshotError::Io("open the snapshot", e))?;
    let (_, state) = format::read(&f)?;
    for o in &state.overlays {
        open_overlay(o)?;
    }
    Ok(state)
}

/// Opens an overlay's file and checks it is the same file, unchanged.
fn open_overlay(o: &Overlay) -> std::result::Result<File, SnapshotError> {
    let gone = || {
        SnapshotError::Refused(format!(
            "the snapshot maps {}, which changed or is gone since the snapshot was taken",
            o.path.display()
        ))
    };
    let f = File::open(&o.path).map_err(|_| gone())?;
    let m = f.metadata().map_err(|_| gone())?;
    let mtime = m.mtime() * 1_000_000_000 + m.mtime_nsec();
    if !m.is_file()
        || m.ino() != o.ino
        || m.dev() != o.dev
        || m.len() != o.size
        || mtime != o.mtime_ns
    {
        return Err(gone());
    }
    Ok(f)
}

/// Maps guest RAM privately from the snapshot file.
fn map_ram(file: &File, offset: u64, size: u64) -> Result<GuestRam> {
    let bad = |m: String| Error::Memory(format!("mapping the snapshot: {m}"));
    let fd = file.try_clone().map_err(|e| bad(e.to_string()))?;
    let region = MmapRegionBuilder::new(size as usize)
        .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
        .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_NORESERVE)
        .with_file_offset(FileOffset::new(fd, offset))
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let region =
        GuestRegionMmap::new(region, GuestAddress(0)).ok_or_else(|| bad("bad region".into()))?;
    GuestMemoryMmap::from_regions(vec![region]).map_err(|e| bad(e.to_string()))
}

/// Maps the overlay files again and copies in the pages the guest had
/// changed in them (they are in the snapshot).
fn map_overlays(
    mem: &GuestRam,
    file: &File,
    mem_offset: u64,
    overlays: &[(Overlay, File)],
) -> Result<()> {
    let mut buf = Vec::new();
    for (o, f) in overlays {
        if !crate::placement::map_file_range(mem, f, o.pa, o.offset, o.len, false)? {
            return Err(Error::Snapshot(format!(
                "cannot map {} into guest memory again",
                o.path.display()
            )));
        }
        let from = mem_offset + o.pa;
        for (a, b) in pages::data_extents(file, from, from + o.len) {
            buf.resize((b - a) as usize, 0);
            file.read_exact_at(&mut buf, a)
                .map_err(|e| Error::Io("read the snapshot", e))?;
            crate::memory::write_bytes(mem, a - mem_offset, &buf)?;
        }
    }
    Ok(())
}

impl Vm {
    /// Makes a VM from the snapshot at `cfg.path`.
    pub fn restore(kvm: Kvm, cfg: RestoreConfig<'_>) -> Result<Vm> {
        let mut timing = Timing::new(cfg.started, cfg.timing);
        let file = File::open(cfg.path).map_err(|e| Error::Io("open the snapshot", e))?;
        let (header, state) = format::read(&file).map_err(snap)?;
        let overlays = state
            .overlays
            .iter()
            .map(|o| open_overlay(o).map(|f| (o.clone(), f)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(snap)?;
        let volume_configs: Vec<crate::volume::VolumeConfig> = state
            .volumes
            .iter()
            .map(|v| crate::volume::VolumeConfig {
                host: v.host.clone(),
                guest: v.guest.clone(),
                readonly: v.readonly,
            })
            .collect();
        let volumes = crate::volume::Volumes::open(&volume_configs)
            .map_err(|e| Error::Volume(e.to_string()))?;
        let tap = match (&state.net, cfg.tap) {
            (Some(_), Some(t)) => Some(t),
            (Some(_), None) => {
                return Err(Error::Snapshot(
                    "the snapshot has a network device: give it a tap".into(),
                ))
            }
            (None, _) => None,
        };
        let net_layout = builder::net_layout()?;

        let vm = kvm.create_vm().map_err(Error::kvm("create VM"))?;
        let mem = map_ram(&file, header.mem_offset, state.ram)?;
        builder::register_ram(&vm, &mem)?;
        map_overlays(&mem, &file, header.mem_offset, &overlays)?;
        timing.mark_vm_created();

        let (vcpu, _) = builder::create_vcpu(&vm)?;
        let khz = builder::tsc_khz(&vcpu)?;
        if khz != state.tsc_khz {
            vcpu.set_tsc_khz(state.tsc_khz as u32).map_err(|_| {
                Error::Snapshot(format!(
                    "the snapshot's TSC runs at {} kHz, this host's at {khz} kHz",
                    state.tsc_khz
                ))
            })?;
        }
        // The guest's clocks go on as if it had run while on disk.
        let away_ns = wall_ns().saturating_sub(state.wall_ns) as u128;
        let tsc = state.guest_tsc + (away_ns * state.tsc_khz as u128 / 1_000_000) as u64;
        let refused = state.vcpu.apply(&vcpu, tsc).map_err(snap)?;
        if refused > 0 {
            note_refused_msrs(refused);
        }
        let clock = builder::sample_clock(&vcpu)?;
        let tap = match tap {
            Some(t) => Some(
                t.join()
                    .map_err(|_| Error::Net("the tap thread panicked".into()))?
                    .map_err(Error::Net)?,
            ),
            None => None,
        };
        timing.mark_vcpu_ready();

        let wake = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(|e| Error::Net(e.to_string()))?);
        let live = Arc::new(crate::live::Live::default());
        let net = match (tap, &state.net) {
            (Some(tap), Some(n)) => {
                let w = builder::start_net_at(
                    &mem,
                    n.region,
                    &net_layout,
                    tap,
                    wake.clone(),
                    live.clone(),
                    |d| {
                        d.rx.set_next_avail(n.rx_next_avail);
                        d.rx.set_next_used(n.rx_next_used);
                        d.tx.set_next_avail(n.tx_next_avail);
                        d.tx.set_next_used(n.tx_next_used);
                    },
                )?;
                // The guest may wait for buffers it queued before: look now.
                let _ = w.doorbell().write(1);
                Some(w)
            }
            _ => None,
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::Io("stat the snapshot", e))?;
        let control = crate::snapshot::control::Control::new(wake.clone(), live, mem.clone());
        Ok(Vm {
            kvm,
            _vm: vm,
            vcpu,
            mem,
            tsc_khz: state.tsc_khz,
            tsc_sample: clock.tsc,
            mono_sample: clock.mono,
            timing,
            stats: crate::ExitStats::default(),
            timeout: cfg.timeout,
            net,
            net_addr: state.net.as_ref().map(net_addr),
            wake,
            volumes,
            volume_configs,
            backing: Some((meta.dev(), meta.ino(), file, header.mem_offset)),
            leftover: None,
            control,
        })
    }
}

fn net_addr(n: &NetState) -> NetAddr {
    NetAddr {
        mac: n.mac,
        ipv4: n.ipv4,
        prefix: n.prefix,
        gateway: n.gateway,
        region: n.region,
    }
}

/// KVM refused some MSRs a different kernel listed: the guest does not use
/// them (they are the hypervisor's paravirtual ones), so it goes on.
fn note_refused_msrs(n: usize) {
    if std::env::var_os("VOLT_DEBUG_SNAPSHOT").is_some() {
        eprintln!("volt: restore: KVM refused {n} MSRs of the snapshot");
    }
}
