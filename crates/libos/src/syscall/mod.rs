//! The Linux system-call layer: numbers, what each call does, tracing, the
//! dispatcher and the handlers.
pub mod status;
pub mod table;
pub mod trace;

#[cfg(feature = "guest")]
pub mod dispatch;
#[cfg(feature = "guest")]
pub mod linux;
#[cfg(feature = "guest")]
pub mod patch;
#[cfg(feature = "guest")]
pub mod stats;
