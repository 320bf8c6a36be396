//! Device models the monitor serves to the guest. Each keeps its state in
//! plain structs (snapshots will need them) and reaches its host resource
//! through a narrow backend trait.

pub mod net;
pub mod net_worker;
pub mod tap;
