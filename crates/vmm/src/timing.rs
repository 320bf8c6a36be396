//! Boot timing for `--timing`: host timestamps taken by the monitor, guest
//! milestones read as TSC values from BootInfo and converted with the TSC/clock
//! pair sampled just before the first instruction. The guest takes no exit for this.
use std::fmt;
use std::time::{Duration, Instant};

/// Names of the phases, in order, as printed and as `volt bench` parses them.
pub const PHASES: [&str; 7] = [
    "vm_created",
    "vcpu_ready",
    "libos_entry",
    "libos_ready",
    "app_entry",
    "app_exit",
    "vm_exit",
];

/// Milestones of one run.
#[derive(Clone, Debug)]
pub struct Timing {
    enabled: bool,
    started: Instant,
    marks: [Option<Instant>; 7],
}

impl Timing {
    /// Timing relative to `started` (the monitor process's start).
    pub fn new(started: Instant, enabled: bool) -> Self {
        Timing {
            enabled,
            started,
            marks: [None; 7],
        }
    }
    pub(crate) fn mark_vm_created(&mut self) {
        self.marks[0] = Some(Instant::now());
    }
    pub(crate) fn mark_vcpu_ready(&mut self) {
        self.marks[1] = Some(Instant::now());
    }
    pub(crate) fn mark_vm_exit(&mut self) {
        self.marks[6] = Some(Instant::now());
    }
    /// Sets the guest milestones from TSC readings (0 = not reached).
    pub(crate) fn set_guest(
        &mut self,
        tsc: [u64; 4],
        tsc_sample: u64,
        mono_sample: Instant,
        tsc_khz: u64,
    ) {
        for (i, t) in tsc.iter().enumerate() {
            if *t == 0 || *t < tsc_sample || tsc_khz == 0 {
                continue;
            }
            let ns = ((*t - tsc_sample) as u128 * 1_000_000 / tsc_khz as u128).min(u64::MAX as u128)
                as u64;
            // Guest values are untrusted: ignore anything beyond a day.
            if ns < 86_400_000_000_000 {
                self.marks[2 + i] = Some(mono_sample + Duration::from_nanos(ns));
            }
        }
    }
    /// Whether `--timing` was asked for.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    /// (phase, time since the monitor started) for the milestones reached.
    pub fn phases(&self) -> Vec<(&'static str, Duration)> {
        PHASES
            .iter()
            .zip(self.marks.iter())
            .filter_map(|(n, m)| m.map(|t| (*n, t.saturating_duration_since(self.started))))
            .collect()
    }
}

impl fmt::Display for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "volt timing (µs since the monitor started; delta from the previous milestone):"
        )?;
        let mut prev = Duration::ZERO;
        for (name, t) in self.phases() {
            let d = t.saturating_sub(prev);
            writeln!(
                f,
                "  {name:<12} {:>10.1}  (+{:.1})",
                t.as_secs_f64() * 1e6,
                d.as_secs_f64() * 1e6
            )?;
            prev = t;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_guest_tsc() {
        let start = Instant::now();
        let mut t = Timing::new(start, true);
        t.mark_vm_created();
        let sample = start + Duration::from_micros(500);
        // 1 GHz TSC: 1000 ticks per µs.
        t.set_guest(
            [1_000_000 + 10_000, 0, 1_000_000 + 50_000, u64::MAX],
            1_000_000,
            sample,
            1_000_000,
        );
        let p = t.phases();
        let names: Vec<_> = p.iter().map(|x| x.0).collect();
        assert_eq!(names, ["vm_created", "libos_entry", "app_entry"]);
        assert_eq!(p[1].1, Duration::from_micros(510));
        assert_eq!(p[2].1, Duration::from_micros(550));
        assert!(t.to_string().contains("libos_entry"));
    }
}
