//! File systems. For now: the read-only rootfs in cpio `newc` format.
pub mod cpio;
