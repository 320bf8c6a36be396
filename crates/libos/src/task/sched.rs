//! Threads and the scheduler: one vCPU, round-robin, preemption by the
//! monitor's timer tick while several threads are runnable, sleeping in the
//! monitor (BLOCK hypercall) when none is.
//!
//! Every thread has its own kernel stack. A system call that must wait marks
//! its thread blocked and returns [`BLOCKED`](crate::errno::BLOCKED); the dispatcher then calls
//! [`schedule`] (holding no lock) and, once the thread is woken, runs the
//! call again, which finds its wake-up reason with [`take_wake`] (restartable
//! system calls: no borrow of the kernel state is held across a switch).
// Switching threads (task::switch) is guest-only; the host build unit-tests
// the queues, so some of what only switching reads is unused there.
#![cfg_attr(not(feature = "guest"), allow(dead_code))]

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use spin::Mutex;

use crate::arch::cpu::rdtsc;

#[cfg(feature = "guest")]
pub use super::switch::{exit_current, schedule, spawn, yield_now};

/// Size of a thread's kernel stack.
pub const KSTACK_SIZE: usize = 32 * 1024;

/// Why a blocked thread runs again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Woken by an event (futex wake, data arrived, …).
    Event,
    /// Its deadline passed.
    Timeout,
    /// A signal arrived: the system call ends with EINTR.
    Signal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    Runnable,
    Blocked,
    Dead,
}

/// A thread.
pub struct Thread {
    /// Thread id (the main thread is 1, the process id).
    pub tid: u32,
    pub(super) state: State,
    /// Owns the kernel stack (dropped when the thread is reaped).
    pub(super) _kstack: Option<Box<[u128]>>,
    pub(super) kstack_top: u64,
    pub(super) ksp: u64,
    pub(super) fs_base: u64,
    /// CLONE_CHILD_CLEARTID / set_tid_address.
    pub clear_child_tid: u64,
    pub(super) wake: Option<Wake>,
    pub(super) deadline: Option<u64>,
    /// Futex the thread waits on, with its bitset.
    pub(super) futex: Option<(u64, u32)>,
    /// Signal mask.
    pub sigmask: u64,
    /// Signals sent to this thread and not yet delivered.
    pub pending: u64,
    /// sigaltstack(2) state.
    pub altstack: crate::task::process::SigAltStack,
    /// Waiting for any file to change state (poll, epoll, pipes).
    pub(super) io_wait: bool,
    /// Deadline of the system call in progress, kept across restarts.
    pub(super) pending_deadline: Option<u64>,
    /// TSC ticks spent running, up to the last switch.
    pub(super) cpu: u64,
}

/// The scheduler state.
pub struct Scheduler {
    pub(super) threads: BTreeMap<u32, Box<Thread>>,
    pub(super) run_queue: VecDeque<u32>,
    pub(super) current: u32,
    pub(super) next_tid: u32,
    pub(super) futexes: BTreeMap<u64, VecDeque<u32>>,
    pub(super) zombies: Vec<u32>,
    pub(super) tsc_khz: u64,
    /// Armed timerfds: id → next expiry (TSC). When one passes, the threads
    /// waiting for I/O re-check.
    pub(super) timers: BTreeMap<u64, u64>,
    /// When the running thread was last switched in (or woke from idle).
    pub(super) since: u64,
    /// CPU time of exited threads.
    pub(super) dead_cpu: u64,
    /// Runs before the vCPU sleeps (the network stack, registered at boot).
    pub(super) idle: Option<IdleHook>,
    /// setitimer(ITIMER_REAL) / alarm.
    pub(super) real_timer: super::itimer::RealTimer,
    /// A thread waits for the host's stdin: sleeping in the monitor, wake
    /// when it becomes readable.
    pub(super) stdin_wanted: bool,
}

/// What the scheduler calls when nothing can run, with the earliest
/// deadline: `None` when the hook found work (look at the threads again),
/// or the deadline to sleep until (the hook may bring it forward).
pub type IdleHook = fn(Option<u64>) -> Option<Option<u64>>;

/// Registers the idle hook (boot, once the devices are up).
pub fn set_idle_hook(hook: IdleHook) {
    with(|s| s.idle = Some(hook));
}

static SCHED: Mutex<Option<Scheduler>> = Mutex::new(None);

