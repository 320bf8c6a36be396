//! What the monitor counts while a guest runs (`volt run --stats`): exits
//! by kind and preemption ticks.
use std::fmt;

use optivolt_abi::hypercall as hc;

/// Exit and tick counts of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitStats {
    /// Hypercall exits, by hypercall number (`PORT_COUNT` of them).
    pub hypercalls: [u64; hc::PORT_COUNT as usize],
    /// KVM_RUN interrupted by the tick timer or a signal.
    pub interrupted: u64,
    /// Timer interrupts injected into application code.
    pub ticks_injected: u64,
    /// Ticks that came while the guest was in the library OS (it takes them
    /// at the end of the system call in progress).
    pub ticks_deferred: u64,
    /// KVM's own counters for the vCPU (shadow-paging faults and the like),
    /// where the host kernel exports them.
    pub host: Vec<(&'static str, u64)>,
}

impl ExitStats {
    /// All exits.
    pub fn total(&self) -> u64 {
        self.hypercalls.iter().sum::<u64>() + self.interrupted
    }
}

fn hypercall_name(nr: u16) -> &'static str {
    match nr {
        hc::CONSOLE_WRITE => "console",
        hc::EXIT => "exit",
        hc::ABORT => "abort",
        hc::FAULT => "fault",
        hc::TLB_FLUSH => "tlb flush",
        hc::BLOCK => "block",
        hc::RELEASE => "release",
        hc::NET_KICK => "net kick",
        hc::CONSOLE_READ => "stdin read",
        _ => "other",
    }
}

impl fmt::Display for ExitStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "volt stats (monitor):")?;
        write!(f, "  {:<20}{}:", "exits", self.total())?;
        let mut first = true;
        for (nr, &n) in self.hypercalls.iter().enumerate() {
            if n > 0 {
                write!(
                    f,
                    "{} {} {n}",
                    if first { "" } else { "," },
                    hypercall_name(nr as u16)
                )?;
                first = false;
            }
        }
        writeln!(
            f,
            "{} interrupted {}",
            if first { "" } else { "," },
            self.interrupted
        )?;
        writeln!(
            f,
            "  {:<20}{} ({} more taken at the end of a system call)",
            "ticks injected", self.ticks_injected, self.ticks_deferred
        )?;
        if !self.host.is_empty() {
            write!(f, "  {:<20}", "host (KVM)")?;
            for (i, (name, v)) in self.host.iter().enumerate() {
                write!(f, "{}{name} {v}", if i == 0 { "" } else { ", " })?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_each_kind_of_exit_and_sums_them() {
        let mut s = ExitStats::default();
        s.hypercalls[hc::CONSOLE_WRITE as usize] = 3;
        s.hypercalls[hc::EXIT as usize] = 1;
        s.interrupted = 2;
        s.ticks_injected = 1;
        assert_eq!(s.total(), 6);
        let text = s.to_string();
        assert!(
            text.contains("exits               6: console 3, exit 1, interrupted 2"),
            "{text}"
        );
        assert!(text.contains("ticks injected      1 (0 more"), "{text}");
    }
}
