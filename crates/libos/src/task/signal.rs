//! Signal delivery with the Linux x86-64 frame layout (`rt_sigframe`:
//! restorer address, `ucontext` with `sigcontext` and the FXSAVE image,
//! `siginfo`), and `rt_sigreturn`. Signals are delivered when a thread returns
//! to the application: after a system call, after the timer interrupt, and
//! at once for synchronous faults.
use optivolt_abi::hypercall::Registers;
use optivolt_abi::layout::{USER_CS, USER_SS, USER_TOP};

use crate::errno::*;
use crate::mm::space::Memory;
use crate::task::process::Process;
use crate::task::process::{SigAltStack, SS_DISABLE};
use crate::task::sched;

/// SA_ONSTACK.
const SA_ONSTACK: u64 = 0x0800_0000;
/// SA_RESTORER.
const SA_RESTORER: u64 = 0x0400_0000;
/// SA_NODEFER.
const SA_NODEFER: u64 = 0x4000_0000;
/// SA_RESETHAND.
const SA_RESETHAND: u64 = 0x8000_0000;
/// SS_ONSTACK.
const SS_ONSTACK: i32 = 1;

/// The user-mode state a signal interrupts (the fields of a syscall,
/// timer or exception frame).
pub struct UserContext<'a> {
    /// General-purpose registers.
    pub regs: &'a mut Registers,
    /// Instruction pointer.
    pub rip: &'a mut u64,
    /// Flags.
    pub rflags: &'a mut u64,
    /// Stack pointer.
    pub rsp: &'a mut u64,
    /// The FXSAVE image the exit path restores.
    pub fx: &'a mut [u8; 512],
}

/// What a signal is about, for `siginfo`.
#[derive(Clone, Copy, Default)]
pub struct Info {
    /// si_code (SI_TKILL = -6, SEGV_MAPERR = 1, …).
    pub code: i32,
    /// si_addr for faults.
    pub addr: u64,
    /// Exception vector and error code (sigcontext trapno/err).
    pub trapno: u64,
    /// Error code.
    pub err: u64,
}

/// Default action of a signal.
pub enum Default {
    /// Nothing happens.
    Ignore,
    /// The process ends.
    Terminate,
}

/// The default action of `sig`.
pub fn default_action(sig: u32) -> Default {
    match sig {
        17 | 18 | 23 | 28 => Default::Ignore, // SIGCHLD, SIGCONT, SIGURG, SIGWINCH
        _ => Default::Terminate,
    }
}

const SIGCONTEXT_WORDS: usize = 32; // r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags, segs, err, trapno, oldmask, cr2, fpstate, reserved[8]
const UC_SIZE: u64 = 8 + 8 + 24 + (SIGCONTEXT_WORDS as u64) * 8 + 8; // flags, link, stack, mcontext, sigmask

/// The most a signal frame takes on the handler's stack (AT_MINSIGSTKSZ):
/// the FXSAVE image with its alignment, siginfo, the ucontext, the return
/// address and the alignment slack.
pub const MIN_SIGSTACK: u64 = 512 + 64 + INFO_SIZE + UC_SIZE + 16 + 8;
const INFO_SIZE: u64 = 128;

