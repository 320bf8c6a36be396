//! Linux error numbers (returned negated from system calls), and what a
//! system-call handler returns.
#![allow(missing_docs)]

/// What a system-call handler returns: the value, or in `Err` a positive
/// errno or one of the dispatcher's control values below.
pub type SysResult = Result<i64, i64>;

/// Control value: the call queued its thread to wait; the dispatcher switches
/// away and runs the call again when the thread is woken.
pub const BLOCKED: i64 = 1 << 40;
/// Control value: `exit` of one thread; the dispatcher ends the thread.
pub const EXIT_THREAD: i64 = 1 << 41;
/// Control value: `sched_yield`; the dispatcher yields, then returns 0.
pub const YIELD: i64 = 1 << 42;

pub const EPERM: i64 = 1;
pub const ENOENT: i64 = 2;
pub const ESRCH: i64 = 3;
pub const EINTR: i64 = 4;
pub const EIO: i64 = 5;
pub const EBADF: i64 = 9;
pub const ECHILD: i64 = 10;
pub const EAGAIN: i64 = 11;
pub const ENOMEM: i64 = 12;
pub const EACCES: i64 = 13;
pub const EFAULT: i64 = 14;
pub const EEXIST: i64 = 17;
pub const ENOTDIR: i64 = 20;
pub const EISDIR: i64 = 21;
pub const EINVAL: i64 = 22;
pub const EMFILE: i64 = 24;
pub const ENOTTY: i64 = 25;
pub const ESPIPE: i64 = 29;
pub const EROFS: i64 = 30;
pub const EPIPE: i64 = 32;
pub const ERANGE: i64 = 34;
pub const ENAMETOOLONG: i64 = 36;
pub const ENOSYS: i64 = 38;
pub const ENOTEMPTY: i64 = 39;
pub const ENXIO: i64 = 6;
pub const EBUSY: i64 = 16;
pub const EMLINK: i64 = 31;
pub const ELOOP: i64 = 40;
pub const EFBIG: i64 = 27;
pub const ENOSPC: i64 = 28;
pub const EXDEV: i64 = 18;
pub const ENODEV: i64 = 19;
pub const EDEADLK: i64 = 35;
pub const ENOTSOCK: i64 = 88;
pub const EOPNOTSUPP: i64 = 95;
pub const EAFNOSUPPORT: i64 = 97;
pub const EPROTONOSUPPORT: i64 = 93;
pub const ETIMEDOUT: i64 = 110;
pub const EDESTADDRREQ: i64 = 89;
pub const EMSGSIZE: i64 = 90;
pub const EADDRINUSE: i64 = 98;
pub const ENOTCONN: i64 = 107;
pub const EDOM: i64 = 33;
pub const ENOPROTOOPT: i64 = 92;
pub const ESOCKTNOSUPPORT: i64 = 94;
pub const EADDRNOTAVAIL: i64 = 99;
pub const ENETUNREACH: i64 = 101;
pub const ECONNABORTED: i64 = 103;
pub const ECONNRESET: i64 = 104;
pub const EISCONN: i64 = 106;
pub const ECONNREFUSED: i64 = 111;
pub const EALREADY: i64 = 114;
pub const EINPROGRESS: i64 = 115;

/// The symbolic name of an errno, for traces.
pub fn name(e: i64) -> &'static str {
    match e {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        EIO => "EIO",
        EBADF => "EBADF",
        ECHILD => "ECHILD",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EEXIST => "EEXIST",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        EMFILE => "EMFILE",
        ENOTTY => "ENOTTY",
        ESPIPE => "ESPIPE",
        EROFS => "EROFS",
        EPIPE => "EPIPE",
        ERANGE => "ERANGE",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        ETIMEDOUT => "ETIMEDOUT",
        ENOTEMPTY => "ENOTEMPTY",
        ENXIO => "ENXIO",
        EBUSY => "EBUSY",
        EMLINK => "EMLINK",
        ELOOP => "ELOOP",
        EFBIG => "EFBIG",
        ENOSPC => "ENOSPC",
        EXDEV => "EXDEV",
        ENODEV => "ENODEV",
        EDEADLK => "EDEADLK",
        ENOTSOCK => "ENOTSOCK",
        EOPNOTSUPP => "EOPNOTSUPP",
        EAFNOSUPPORT => "EAFNOSUPPORT",
        EDESTADDRREQ => "EDESTADDRREQ",
        EMSGSIZE => "EMSGSIZE",
        EADDRINUSE => "EADDRINUSE",
        ENOTCONN => "ENOTCONN",
        EPROTONOSUPPORT => "EPROTONOSUPPORT",
        EDOM => "EDOM",
        ENOPROTOOPT => "ENOPROTOOPT",
        ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        EADDRNOTAVAIL => "EADDRNOTAVAIL",
        ENETUNREACH => "ENETUNREACH",
        ECONNABORTED => "ECONNABORTED",
        ECONNRESET => "ECONNRESET",
        EISCONN => "EISCONN",
        ECONNREFUSED => "ECONNREFUSED",
        EALREADY => "EALREADY",
        EINPROGRESS => "EINPROGRESS",
        _ => "E?",
    }
}
