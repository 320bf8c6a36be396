//! File systems: the cpio reader and the in-memory VFS that the rootfs is
//! unpacked into (writable everywhere, like a tmpfs over the image), and
//! volumes: host directories mounted in it, served by the monitor.
pub mod cpio;
pub mod cpuinfo;
pub mod path;
pub mod resolve;
pub mod special;
pub mod vfs;
pub mod volume;
