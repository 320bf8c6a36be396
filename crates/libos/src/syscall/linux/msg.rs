//! sendmsg(2)/recvmsg(2) on AF_INET sockets: gather/scatter over the
//! `iovec`s, the address in `msg_name`. No ancillary data is produced
//! (`msg_controllen` comes back 0).

use alloc::vec;
use alloc::vec::Vec;

use crate::errno::*;
use crate::kernel::Kernel;
use crate::syscall::linux::socket::{
    chunk, lookup, read_addr, recv_bytes, send_bytes, write_addr, MAX_CHUNK, MSG_TRUNC,
};

/// `struct msghdr` as eight-byte words: name, namelen, iov, iovlen,
/// control, controllen, flags.
type MsgHdr = [u64; 7];

/// The (base, len) pairs of the message's iovecs, their total capped at
/// `MAX_CHUNK`.
fn iovecs(k: &mut Kernel, m: &MsgHdr) -> Result<Vec<(u64, usize)>, i64> {
    let (iov, cnt) = (m[2], m[3]);
    if cnt > 1024 {
        return Err(EMSGSIZE);
    }
    let mut out = Vec::new();
    let mut total = 0u64;
    for i in 0..cnt {
        let [base, len]: [u64; 2] = k.mem.read_obj(iov + i * 16)?;
        if (len as i64) < 0 {
            return Err(EINVAL);
        }
        let len = len.min(MAX_CHUNK - total);
        total += len;
        out.push((base, len as usize));
    }
    Ok(out)
}

/// sendmsg(2).
pub fn sendmsg(k: &mut Kernel, fd: u64, msg: u64, flags: u64) -> SysResult {
    let (s, nb) = lookup(k, fd)?;
    let m: MsgHdr = k.mem.read_obj(msg)?;
    let to = if m[0] == 0 {
        None
    } else {
        Some(read_addr(k, m[0], m[1] & 0xffff_ffff)?)
    };
    let mut data = Vec::new();
    for (base, len) in iovecs(k, &m)? {
        let at = data.len();
        data.resize(at + len, 0);
        k.mem.copy_from_user(base, &mut data[at..])?;
    }
    send_bytes(
        s,
        nb || flags & crate::syscall::linux::socket::MSG_DONTWAIT != 0,
        &data,
        to,
    )
}

/// recvmsg(2).
pub fn recvmsg(k: &mut Kernel, fd: u64, msg: u64, flags: u64) -> SysResult {
    let (s, nb) = lookup(k, fd)?;
    let m: MsgHdr = k.mem.read_obj(msg)?;
    let iov = iovecs(k, &m)?;
    let total: usize = iov.iter().map(|(_, l)| l).sum();
    let mut data = vec![0u8; chunk(s, total as u64, false)];
    let (n, full, from) = recv_bytes(s, nb, flags, &mut data)?;
    let mut done = 0;
    for (base, len) in iov {
        if done >= n {
            break;
        }
        let c = len.min(n - done);
        k.mem.copy_to_user(base, &data[done..done + c])?;
        done += c;
    }
    match from {
        Some(from) if m[0] != 0 => write_addr(k, from, m[0], msg + 8)?,
        _ => k.mem.write_obj(msg + 8, &0u32)?,
    }
    k.mem.write_obj(msg + 40, &0u64)?; // msg_controllen
    let out_flags: u32 = if full > n { MSG_TRUNC as u32 } else { 0 };
    k.mem.write_obj(msg + 48, &out_flags)?;
    Ok(if flags & MSG_TRUNC != 0 { full } else { n } as i64)
}
