//! Helpers for host unit tests of code with global state (the scheduler,
//! the network stack): one test at a time touches them.
use std::sync::{Mutex, MutexGuard};

static GLOBALS: Mutex<()> = Mutex::new(());

/// Serialises tests that use the library OS's globals, and gives them a
/// fresh scheduler whose running thread is the main thread (tid 1), with a
/// 1 GHz TSC.
pub fn globals() -> MutexGuard<'static, ()> {
    let g = GLOBALS.lock().unwrap_or_else(|e| e.into_inner());
    crate::task::sched::init(0, 1_000_000);
    g
}
