//! The one process the unikernel runs: its identity and signal bookkeeping.
use alloc::vec::Vec;

/// Number of signals tracked (1..=64).
pub const NSIG: usize = 64;

/// `struct sigaction` as the kernel ABI passes it (x86-64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SigAction {
    /// Handler, SIG_DFL (0) or SIG_IGN (1).
    pub handler: u64,
    /// SA_* flags.
    pub flags: u64,
    /// SA_RESTORER trampoline.
    pub restorer: u64,
    /// Blocked during the handler.
    pub mask: u64,
}

/// `stack_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SigAltStack {
    /// Base.
    pub sp: u64,
    /// SS_* flags.
    pub flags: i32,
    /// Padding.
    pub _pad: i32,
    /// Size.
    pub size: u64,
}

/// Disables the alternate stack.
pub const SS_DISABLE: i32 = 2;

/// Process state.
pub struct Process {
    /// Path of the executable inside the rootfs (for /proc/self/exe).
    pub exec_path: Vec<u8>,
    /// set_tid_address pointer.
    pub clear_child_tid: u64,
    /// Registered robust-futex list head.
    pub robust_list: u64,
    /// Signal actions, index = signal - 1.
    pub actions: [SigAction; NSIG],
    /// Blocked signal mask.
    pub sigmask: u64,
    /// Alternate signal stack.
    pub altstack: SigAltStack,
    /// File-mode creation mask.
    pub umask: u32,
}

impl Process {
    /// A fresh process running `exec_path`.
    pub fn new(exec_path: Vec<u8>) -> Self {
        Process {
            exec_path,
            clear_child_tid: 0,
            robust_list: 0,
            actions: [SigAction::default(); NSIG],
            sigmask: 0,
            altstack: SigAltStack {
                flags: SS_DISABLE,
                ..Default::default()
            },
            umask: 0o022,
        }
    }
}

/// The process id the application sees.
pub const PID: i64 = 1;
