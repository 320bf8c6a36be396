//! The Linux system-call handlers, by family. They decode the arguments and
//! call the objects of `fd`, `fs`, `mm`, `net` and `task`.
pub mod file;
pub mod msg;
pub mod poll;
pub mod socket;
pub mod sockopt;
pub mod thread;
