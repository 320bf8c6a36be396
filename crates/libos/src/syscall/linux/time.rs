//! Clocks and the process's timer: clock_gettime, clock_getres,
//! gettimeofday, time; getitimer, setitimer, alarm; pause.
use crate::arch::cpu::rdtsc;
use crate::errno::*;
use crate::kernel::Kernel;
use crate::task::itimer::{self, RealTimer};
use crate::task::sched;
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

/// The timer as `struct itimerval` (interval, then value; seconds and
/// microseconds), at `now`.
fn itimerval(t: RealTimer, now: u64, khz: u64) -> [i64; 4] {
    let us = |ticks: u64| {
        let (s, ns) = time::split_ns(time::ticks_to_ns(ticks, khz));
        (s, ns / 1000)
    };
    let (is, ius) = us(t.interval);
    let (vs, vus) = match t.next {
        // A timer about to fire still reads as armed.
        Some(n) => match us(n.saturating_sub(now)) {
            (0, 0) => (0, 1),
            v => v,
        },
        None => (0, 0),
    };
    [is, ius, vs, vus]
}

/// ITIMER_REAL; ITIMER_VIRTUAL and ITIMER_PROF count CPU time, which the
/// library OS does not sample.
const ITIMER_REAL: u64 = 0;

pub fn sys_getitimer(k: &mut Kernel, which: u64, cur: u64) -> SysResult {
    if which != ITIMER_REAL {
        return Err(EINVAL);
    }
    k.mem.write_obj(
        cur,
        &itimerval(itimer::real_timer(), rdtsc(), k.boot.tsc_khz),
    )?;
    Ok(0)
}

pub fn sys_setitimer(k: &mut Kernel, which: u64, new: u64, old: u64) -> SysResult {
    if which != ITIMER_REAL {
        return Err(EINVAL);
    }
    let khz = k.boot.tsc_khz;
    let v: [i64; 4] = if new == 0 {
        [0; 4] // Linux treats a NULL new value as disarming
    } else {
        k.mem.read_obj(new)?
    };
    if v.iter().any(|&x| x < 0) || v[1] >= 1_000_000 || v[3] >= 1_000_000 {
        return Err(EINVAL);
    }
    let ticks = |s: i64, us: i64| {
        let ns = (s as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(us as u64 * 1000);
        time::ns_to_ticks(ns, khz)
    };
    let now = rdtsc();
    let value = ticks(v[2], v[3]);
    let t = RealTimer {
        next: (value != 0).then(|| now.saturating_add(value)),
        interval: if value != 0 { ticks(v[0], v[1]) } else { 0 },
    };
    let prev = itimer::set_real_timer(t);
    if old != 0 {
        k.mem.write_obj(old, &itimerval(prev, now, khz))?;
    }
    Ok(0)
}

/// alarm(2): a one-shot ITIMER_REAL in whole seconds; returns the seconds
/// the previous alarm had left, rounded up as Linux does.
pub fn sys_alarm(k: &mut Kernel, secs: u64) -> SysResult {
    let khz = k.boot.tsc_khz;
    let now = rdtsc();
    let value = time::ns_to_ticks((secs as u32 as u64).saturating_mul(1_000_000_000), khz);
    let prev = itimer::set_real_timer(RealTimer {
        next: (secs != 0).then(|| now.saturating_add(value)),
        interval: 0,
    });
    let left = prev.next.map_or(0, |n| {
        let ns = time::ticks_to_ns(n.saturating_sub(now), khz);
        ns.div_ceil(1_000_000_000).max(1)
    });
    Ok(left as i64)
}

/// pause(2): sleeps until a signal is delivered; always EINTR.
pub fn sys_pause(_k: &mut Kernel) -> SysResult {
    if sched::take_wake().is_some() {
        return Err(EINTR);
    }
    sched::block_current(None);
    Err(BLOCKED)
}
