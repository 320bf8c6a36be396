//! Guest memory map.
//!
//! All guest-physical memory is mapped once, with 2 MiB pages, at
//! [`PHYS_MAP_BASE`] ("the physmap"): guest-physical address `pa` is visible to
//! the library OS at virtual address `PHYS_MAP_BASE + pa`. The library OS image
//! is linked to run there. Everything below [`USER_TOP`] belongs to the
//! application; the library OS never maps its own things there.
//!
//! Guest-physical layout (low to high):
//!
//! | range | content |
//! |---|---|
//! | `0x0000..0x1000` | unused (never mapped by the application) |
//! | [`GDT_PA`] | GDT; the TSS follows at [`TSS_PA`] |
//! | [`IDT_PA`] | IDT (256 gates) |
//! | [`BOOT_INFO_PA`] | [`crate::boot::BootInfo`] |
//! | [`CMDLINE_PA`] | argv/envp strings, NUL-separated ([`CMDLINE_MAX`] bytes) |
//! | [`IST_PA`] | the interrupt stacks |
//! | [`PAGE_TABLE_PA`] | page tables built by the monitor |
//! | [`LIBOS_PA`] | the library OS image, then the rootfs, then free memory |

/// Size of a small page.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a large page (used for the physmap).
pub const LARGE_PAGE_SIZE: u64 = 2 << 20;

/// Virtual address at which all guest-physical memory is mapped.
pub const PHYS_MAP_BASE: u64 = 0x0000_7e00_0000_0000;
/// End (exclusive) of the physmap window: at most 1 TiB of guest RAM.
pub const PHYS_MAP_END: u64 = 0x0000_7f00_0000_0000;
/// Highest application address (exclusive). The application's stack sits just below.
pub const USER_TOP: u64 = 0x0000_7d00_0000_0000;
/// Load base for position-independent (ET_DYN) applications.
pub const USER_PIE_BASE: u64 = 0x0000_5555_5555_4000 & !0xfff;
/// Lowest address the mmap allocator hands out without a hint.
pub const USER_MMAP_MIN: u64 = 0x0000_1000_0000;

/// Guest-physical address of the GDT.
pub const GDT_PA: u64 = 0x1000;
/// Guest-physical address of the 64-bit TSS (inside the GDT page).
pub const TSS_PA: u64 = 0x1800;
/// Guest-physical address of the IDT.
pub const IDT_PA: u64 = 0x2000;
/// Guest-physical address of [`crate::boot::BootInfo`].
pub const BOOT_INFO_PA: u64 = 0x3000;
/// Guest-physical address of the command-line strings.
pub const CMDLINE_PA: u64 = 0x4000;
/// Bytes available for the command-line strings.
pub const CMDLINE_MAX: u64 = 0xc000;
/// Guest-physical base of the interrupt stacks.
pub const IST_PA: u64 = 0x10000;
/// Size of each interrupt stack.
pub const IST_SIZE: u64 = 0x4000;
/// Number of interrupt stacks (IST1: exceptions, IST2: double fault/NMI/machine
/// check, IST3: the timer interrupt).
pub const IST_COUNT: u64 = 3;
/// Vector of the timer interrupt the monitor injects for preemption.
pub const TIMER_VECTOR: u8 = 32;
/// Guest-physical base of the monitor-built page tables.
pub const PAGE_TABLE_PA: u64 = 0x20000;
/// End (exclusive) of the monitor's page-table pool.
pub const PAGE_TABLE_END: u64 = 0x100000;
/// Guest-physical load address of the library OS image.
pub const LIBOS_PA: u64 = 0x100000;
/// Virtual address the library OS image is linked at.
pub const LIBOS_VA: u64 = PHYS_MAP_BASE + LIBOS_PA;

/// Smallest guest RAM the monitor accepts.
pub const MIN_RAM: u64 = 2 << 20;

/// Kernel (CPL 0) code selector: used only by the `syscall` entry stub.
pub const KERNEL_CS: u16 = 0x08;
/// Kernel (CPL 0) stack selector.
pub const KERNEL_SS: u16 = 0x10;
/// User data/stack selector (RPL 3).
pub const USER_SS: u16 = 0x1b;
/// User 64-bit code selector (RPL 3).
pub const USER_CS: u16 = 0x23;
/// TSS selector.
pub const TSS_SEL: u16 = 0x28;

/// Translates a guest-physical address to its physmap virtual address.
pub const fn phys_to_virt(pa: u64) -> u64 {
    PHYS_MAP_BASE + pa
}

/// Translates a physmap virtual address back to guest-physical, if it is one.
pub const fn virt_to_phys(va: u64) -> Option<u64> {
    if va >= PHYS_MAP_BASE && va < PHYS_MAP_END {
        Some(va - PHYS_MAP_BASE)
    } else {
        None
    }
}

/// Rounds `x` up to a multiple of `align` (a power of two), or `None` on overflow.
pub const fn align_up(x: u64, align: u64) -> Option<u64> {
    match x.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

// The regions must not overlap; checked when the crate is compiled.
const _: () = {
    assert!(GDT_PA < TSS_PA && TSS_PA + 104 <= IDT_PA);
    assert!(IDT_PA + 4096 <= BOOT_INFO_PA);
    assert!(BOOT_INFO_PA + 4096 <= CMDLINE_PA);
    assert!(CMDLINE_PA + CMDLINE_MAX <= IST_PA);
    assert!(IST_PA + IST_SIZE * IST_COUNT <= PAGE_TABLE_PA);
    assert!(PAGE_TABLE_END <= LIBOS_PA);
    assert!(USER_TOP < PHYS_MAP_BASE);
    // The physmap must stay in the lower half: PVM hangs on upper-half mappings.
    assert!(PHYS_MAP_END <= 0x0000_8000_0000_0000);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_round_trips() {
        assert_eq!(virt_to_phys(phys_to_virt(0x1234)), Some(0x1234));
        assert_eq!(virt_to_phys(0x400000), None);
        assert_eq!(align_up(1, 4096), Some(4096));
        assert_eq!(align_up(u64::MAX, 4096), None);
    }
}
