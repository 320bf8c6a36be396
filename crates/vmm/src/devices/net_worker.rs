//! The monitor's network I/O thread: it owns the net device and its tap
//! and moves frames while the vCPU runs the guest.
//!
//! Exits cost tens of microseconds on our hosts, so the thread keeps the
//! guest from having to kick it while traffic flows: after each round of
//! work it polls the rings and the tap for a short while with guest
//! notifications left suppressed; only when that stays quiet does it
//! re-enable notifications and sleep in `poll(2)` on the tap and the
//! doorbell (written by the vCPU thread on the guest's kick). It wakes the
//! guest through an eventfd when the guest asked to be told of used
//! buffers. Idle, it costs no CPU.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use virtio_queue::QueueT;
use vm_memory::GuestMemory;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::net::{NetDevice, NetError, NetStats};
use super::tap::Tap;

/// How long the thread keeps polling after the last frame before sleeping.
pub const POLL_BEFORE_SLEEP: Duration = Duration::from_micros(200);

/// A running network I/O thread.
pub struct NetWorker {
    doorbell: Arc<EventFd>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<NetStats, NetError>>>,
}

impl NetWorker {
    /// Starts the thread. `wake_guest` is written when the guest asked to
    /// be told about received or sent frames.
    pub fn spawn<M>(
        mem: M,
        dev: NetDevice,
        tap: Tap,
        wake_guest: Arc<EventFd>,
    ) -> std::io::Result<Self>
    where
        M: GuestMemory + Send + 'static,
    {
        let doorbell = Arc::new(EventFd::new(EFD_NONBLOCK)?);
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (doorbell.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("volt-net".into())
            .spawn(move || serve(mem, dev, tap, &d, &wake_guest, &s))?;
        Ok(Self {
            doorbell,
            stop,
            thread: Some(thread),
        })
    }

    /// The doorbell the vCPU thread rings on the guest's kick.
    pub fn doorbell(&self) -> Arc<EventFd> {
        self.doorbell.clone()
    }

    /// Stops the thread and returns its counters, or the error that
    /// stopped it earlier.
    pub fn stop(mut self) -> Result<NetStats, NetError> {
        self.halt()
    }

    fn halt(&mut self) -> Result<NetStats, NetError> {
        self.stop.store(true, Ordering::Release);
        let _ = self.doorbell.write(1);
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(NetError::Backend(std::io::Error::other(
                    "the network thread panicked",
                )))
            }),
            None => Ok(NetStats::default()),
        }
    }
}

impl Drop for NetWorker {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

fn serve<M: GuestMemory>(
    mem: M,
    mut dev: NetDevice,
    mut tap: Tap,
    doorbell: &EventFd,
    wake_guest: &EventFd,
    stop: &AtomicBool,
) -> Result<NetStats, NetError> {
    let mut last_work = Instant::now();
    while !stop.load(Ordering::Acquire) {
        let tx = dev.process_tx(&mem, &mut tap)?;
        let rx = dev.process_rx(&mem, &mut tap)?;
        if tx.notify_guest || rx.notify_guest {
            let _ = wake_guest.write(1);
        }
        if tx.completed + rx.completed > 0 {
            last_work = Instant::now();
            continue;
        }
        if last_work.elapsed() < POLL_BEFORE_SLEEP {
            std::hint::spin_loop();
            continue;
        }
        // Quiet: ask the guest to kick us, unless it queued work meanwhile.
        if dev.tx.enable_notification(&mem)? {
            continue;
        }
        let mut fds = [
            libc::pollfd {
                fd: doorbell.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: tap.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // A frame that waits for guest buffers must not make the tap look
        // ready forever: then only the doorbell (new buffers) matters.
        let n = if dev.rx_waits_for_buffers() { 1 } else { 2 };
        // SAFETY: `fds` is a live array of at least `n` pollfd structures.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), n as libc::nfds_t, 1000) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(NetError::Backend(e));
            }
        }
        let _ = doorbell.read();
        last_work = Instant::now();
    }
    // Frames the guest queued just before it ended still go out.
    dev.process_tx(&mem, &mut tap)?;
    Ok(dev.stats)
}
