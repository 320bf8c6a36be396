//! The OptiVolt library OS.
//!
//! It runs, with the application, at CPL 3 inside the VM (see
//! `docs/architecture.md`). The modules below are plain `no_std` logic that
//! also compiles and runs its unit tests on the host; the hardware glue
//! (entry code, hypercalls, exception stubs) lives in [`arch`] and the guest
//! runtime in [`kernel`], both built only with the `guest` feature.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod drivers;
pub mod errno;
pub mod fd;
pub mod fs;
pub mod loader;
pub mod mm;
#[cfg(feature = "net")]
pub mod net;
pub mod rand;
pub mod syscall;
pub mod task;
pub mod time;
pub mod uapi;
pub mod util;
pub mod vdso;

pub mod arch;
#[cfg(feature = "guest")]
pub mod kernel;
