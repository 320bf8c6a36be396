//! The VM handle: what a created guest is made of. [`crate::builder`] creates
//! it ([`Vm::create`]), [`crate::vcpu`] runs it ([`Vm::run`]).
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vmm_sys_util::eventfd::EventFd;

use crate::devices::net_worker::NetWorker;
use crate::memory::GuestRam;
use crate::{ExitStats, Timing};

/// A created VM, ready to run.
// Fields drop in declaration order: the VM, which maps `mem`, must go first.
pub struct Vm {
    /// /dev/kvm, kept open for the VM's lifetime.
    pub(crate) kvm: Kvm,
    /// The KVM VM; guest RAM is registered as its memory slot 0.
    pub(crate) _vm: VmFd,
    /// The (single) vCPU.
    pub(crate) vcpu: VcpuFd,
    /// Guest RAM, from guest-physical 0.
    pub(crate) mem: GuestRam,
    /// The guest's TSC frequency.
    pub(crate) tsc_khz: u64,
    /// Guest TSC sampled at boot, together with `mono_sample`.
    pub(crate) tsc_sample: u64,
    /// Host monotonic clock at `tsc_sample`.
    pub(crate) mono_sample: Instant,
    /// Boot milestones.
    pub(crate) timing: Timing,
    /// Exits and ticks of the run.
    pub(crate) stats: ExitStats,
    /// Stop the guest after this long.
    pub(crate) timeout: Option<Duration>,
    /// The network I/O thread, if a device is attached.
    pub(crate) net: Option<NetWorker>,
    /// The guest's network address, for snapshots.
    pub(crate) net_addr: Option<crate::snapshot::NetAddr>,
    /// Written by the network thread when the guest should wake.
    pub(crate) wake: Arc<EventFd>,
    /// The host directories mounted in the guest, and its open files there.
    pub(crate) volumes: crate::volume::Volumes,
    /// What they were opened from, for snapshots.
    pub(crate) volume_configs: Vec<crate::volume::VolumeConfig>,
    /// The snapshot this VM's RAM is mapped from, if it was restored.
    pub(crate) backing: Option<crate::snapshot::Backing>,
    /// A replaced snapshot file to remove once the asker has its answer.
    pub(crate) leftover: Option<std::path::PathBuf>,
    /// Snapshot requests from other threads.
    pub(crate) control: std::sync::Arc<crate::snapshot::control::Control>,
}

impl Vm {
    /// The boot timing of the last run.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// The exits and ticks of the last run.
    pub fn stats(&self) -> &ExitStats {
        &self.stats
    }

    /// Passes the signals of [`crate::host_signals::FORWARDED`] that this
    /// process receives on to the guest program from now on.
    pub fn forward_signals(&self) {
        use std::os::fd::AsRawFd;
        crate::host_signals::forward(self.wake.as_raw_fd());
    }
}
