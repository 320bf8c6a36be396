//! The Linux system-call handlers, by family. They decode the arguments and
//! call the objects of `fd`, `fs`, `mm`, `net` and `task`.
pub mod fdops;
pub mod file;
pub mod misc;
pub mod mm;
#[cfg(feature = "net")]
pub mod msg;
#[cfg(not(feature = "net"))]
pub mod nonet;
pub mod poll;
pub mod signal;
#[cfg(feature = "net")]
pub mod socket;
#[cfg(feature = "net")]
pub mod sockopt;
pub mod stat;
pub mod thread;
pub mod time;
pub mod volume;
