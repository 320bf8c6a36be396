//! The process and the machine: exit, arch_prctl, uname, getrandom, limits, affinity.
use optivolt_abi::layout::USER_TOP;

use crate::arch::{cpu, hypercall, stamp};
use crate::errno::*;
use crate::kernel::Kernel;
use crate::task::sched;

pub fn nonneg(off: u64) -> Result<u64, i64> {
    if (off as i64) < 0 {
        Err(EINVAL)
    } else {
        Ok(off)
    }
}

pub fn sys_exit_thread(k: &mut Kernel, status: i32) -> SysResult {
    super::thread::clear_child_tid(k);
    if sched::thread_count() <= 1 {
        return sys_exit(status);
    }
    Err(EXIT_THREAD)
}

pub fn sys_exit(status: i32) -> SysResult {
    stamp(|t| &mut t.app_exit);
    crate::syscall::stats::report_at_exit();
    hypercall::exit(status & 0xff)
}

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;

pub fn sys_arch_prctl(k: &mut Kernel, code: u64, addr: u64) -> SysResult {
    match code {
        ARCH_SET_FS => {
            if addr >= USER_TOP {
                return Err(EPERM);
            }
            cpu::set_fs_base(addr);
            Ok(0)
        }
        ARCH_GET_FS => {
            k.mem.write_obj(addr, &cpu::fs_base())?;
            Ok(0)
        }
        ARCH_SET_GS | ARCH_GET_GS => Err(EINVAL),
        _ => Err(EINVAL),
    }
}

pub fn put_field(buf: &mut [u8], i: usize, s: &[u8]) {
    let f = &mut buf[i * 65..i * 65 + 65];
    let n = s.len().min(64);
    f[..n].copy_from_slice(&s[..n]);
}

pub fn sys_uname(k: &mut Kernel, addr: u64) -> SysResult {
    let mut u = [0u8; 65 * 6];
    put_field(&mut u, 0, b"Linux");
    put_field(&mut u, 1, b"optivolt");
    put_field(&mut u, 2, b"6.1.0-optivolt");
    put_field(&mut u, 3, b"#1 SMP OptiVolt library OS");
    put_field(&mut u, 4, b"x86_64");
    put_field(&mut u, 5, b"(none)");
    k.mem.copy_to_user(addr, &u)?;
    Ok(0)
}

pub fn sys_getrandom(k: &mut Kernel, buf: u64, len: u64) -> SysResult {
    let len = len.min(1 << 25);
    let mut chunk = [0u8; 256];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(chunk.len());
        k.rng.fill(&mut chunk[..n]);
        k.mem.copy_to_user(buf + done, &chunk[..n])?;
        done += n as u64;
    }
    Ok(len as i64)
}

const RLIM_INFINITY: u64 = u64::MAX;

pub fn sys_prlimit(k: &mut Kernel, resource: u64, old: u64) -> SysResult {
    let lim: [u64; 2] = match resource {
        3 => [crate::kernel::boot::STACK_SIZE, RLIM_INFINITY], // RLIMIT_STACK
        7 => [1024, 4096],                                     // RLIMIT_NOFILE
        4 => [0, RLIM_INFINITY],                               // RLIMIT_CORE
        0..=15 => [RLIM_INFINITY, RLIM_INFINITY],
        _ => return Err(EINVAL),
    };
    if old != 0 {
        k.mem.write_obj(old, &lim)?;
    }
    Ok(0)
}

pub fn sys_sched_getaffinity(k: &mut Kernel, size: u64, mask: u64) -> SysResult {
    if size < 8 {
        return Err(EINVAL);
    }
    k.mem.write_obj(mask, &1u64)?;
    Ok(8)
}
