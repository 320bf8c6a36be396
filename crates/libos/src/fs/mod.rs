//! File systems: the cpio reader and the in-memory VFS that the rootfs is
//! unpacked into (writable everywhere, like a tmpfs over the image).
pub mod cpio;
pub mod cpuinfo;
pub mod path;
pub mod special;
pub mod vfs;
