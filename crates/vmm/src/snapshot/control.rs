//! Asking a running VM for a snapshot, or for its counters, from another thread (volt's control
//! socket): the request is left in a slot, the vCPU thread is kicked out of
//! KVM_RUN (or out of its BLOCK sleep) and serves it between two exits, at
//! an instruction boundary with no I/O in flight, then answers.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use vmm_sys_util::eventfd::EventFd;

use super::SnapshotInfo;

/// What the asker wants.
#[derive(Clone, Debug)]
pub struct SnapshotRequest {
    /// The file to write (replaced atomically).
    pub path: PathBuf,
    /// End the VM once the snapshot is written (standby).
    pub stop: bool,
}

type Reply = mpsc::Sender<Result<SnapshotInfo, String>>;

/// Shared between the vCPU thread and askers.
pub(crate) struct Control {
    pub(crate) asked: AtomicBool,
    slot: Mutex<Option<(SnapshotRequest, Reply)>>,
    /// The vCPU thread while it runs the guest.
    vcpu: Mutex<Option<libc::pthread_t>>,
    wake: Arc<EventFd>,
    /// The running totals, and guest memory to read the guest's from.
    pub(crate) live: Arc<crate::live::Live>,
    mem: crate::memory::GuestRam,
}

impl Control {
    pub(crate) fn new(
        wake: Arc<EventFd>,
        live: Arc<crate::live::Live>,
        mem: crate::memory::GuestRam,
    ) -> Arc<Control> {
        Arc::new(Control {
            asked: AtomicBool::new(false),
            slot: Mutex::new(None),
            vcpu: Mutex::new(None),
            wake,
            live,
            mem,
        })
    }

    /// Called by the vCPU thread when it starts and stops running the guest.
    pub(crate) fn running(&self, on: bool) {
        let mut v = self.vcpu.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: pthread_self has no preconditions.
        *v = on.then(|| unsafe { libc::pthread_self() });
        if !on {
            drop(v);
            if let Some((_, reply)) = self.take() {
                let _ = reply.send(Err("the VM has ended".into()));
            }
        }
    }

    /// The pending request, if any.
    pub(crate) fn take(&self) -> Option<(SnapshotRequest, Reply)> {
        self.asked.store(false, Ordering::SeqCst);
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A handle other threads use to ask for snapshots.
#[derive(Clone)]
pub struct ControlHandle(pub(crate) Arc<Control>);

impl ControlHandle {
    /// The VM's running totals, read now (never waits for the vCPU).
    pub fn stats(&self) -> crate::live::LiveStats {
        self.0.live.read(&self.0.mem)
    }

    /// Takes a snapshot (waiting at most `limit`); one at a time.
    pub fn snapshot(&self, req: SnapshotRequest, limit: Duration) -> Result<SnapshotInfo, String> {
        let (tx, rx) = mpsc::channel();
        {
            let mut slot = self.0.slot.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_some() {
                return Err("a snapshot of this VM is already being taken".into());
            }
            *slot = Some((req, tx));
        }
        self.0.asked.store(true, Ordering::SeqCst);
        let _ = self.0.wake.write(1);
        {
            let v = self.0.vcpu.lock().unwrap_or_else(|p| p.into_inner());
            match *v {
                // SAFETY: the thread is alive while it is recorded here
                // (it clears the record, under this lock, before it ends
                // the run); the kick signal has a handler that does nothing.
                Some(t) => unsafe {
                    libc::pthread_kill(t, crate::vcpu::kick_signal());
                },
                None => {
                    drop(v);
                    self.0.take();
                    return Err("the VM is not running".into());
                }
            }
        }
        match rx.recv_timeout(limit) {
            Ok(r) => r,
            Err(_) => {
                self.0.take();
                Err(format!(
                    "the VM did not answer within {} s",
                    limit.as_secs()
                ))
            }
        }
    }
}
