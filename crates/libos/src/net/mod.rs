//! The network: smoltcp over any [`NetDevice`](crate::drivers::net::NetDevice),
//! the in-guest loopback, the SYN gate, and the TCP and UDP sockets.

pub mod gate;
pub mod phy;
#[cfg(feature = "guest")]
pub mod stack;
#[cfg(feature = "guest")]
pub mod tcp;
#[cfg(feature = "guest")]
pub mod udp;

pub use phy::{LoopDevice, StackDevice};
