//! Loading the application: ELF segments and the initial process stack.
//! Planning (where each segment goes) is shared with the monitor in
//! `optivolt_abi::elf`.
pub mod stack;

pub use optivolt_abi::elf::{plan, segment_prot, LoadPlan};
