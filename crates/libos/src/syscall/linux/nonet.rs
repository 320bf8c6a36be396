//! The socket calls of a library OS built without the `net` feature: no
//! address family exists, and no descriptor is a socket (socket pairs are
//! AF_UNIX and do not take these calls, as before).
use crate::errno::*;
use crate::kernel::Kernel;

/// socket(2): no address family (as Linux without CONFIG_INET).
pub fn socket() -> SysResult {
    Err(EAFNOSUPPORT)
}

/// A socket call on descriptor `fd`: EBADF if it is not open, else ENOTSOCK.
pub fn not_a_socket(k: &Kernel, fd: u64) -> SysResult {
    k.fds.file(fd)?;
    Err(ENOTSOCK)
}
