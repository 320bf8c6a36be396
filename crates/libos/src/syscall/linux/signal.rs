//! Signal actions and masks: rt_sigaction, rt_sigprocmask.
use crate::errno::*;
use crate::kernel::Kernel;
use crate::task::process::{SigAction, NSIG};
use crate::task::sched;

pub fn sys_rt_sigaction(k: &mut Kernel, sig: u64, act: u64, old: u64, size: u64) -> SysResult {
    if sig == 0 || sig as usize > NSIG || size != 8 {
        return Err(EINVAL);
    }
    let i = sig as usize - 1;
    if old != 0 {
        k.mem.write_obj(old, &k.proc.actions[i])?;
    }
    if act != 0 {
        if sig == 9 || sig == 19 {
            return Err(EINVAL); // SIGKILL, SIGSTOP
        }
        k.proc.actions[i] = k.mem.read_obj::<SigAction>(act)?;
    }
    Ok(0)
}

pub fn sys_rt_sigprocmask(k: &mut Kernel, how: u64, set: u64, old: u64, size: u64) -> SysResult {
    if size != 8 {
        return Err(EINVAL);
    }
    let cur = sched::with_current(|t| t.sigmask);
    if old != 0 {
        k.mem.write_obj(old, &cur)?;
    }
    if set != 0 {
        let s: u64 = k.mem.read_obj(set)?;
        let unblockable = (1 << 8) | (1 << 18); // SIGKILL, SIGSTOP
        let new = match how {
            0 => cur | s,
            1 => cur & !s,
            2 => s,
            _ => return Err(EINVAL),
        } & !unblockable;
        sched::with_current(|t| t.sigmask = new);
    }
    Ok(0)
}
