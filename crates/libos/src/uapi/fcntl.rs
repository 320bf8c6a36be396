//! Open flags and the `*at()` conventions (`<fcntl.h>`).

/// The current directory as a `dirfd`.
pub const AT_FDCWD: i32 = -100;
/// Do not follow a final symlink.
pub const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
/// unlinkat: remove a directory.
pub const AT_REMOVEDIR: u64 = 0x200;
/// The descriptor itself when the path is empty.
pub const AT_EMPTY_PATH: u64 = 0x1000;

/// O_ACCMODE.
pub const O_ACCMODE: u32 = 3;
/// O_RDONLY.
pub const O_RDONLY: u32 = 0;
/// O_WRONLY.
pub const O_WRONLY: u32 = 1;
/// O_RDWR.
pub const O_RDWR: u32 = 2;
/// O_CREAT.
pub const O_CREAT: u32 = 0o100;
/// O_EXCL.
pub const O_EXCL: u32 = 0o200;
/// O_NOCTTY.
pub const O_NOCTTY: u32 = 0o400;
/// O_TRUNC.
pub const O_TRUNC: u32 = 0o1000;
/// O_APPEND.
pub const O_APPEND: u32 = 0o2000;
/// O_NONBLOCK.
pub const O_NONBLOCK: u32 = 0o4000;
/// O_DIRECTORY.
pub const O_DIRECTORY: u32 = 0o200000;
/// O_NOFOLLOW.
pub const O_NOFOLLOW: u32 = 0o400000;
/// O_CLOEXEC.
pub const O_CLOEXEC: u32 = 0o2000000;
/// O_PATH.
pub const O_PATH: u32 = 0o10000000;
/// O_TMPFILE (with O_DIRECTORY).
pub const O_TMPFILE: u32 = 0o20000000;
