//! Threads and the scheduler: one vCPU, round-robin, preemption by the
//! monitor's timer tick while several threads are runnable, sleeping in the
//! monitor (BLOCK hypercall) when none is.
//!
//! Every thread has its own kernel stack. A system call that must wait marks
//! its thread blocked and returns [`BLOCKED`](crate::errno::BLOCKED); the dispatcher then calls
//! [`schedule`] (holding no lock) and, once the thread is woken, runs the
//! call again, which finds its wake-up reason with [`take_wake`] (restartable
//! system calls: no borrow of the kernel state is held across a switch).
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use optivolt_abi::hypercall::{self as hc, Block};
use spin::Mutex;

use crate::arch::cpu::rdtsc;
use crate::arch::entry::{ov_switch_to, thread_stack, SyscallFrame};
use crate::arch::hypercall;

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
enum State {
    Runnable,
    Blocked,
    Dead,
}

/// A thread.
pub struct Thread {
    /// Thread id (the main thread is 1, the process id).
    pub tid: u32,
    state: State,
    /// Owns the kernel stack (dropped when the thread is reaped).
    _kstack: Option<Box<[u128]>>,
    kstack_top: u64,
    ksp: u64,
    fs_base: u64,
    /// CLONE_CHILD_CLEARTID / set_tid_address.
    pub clear_child_tid: u64,
    wake: Option<Wake>,
    deadline: Option<u64>,
    /// Futex the thread waits on, with its bitset.
    futex: Option<(u64, u32)>,
    /// Signal mask.
    pub sigmask: u64,
    /// Signals sent to this thread and not yet delivered.
    pub pending: u64,
    /// sigaltstack(2) state.
    pub altstack: crate::task::process::SigAltStack,
    /// Waiting for any file to change state (poll, epoll, pipes).
    io_wait: bool,
    /// Deadline of the system call in progress, kept across restarts.
    pending_deadline: Option<u64>,
    /// TSC ticks spent running, up to the last switch.
    cpu: u64,
}

/// The scheduler state.
pub struct Scheduler {
    threads: BTreeMap<u32, Box<Thread>>,
    run_queue: VecDeque<u32>,
    current: u32,
    next_tid: u32,
    futexes: BTreeMap<u64, VecDeque<u32>>,
    zombies: Vec<u32>,
    tsc_khz: u64,
    /// Armed timerfds: id → next expiry (TSC). When one passes, the threads
    /// waiting for I/O re-check.
    timers: BTreeMap<u64, u64>,
    /// When the running thread was last switched in (or woke from idle).
    since: u64,
    /// CPU time of exited threads.
    dead_cpu: u64,
    /// Runs before the vCPU sleeps (the network stack, registered at boot).
    idle: Option<IdleHook>,
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
    fn new(tid: u32, kstack: Option<Box<[u128]>>, kstack_top: u64, ksp: u64) -> Self {
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
    });
}

fn with<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
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

/// Takes the running thread's wake-up reason (set when it was woken).
pub fn take_wake() -> Option<Wake> {
    with_current(|t| t.wake.take())
}

fn publish_want_tick(s: &Scheduler) {
    // Ticks are needed to share the CPU, and to notice a sleeper's deadline
    // while another thread computes without making system calls.
    let want = !s.run_queue.is_empty()
        || s.threads
            .values()
            .any(|t| t.state == State::Blocked && t.deadline.is_some());
    // SAFETY: BootInfo lives at a fixed physmap address for the VM's life;
    // the monitor only reads this field.
    unsafe { (*crate::arch::boot_info_ptr()).sched.want_tick = want as u32 };
}

