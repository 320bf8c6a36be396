//! The Linux system-call handlers, by family. They decode the arguments and
//! call the objects of `fd`, `fs`, `mm`, `net` and `task`.
pub mod file;
pub mod misc;
pub mod mm;
pub mod msg;
pub mod poll;
pub mod signal;
pub mod socket;
pub mod sockopt;
pub mod thread;
pub mod time;
