//! The KVM_RUN loop of the (single) vCPU.
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kvm_ioctls::VcpuExit;
use optivolt_abi::boot::{SchedShared, Timestamps, SCHED_OFFSET, TIMESTAMPS_OFFSET};
use optivolt_abi::hypercall::{self as hc, Block, BLOCK_WAKE_ON_STDIN};
use optivolt_abi::layout::{BOOT_INFO_PA, TIMER_VECTOR, USER_TOP};
use vm_memory::{Bytes, GuestAddress};

use crate::arch::CR4_PGE;
use crate::hypercall::{self, BadHypercall, StdioSink};
use crate::memory::Pod;
use crate::outcome::{GuestFault, Outcome};
use crate::vm::Vm;
use crate::{Error, Result};

/// What a VM exit asks of the monitor, copied out of the kvm_run area.
enum Exit {
    Hypercall(u16, u32),
    OtherPortOut(u16),
    PortIn(u16),
    Mmio(u64),
    Shutdown,
    InternalError,
    FailEntry(u64),
    Hlt,
    Interrupted,
    Other(String),
}

extern "C" fn kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Signal used to interrupt KVM_RUN (timeout, timer ticks).
pub(crate) fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 1
}

vmm_sys_util::ioctl_iow_nr!(
    KVM_INTERRUPT,
    kvm_bindings::KVMIO,
    0x86,
    kvm_bindings::kvm_interrupt
);

/// Period of the preemption tick.
const TICK: Duration = Duration::from_millis(10);

/// A POSIX timer that signals the vCPU thread every [`TICK`] while armed.
struct TickTimer {
    id: libc::timer_t,
}

impl TickTimer {
    fn new() -> Result<TickTimer> {
        vmm_sys_util::signal::register_signal_handler(kick_signal(), kick).map_err(|e| {
            Error::Io(
                "install the tick signal handler",
                std::io::Error::from_raw_os_error(e.errno()),
            )
        })?;
        // SAFETY: a zeroed sigevent is valid; the fields we need are set below.
        let mut ev: libc::sigevent = unsafe { std::mem::zeroed() };
        ev.sigev_notify = libc::SIGEV_THREAD_ID;
        ev.sigev_signo = kick_signal();
        // SAFETY: gettid has no preconditions.
        ev.sigev_notify_thread_id = unsafe { libc::gettid() };
        let mut id: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `ev` and `id` are valid for the call; the timer is deleted in Drop.
        if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut ev, &mut id) } != 0 {
            return Err(Error::Io(
                "create the tick timer",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(TickTimer { id })
    }

    fn set(&self, on: bool) {
        let ts = |d: Duration| libc::timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        };
        let v = if on { ts(TICK) } else { ts(Duration::ZERO) };
        let spec = libc::itimerspec {
            it_interval: v,
            it_value: v,
        };
        // SAFETY: `self.id` is a live timer; `spec` is valid for the call.
        unsafe { libc::timer_settime(self.id, 0, &spec, std::ptr::null_mut()) };
    }
}

impl Drop for TickTimer {
    fn drop(&mut self) {
        // SAFETY: `self.id` was created by timer_create and is deleted once.
        unsafe { libc::timer_delete(self.id) };
    }
}

impl Vm {
    /// Runs the guest to its end.
    pub fn run(&mut self) -> Result<Outcome> {
        let expired = Arc::new(AtomicBool::new(false));
        let _watchdog = self
            .timeout
            .map(|t| Watchdog::start(t, expired.clone()))
            .transpose()?;
        let ticks = TickTimer::new()?;
        ticks.set(true);
        self.control.running(true);
        let outcome = self.run_loop(&expired, &ticks);
        self.control.running(false);
        ticks.set(false);
        self.timing.mark_vm_exit();
        self.stats.host = crate::kvm_stats::KvmStats::open(&self.vcpu)
            .map(|k| k.shown())
            .unwrap_or_default();
        if let Ok(ts) = self
            .mem
            .read_obj::<Pod<Timestamps>>(GuestAddress(BOOT_INFO_PA + TIMESTAMPS_OFFSET as u64))
        {
            let t = ts.0;
            self.timing.set_guest(
                [t.libos_entry, t.libos_ready, t.app_entry, t.app_exit],
                self.tsc_sample,
                self.mono_sample,
                self.tsc_khz,
            );
        }
        outcome
    }

