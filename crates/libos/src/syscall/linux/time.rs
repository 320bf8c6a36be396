//! Clocks: clock_gettime, clock_getres, gettimeofday, time.
use crate::errno::*;
use crate::kernel::Kernel;
use crate::time;

pub fn sys_clock_gettime(k: &mut Kernel, clock: u64, ts: u64) -> SysResult {
    let (s, ns) = time::split_ns(k.clock_ns(clock)?);
    k.mem.write_obj(ts, &[s, ns])?;
    Ok(0)
}

pub fn sys_clock_getres(k: &mut Kernel, clock: u64, ts: u64) -> SysResult {
    k.clock_ns(clock)?;
    if ts != 0 {
        k.mem.write_obj(ts, &[0i64, 1])?;
    }
    Ok(0)
}

pub fn sys_gettimeofday(k: &mut Kernel, tv: u64) -> SysResult {
    if tv != 0 {
        let (s, ns) = time::split_ns(k.clock_ns(0)?);
        k.mem.write_obj(tv, &[s, ns / 1000])?;
    }
    Ok(0)
}

pub fn sys_time(k: &mut Kernel, t: u64) -> SysResult {
    let s = (k.clock_ns(0)? / 1_000_000_000) as i64;
    if t != 0 {
        k.mem.write_obj(t, &s)?;
    }
    Ok(s)
}
