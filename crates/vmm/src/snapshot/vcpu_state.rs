//! The vCPU's state as KVM reports it: registers, segment and control
//! registers, FPU/SSE/AVX (XSAVE), XCR0, pending events, debug registers
//! and every MSR KVM lists (PVM's own included, where this host has them).
use kvm_bindings::{
    kvm_debugregs, kvm_msr_entry, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave, Msrs,
};
use kvm_ioctls::{Kvm, VcpuFd};
use serde::{Deserialize, Serialize};

use super::SnapshotError;

/// The IA32_TSC MSR.
pub const MSR_TSC: u32 = 0x10;

/// One vCPU's state.
#[derive(Debug, Serialize, Deserialize)]
pub struct VcpuState {
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    pub xsave: kvm_xsave,
    pub xcrs: kvm_xcrs,
    pub events: kvm_vcpu_events,
    pub debugregs: kvm_debugregs,
    /// (index, value) of every MSR KVM let us read.
    pub msrs: Vec<(u32, u64)>,
}

fn kvm(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> SnapshotError {
    move |e| SnapshotError::Kvm(op, e)
}

/// The MSRs KVM reports for this host (read once per process).
fn msr_list(kvm_fd: &Kvm) -> Result<Vec<u32>, SnapshotError> {
    static LIST: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    if let Some(l) = LIST.get() {
        return Ok(l.clone());
    }
    let l = kvm_fd
        .get_msr_index_list()
        .map_err(kvm("list MSRs"))?
        .as_slice()
        .to_vec();
    Ok(LIST.get_or_init(|| l).clone())
}

/// Reads the MSRs in `list`; those KVM refuses (listed but not emulated for
/// this vCPU) are left out.
fn read_msrs(vcpu: &VcpuFd, list: &[u32]) -> Result<Vec<(u32, u64)>, SnapshotError> {
    let mut out = Vec::with_capacity(list.len());
    let mut rest = list;
    while !rest.is_empty() {
        let entries: Vec<kvm_msr_entry> = rest
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries)
            .map_err(|e| SnapshotError::Encode(format!("MSR list: {e:?}")))?;
        let n = vcpu.get_msrs(&mut msrs).map_err(kvm("read MSRs"))?;
        out.extend(msrs.as_slice()[..n].iter().map(|e| (e.index, e.data)));
        // KVM stops at the first MSR it cannot read: skip that one.
        rest = rest.get(n + 1..).unwrap_or(&[]);
    }
    Ok(out)
}

impl VcpuState {
    /// Captures `vcpu`'s state. The caller has completed any pending I/O
    /// exit first (see [`crate::snapshot`]).
    pub fn capture(kvm_fd: &Kvm, vcpu: &VcpuFd) -> Result<VcpuState, SnapshotError> {
        Ok(VcpuState {
            regs: vcpu.get_regs().map_err(kvm("get registers"))?,
            sregs: vcpu.get_sregs().map_err(kvm("get segment registers"))?,
            xsave: vcpu.get_xsave().map_err(kvm("get XSAVE state"))?,
            xcrs: vcpu.get_xcrs().map_err(kvm("get XCRs"))?,
            events: vcpu.get_vcpu_events().map_err(kvm("get vCPU events"))?,
            debugregs: vcpu.get_debug_regs().map_err(kvm("get debug registers"))?,
            msrs: read_msrs(vcpu, &msr_list(kvm_fd)?)?,
        })
    }

    /// The guest TSC at capture.
    pub fn tsc(&self) -> Option<u64> {
        self.msrs.iter().find(|(i, _)| *i == MSR_TSC).map(|m| m.1)
    }

    /// Gives `vcpu` this state, with the guest TSC set to `tsc`. Returns
    /// how many MSRs KVM refused (a different host kernel may list fewer).
    pub fn apply(&self, vcpu: &VcpuFd, tsc: u64) -> Result<usize, SnapshotError> {
        vcpu.set_sregs(&self.sregs)
            .map_err(kvm("set segment registers"))?;
        vcpu.set_regs(&self.regs).map_err(kvm("set registers"))?;
        vcpu.set_xcrs(&self.xcrs).map_err(kvm("set XCRs"))?;
        // SAFETY: `xsave` is a kvm_xsave of the legacy size read from a
        // vCPU of this VM type by KVM_GET_XSAVE; KVM_SET_XSAVE reads
        // exactly that structure.
        unsafe { vcpu.set_xsave(&self.xsave) }.map_err(kvm("set XSAVE state"))?;
        vcpu.set_debug_regs(&self.debugregs)
            .map_err(kvm("set debug registers"))?;
        let mut refused = 0;
        let mut rest: Vec<kvm_msr_entry> = self
            .msrs
            .iter()
            .map(|&(index, data)| kvm_msr_entry {
                index,
                data: if index == MSR_TSC { tsc } else { data },
                ..Default::default()
            })
            .collect();
        while !rest.is_empty() {
            let msrs = Msrs::from_entries(&rest)
                .map_err(|e| SnapshotError::Encode(format!("MSR list: {e:?}")))?;
            let n = vcpu.set_msrs(&msrs).map_err(kvm("set MSRs"))?;
            if n < rest.len() {
                refused += 1;
                rest.drain(..=n);
            } else {
                rest.clear();
            }
        }
        vcpu.set_vcpu_events(&self.events)
            .map_err(kvm("set vCPU events"))?;
        Ok(refused)
    }
}
