//! Tasks: the scheduler (threads, futexes, timers, idle), the process's
//! signal actions and the delivery of signals into a user context.
#[cfg(feature = "guest")]
mod host_signals;
pub mod itimer;
pub mod process;
pub mod sched;
pub mod signal;
#[cfg(feature = "guest")]
pub mod switch;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
