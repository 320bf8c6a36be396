//! setsockopt(2)/getsockopt(2) for AF_INET sockets: the options Go, Rust
//! std, tokio and common C servers set (SO_RCVTIMEO/SO_SNDTIMEO limit how
//! long calls block, as Rust std's `set_read_timeout` expects). Options that only tune Linux's own
//! machinery (TOS, quick ACKs, congestion control…) are accepted and have
//! no effect; unknown ones fail with `ENOPROTOOPT` as on Linux.

use crate::errno::*;
use crate::kernel::Kernel;
use crate::net::tcp::{self, MAX_BUFFER, MIN_BUFFER};
use crate::net::udp;
use crate::syscall::linux::socket::{lookup, Inet};

const SOL_SOCKET: u64 = 1;
const IPPROTO_IP: u64 = 0;
const IPPROTO_TCP: u64 = 6;

const SO_REUSEADDR: u64 = 2;
const SO_TYPE: u64 = 3;
const SO_ERROR: u64 = 4;
const SO_BROADCAST: u64 = 6;
const SO_SNDBUF: u64 = 7;
const SO_RCVBUF: u64 = 8;
const SO_KEEPALIVE: u64 = 9;
const SO_OOBINLINE: u64 = 10;
const SO_PRIORITY: u64 = 12;
const SO_LINGER: u64 = 13;
const SO_REUSEPORT: u64 = 15;
const SO_RCVLOWAT: u64 = 18;
const SO_RCVTIMEO: u64 = 20;
const SO_SNDTIMEO: u64 = 21;
const SO_ACCEPTCONN: u64 = 30;
const SO_SNDBUFFORCE: u64 = 32;
const SO_RCVBUFFORCE: u64 = 33;
const SO_PROTOCOL: u64 = 38;
const SO_DOMAIN: u64 = 39;

const TCP_NODELAY: u64 = 1;
const TCP_MAXSEG: u64 = 2;
const TCP_KEEPIDLE: u64 = 4;
const TCP_KEEPINTVL: u64 = 5;
const TCP_KEEPCNT: u64 = 6;
const TCP_DEFER_ACCEPT: u64 = 9;
const TCP_QUICKACK: u64 = 12;
const TCP_CONGESTION: u64 = 13;
const TCP_USER_TIMEOUT: u64 = 18;
const TCP_FASTOPEN: u64 = 23;

const IP_TOS: u64 = 1;
const IP_TTL: u64 = 2;
const IP_MTU_DISCOVER: u64 = 10;
const IP_RECVERR: u64 = 11;

fn read_int(k: &mut Kernel, val: u64, len: u64) -> Result<i32, i64> {
    if len < 4 {
        return Err(EINVAL);
    }
    k.mem.read_obj(val)
}

fn buffer_size(v: i32) -> usize {
    (v.max(0) as usize).clamp(MIN_BUFFER, MAX_BUFFER)
}

