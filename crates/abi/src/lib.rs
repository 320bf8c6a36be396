//! The contract between the OptiVolt monitor (`optivolt-vmm`) and the library OS.
//!
//! Everything in this crate is `no_std`, `#[repr(C)]` where it crosses the
//! guest/host boundary, and versioned: the monitor refuses a library OS whose
//! [`header::LibosHeader`] does not carry the same [`ABI_VERSION`].
//!
//! * [`layout`] — the guest-physical and guest-virtual memory map, segment selectors.
//! * [`boot`] — [`boot::BootInfo`], what the monitor hands the library OS in RDI.
//! * [`header`] — [`header::LibosHeader`], what the library OS image tells the monitor.
//! * [`hypercall`] — the port-I/O hypercalls and their argument structs.
//! * [`elf`] — a small bounds-checked ELF64 reader used by both sides.
//! * [`exit`] — process exit statuses the monitor uses for guest failures.
//! * [`volume`] — host directories served to the guest (`volt run -v`).
#![no_std]
#![forbid(unsafe_code)]

pub mod boot;
pub mod elf;
pub mod exit;
pub mod header;
pub mod hypercall;
pub mod layout;
pub mod sites;
pub mod virtio;
pub mod volume;

/// Version of the boot contract; bumped on every incompatible change.
pub const ABI_VERSION: u32 = 8;
