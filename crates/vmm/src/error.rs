//! The monitor's error type and the crate's [`Result`].
use std::io;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Monitor errors: the host could not create or run the VM. Guest misbehaviour
/// is not an error but an [`crate::Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// /dev/kvm could not be opened.
    #[error("cannot open /dev/kvm: {0} (KVM is required; check that the kvm module is loaded and you may access /dev/kvm)")]
    KvmOpen(#[source] io::Error),
    /// A KVM ioctl failed.
    #[error("KVM {op} failed: {source}")]
    Kvm {
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The network device could not be set up.
    #[error("network: {0}")]
    Net(String),
    /// Guest memory could not be allocated or accessed.
    #[error("guest memory: {0}")]
    Memory(String),
    /// The library OS image is unusable.
    #[error("library OS image: {0}")]
    LibosImage(String),
    /// The application executable cannot be loaded.
    #[error("program: {0}")]
    Program(String),
    /// The configured memory cannot hold the image.
    #[error(
        "--memory {have_mib} MiB is too small for this image: it needs at least {need_mib} MiB"
    )]
    MemoryTooSmall {
        /// MiB needed.
        need_mib: u64,
        /// MiB configured.
        have_mib: u64,
    },
    /// Argument and environment strings exceed the command-line area.
    #[error("argument list and environment too long ({len} bytes, at most {max})")]
    CmdlineTooLong {
        /// Bytes needed.
        len: usize,
        /// Bytes available.
        max: usize,
    },
    /// A volume could not be attached.
    #[error("{0}")]
    Volume(String),
    /// A snapshot could not be restored.
    #[error("{0}")]
    Snapshot(String),
    /// Any other host-side I/O failure.
    #[error("{0}: {1}")]
    Io(&'static str, #[source] io::Error),
}

impl Error {
    pub(crate) fn kvm(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
        move |source| Error::Kvm { op, source }
    }
}
