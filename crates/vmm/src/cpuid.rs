//! The guest's CPUID table, derived from the host's CPUID instruction and
//! normalised to what a CPL-3, single-vCPU, SSE-only guest can use.
//!
//! Asking KVM (KVM_GET_SUPPORTED_CPUID) costs ~400 µs per VM on our PVM hosts,
//! a fifth of the whole boot budget; reading the host's CPUID costs microseconds.
//! The guest's user-level instructions run natively on the host CPU, so the
//! host's feature bits are the truth, minus what the guest cannot use: no
//! XSAVE/AVX state (the monitor enables only SSE), no virtualization or
//! power-management features, one CPU.
use std::arch::x86_64::__cpuid_count;

use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};

use crate::{Error, Result};

// Leaf 1 ECX.
const ECX_MONITOR: u32 = 1 << 3;
const ECX_DSCPL: u32 = 1 << 4;
const ECX_VMX: u32 = 1 << 5;
const ECX_SMX: u32 = 1 << 6;
const ECX_EST: u32 = 1 << 7;
const ECX_TM2: u32 = 1 << 8;
const ECX_XTPR: u32 = 1 << 14;
const ECX_PDCM: u32 = 1 << 15;
const ECX_PCID: u32 = 1 << 17;
const ECX_DCA: u32 = 1 << 18;
const ECX_X2APIC: u32 = 1 << 21;
const ECX_TSC_DEADLINE: u32 = 1 << 24;
const ECX_XSAVE: u32 = 1 << 26;
const ECX_OSXSAVE: u32 = 1 << 27;
const ECX_AVX: u32 = 1 << 28;
const ECX_F16C: u32 = 1 << 29;
const ECX_FMA: u32 = 1 << 12;
const ECX_HYPERVISOR: u32 = 1 << 31;
// Leaf 1 EDX.
const EDX_DS: u32 = 1 << 21;
const EDX_ACPI: u32 = 1 << 22;
const EDX_HTT: u32 = 1 << 28;
const EDX_TM: u32 = 1 << 29;
const EDX_PBE: u32 = 1 << 31;
// Leaf 7 EBX: what we pass through (user-level, no extended state).
const L7_EBX_KEEP: u32 = (1 << 0) // FSGSBASE
    | (1 << 3) // BMI1
    | (1 << 8) // BMI2
    | (1 << 9) // ERMS
    | (1 << 18) // RDSEED
    | (1 << 19) // ADX
    | (1 << 23) // CLFLUSHOPT
    | (1 << 24) // CLWB
    | (1 << 29); // SHA
                 // Leaf 7 EDX: FSRM (fast short rep movsb) only.
const L7_EDX_KEEP: u32 = 1 << 4;

fn entry(function: u32, index: u32, flags: u32) -> kvm_cpuid_entry2 {
    // CPUID exists on every x86-64 CPU; leaves are bounded by the host's maxima.
    let r = __cpuid_count(function, index);
    kvm_cpuid_entry2 {
        function,
        index,
        flags,
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
        ..Default::default()
    }
}

/// Leaves the guest gets: vendor and features (0, 1), cache parameters (4,
/// used by C libraries to tune memcpy), structured features (7), extended
/// features, brand-free: 0x8000_0000/1, invariant TSC (0x8000_0007), address
/// sizes (0x8000_0008). Every CPUID traps to the host hypervisor here
/// (~4.6 µs), so only these are read.
const BASIC: [u32; 4] = [0, 1, 4, 7];
const EXTENDED: [u32; 4] = [0x8000_0000, 0x8000_0001, 0x8000_0007, 0x8000_0008];

/// Builds the normalised table.
pub fn guest_cpuid() -> Result<CpuId> {
    let leaf0 = entry(0, 0, 0);
    let max_basic = leaf0.eax.min(0x7);
    let ext0 = entry(0x8000_0000, 0, 0);
    let max_ext = ext0.eax.min(0x8000_0008);
    let mut v = Vec::new();
    for f in BASIC.into_iter().filter(|&f| f <= max_basic) {
        let mut e = match f {
            0 => leaf0,
            4 | 7 => entry(f, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
            _ => entry(f, 0, 0),
        };
        match f {
            0 => e.eax = max_basic,
            1 => {
                e.ecx &= !(ECX_MONITOR
                    | ECX_DSCPL
                    | ECX_VMX
                    | ECX_SMX
                    | ECX_EST
                    | ECX_TM2
                    | ECX_XTPR
                    | ECX_PDCM
                    | ECX_PCID
                    | ECX_DCA
                    | ECX_X2APIC
                    | ECX_TSC_DEADLINE
                    | ECX_XSAVE
                    | ECX_OSXSAVE
                    | ECX_AVX
                    | ECX_F16C
                    | ECX_FMA);
                e.ecx |= ECX_HYPERVISOR;
                e.edx &= !(EDX_DS | EDX_ACPI | EDX_HTT | EDX_TM | EDX_PBE);
                // APIC id 0, one logical processor, keep CLFLUSH size and brand index.
                e.ebx &= 0x0000_ffff;
                e.ebx |= 1 << 16;
            }
            4 => {
                // Cache topology: one core, one thread.
                e.eax &= 0x3ff;
            }
            7 => {
                e.eax = 0;
                e.ebx &= L7_EBX_KEEP;
                e.ecx = 0;
                e.edx &= L7_EDX_KEEP;
            }
            _ => {}
        }
        v.push(e);
    }
    for f in EXTENDED.into_iter().filter(|&f| f <= max_ext) {
        let mut e = if f == 0x8000_0000 {
            ext0
        } else {
            entry(f, 0, 0)
        };
        match f {
            0x8000_0000 => e.eax = max_ext,
            0x8000_0001 => {
                // Keep LAHF, ABM/LZCNT, PREFETCHW; SYSCALL, NX, 1G pages, RDTSCP, LM.
                e.ecx &= (1 << 0) | (1 << 5) | (1 << 8);
                e.edx &= (1 << 11) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 29);
            }
            0x8000_0007 => e.edx &= 1 << 8, // invariant TSC only
            _ => {}
        }
        v.push(e);
    }
    CpuId::from_entries(&v).map_err(|e| Error::Memory(format!("CPUID table: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_normalised() {
        let c = guest_cpuid().unwrap();
        let l1 = c.as_slice().iter().find(|e| e.function == 1).unwrap();
        assert_ne!(l1.ecx & ECX_HYPERVISOR, 0);
        assert_eq!(l1.ecx & (ECX_XSAVE | ECX_OSXSAVE | ECX_AVX | ECX_VMX), 0);
        assert_eq!((l1.ebx >> 16) & 0xff, 1);
        // SSE2 and FXSR stay: the x86-64 baseline.
        assert_ne!(l1.edx & (1 << 26), 0);
        assert_ne!(l1.edx & (1 << 24), 0);
        if let Some(l7) = c.as_slice().iter().find(|e| e.function == 7) {
            assert_eq!(l7.ebx & !L7_EBX_KEEP, 0);
        }
    }
}
