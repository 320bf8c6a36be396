//! A network namespace of one volt process, with no name: made by a
//! short-lived thread (`unshare`), held by a descriptor, so it disappears
//! with every interface in it when the process ends, killed or not. A
//! restored guest keeps the address it had; each restore lives in a
//! namespace of its own, so restores of one snapshot run side by side.
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};

/// The namespace, open.
pub struct PrivateNetns {
    ns: File,
}

impl PrivateNetns {
    /// Makes one, with its loopback up.
    pub fn new() -> Result<PrivateNetns> {
        let ns = std::thread::spawn(|| -> std::io::Result<File> {
            // SAFETY: unshare(CLONE_NEWNET) moves only this thread into a
            // new network namespace; it touches no memory.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let f = File::open("/proc/thread-self/ns/net")?;
            crate::publish::hostnet::set_up("lo")?;
            Ok(f)
        })
        .join()
        .map_err(|_| anyhow!("the namespace thread panicked"))?
        .context("cannot make a network namespace for the restored guest (needs CAP_SYS_ADMIN)")?;
        Ok(PrivateNetns { ns })
    }

    /// A path `setns` takes, valid in this process while `self` lives.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.ns.as_raw_fd()))
    }

    /// Starts `f` on a thread inside the namespace.
    pub fn spawn_within<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::result::Result<T, String> + Send + 'static,
    ) -> Result<std::thread::JoinHandle<std::result::Result<T, String>>> {
        let ns = self.ns.try_clone()?;
        Ok(std::thread::spawn(move || {
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| format!("cannot enter the guest's network namespace: {e}"))?;
            f()
        }))
    }
}
