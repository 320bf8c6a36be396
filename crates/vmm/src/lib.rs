//! The OptiVolt monitor.
//!
//! One [`Vm`] per guest ([`vm`]): [`builder`] creates the KVM VM and its memory, loads
//! the library OS and the rootfs, and prepares every piece of privileged CPU
//! state (the guest never runs Rust at CPL 0); [`vcpu`] runs the KVM_RUN loop
//! and [`hypercall`] serves the guest's requests, validating every address and
//! length it is given. A guest can end only itself: everything it does wrong
//! comes back as an [`Outcome`], never as a monitor panic.
//!
//! ```no_run
//! use optivolt_vmm::{VmConfig, Vm};
//! # fn libos() -> &'static [u8] { &[] }
//! let cpio: &[u8] = b"cpio bytes";
//! let cfg = VmConfig::new(libos(), vec![cpio], "/hello", vec!["hello".into()]);
//! let outcome = Vm::create(&cfg)?.run()?;
//! println!("{outcome:?}");
//! # Ok::<(), optivolt_vmm::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

pub mod arch;
pub mod builder;
mod cpuid;
pub mod devices;
mod error;
pub mod host_signals;
pub mod hypercall;
pub mod kvm_stats;
pub mod live;
pub mod memory;
pub mod outcome;
mod placement;
pub mod snapshot;
pub mod stats;
pub mod stdio;
pub mod timing;
pub mod vcpu;
pub mod vm;
pub mod volume;

pub use builder::{check_kvm, min_memory, NetConfig, VmConfig};
pub use error::{Error, Result};
pub use outcome::{GuestFault, Outcome};
pub use stats::ExitStats;
pub use timing::Timing;
pub use vm::Vm;
