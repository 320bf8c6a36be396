//! x86-64 privileged state for a guest that lives entirely at CPL 3: the
//! GDT and TSS, the IDT with DPL-3 gates, the physmap page tables, control
//! registers and the `syscall` MSRs. The guest cannot change any of it.
use kvm_bindings::{kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, Msrs};
use optivolt_abi::header::{LibosHeader, EXCEPTION_VECTORS};
use optivolt_abi::hypercall::{PORT_BASE, PORT_COUNT};
use optivolt_abi::layout::*;

use crate::memory::{write_bytes, GuestRam};
use crate::{Error, Result};

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
/// Page global enable; toggled to flush the guest TLB.
pub const CR4_PGE: u64 = 1 << 7;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_FSGSBASE: u64 = 1 << 16;
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

/// The page-fault vector (#PF).
const PAGE_FAULT_VECTOR: usize = 14;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_SFMASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
/// The guest's time-stamp counter.
pub const MSR_TSC: u32 = 0x10;

/// RFLAGS bits cleared on `syscall`: TF, IF, DF, IOPL, NT, AC (as Linux).
const SFMASK: u64 = 0x47700;

const PTE_P: u64 = 1;
const PTE_W: u64 = 2;
const PTE_U: u64 = 4;
const PTE_PS: u64 = 0x80;

/// Descriptor-table contents, as bytes to place in guest memory.
pub fn gdt() -> [u64; 7] {
    let tss = phys_to_virt(TSS_PA);
    let limit = TSS_SIZE as u64 - 1;
    let tss_lo = limit | ((tss & 0xff_ffff) << 16) | (0x89u64 << 40) | (((tss >> 24) & 0xff) << 56);
    [
        0,
        0x0020_9a00_0000_0000, // 0x08 kernel code: only the syscall stub runs here
        0x0000_9200_0000_0000, // 0x10 kernel data
        0x0000_f200_0000_0000, // 0x18 user data (0x1b)
        0x0020_fa00_0000_0000, // 0x20 user code (0x23)
        tss_lo,                // 0x28 TSS
        tss >> 32,
    ]
}

/// Size of the TSS including its I/O-permission bitmap (ports 0..=255) and
/// the terminating all-ones byte.
pub const TSS_SIZE: usize = 104 + 32 + 1;

const _: () = assert!(TSS_PA + TSS_SIZE as u64 <= IDT_PA);

/// The 64-bit TSS: IST1 for exceptions and interrupts, IST2 for double fault,
/// NMI and machine check, IST3 for the timer, and an I/O-permission bitmap that opens only the
/// hypercall ports to CPL 3 (PVM checks it: every other port raises #GP).
pub fn tss() -> [u8; TSS_SIZE] {
    let mut t = [0xffu8; TSS_SIZE];
    t[..104].fill(0);
    let ist = |i: u64| phys_to_virt(IST_PA + IST_SIZE * i);
    t[4..12].copy_from_slice(&ist(1).to_le_bytes()); // RSP0 (never used: the one CPL-0 gate has IST1)
    t[0x24..0x2c].copy_from_slice(&ist(1).to_le_bytes()); // IST1
    t[0x2c..0x34].copy_from_slice(&ist(2).to_le_bytes()); // IST2
    t[0x34..0x3c].copy_from_slice(&ist(3).to_le_bytes()); // IST3: timer
    t[0x66..0x68].copy_from_slice(&104u16.to_le_bytes()); // I/O bitmap offset
    for port in PORT_BASE..PORT_BASE + PORT_COUNT {
        t[104 + port as usize / 8] &= !(1 << (port % 8));
    }
    t
}

fn gate(handler: u64, ist: u8) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
    e[2..4].copy_from_slice(&USER_CS.to_le_bytes());
    e[4] = ist;
    // Present, DPL 3, 64-bit *trap* gate: IF stays set. Under PVM `iretq` at
    // CPL 3 cannot set IF again, so an interrupt gate would leave the guest
    // with interrupts off for good after its first exception.
    e[5] = 0x80 | (3 << 5) | 0xf;
    e[6..8].copy_from_slice(&((handler >> 16) as u16).to_le_bytes());
    e[8..12].copy_from_slice(&((handler >> 32) as u32).to_le_bytes());
    e
}