fn put(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn get(buf: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&buf[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Delivers `sig` to the running thread by rewriting `ctx`. Returns
/// `Err(status)` if the default action ends the process.
pub fn deliver(
    mem: &mut Memory,
    proc: &mut Process,
    trace: bool,
    sig: u32,
    info: Info,
    ctx: UserContext<'_>,
) -> Result<(), i32> {
    let act = proc.actions[sig as usize - 1];
    if trace {
        crate::drivers::console::kernel_log(format_args!(
            "--- signal {sig} {{si_code={}, si_addr={:#x}}} at rip {:#x} rsp {:#x} ---\n",
            info.code, info.addr, *ctx.rip, *ctx.rsp
        ));
    }
    match act.handler {
        1 => return Ok(()), // SIG_IGN
        0 => {
            return match default_action(sig) {
                Default::Ignore => Ok(()),
                Default::Terminate => Err(128 + sig as i32),
            }
        }
        _ => {}
    }
    let (alt, mask) = sched::with_current(|t| (t.altstack, t.sigmask));
    let on_alt = alt.flags & SS_DISABLE == 0 && *ctx.rsp > alt.sp && *ctx.rsp <= alt.sp + alt.size;
    let mut sp = if act.flags & SA_ONSTACK != 0 && alt.flags & SS_DISABLE == 0 && !on_alt {
        alt.sp + alt.size
    } else {
        ctx.rsp.wrapping_sub(128) // the red zone
    };
    // Layout, from high to low: FXSAVE image (64-aligned), siginfo, ucontext, return address.
    sp = (sp - 512) & !63;
    let fx_at = sp;
    sp -= INFO_SIZE;
    let info_at = sp;
    sp -= UC_SIZE;
    sp &= !15;
    let uc_at = sp;
    // The return address sits right below the ucontext (rt_sigreturn finds
    // the ucontext at the stack pointer after the handler's `ret`), and
    // rsp + 8 is 16-byte aligned as after a `call`.
    let frame_at = uc_at - 8;

    let mut uc = [0u8; UC_SIZE as usize];
    // uc_flags, uc_link
    put(&mut uc, 0, 0);
    put(&mut uc, 8, 0);
    // uc_stack
    put(&mut uc, 16, alt.sp);
    let ss_flags = if alt.flags & SS_DISABLE != 0 {
        SS_DISABLE
    } else if on_alt {
        SS_ONSTACK
    } else {
        0
    };
    uc[24..28].copy_from_slice(&ss_flags.to_le_bytes());
    put(&mut uc, 32, alt.size);
    // uc_mcontext at 40
    let r = &*ctx.regs;
    let m = 40;
    for (i, v) in [
        r.r8,
        r.r9,
        r.r10,
        r.r11,
        r.r12,
        r.r13,
        r.r14,
        r.r15,
        r.rdi,
        r.rsi,
        r.rbp,
        r.rbx,
        r.rdx,
        r.rax,
        r.rcx,
        *ctx.rsp,
        *ctx.rip,
        *ctx.rflags,
    ]
    .iter()
    .enumerate()
    {
        put(&mut uc, m + i * 8, *v);
    }
    // cs, gs, fs, ss (u16 each)
    let segs = (USER_CS as u64) | ((USER_SS as u64) << 48);
    put(&mut uc, m + 18 * 8, segs);
    put(&mut uc, m + 19 * 8, info.err);
    put(&mut uc, m + 20 * 8, info.trapno);
    put(&mut uc, m + 21 * 8, mask);
    put(&mut uc, m + 22 * 8, info.addr);
    put(&mut uc, m + 23 * 8, fx_at);
    // uc_sigmask
    put(&mut uc, 40 + SIGCONTEXT_WORDS * 8, mask);

    let mut si = [0u8; INFO_SIZE as usize];
    si[0..4].copy_from_slice(&(sig as i32).to_le_bytes());
    si[8..12].copy_from_slice(&info.code.to_le_bytes());
    if info.code == -6 {
        // SI_TKILL: sender pid and uid.
        si[16..20].copy_from_slice(&(crate::task::process::PID as i32).to_le_bytes());
    } else {
        put(&mut si, 16, info.addr);
    }

    let restorer = if act.flags & SA_RESTORER != 0 {
        act.restorer
    } else {
        0
    };
    let write = |mem: &mut Memory| -> Result<(), i64> {
        mem.copy_to_user(fx_at, &ctx.fx[..])?;
        mem.copy_to_user(info_at, &si)?;
        mem.copy_to_user(uc_at, &uc)?;
        mem.write_obj(frame_at, &restorer)
    };
    if write(mem).is_err() {
        // No room for the frame: as Linux, the process dies of SIGSEGV.
        return Err(128 + 11);
    }
    let mut new_mask = mask | act.mask;
    if act.flags & SA_NODEFER == 0 {
        new_mask |= 1u64 << (sig - 1);
    }
    sched::with_current(|t| t.sigmask = new_mask & !((1 << 8) | (1 << 18)));
    if act.flags & SA_RESETHAND != 0 {
        proc.actions[sig as usize - 1].handler = 0;
    }
    ctx.regs.rdi = sig as u64;
    ctx.regs.rsi = info_at;
    ctx.regs.rdx = uc_at;
    ctx.regs.rax = 0;
    *ctx.rip = act.handler;
    *ctx.rsp = frame_at;
    *ctx.rflags &= !(0x100 | 0x400 | 0x40000); // TF, DF, AC
    Ok(())
}

/// rt_sigreturn: restores the context saved in the frame at `rsp`
/// (the handler's `ret` popped the restorer address, so the ucontext starts
/// at the stack pointer). Returns the restored RAX.
pub fn sigreturn(mem: &mut Memory, ctx: UserContext<'_>) -> Result<i64, i64> {
    let uc_at = *ctx.rsp;
    let mut uc = [0u8; UC_SIZE as usize];
    mem.copy_from_user(uc_at, &mut uc)?;
    let m = 40;
    let g = |i: usize| get(&uc, m + i * 8);
    let rip = g(16);
    let rsp = g(15);
    if rip >= USER_TOP || rsp >= USER_TOP {
        return Err(EFAULT);
    }
    let fx_at = g(23);
    if fx_at != 0 {
        let mut fx = [0u8; 512];
        mem.copy_from_user(fx_at, &mut fx)?;
        // MXCSR reserved bits would make FXRSTOR fault: keep the defined ones.
        let mxcsr = u32::from_le_bytes([fx[24], fx[25], fx[26], fx[27]]) & 0xffbf;
        fx[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        ctx.fx.copy_from_slice(&fx);
    }
    let r = ctx.regs;
    r.r8 = g(0);
    r.r9 = g(1);
    r.r10 = g(2);
    r.r11 = g(3);
    r.r12 = g(4);
    r.r13 = g(5);
    r.r14 = g(6);
    r.r15 = g(7);
    r.rdi = g(8);
    r.rsi = g(9);
    r.rbp = g(10);
    r.rbx = g(11);
    r.rdx = g(12);
    r.rax = g(13);
    r.rcx = g(14);
    *ctx.rsp = rsp;
    *ctx.rip = rip;
    // User-changeable flags only (CF PF AF ZF SF TF DF OF AC ID); IF stays on.
    let user_flags = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x40000 | 0x200000;
    *ctx.rflags = (*ctx.rflags & !user_flags) | (g(17) & user_flags) | 0x202;
    let mask = get(&uc, 40 + SIGCONTEXT_WORDS * 8) & !((1 << 8) | (1 << 18));
    sched::with_current(|t| t.sigmask = mask);
    Ok(r.rax as i64)
}

/// sigaltstack(2) for the running thread.
pub fn sigaltstack(mem: &mut Memory, ss: u64, old: u64, user_rsp: u64) -> Result<i64, i64> {
    let cur = sched::with_current(|t| t.altstack);
    let on = cur.flags & SS_DISABLE == 0 && user_rsp > cur.sp && user_rsp <= cur.sp + cur.size;
    if old != 0 {
        let mut o = cur;
        if on {
            o.flags = SS_ONSTACK;
        }
        mem.write_obj(old, &o)?;
    }
    if ss != 0 {
        if on {
            return Err(EPERM);
        }
        let s: SigAltStack = mem.read_obj(ss)?;
        if s.flags & !(SS_DISABLE | (1 << 31)) != 0 {
            return Err(EINVAL);
        }
        if s.flags & SS_DISABLE == 0 && s.size < 2048 {
            return Err(ENOMEM);
        }
        sched::with_current(|t| {
            t.altstack = SigAltStack {
                flags: s.flags & SS_DISABLE,
                ..s
            }
        });
    }
    Ok(0)
}