impl Thread {
    /// A runnable thread with nothing pending, no alternate signal stack and
    /// no CPU time yet.
    pub(super) fn new(tid: u32, kstack: Option<Box<[u128]>>, kstack_top: u64, ksp: u64) -> Self {
        Thread {
            tid,
            state: State::Runnable,
            _kstack: kstack,
            kstack_top,
            ksp,
            fs_base: 0,
            clear_child_tid: 0,
            wake: None,
            deadline: None,
            futex: None,
            sigmask: 0,
            pending: 0,
            altstack: crate::task::process::SigAltStack {
                flags: crate::task::process::SS_DISABLE,
                ..Default::default()
            },
            io_wait: false,
            pending_deadline: None,
            cpu: 0,
        }
    }
}

/// Sets up the scheduler with the main thread (tid 1) running on the boot stack.
pub fn init(boot_stack_top: u64, tsc_khz: u64) {
    let main = Thread::new(1, None, boot_stack_top, 0);
    let mut threads = BTreeMap::new();
    threads.insert(1, Box::new(main));
    *SCHED.lock() = Some(Scheduler {
        threads,
        run_queue: VecDeque::new(),
        current: 1,
        next_tid: 2,
        futexes: BTreeMap::new(),
        zombies: Vec::new(),
        tsc_khz,
        timers: BTreeMap::new(),
        since: rdtsc(),
        dead_cpu: 0,
        idle: None,
        real_timer: Default::default(),
        stdin_wanted: false,
    });
}

pub(super) fn with<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
    let mut g = SCHED.lock();
    match g.as_mut() {
        Some(s) => f(s),
        None => crate::arch::hypercall::abort(b"scheduler used before initialisation"),
    }
}

/// The running thread's id.
pub fn current_tid() -> u32 {
    with(|s| s.current)
}

/// Runs `f` on the running thread.
pub fn with_current<R>(f: impl FnOnce(&mut Thread) -> R) -> R {
    with(|s| {
        let c = s.current;
        match s.threads.get_mut(&c) {
            Some(t) => f(t),
            None => crate::arch::hypercall::abort(b"current thread missing"),
        }
    })
}

/// Number of live threads.
pub fn thread_count() -> usize {
    with(|s| {
        s.threads
            .values()
            .filter(|t| t.state != State::Dead)
            .count()
    })
}

/// Whether a preemption tick came while the library OS ran (the monitor
/// never interrupts it): the caller, at the end of a system call, yields.
/// Clears the mark.
pub fn take_missed_tick() -> bool {
    if cfg!(not(feature = "guest")) {
        return false;
    }
    // SAFETY: BootInfo lives at a fixed physmap address for the VM's life;
    // the monitor sets this word only while the vCPU is out of the guest.
    unsafe {
        let s = core::ptr::addr_of_mut!((*crate::arch::boot_info_ptr()).sched.tick_missed);
        if s.read_volatile() == 0 {
            return false;
        }
        s.write_volatile(0);
    }
    true
}

/// Takes the running thread's wake-up reason (set when it was woken).
pub fn take_wake() -> Option<Wake> {
    with_current(|t| t.wake.take())
}

pub(super) fn publish_want_tick(s: &Scheduler) {
    // Ticks are needed to share the CPU, and to notice a sleeper's deadline
    // while another thread computes without making system calls.
    let want = !s.run_queue.is_empty()
        || s.threads
            .values()
            .any(|t| t.state == State::Blocked && t.deadline.is_some())
        || s.real_timer.next.is_some();
    if cfg!(not(feature = "guest")) {
        return; // host unit tests: no BootInfo
    }
    // SAFETY: BootInfo lives at a fixed physmap address for the VM's life;
    // the monitor only reads this field.
    unsafe { (*crate::arch::boot_info_ptr()).sched.want_tick = want as u32 };
}

impl Scheduler {
    pub(super) fn make_runnable(&mut self, tid: u32, why: Wake) {
        if let Some(t) = self.threads.get_mut(&tid) {
            if t.state == State::Blocked {
                t.state = State::Runnable;
                t.wake = Some(why);
                t.deadline = None;
                t.io_wait = false;
                if let Some((key, _)) = t.futex.take() {
                    if let Some(q) = self.futexes.get_mut(&key) {
                        q.retain(|&x| x != tid);
                        if q.is_empty() {
                            self.futexes.remove(&key);
                        }
                    }
                }
                self.run_queue.push_back(tid);
            }
        }
    }

    pub(super) fn wake_expired(&mut self, now: u64) {
        let due: Vec<u32> = self
            .threads
            .values()
            .filter(|t| t.state == State::Blocked && t.deadline.is_some_and(|d| d <= now))
            .map(|t| t.tid)
            .collect();
        for tid in due {
            self.make_runnable(tid, Wake::Timeout);
        }
    }

