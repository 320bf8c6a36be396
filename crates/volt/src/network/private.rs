//! A network namespace of one volt process, with no name: made by a
//! short-lived thread (`unshare`), held by a descriptor, so it disappears
//! with every interface in it when the process ends, killed or not. A
//! restored guest keeps the address it had; each restore lives in a
//! namespace of its own, so restores of one snapshot run side by side.
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use anyhow::{anyhow, Result};

/// The namespace, open.
pub struct PrivateNetns {
    ns: File,
}

/// A namespace being made, with something in it, on a thread of its own.
pub struct Pending<T> {
    /// The namespace, sent as soon as it exists.
    pub ns: PendingNamespace,
    /// What the thread made in the namespace (or why it could not).
    pub work: std::thread::JoinHandle<std::result::Result<T, String>>,
}

/// The namespace of a [`Pending`].
pub struct PendingNamespace(std::sync::mpsc::Receiver<File>);

impl PendingNamespace {
    /// The namespace, once the thread has made it.
    pub fn get(&self) -> Result<PrivateNetns> {
        let ns = self
            .0
            .recv()
            .map_err(|_| anyhow!("the network namespace was not made"))?;
        Ok(PrivateNetns { ns })
    }
}

impl PrivateNetns {
    /// Starts making one, with its loopback up, on a thread that then runs
    /// `f` inside it (making the guest's tap while the VM is built).
    pub fn make_with<T: Send + 'static>(
        f: impl FnOnce() -> std::result::Result<T, String> + Send + 'static,
    ) -> Pending<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        let work = std::thread::spawn(move || {
            let made = (|| -> std::io::Result<File> {
                // SAFETY: unshare(CLONE_NEWNET) moves only this thread into
                // a new network namespace; it touches no memory.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let f = File::open("/proc/thread-self/ns/net")?;
                crate::publish::hostnet::set_up("lo")?;
                Ok(f)
            })()
            .map_err(|e| {
                format!("cannot make a network namespace for the restored guest (needs CAP_SYS_ADMIN): {e}")
            })?;
            let _ = tx.send(made);
            f()
        });
        Pending {
            ns: PendingNamespace(rx),
            work,
        }
    }

    /// A path `setns` takes, valid in this process while `self` lives.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.ns.as_raw_fd()))
    }
}
