//! Hypercalls: guest → monitor requests.
//!
//! Hypercall `n` is a 32-bit `out` to port [`PORT_BASE`] `+ n` from CPL 3; the
//! value is either an immediate (exit status) or the guest-physical address of
//! an argument struct below 4 GiB. Each hypercall is one VM exit (~30 µs on our
//! PVM hosts), so the guest batches: a console write carries a scatter-gather
//! list, never one exit per byte. The monitor validates every address and
//! length; a bad one ends the VM with [`crate::exit::GUEST_CRASH`].
//!
//! Ports above 0x100 raise #GP at CPL 3 under PVM, hence the low base.

/// First hypercall port.
pub const PORT_BASE: u16 = 0xe0;
/// Number of hypercall ports reserved.
pub const PORT_COUNT: u16 = 16;

/// Write to the host's stdout/stderr. Value: address of [`ConsoleWrite`].
pub const CONSOLE_WRITE: u16 = 0;
/// Terminate the VM. Value: exit status (low 8 bits are what the host sees).
pub const EXIT: u16 = 1;
/// The library OS gives up. Value: address of [`Abort`].
pub const ABORT: u16 = 2;
/// The guest took an unhandled fault. Value: address of [`FaultReport`].
pub const FAULT: u16 = 3;

// 4 was READ_CR2 (ABI 3): the page-fault stub now reads CR2 at CPL 0
// without an exit (see `header::LibosHeader::page_fault_entry`).
/// Flush the guest TLB after the library OS changed or removed present
/// page-table entries. Value: ignored.
pub const TLB_FLUSH: u16 = 5;

/// Nothing can run: sleep in the monitor until `deadline` (guest TSC; 0 =
/// no deadline) or until a device has work. Value: address of [`Block`].
pub const BLOCK: u16 = 6;

/// Give guest-physical pages back to the host (their contents become zero).
/// Value: address of [`Release`].
pub const RELEASE: u16 = 7;

/// The guest queued buffers on the network device and asked to tell it
/// (the device suppresses these while it is busy). Value: ignored.
pub const NET_KICK: u16 = 8;

/// Read the host's stdin without blocking. Value: address of
/// [`ConsoleRead`]; a zero-length read asks only whether a read would
/// return at once (1) or not (`-EAGAIN`).
pub const CONSOLE_READ: u16 = 9;

/// An operation on a volume (a host directory mounted in the guest).
/// Value: address of [`crate::volume::VolumeCall`].
pub const VOLUME: u16 = 10;

/// Arguments of [`CONSOLE_READ`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConsoleRead {
    /// Guest-physical buffer to fill.
    pub buf: Segment,
    /// Filled in by the monitor: bytes read, 0 at end of file, or -errno
    /// (`-EAGAIN`: nothing there yet).
    pub result: i64,
}

/// [`Block::flags`]: also wake when the host's stdin becomes readable.
pub const BLOCK_WAKE_ON_STDIN: u64 = 1;

/// Most ranges in one [`Release`].
pub const RELEASE_MAX_RANGES: usize = 32;

/// Arguments of [`RELEASE`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Release {
    /// Valid entries in `ranges`.
    pub count: u32,
    /// Reserved, zero.
    pub _reserved: u32,
    /// Page-aligned guest-physical ranges (address, length).
    pub ranges: [Segment; RELEASE_MAX_RANGES],
}

/// Arguments of [`BLOCK`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Block {
    /// Guest TSC value to wake at; 0 = only device activity (or never).
    pub deadline_tsc: u64,
    /// [`BLOCK_WAKE_ON_STDIN`], or 0.
    pub flags: u64,
}

/// Maximum segments in one [`ConsoleWrite`].
pub const CONSOLE_MAX_SEGS: usize = 16;

/// One piece of guest-physical memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
}

/// Arguments of [`CONSOLE_WRITE`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConsoleWrite {
    /// 1 = stdout, 2 = stderr.
    pub fd: u32,
    /// Valid entries in `segs`.
    pub nsegs: u32,
    /// Filled in by the monitor: bytes written, or a negative errno.
    pub result: i64,
    /// The data, in order.
    pub segs: [Segment; CONSOLE_MAX_SEGS],
}

/// Arguments of [`ABORT`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Abort {
    /// Guest-physical address of a UTF-8 message.
    pub msg: u64,
    /// Its length (the monitor prints at most [`ABORT_MSG_MAX`] bytes).
    pub len: u64,
}

/// Longest abort message the monitor prints.
pub const ABORT_MSG_MAX: u64 = 4096;

/// General-purpose registers in the order the library OS's entry code saves them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Registers {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
}

/// Arguments of [`FAULT`]: the state at the faulting instruction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultReport {
    /// Exception vector (14 = page fault, 13 = general protection, …).
    pub vector: u64,
    /// Error code pushed by the CPU (0 when the vector has none).
    pub error_code: u64,
    /// Faulting instruction.
    pub rip: u64,
    /// Stack pointer at the fault.
    pub rsp: u64,
    /// Flags at the fault.
    pub rflags: u64,
    /// Code segment at the fault.
    pub cs: u64,
    /// Whether the fault happened in the application (1) or the library OS (0).
    pub in_app: u64,
    /// The general-purpose registers.
    pub regs: Registers,
}

/// Human name of an exception vector.
pub fn vector_name(v: u64) -> &'static str {
    match v {
        0 => "divide error (#DE)",
        1 => "debug (#DB)",
        2 => "non-maskable interrupt",
        3 => "breakpoint (#BP)",
        4 => "overflow (#OF)",
        5 => "bound range exceeded (#BR)",
        6 => "invalid opcode (#UD)",
        7 => "device not available (#NM)",
        8 => "double fault (#DF)",
        10 => "invalid TSS (#TS)",
        11 => "segment not present (#NP)",
        12 => "stack-segment fault (#SS)",
        13 => "general protection fault (#GP)",
        14 => "page fault (#PF)",
        16 => "x87 floating-point error (#MF)",
        17 => "alignment check (#AC)",
        18 => "machine check (#MC)",
        19 => "SIMD floating-point exception (#XM)",
        _ => "exception",
    }
}

/// The signal Linux would deliver for an exception vector.
pub fn vector_signal(v: u64) -> &'static str {
    match v {
        0 | 16 | 19 => "SIGFPE",
        1 | 3 => "SIGTRAP",
        6 => "SIGILL",
        17 => "SIGBUS",
        _ => "SIGSEGV",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_have_stable_sizes() {
        assert_eq!(
            core::mem::size_of::<ConsoleWrite>(),
            16 + 16 * CONSOLE_MAX_SEGS
        );
        assert_eq!(core::mem::size_of::<Registers>(), 15 * 8);
        assert_eq!(core::mem::size_of::<FaultReport>(), 7 * 8 + 15 * 8);
        assert_eq!(vector_signal(14), "SIGSEGV");
        assert!(vector_name(14).contains("page fault"));
    }
}
