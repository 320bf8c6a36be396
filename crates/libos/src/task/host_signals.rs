//! Signals from the host: what `volt run` itself received (SIGTERM from
//! `volt stop`, SIGINT from a terminal…), which the monitor leaves in
//! `SchedShared::host_signals`. They reach the program at the next
//! scheduling point as if the process had been sent them with `kill`; the
//! monitor makes sure one comes soon (a tick, or the end of the system call
//! in progress).
use super::sched::Scheduler;

/// Takes the signals the host sent, clearing them; bit N is signal N.
fn take() -> u32 {
    // SAFETY: BootInfo lives at a fixed physmap address for the VM's life;
    // the monitor sets this word only while the vCPU is out of the guest,
    // so this read and clear cannot race with it.
    unsafe {
        let s = core::ptr::addr_of_mut!((*crate::arch::boot_info_ptr()).sched.host_signals);
        let v = s.read_volatile();
        if v != 0 {
            s.write_volatile(0);
        }
        v
    }
}

impl Scheduler {
    /// Sends the program the signals the host sent.
    pub(super) fn take_host_signals(&mut self) {
        let mut set = take();
        while set != 0 {
            let sig = set.trailing_zeros();
            set &= set - 1;
            if (1..32).contains(&sig) {
                let tid = self.thread_for_signal(sig).unwrap_or(self.current);
                self.post_signal(tid, sig);
            }
        }
    }
}
