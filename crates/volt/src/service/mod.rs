//! Services: replicas of one image behind voltd's load balancer, with
//! scale-to-zero, autoscaling, names on their network and rolling updates.
//! The spec and the records live here (voltd and the CLI share them); the
//! balancer and the controller are voltd's (`crates/voltd/src/service`).
pub mod cli;
pub mod spec;
pub mod store;

pub use spec::{Plan, Spec};
