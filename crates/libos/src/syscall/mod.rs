//! The Linux system-call layer: numbers, error codes, tracing. The dispatcher
//! itself (which needs the guest runtime) lives in `kernel::syscalls`.
pub mod errno;
pub mod status;
pub mod table;
pub mod trace;
