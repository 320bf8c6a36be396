//! Device drivers of the library OS. They talk to the monitor's devices
//! through shared memory and know nothing of the stacks above them.

pub mod console;
#[cfg(feature = "net")]
pub mod net;
pub mod virtio;
