//! How a guest ended.
use std::fmt;

use optivolt_abi::exit;
use optivolt_abi::hypercall::{vector_name, vector_signal, FaultReport};

/// An unhandled fault reported by the library OS, with CR2 from the vCPU.
#[derive(Clone, Debug)]
pub struct GuestFault {
    /// The guest's report.
    pub report: FaultReport,
    /// CR2 (the faulting address for a page fault).
    pub cr2: u64,
}

/// The end of a guest.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The application exited with this status.
    Exited(i32),
    /// An unhandled exception (a segmentation fault, …).
    Fault(GuestFault),
    /// The library OS aborted with a message.
    Aborted(String),
    /// The VM stopped in a way the guest cannot report (triple fault, bad
    /// hypercall, KVM internal error); the text says what happened.
    Crashed(String),
    /// `--timeout` elapsed.
    TimedOut(String),
    /// A snapshot was written to this file and the VM ended (standby).
    Snapshotted(std::path::PathBuf),
}

impl Outcome {
    /// The status `volt run` exits with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(s) => *s,
            Outcome::Fault(_) => exit::GUEST_FAULT,
            Outcome::Aborted(_) | Outcome::Crashed(_) => exit::GUEST_CRASH,
            Outcome::TimedOut(_) => exit::TIMEOUT,
            Outcome::Snapshotted(_) => 0,
        }
    }
}

impl fmt::Display for GuestFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        let whom = if r.in_app != 0 {
            "the application"
        } else {
            "the library OS"
        };
        write!(
            f,
            "guest fault: {} in {whom} at rip {:#x}",
            vector_name(r.vector),
            r.rip
        )?;
        if r.vector == 14 {
            let e = r.error_code;
            let access = if e & 0x10 != 0 {
                "instruction fetch from"
            } else if e & 2 != 0 {
                "write to"
            } else {
                "read from"
            };
            let why = if e & 1 != 0 {
                "a protected page"
            } else {
                "an unmapped page"
            };
            write!(f, ": {access} {:#x} ({why})", self.cr2)?;
        } else if r.error_code != 0 {
            write!(f, " (error code {:#x})", r.error_code)?;
        }
        writeln!(f, " — {}", vector_signal(r.vector))?;
        let g = &r.regs;
        writeln!(
            f,
            "  rax={:016x} rbx={:016x} rcx={:016x} rdx={:016x}",
            g.rax, g.rbx, g.rcx, g.rdx
        )?;
        writeln!(
            f,
            "  rsi={:016x} rdi={:016x} rbp={:016x} rsp={:016x}",
            g.rsi, g.rdi, g.rbp, r.rsp
        )?;
        writeln!(
            f,
            "  r8 ={:016x} r9 ={:016x} r10={:016x} r11={:016x}",
            g.r8, g.r9, g.r10, g.r11
        )?;
        writeln!(
            f,
            "  r12={:016x} r13={:016x} r14={:016x} r15={:016x}",
            g.r12, g.r13, g.r14, g.r15
        )?;
        write!(
            f,
            "  rip={:016x} rflags={:08x} cr2={:016x}",
            r.rip, r.rflags, self.cr2
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(s) => write!(f, "exited with status {s}"),
            Outcome::Fault(g) => g.fmt(f),
            Outcome::Aborted(m) => write!(f, "guest aborted: {m}"),
            Outcome::Crashed(m) => write!(f, "guest crashed: {m}"),
            Outcome::TimedOut(r) => write!(f, "guest stopped: timeout reached ({r})"),
            Outcome::Snapshotted(p) => write!(f, "guest saved to {} and stopped", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_dereference_reads_clearly() {
        let g = GuestFault {
            report: FaultReport {
                vector: 14,
                error_code: 4,
                rip: 0x401000,
                in_app: 1,
                ..Default::default()
            },
            cr2: 0,
        };
        let s = g.to_string();
        assert!(s.starts_with("guest fault: page fault (#PF) in the application at rip 0x401000: read from 0x0 (an unmapped page) — SIGSEGV"), "{s}");
        assert_eq!(Outcome::Fault(g).exit_code(), 139);
        assert_eq!(Outcome::Exited(3).exit_code(), 3);
        assert_eq!(Outcome::TimedOut(String::new()).exit_code(), 124);
    }
}
