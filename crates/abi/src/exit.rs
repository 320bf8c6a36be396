//! Exit statuses of `volt run` that do not come from the guest's `exit()`.
//!
//! They follow the conventions of `docker run` and the shell, so that scripts
//! can tell a guest failure from a program's own status.

/// The guest took a fault it had no handler for (like a process killed by SIGSEGV).
pub const GUEST_FAULT: i32 = 139;
/// The library OS aborted, or the vCPU stopped in a way no guest can recover from
/// (triple fault, KVM internal error) — like a process killed by SIGABRT.
pub const GUEST_CRASH: i32 = 134;
/// The guest ran past `--timeout` (as `timeout(1)` reports).
pub const TIMEOUT: i32 = 124;
/// `volt` itself failed: bad input, no `/dev/kvm`, a monitor error (as `docker run`).
pub const VOLT_ERROR: i32 = 125;
