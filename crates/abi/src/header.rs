//! [`LibosHeader`]: what a library OS image tells the monitor about itself.
//!
//! The header sits at the very start of the image's first loadable segment
//! (the linker script puts the `.optivolt.header` section first). The monitor
//! reads it after loading the ELF and refuses the image if the magic or the
//! version is wrong or an address lies outside the image.

/// `LibosHeader::magic`: "OVLIBOS1" in little-endian ASCII.
pub const LIBOS_MAGIC: u64 = u64::from_le_bytes(*b"OVLIBOS1");

/// Number of exception vectors the library OS provides handlers for.
pub const EXCEPTION_VECTORS: usize = 32;

/// Image header. All addresses are guest-virtual (physmap) addresses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LibosHeader {
    /// [`LIBOS_MAGIC`].
    pub magic: u64,
    /// [`crate::ABI_VERSION`].
    pub version: u32,
    /// Size of this structure in bytes.
    pub size: u32,
    /// Entry point (CPL 3, RDI = BootInfo address, RSP = `boot_stack_top`).
    pub entry: u64,
    /// Initial stack top.
    pub boot_stack_top: u64,
    /// The CPL-0 `syscall` entry stub (LSTAR). Must only `iretq` to CPL 3.
    pub syscall_entry: u64,
    /// Address of an array of [`EXCEPTION_VECTORS`] handler addresses (IDT gates, DPL 3).
    pub exception_table: u64,
    /// Handler for all other vectors (external interrupts).
    pub interrupt_entry: u64,
    /// Handler of the timer interrupt ([`crate::layout::TIMER_VECTOR`], IST3).
    /// The monitor injects it only while the guest executes application code.
    pub timer_entry: u64,
    /// The CPL-0 page-fault stub (vector 14's gate, IST1): it only stores
    /// CR2 where the library OS reads it (CR2 cannot be read at CPL 3) and
    /// `iretq`s to the CPL-3 handler of the exception table, with the
    /// hardware frame where a CPL-3 gate would have left it.
    pub page_fault_entry: u64,
}

/// Size of the header as stored in the image.
pub const HEADER_SIZE: usize = core::mem::size_of::<LibosHeader>();

impl LibosHeader {
    /// Decodes a header from little-endian bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < HEADER_SIZE {
            return None;
        }
        let q = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let d = |o: usize| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[o..o + 4]);
            u32::from_le_bytes(a)
        };
        Some(LibosHeader {
            magic: q(0),
            version: d(8),
            size: d(12),
            entry: q(16),
            boot_stack_top: q(24),
            syscall_entry: q(32),
            exception_table: q(40),
            interrupt_entry: q(48),
            timer_entry: q(56),
            page_fault_entry: q(64),
        })
    }

    /// Whether magic, version and size match this build.
    pub fn is_valid(&self) -> bool {
        self.magic == LIBOS_MAGIC
            && self.version == crate::ABI_VERSION
            && self.size as usize == HEADER_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_layout_says() {
        let mut b = [0u8; HEADER_SIZE];
        b[0..8].copy_from_slice(&LIBOS_MAGIC.to_le_bytes());
        b[8..12].copy_from_slice(&crate::ABI_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        b[16..24].copy_from_slice(&0x1234u64.to_le_bytes());
        let h = LibosHeader::from_bytes(&b).unwrap();
        assert!(h.is_valid());
        assert_eq!(h.entry, 0x1234);
        assert!(LibosHeader::from_bytes(&b[..10]).is_none());
        assert_eq!(HEADER_SIZE, 72);
    }
}
