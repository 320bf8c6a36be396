//! The TCP/IP stack's side of the network: smoltcp over any
//! [`NetDevice`](crate::drivers::net::NetDevice).

pub mod gate;
pub mod phy;

pub use phy::{LoopDevice, StackDevice};