    fn next_exit(&mut self) -> Result<Exit> {
        Ok(match self.vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => match hypercall::decode(port, data) {
                Some((nr, v)) => Exit::Hypercall(nr, v),
                None => Exit::OtherPortOut(port),
            },
            Ok(VcpuExit::IoIn(port, data)) => {
                data.fill(0xff);
                Exit::PortIn(port)
            }
            Ok(VcpuExit::MmioRead(a, _)) | Ok(VcpuExit::MmioWrite(a, _)) => Exit::Mmio(a),
            Ok(VcpuExit::Shutdown) => Exit::Shutdown,
            Ok(VcpuExit::InternalError) => Exit::InternalError,
            Ok(VcpuExit::FailEntry(r, _)) => Exit::FailEntry(r),
            Ok(VcpuExit::Hlt) => Exit::Hlt,
            Ok(VcpuExit::Intr) => Exit::Interrupted,
            Ok(other) => Exit::Other(format!("{other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Exit::Interrupted,
            Err(e) => {
                return Err(Error::Kvm {
                    op: "run vCPU",
                    source: e,
                })
            }
        })
    }

    fn regs_summary(&self) -> String {
        match (self.vcpu.get_regs(), self.vcpu.get_sregs()) {
            (Ok(r), Ok(s)) => {
                let mut t = format!(
                    "rip={:#x} rsp={:#x} rflags={:#x} cs={:#x} cpl={} cr2={:#x}",
                    r.rip, r.rsp, r.rflags, s.cs.selector, s.cs.dpl, s.cr2
                );
                // The top of the stack helps when the guest died inside its exception entry.
                if let Some(pa) = optivolt_abi::layout::virt_to_phys(r.rsp) {
                    if let Some(b) = crate::memory::read_bytes(&self.mem, pa, 48) {
                        let words: Vec<String> = b
                            .chunks(8)
                            .map(|c| {
                                format!("{:#x}", u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                            })
                            .collect();
                        t.push_str(&format!(" stack=[{}]", words.join(" ")));
                    }
                }
                t
            }
            _ => "registers unavailable".into(),
        }
    }

    /// Hands signals the host sent to the guest, and makes it schedule soon
    /// (see [`crate::host_signals`]).
    fn post_host_signals(&mut self, sigs: u32) {
        let at = BOOT_INFO_PA
            + SCHED_OFFSET as u64
            + core::mem::offset_of!(SchedShared, host_signals) as u64;
        let old: u32 = self.mem.read_obj(GuestAddress(at)).unwrap_or(0);
        let _ = self.mem.write_obj(old | sigs, GuestAddress(at));
        self.inject_tick();
    }

    /// On a tick: inject the timer interrupt if the guest wants preemption.
    fn maybe_inject_tick(&mut self) {
        let want = self
            .mem
            .read_obj::<Pod<SchedShared>>(GuestAddress(BOOT_INFO_PA + SCHED_OFFSET as u64))
            .map(|p| p.0.want_tick != 0)
            .unwrap_or(false);
        if want {
            self.inject_tick();
        }
    }

    /// Injects the timer interrupt if the guest can take an interrupt and
    /// is executing application code (the library OS is never interrupted,
    /// so its interrupt stacks never nest: it is told to yield at the end
    /// of its system call instead).
    fn inject_tick(&mut self) {
        // PVM reports IF clear after its emulated `iretq` to CPL 3 although
        // user mode is always interruptible there; the guest can never set IF
        // itself. Application code is interruptible by our contract, so set
        // IF when injecting into it.
        match self.vcpu.get_regs() {
            Ok(r) if r.rip >= USER_TOP => {
                // Inside the library OS: it yields when the call ends.
                let at = BOOT_INFO_PA
                    + SCHED_OFFSET as u64
                    + core::mem::offset_of!(SchedShared, tick_missed) as u64;
                let _ = self.mem.write_obj(1u32, GuestAddress(at));
                self.stats.ticks_deferred += 1;
                return;
            }
            Ok(mut r) => {
                if r.rflags & 0x200 == 0 {
                    r.rflags |= 0x200;
                    if self.vcpu.set_regs(&r).is_err() {
                        return;
                    }
                }
            }
            _ => return,
        }
        let irq = kvm_bindings::kvm_interrupt {
            irq: TIMER_VECTOR as u32,
        };
        // SAFETY: KVM_INTERRUPT reads one kvm_interrupt from `irq`, valid for the call.
        unsafe { vmm_sys_util::ioctl::ioctl_with_ref(&self.vcpu, KVM_INTERRUPT(), &irq) };
        self.stats.ticks_injected += 1;
    }

    /// BLOCK: sleep until the guest's deadline (its TSC, converted with the
    /// TSC/clock pair sampled at boot), the timeout, or forever.
    fn block(
        &mut self,
        pa: u64,
        expired: &AtomicBool,
        ticks: &TickTimer,
    ) -> std::result::Result<(), BadHypercall> {
        let b: Block = self
            .mem
            .read_obj::<Pod<Block>>(GuestAddress(pa))
            .map(|p| p.0)
            .map_err(|_| {
                BadHypercall(format!(
                    "block arguments at {pa:#x} lie outside guest memory"
                ))
            })?;
        let until = if b.deadline_tsc == 0 || self.tsc_khz == 0 {
            None
        } else {
            let ticks_ahead = b.deadline_tsc.saturating_sub(self.tsc_sample) as u128;
            let ns = (ticks_ahead * 1_000_000 / self.tsc_khz as u128).min(u64::MAX as u128) as u64;
            Some(self.mono_sample + Duration::from_nanos(ns))
        };
        ticks.set(false);
        while !expired.load(Ordering::Relaxed) {
            let now = std::time::Instant::now();
            let nap = match until {
                Some(t) if now >= t => break,
                Some(t) => (t - now).min(Duration::from_millis(100)),
                None => Duration::from_millis(100),
            };
            // A device that has work for the guest wakes it early, and so
            // do stdin when the guest waits for it and a signal for it.
            if crate::host_signals::pending()
                || self.control.asked.load(Ordering::SeqCst)
                || self.wait_for_device(nap, b.flags & BLOCK_WAKE_ON_STDIN != 0)
            {
                break;
            }
        }
        ticks.set(true);
        Ok(())
    }

    /// Sleeps up to `nap` on the device wake-up eventfd (and on stdin when
    /// `stdin`); `true` if woken.
    fn wait_for_device(&self, nap: Duration, stdin: bool) -> bool {
        // The wake-up eventfd: the network thread's, and the signal
        // handler's (crate::host_signals).
        let mut fds = vec![libc::pollfd {
            fd: self.wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if stdin {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let ms = nap.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structures.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if rc <= 0 {
            return false;
        }
        if fds[0].revents != 0 {
            let _ = self.wake.read();
        }
        true
    }

    fn run_loop(&mut self, expired: &AtomicBool, ticks: &TickTimer) -> Result<Outcome> {
        loop {
            if expired.load(Ordering::Relaxed) {
                return Ok(Outcome::TimedOut(self.regs_summary()));
            }
            if self.control.asked.load(Ordering::SeqCst) {
                if let Some(path) = self.serve_snapshot() {
                    return Ok(Outcome::Snapshotted(path));
                }
            }
            let sigs = crate::host_signals::take();
            if sigs != 0 {
                self.post_host_signals(sigs);
            }
            let exit = self.next_exit()?;
            self.control
                .live
                .exits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match exit {
                Exit::Hypercall(nr, _) => {
                    if let Some(n) = self.stats.hypercalls.get_mut(nr as usize) {
                        *n += 1;
                    }
                }
                Exit::Interrupted => self.stats.interrupted += 1,
                _ => {}
            }
            let crash = |s: String| Ok(Outcome::Crashed(s));
            match exit {
                Exit::Hypercall(hc::BLOCK, v) => {
                    if let Err(BadHypercall(m)) = self.block(v as u64, expired, ticks) {
                        return crash(format!("bad hypercall: {m}"));
                    }
                }
                Exit::Hypercall(nr, v) => match self.hypercall(nr, v) {
                    Ok(Some(o)) => return Ok(o),
                    Ok(None) => {}
                    Err(BadHypercall(m)) => return crash(format!("bad hypercall: {m}")),
                },
                Exit::Interrupted => self.maybe_inject_tick(),
                Exit::OtherPortOut(p) => {
                    return crash(format!(
                        "write to unknown I/O port {p:#x} ({})",
                        self.regs_summary()
                    ))
                }
                Exit::PortIn(p) => {
                    return crash(format!(
                        "read from unknown I/O port {p:#x} ({})",
                        self.regs_summary()
                    ))
                }
                Exit::Mmio(a) => {
                    return crash(format!(
                        "access to guest-physical {a:#x}, outside RAM ({})",
                        self.regs_summary()
                    ))
                }
                Exit::Shutdown => {
                    return crash(format!(
                        "triple fault: the vCPU reset itself ({})",
                        self.regs_summary()
                    ))
                }
                Exit::InternalError => {
                    return crash(format!(
                        "KVM internal error (an instruction KVM cannot emulate) ({})",
                        self.regs_summary()
                    ))
                }
                Exit::FailEntry(r) => {
                    return crash(format!("VM entry failed (hardware reason {r:#x})"))
                }
                Exit::Hlt => return crash(format!("the vCPU halted ({})", self.regs_summary())),
                Exit::Other(s) => {
                    return crash(format!("unexpected VM exit {s} ({})", self.regs_summary()))
                }
            }
        }
    }

    /// Serves hypercall `nr`; `Some` ends the VM.
    fn hypercall(
        &mut self,
        nr: u16,
        value: u32,
    ) -> std::result::Result<Option<Outcome>, BadHypercall> {
        let pa = value as u64;
        match nr {
            hc::CONSOLE_WRITE => {
                hypercall::console_write(&self.mem, pa, &mut StdioSink).map(|_| None)
            }
            hc::EXIT => Ok(Some(Outcome::Exited((value & 0xff) as i32))),
            hc::ABORT => hypercall::abort_message(&self.mem, pa).map(|m| Some(Outcome::Aborted(m))),
            hc::FAULT => {
                let report = hypercall::fault_report(&self.mem, pa)?;
                let cr2 = self.vcpu.get_sregs().map(|s| s.cr2).unwrap_or(0);
                Ok(Some(Outcome::Fault(GuestFault { report, cr2 })))
            }
            hc::TLB_FLUSH => {
                // Changing CR4.PGE makes KVM drop every cached translation.
                let mut s = self
                    .vcpu
                    .get_sregs()
                    .map_err(|e| BadHypercall(format!("get sregs: {e}")))?;
                let orig = s.cr4;
                s.cr4 ^= CR4_PGE;
                self.vcpu
                    .set_sregs(&s)
                    .map_err(|e| BadHypercall(format!("set sregs: {e}")))?;
                s.cr4 = orig;
                self.vcpu
                    .set_sregs(&s)
                    .map_err(|e| BadHypercall(format!("set sregs: {e}")))?;
                Ok(None)
            }
            hc::RELEASE => hypercall::release(&self.mem, pa).map(|_| None),
            hc::CONSOLE_READ => crate::stdio::console_read(&self.mem, pa).map(|_| None),
            hc::VOLUME => self.volumes.serve(&self.mem, pa).map(|_| None),
            hc::NET_KICK => {
                // Without a device the kick is a harmless no-op.
                if let Some(n) = &self.net {
                    let _ = n.doorbell().write(1);
                }
                Ok(None)
            }
            _ => Err(BadHypercall(format!("unknown hypercall {nr}"))),
        }
    }
}

/// Interrupts the vCPU thread when the timeout expires.
struct Watchdog {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(timeout: Duration, expired: Arc<AtomicBool>) -> Result<Watchdog> {
        vmm_sys_util::signal::register_signal_handler(kick_signal(), kick).map_err(|e| {
            Error::Io(
                "install timeout signal handler",
                std::io::Error::from_raw_os_error(e.errno()),
            )
        })?;
        // SAFETY: pthread_self has no preconditions.
        let target = unsafe { libc::pthread_self() };
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let thread = std::thread::Builder::new()
            .name("volt-watchdog".into())
            .spawn(move || {
                let deadline = std::time::Instant::now() + timeout;
                while !d.load(Ordering::Relaxed) {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        expired.store(true, Ordering::Relaxed);
                        // SAFETY: `target` is the vCPU thread, alive until
                        // `done` is set (the Watchdog is dropped before it exits).
                        unsafe { libc::pthread_kill(target, kick_signal()) };
                        std::thread::sleep(Duration::from_millis(5));
                    } else {
                        std::thread::park_timeout((deadline - now).min(Duration::from_millis(50)));
                    }
                }
            })
            .map_err(|e| Error::Io("start the timeout thread", e))?;
        Ok(Watchdog {
            done,
            thread: Some(thread),
        })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