    pub(super) fn earliest_deadline(&self) -> Option<u64> {
        let threads = self
            .threads
            .values()
            .filter(|t| t.state == State::Blocked)
            .filter_map(|t| t.deadline)
            .min();
        let timers = self.timers.values().copied().min();
        [threads, timers, self.real_timer.next]
            .into_iter()
            .flatten()
            .min()
    }

    pub(super) fn fire_timers(&mut self, now: u64) {
        let due: Vec<u64> = self
            .timers
            .iter()
            .filter(|(_, &d)| d <= now)
            .map(|(&id, _)| id)
            .collect();
        if due.is_empty() {
            return;
        }
        for id in due {
            self.timers.remove(&id);
        }
        let waiters: Vec<u32> = self
            .threads
            .values()
            .filter(|t| t.state == State::Blocked && t.io_wait)
            .map(|t| t.tid)
            .collect();
        for tid in waiters {
            self.make_runnable(tid, Wake::Event);
        }
    }
}

/// Marks the running thread blocked until an event or `deadline` (TSC).
/// The caller returns [`BLOCKED`](crate::errno::BLOCKED) and the dispatcher switches away.
pub fn block_current(deadline: Option<u64>) {
    with(|s| {
        let c = s.current;
        if let Some(t) = s.threads.get_mut(&c) {
            t.state = State::Blocked;
            t.deadline = deadline;
            t.wake = None;
        }
        publish_want_tick(s);
    })
}

/// Blocks the running thread on futex `key` (with a bitset).
pub fn block_on_futex(key: u64, bitset: u32, deadline: Option<u64>) {
    with(|s| {
        let c = s.current;
        if let Some(t) = s.threads.get_mut(&c) {
            t.state = State::Blocked;
            t.deadline = deadline;
            t.wake = None;
            t.futex = Some((key, bitset));
        }
        s.futexes.entry(key).or_default().push_back(c);
        publish_want_tick(s);
    })
}

/// Wakes up to `n` waiters of futex `key` whose bitset intersects `bitset`.
pub fn futex_wake(key: u64, n: u32, bitset: u32) -> u32 {
    with(|s| {
        let waiters: Vec<u32> = match s.futexes.get(&key) {
            Some(q) => q
                .iter()
                .copied()
                .filter(|tid| {
                    s.threads
                        .get(tid)
                        .and_then(|t| t.futex)
                        .is_some_and(|(_, b)| b & bitset != 0)
                })
                .take(n as usize)
                .collect(),
            None => Vec::new(),
        };
        for &tid in &waiters {
            s.make_runnable(tid, Wake::Event);
        }
        publish_want_tick(s);
        waiters.len() as u32
    })
}

/// Moves up to `n` waiters from futex `from` to futex `to` (FUTEX_REQUEUE).
pub fn futex_requeue(from: u64, to: u64, n: u32) -> u32 {
    with(|s| {
        let mut moved = 0;
        while moved < n {
            let Some(tid) = s.futexes.get_mut(&from).and_then(|q| q.pop_front()) else {
                break;
            };
            if let Some(t) = s.threads.get_mut(&tid) {
                if let Some((_, b)) = t.futex {
                    t.futex = Some((to, b));
                }
            }
            s.futexes.entry(to).or_default().push_back(tid);
            moved += 1;
        }
        if s.futexes.get(&from).is_some_and(|q| q.is_empty()) {
            s.futexes.remove(&from);
        }
        moved
    })
}

/// Wakes a thread blocked without a futex (e.g. a sleeping reader).
pub fn wake(tid: u32) {
    with(|s| {
        s.make_runnable(tid, Wake::Event);
        publish_want_tick(s);
    })
}

/// TSC ticks for `ns` nanoseconds.
pub fn ns_to_tsc(ns: u64) -> u64 {
    let khz = with(|s| s.tsc_khz);
    crate::time::ns_to_ticks(ns, khz)
}

/// Whether thread `tid` exists and has not exited.
pub fn thread_exists(tid: u32) -> bool {
    with(|s| s.threads.get(&tid).is_some_and(|t| t.state != State::Dead))
}

/// Blocks the running thread until some file changes state or `deadline`.
pub fn block_io(deadline: Option<u64>) {
    with(|s| {
        let c = s.current;
        if let Some(t) = s.threads.get_mut(&c) {
            t.state = State::Blocked;
            t.deadline = deadline;
            t.wake = None;
            t.io_wait = true;
        }
        publish_want_tick(s);
    })
}