impl Scheduler {
    fn make_runnable(&mut self, tid: u32, why: Wake) {
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

    fn wake_expired(&mut self, now: u64) {
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

    fn earliest_deadline(&self) -> Option<u64> {
        let threads = self
            .threads
            .values()
            .filter(|t| t.state == State::Blocked)
            .filter_map(|t| t.deadline)
            .min();
        let timers = self.timers.values().copied().min();
        match (threads, timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn fire_timers(&mut self, now: u64) {
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

/// Creates a thread whose first run returns to user mode with `frame`.
pub fn spawn(
    frame: &SyscallFrame,
    fs_base: u64,
    clear_child_tid: u64,
    sigmask: u64,
) -> Result<u32, i64> {
    let mut stack: Box<[u128]> = alloc::vec![0u128; KSTACK_SIZE / 16].into_boxed_slice();
    let top = stack.as_mut_ptr() as u64 + KSTACK_SIZE as u64;
    // SAFETY: `stack` is a fresh, 16-byte aligned allocation of KSTACK_SIZE bytes.
    let ksp = unsafe { thread_stack(top, frame) };
    with(|s| {
        let tid = s.next_tid;
        s.next_tid += 1;
        let t = Thread {
            fs_base,
            clear_child_tid,
            sigmask,
            ..Thread::new(tid, Some(stack), top, ksp)
        };
        s.threads.insert(tid, Box::new(t));
        s.run_queue.push_back(tid);
        publish_want_tick(s);
        Ok(tid)
    })
}

/// Ends the running thread (its stack is freed by the next thread to run).
pub fn exit_current() -> ! {
    with(|s| {
        let c = s.current;
        if let Some(t) = s.threads.get_mut(&c) {
            t.state = State::Dead;
        }
        s.zombies.push(c);
    });
    schedule();
    crate::arch::hypercall::abort(b"a dead thread was scheduled")
}

/// Puts the running thread at the back of the run queue and runs another.
pub fn yield_now() {
    with(|s| {
        let c = s.current;
        if s.threads
            .get(&c)
            .is_some_and(|t| t.state == State::Runnable)
            && !s.run_queue.is_empty()
        {
            s.run_queue.push_back(c);
        }
    });
    schedule();
}

/// Called by a new thread on its first run.
#[no_mangle]
extern "C" fn ov_thread_started() {
    reap();
}

fn reap() {
    let dead: Vec<Box<Thread>> = with(|s| {
        let c = s.current;
        let z: Vec<u32> = s.zombies.iter().copied().filter(|&t| t != c).collect();
        s.zombies.retain(|&t| t == c);
        let gone: Vec<Box<Thread>> = z.iter().filter_map(|t| s.threads.remove(t)).collect();
        s.dead_cpu += gone.iter().map(|t| t.cpu).sum::<u64>();
        gone
    });
    drop(dead); // frees kernel stacks outside the lock
}

/// Runs the next runnable thread (round robin); sleeps in the monitor while
/// none is. Returns when the calling thread is chosen again.
pub fn schedule() {
    loop {
        let now = rdtsc();
        let step = with(|s| {
            s.wake_expired(now);
            s.fire_timers(now);
            let prev = s.current;
            let prev_runnable = s
                .threads
                .get(&prev)
                .is_some_and(|t| t.state == State::Runnable);
            let next = match s.run_queue.pop_front() {
                Some(n) => n,
                None if prev_runnable => {
                    publish_want_tick(s);
                    return Step::Stay;
                }
                None => {
                    // The CPU goes idle: charge the time so far to the thread.
                    let since = core::mem::replace(&mut s.since, now);
                    if let Some(t) = s.threads.get_mut(&prev) {
                        t.cpu += now.saturating_sub(since);
                    }
                    return Step::Idle(s.earliest_deadline());
                }
            };
            if next == prev {
                publish_want_tick(s);
                return Step::Stay;
            }
            if prev_runnable && !s.run_queue.contains(&prev) {
                // Preempted or yielding: it goes to the back.
                s.run_queue.push_back(prev);
            }
            let fs_now = crate::arch::cpu::fs_base();
            let since = core::mem::replace(&mut s.since, now);
            let prev_ksp: *mut u64 = match s.threads.get_mut(&prev) {
                Some(t) => {
                    t.fs_base = fs_now;
                    t.cpu += now.saturating_sub(since);
                    &mut t.ksp
                }
                None => core::ptr::null_mut(),
            };
            let Some(n) = s.threads.get(&next) else {
                return Step::Stay;
            };
            let (next_ksp, next_top, next_fs) = (n.ksp, n.kstack_top, n.fs_base);
            s.current = next;
            publish_want_tick(s);
            Step::Switch(prev_ksp, next_ksp, next_top, next_fs)
        });
        match step {
            Step::Stay => return,
            Step::Idle(deadline) => {
                // The network stack runs here; with work pending, no sleep.
                let idle = with(|s| s.idle);
                let Some(deadline) = idle.map_or(Some(deadline), |hook| hook(deadline)) else {
                    continue;
                };
                let mut b = Block {
                    deadline_tsc: deadline.unwrap_or(0),
                };
                hypercall::call_with(hc::BLOCK, &mut b);
                // Time asleep in the monitor is nobody's CPU time.
                with(|s| s.since = rdtsc());
            }
            Step::Switch(prev_ksp, next_ksp, next_top, next_fs) => {
                if prev_ksp.is_null() {
                    crate::arch::hypercall::abort(b"switch from a missing thread");
                }
                crate::arch::cpu::set_fs_base(next_fs);
                // SAFETY: single vCPU; the global is read only by the entry
                // code of the thread that runs next.
                unsafe { crate::arch::entry::ov_syscall_stack_top = next_top };
                // SAFETY: `prev_ksp` points into a boxed Thread that stays in
                // the map until it is reaped (never while it is switched out
                // and alive); `next_ksp` was saved by ov_switch_to or built by
                // thread_stack.
                unsafe { ov_switch_to(prev_ksp, next_ksp) };
                reap();
                return;
            }
        }
    }
}

enum Step {
    Stay,
    Idle(Option<u64>),
    Switch(*mut u64, u64, u64, u64),
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
        let Some(t) = s.threads.get_mut(&tid) else {
            return false;
        };
        if t.state == State::Dead {
            return false;
        }
        let bit = 1u64 << (sig - 1);
        t.pending |= bit;
        let interrupt = t.state == State::Blocked && t.sigmask & bit == 0;
        if interrupt {
            s.make_runnable(tid, Wake::Signal);
        }
        publish_want_tick(s);
        true
    })
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
    with(|s| {
        let bit = 1u64 << (sig - 1);
        s.threads
            .values()
            .filter(|t| t.state != State::Dead)
            .find(|t| t.sigmask & bit == 0)
            .map(|t| t.tid)
    })
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