/// The page-fault gate: to the library OS's CPL-0 stub (kernel code), DPL 0
/// (an `int 14` from CPL 3 is a #GP, as on Linux), an *interrupt* gate so
/// that no tick lands in the stub; the stub's `iretq` from CPL 0 restores IF.
fn page_fault_gate(stub: u64) -> [u8; 16] {
    let mut e = gate(stub, 1);
    e[2..4].copy_from_slice(&KERNEL_CS.to_le_bytes());
    e[5] = 0x80 | 0xe;
    e
}

/// 256 IDT gates: the page fault to the CPL-0 stub that reads CR2, all
/// others to CPL-3 handlers on IST stacks.
pub fn idt(exception_handlers: &[u64; EXCEPTION_VECTORS], header: &LibosHeader) -> Vec<u8> {
    let mut v = Vec::with_capacity(4096);
    for vec in 0..256usize {
        if vec == PAGE_FAULT_VECTOR {
            v.extend_from_slice(&page_fault_gate(header.page_fault_entry));
            continue;
        }
        let (h, ist) = match (vec, exception_handlers.get(vec)) {
            (2 | 8 | 18, Some(&h)) => (h, 2),
            (_, Some(&h)) => (h, 1),
            _ if vec == TIMER_VECTOR as usize => (header.timer_entry, 3),
            (_, None) => (header.interrupt_entry, 1),
        };
        v.extend_from_slice(&gate(h, ist));
    }
    v
}

/// Builds the physmap page tables for `ram` bytes (2 MiB pages) in the
/// page-table pool; returns the PML4's guest-physical address and the first
/// unused pool address.
pub fn build_page_tables(mem: &GuestRam, ram: u64) -> Result<(u64, u64)> {
    let pml4 = PAGE_TABLE_PA;
    let pdpt = PAGE_TABLE_PA + 0x1000;
    let mut next = PAGE_TABLE_PA + 0x2000;
    let gib = ram.div_ceil(1 << 30);
    let pml4_index = (PHYS_MAP_BASE >> 39) & 511;
    if gib > 512 || next + gib * 0x1000 > PAGE_TABLE_END {
        return Err(Error::Memory(format!(
            "{ram} bytes of RAM exceed the physmap"
        )));
    }
    write_bytes(
        mem,
        pml4 + pml4_index * 8,
        &(pdpt | PTE_P | PTE_W | PTE_U).to_le_bytes(),
    )?;
    let large_pages = ram.div_ceil(LARGE_PAGE_SIZE);
    for g in 0..gib {
        let pd = next;
        next += 0x1000;
        let pdpt_index = ((PHYS_MAP_BASE >> 30) & 511) + g;
        write_bytes(
            mem,
            pdpt + pdpt_index * 8,
            &(pd | PTE_P | PTE_W | PTE_U).to_le_bytes(),
        )?;
        let first = g * 512;
        let count = (large_pages - first).min(512);
        let mut entries = Vec::with_capacity(count as usize * 8);
        for i in first..first + count {
            entries.extend_from_slice(
                &((i * LARGE_PAGE_SIZE) | PTE_P | PTE_W | PTE_U | PTE_PS).to_le_bytes(),
            );
        }
        write_bytes(mem, pd, &entries)?;
    }
    Ok((pml4, next))
}

/// Writes GDT, TSS and IDT into guest memory.
pub fn write_descriptor_tables(
    mem: &GuestRam,
    header: &LibosHeader,
    exceptions: &[u64; EXCEPTION_VECTORS],
) -> Result<()> {
    let g: Vec<u8> = gdt().iter().flat_map(|d| d.to_le_bytes()).collect();
    write_bytes(mem, GDT_PA, &g)?;
    write_bytes(mem, TSS_PA, &tss())?;
    write_bytes(mem, IDT_PA, &idt(exceptions, header))?;
    Ok(())
}

fn seg(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 11 } else { 3 },
        present: 1,
        dpl: 3,
        db: u8::from(!code),
        s: 1,
        l: u8::from(code),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Special registers: long mode with paging, SSE, FSGSBASE, CPL 3 segments.
