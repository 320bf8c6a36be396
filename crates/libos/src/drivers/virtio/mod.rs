//! Virtio transport pieces shared by the guest's device drivers.

pub mod split;

pub use split::{QueueFull, SplitLayout, SplitQueue};
