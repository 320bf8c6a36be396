//! The network: smoltcp over any [`NetDevice`](crate::drivers::net::NetDevice),
//! the in-guest loopback, the SYN gate, and the TCP and UDP sockets.

pub mod gate;
pub mod phy;
pub mod stack;
pub mod tcp;
pub mod udp;

pub use phy::{LoopDevice, StackDevice};

#[cfg(test)]
mod tests;