pub fn sregs(mut s: kvm_sregs, page_table_root: u64, fsgsbase: bool) -> kvm_sregs {
    s.cs = seg(USER_CS, true);
    let d = seg(USER_SS, false);
    s.ds = d;
    s.es = d;
    s.fs = d;
    s.gs = d;
    s.ss = d;
    s.gdt.base = phys_to_virt(GDT_PA);
    s.gdt.limit = (7 * 8 - 1) as u16;
    s.idt.base = phys_to_virt(IDT_PA);
    s.idt.limit = (256 * 16 - 1) as u16;
    s.tr = kvm_segment {
        base: phys_to_virt(TSS_PA),
        limit: TSS_SIZE as u32 - 1,
        selector: TSS_SEL,
        type_: 11,
        present: 1,
        dpl: 0,
        db: 0,
        s: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_PG;
    s.cr3 = page_table_root;
    s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | if fsgsbase { CR4_FSGSBASE } else { 0 };
    s.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
    s
}

/// The `syscall` MSRs: LSTAR points at the library OS's CPL-0 stub.
pub fn msrs(syscall_entry: u64) -> Result<Msrs> {
    let e = |index, data| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    };
    Msrs::from_entries(&[
        e(
            MSR_STAR,
            ((USER_SS as u64 - 8) << 48) | ((KERNEL_CS as u64) << 32),
        ),
        e(MSR_LSTAR, syscall_entry),
        e(MSR_SFMASK, SFMASK),
        e(MSR_KERNEL_GS_BASE, 0),
    ])
    .map_err(|e| Error::Memory(format!("MSR list: {e:?}")))
}

/// Initial general-purpose registers.
pub fn regs(header: &LibosHeader) -> kvm_regs {
    kvm_regs {
        rip: header.entry,
        rsp: header.boot_stack_top,
        rdi: phys_to_virt(BOOT_INFO_PA),
        // IF set from the start: the guest can never set it itself (see `gate`).
        rflags: 0x202,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_are_dpl3_user_code_but_the_page_fault_stub() {
        let h = [0x7e00_0010_1234u64; EXCEPTION_VECTORS];
        let header = LibosHeader {
            interrupt_entry: 0x7e00_0010_5678,
            timer_entry: 0x7e00_0010_9abc,
            page_fault_entry: 0x7e00_0010_def0,
            ..Default::default()
        };
        let t = idt(&h, &header);
        assert_eq!(t.len(), 4096);
        let handler = |g: &[u8]| {
            let lo = u16::from_le_bytes([g[0], g[1]]) as u64;
            let mid = u16::from_le_bytes([g[6], g[7]]) as u64;
            let hi = u32::from_le_bytes(g[8..12].try_into().unwrap()) as u64;
            lo | mid << 16 | hi << 32
        };
        let g13 = &t[13 * 16..14 * 16];
        assert_eq!(u16::from_le_bytes([g13[2], g13[3]]), USER_CS);
        assert_eq!(g13[5], 0xef);
        assert_eq!(g13[4], 1);
        assert_eq!(handler(g13), 0x7e00_0010_1234);
        assert_eq!(t[32 * 16 + 4], 3);
        assert_eq!(t[8 * 16 + 4], 2);
        let g14 = &t[14 * 16..15 * 16];
        assert_eq!(u16::from_le_bytes([g14[2], g14[3]]), KERNEL_CS);
        assert_eq!(g14[5], 0x8e);
        assert_eq!(g14[4], 1);
        assert_eq!(handler(g14), 0x7e00_0010_def0);
    }

    #[test]
    fn io_bitmap_opens_only_hypercall_ports() {
        let t = tss();
        let allowed = |p: u16| t[104 + p as usize / 8] & (1 << (p % 8)) == 0;
        assert!((PORT_BASE..PORT_BASE + PORT_COUNT).all(allowed));
        assert!(!allowed(PORT_BASE - 1) && !allowed(PORT_BASE + PORT_COUNT) && !allowed(0x80));
        assert_eq!(t[TSS_SIZE - 1], 0xff);
    }

    #[test]
    fn physmap_tables_cover_ram() {
        let m = crate::memory::create(8 << 20).unwrap();
        let (root, next) = build_page_tables(&m, 6 << 20).unwrap();
        assert_eq!(root, PAGE_TABLE_PA);
        assert_eq!(next, PAGE_TABLE_PA + 0x3000);
        let pd = crate::memory::read_bytes(&m, PAGE_TABLE_PA + 0x2000, 32).unwrap();
        let e2 = u64::from_le_bytes(pd[16..24].try_into().unwrap());
        assert_eq!(e2, (4 << 20) | 0x87);
        let e3 = u64::from_le_bytes(pd[24..32].try_into().unwrap());
        assert_eq!(e3, 0);
    }
}