/// setsockopt(2).
pub fn setsockopt(k: &mut Kernel, fd: u64, level: u64, name: u64, val: u64, len: u64) -> SysResult {
    let (s, _) = lookup(k, fd)?;
    match (level, name) {
        (SOL_SOCKET, SO_LINGER) => {
            if len < 8 {
                return Err(EINVAL);
            }
            let [on, secs]: [i32; 2] = k.mem.read_obj(val)?;
            let linger = (on != 0).then_some(secs.max(0) as u32);
            tcp_opts(s, |o| o.linger = linger)
        }
        (SOL_SOCKET, SO_RCVTIMEO | SO_SNDTIMEO) => {
            if len < 16 {
                return Err(EINVAL);
            }
            let [sec, usec]: [i64; 2] = k.mem.read_obj(val)?;
            if sec < 0 || !(0..1_000_000).contains(&usec) {
                return Err(EDOM);
            }
            let ns = (sec as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(usec as u64 * 1000);
            let rcv = name == SO_RCVTIMEO;
            match s {
                Inet::Tcp(id) => tcp::with_opts(id, |o| {
                    if rcv {
                        o.rcvtimeo_ns = ns
                    } else {
                        o.sndtimeo_ns = ns
                    }
                })
                .map(|_| 0),
                Inet::Udp(u) => {
                    udp::set_timeouts(u, |t| if rcv { t.0 = ns } else { t.1 = ns });
                    Ok(0)
                }
            }
        }
        (SOL_SOCKET, _) => {
            let v = read_int(k, val, len)?;
            match name {
                SO_REUSEADDR => tcp_opts(s, |o| o.reuseaddr = v != 0),
                SO_REUSEPORT => tcp_opts(s, |o| o.reuseport = v != 0),
                SO_KEEPALIVE => tcp_opts(s, |o| o.keepalive = v != 0),
                SO_RCVBUF | SO_RCVBUFFORCE => tcp_opts(s, |o| o.rcvbuf = buffer_size(v)),
                SO_SNDBUF | SO_SNDBUFFORCE => tcp_opts(s, |o| o.sndbuf = buffer_size(v)),
                SO_BROADCAST | SO_OOBINLINE | SO_PRIORITY | SO_RCVLOWAT => Ok(0),
                _ => Err(ENOPROTOOPT),
            }
        }
        (IPPROTO_TCP, _) => {
            let Inet::Tcp(id) = s else {
                return Err(ENOPROTOOPT);
            };
            if name == TCP_CONGESTION {
                return Ok(0);
            }
            let v = read_int(k, val, len)?;
            match name {
                TCP_NODELAY => tcp::with_opts(id, |o| o.nodelay = v != 0).map(|_| 0),
                TCP_KEEPIDLE => {
                    if !(1..=32767).contains(&v) {
                        return Err(EINVAL);
                    }
                    tcp::with_opts(id, |o| o.keepidle = v as u32).map(|_| 0)
                }
                TCP_KEEPINTVL | TCP_KEEPCNT | TCP_DEFER_ACCEPT | TCP_QUICKACK
                | TCP_USER_TIMEOUT | TCP_FASTOPEN | TCP_MAXSEG => Ok(0),
                _ => Err(ENOPROTOOPT),
            }
        }
        (IPPROTO_IP, IP_TOS | IP_TTL | IP_MTU_DISCOVER | IP_RECVERR) => {
            read_int(k, val, len).map(|_| 0)
        }
        _ => Err(ENOPROTOOPT),
    }
}

/// Applies a change to a TCP socket's options (UDP sockets keep none).
fn tcp_opts(s: Inet, f: impl FnOnce(&mut tcp::Opts)) -> SysResult {
    match s {
        Inet::Tcp(id) => tcp::with_opts(id, f).map(|_| 0),
        Inet::Udp(_) => Ok(0),
    }
}

/// getsockopt(2).
pub fn getsockopt(
    k: &mut Kernel,
    fd: u64,
    level: u64,
    name: u64,
    val: u64,
    len_ptr: u64,
) -> SysResult {
    let (s, _) = lookup(k, fd)?;
    let room: u32 = k.mem.read_obj(len_ptr)?;
    if (room as i32) < 0 {
        return Err(EINVAL);
    }
    let opts = match s {
        Inet::Tcp(id) => tcp::opts(id)?,
        Inet::Udp(_) => tcp::Opts::default(),
    };
    let is_tcp = matches!(s, Inet::Tcp(_));
    let v: i32 = match (level, name) {
        (SOL_SOCKET, SO_LINGER) => {
            let l = [
                opts.linger.is_some() as i32,
                opts.linger.unwrap_or(0) as i32,
            ];
            return put(k, &l, val, len_ptr, room);
        }
        (SOL_SOCKET, SO_RCVTIMEO | SO_SNDTIMEO) => {
            let (r, w) = match s {
                Inet::Tcp(_) => (opts.rcvtimeo_ns, opts.sndtimeo_ns),
                Inet::Udp(u) => udp::timeouts(u),
            };
            let ns = if name == SO_RCVTIMEO { r } else { w };
            let tv = [
                (ns / 1_000_000_000) as i64,
                (ns % 1_000_000_000 / 1000) as i64,
            ];
            return put(k, &tv, val, len_ptr, room);
        }
        (SOL_SOCKET, SO_TYPE) => {
            if is_tcp {
                1
            } else {
                2
            }
        }
        (SOL_SOCKET, SO_DOMAIN) => 2,
        (SOL_SOCKET, SO_PROTOCOL) => {
            if is_tcp {
                6
            } else {
                17
            }
        }
        (SOL_SOCKET, SO_ERROR) => match s {
            Inet::Tcp(id) => tcp::take_error(id)? as i32,
            Inet::Udp(_) => 0,
        },
        (SOL_SOCKET, SO_ACCEPTCONN) => match s {
            Inet::Tcp(id) => tcp::is_listening(id) as i32,
            Inet::Udp(_) => 0,
        },
        (SOL_SOCKET, SO_REUSEADDR) => opts.reuseaddr as i32,
        (SOL_SOCKET, SO_REUSEPORT) => opts.reuseport as i32,
        (SOL_SOCKET, SO_KEEPALIVE) => opts.keepalive as i32,
        // Linux reports twice the size set (its bookkeeping overhead).
        (SOL_SOCKET, SO_RCVBUF) => (opts.rcvbuf * 2) as i32,
        (SOL_SOCKET, SO_SNDBUF) => (opts.sndbuf * 2) as i32,
        (SOL_SOCKET, SO_BROADCAST | SO_OOBINLINE | SO_PRIORITY) => 0,
        (SOL_SOCKET, SO_RCVLOWAT) => 1,
        (IPPROTO_TCP, TCP_NODELAY) if is_tcp => opts.nodelay as i32,
        (IPPROTO_TCP, TCP_KEEPIDLE) if is_tcp => opts.keepidle as i32,
        (IPPROTO_TCP, TCP_KEEPINTVL) if is_tcp => 75,
        (IPPROTO_TCP, TCP_KEEPCNT) if is_tcp => 9,
        (IPPROTO_TCP, TCP_MAXSEG) if is_tcp => 1460,
        (IPPROTO_IP, IP_TTL) => 64,
        (IPPROTO_IP, IP_TOS) => 0,
        _ => return Err(ENOPROTOOPT),
    };
    put(k, &v, val, len_ptr, room)
}

/// Writes an option value truncated to the caller's room, and its length.
fn put<T: Copy>(k: &mut Kernel, v: &T, val: u64, len_ptr: u64, room: u32) -> SysResult {
    let size = core::mem::size_of::<T>();
    // SAFETY: `v` is a plain integer array or integer, `size` bytes long.
    let bytes = unsafe { core::slice::from_raw_parts(v as *const T as *const u8, size) };
    let n = (room as usize).min(size);
    k.mem.copy_to_user(val, &bytes[..n])?;
    k.mem.write_obj(len_ptr, &(n as u32))?;
    Ok(0)
}