/// Someone waits for the host's stdin to become readable (a blocked read,
/// or a poll that found it empty): the next sleep in the monitor also ends
/// when it does.
pub fn note_stdin_wanted() {
    with(|s| s.stdin_wanted = true);
}

/// A file changed state: every thread waiting for I/O re-checks.
pub fn io_event() {
    with(|s| {
        let waiters: Vec<u32> = s
            .threads
            .values()
            .filter(|t| t.state == State::Blocked && t.io_wait)
            .map(|t| t.tid)
            .collect();
        for tid in waiters {
            s.make_runnable(tid, Wake::Event);
        }
        publish_want_tick(s);
    })
}

/// The deadline of the system call in progress: computed by `first` on the
/// first attempt, the same on every restart.
pub fn call_deadline(first: impl FnOnce() -> Option<u64>) -> Option<u64> {
    let saved = with_current(|t| t.pending_deadline);
    if saved.is_some() {
        return saved;
    }
    let d = first();
    with_current(|t| t.pending_deadline = d);
    d
}

/// The system call in progress completed: its deadline and any wake-up
/// reason it did not look at go with it (a stale `Timeout` would make the
/// thread's next blocking call return at once).
pub fn call_done() {
    with_current(|t| {
        t.pending_deadline = None;
        t.wake = None;
    });
}

/// Marks `sig` pending for thread `tid`; a blocked thread is interrupted
/// unless it blocks the signal. False if the thread does not exist.
pub fn send_signal(tid: u32, sig: u32) -> bool {
    with(|s| {
        let sent = s.post_signal(tid, sig);
        publish_want_tick(s);
        sent
    })
}

impl Scheduler {
    pub(super) fn post_signal(&mut self, tid: u32, sig: u32) -> bool {
        let Some(t) = self.threads.get_mut(&tid) else {
            return false;
        };
        if t.state == State::Dead {
            return false;
        }
        let bit = 1u64 << (sig - 1);
        t.pending |= bit;
        let interrupt = t.state == State::Blocked && t.sigmask & bit == 0;
        if interrupt {
            self.make_runnable(tid, Wake::Signal);
        }
        true
    }

    pub(super) fn thread_for_signal(&self, sig: u32) -> Option<u32> {
        let bit = 1u64 << (sig - 1);
        self.threads
            .values()
            .filter(|t| t.state != State::Dead)
            .find(|t| t.sigmask & bit == 0)
            .map(|t| t.tid)
    }
}

/// Takes the lowest pending, unblocked signal of the running thread.
pub fn take_signal() -> Option<u32> {
    with_current(|t| {
        let ready = t.pending & !t.sigmask;
        if ready == 0 {
            return None;
        }
        let sig = ready.trailing_zeros() + 1;
        t.pending &= !(1u64 << (sig - 1));
        Some(sig)
    })
}

/// Whether the running thread has a signal it does not block pending.
pub fn signal_ready() -> bool {
    with_current(|t| t.pending & !t.sigmask != 0)
}

/// Whether the running thread was woken by a signal (consumes the reason).
pub fn interrupted() -> bool {
    with_current(|t| {
        if t.wake == Some(Wake::Signal) {
            t.wake = None;
            true
        } else {
            false
        }
    })
}

/// The first thread that does not block `sig` (for process-directed signals).
pub fn thread_for_signal(sig: u32) -> Option<u32> {
    with(|s| s.thread_for_signal(sig))
}

/// Arms (or with `None` disarms) the wake-up of timer `id` at `deadline`.
pub fn set_timer(id: u64, deadline: Option<u64>) {
    with(|s| {
        match deadline {
            Some(d) => s.timers.insert(id, d),
            None => s.timers.remove(&id),
        };
        publish_want_tick(s);
    })
}

/// CPU time in TSC ticks: of the running thread, or of the whole process.
pub fn cpu_ticks(process: bool) -> u64 {
    let now = rdtsc();
    with(|s| {
        let running = now.saturating_sub(s.since);
        let cur = s.threads.get(&s.current).map(|t| t.cpu).unwrap_or(0) + running;
        if process {
            s.dead_cpu
                + s.threads
                    .iter()
                    .filter(|(&tid, _)| tid != s.current)
                    .map(|(_, t)| t.cpu)
                    .sum::<u64>()
                + cur
        } else {
            cur
        }
    })
}

/// The lowest pending, unblocked signal of the running thread (not taken).
pub fn peek_signal() -> Option<u32> {
    with_current(|t| {
        let ready = t.pending & !t.sigmask;
        (ready != 0).then(|| ready.trailing_zeros() + 1)
    })
}
