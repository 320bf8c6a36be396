//! /proc/cpuinfo from CPUID (executed when the file is opened: each CPUID is
//! an exit to the monitor, so never on a hot path).
use alloc::string::String;
use core::arch::x86_64::__cpuid_count;
use core::fmt::Write;

use optivolt_abi::boot::BootInfo;

const FLAGS_EDX1: [(u32, &str); 16] = [
    (0, "fpu"),
    (4, "tsc"),
    (5, "msr"),
    (6, "pae"),
    (8, "cx8"),
    (11, "sep"),
    (13, "pge"),
    (15, "cmov"),
    (16, "pat"),
    (19, "clflush"),
    (23, "mmx"),
    (24, "fxsr"),
    (25, "sse"),
    (26, "sse2"),
    (27, "ss"),
    (9, "apic"),
];
const FLAGS_ECX1: [(u32, &str); 10] = [
    (0, "pni"),
    (1, "pclmulqdq"),
    (9, "ssse3"),
    (13, "cx16"),
    (19, "sse4_1"),
    (20, "sse4_2"),
    (22, "movbe"),
    (23, "popcnt"),
    (25, "aes"),
    (30, "rdrand"),
];
const FLAGS_EBX7: [(u32, &str); 8] = [
    (0, "fsgsbase"),
    (3, "bmi1"),
    (8, "bmi2"),
    (9, "erms"),
    (18, "rdseed"),
    (19, "adx"),
    (23, "clflushopt"),
    (29, "sha_ni"),
];

/// The text of /proc/cpuinfo for our one vCPU.
pub fn describe(boot: &BootInfo) -> String {
    let l0 = __cpuid_count(0, 0);
    let mut vendor = [0u8; 12];
    vendor[0..4].copy_from_slice(&l0.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&l0.edx.to_le_bytes());
    vendor[8..12].copy_from_slice(&l0.ecx.to_le_bytes());
    let l1 = __cpuid_count(1, 0);
    let l7 = if l0.eax >= 7 {
        __cpuid_count(7, 0)
    } else {
        __cpuid_count(0, 0)
    };
    let family = ((l1.eax >> 8) & 0xf)
        + if (l1.eax >> 8) & 0xf == 0xf {
            (l1.eax >> 20) & 0xff
        } else {
            0
        };
    let model = ((l1.eax >> 4) & 0xf) | (((l1.eax >> 16) & 0xf) << 4);
    let mut flags = String::new();
    for (bit, name) in FLAGS_EDX1 {
        if l1.edx & (1 << bit) != 0 {
            let _ = write!(flags, "{name} ");
        }
    }
    let _ = write!(flags, "syscall nx lm constant_tsc ");
    for (bit, name) in FLAGS_ECX1 {
        if l1.ecx & (1 << bit) != 0 {
            let _ = write!(flags, "{name} ");
        }
    }
    if l1.ecx & (1 << 31) != 0 {
        let _ = write!(flags, "hypervisor ");
    }
    for (bit, name) in FLAGS_EBX7 {
        if l0.eax >= 7 && l7.ebx & (1 << bit) != 0 {
            let _ = write!(flags, "{name} ");
        }
    }
    let mut s = String::new();
    let _ = write!(
        s,
        "processor\t: 0\nvendor_id\t: {}\ncpu family\t: {family}\nmodel\t\t: {model}\n\
         model name\t: OptiVolt vCPU ({})\nstepping\t: {}\ncpu MHz\t\t: {}.{:03}\n\
         physical id\t: 0\nsiblings\t: 1\ncore id\t\t: 0\ncpu cores\t: 1\napicid\t\t: 0\n\
         fpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: {}\nwp\t\t: yes\nflags\t\t: {}\n\
         clflush size\t: {}\ncache_alignment\t: 64\naddress sizes\t: 46 bits physical, 48 bits virtual\n\n",
        core::str::from_utf8(&vendor).unwrap_or("unknown"),
        core::str::from_utf8(&vendor).unwrap_or("unknown"),
        l1.eax & 0xf,
        boot.tsc_khz / 1000,
        boot.tsc_khz % 1000,
        l0.eax,
        flags.trim_end(),
        ((l1.ebx >> 8) & 0xff) * 8,
    );
    s
}
