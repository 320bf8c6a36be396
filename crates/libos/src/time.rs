//! Time from the TSC: no VM exit on any clock read.

/// Converts TSC ticks to nanoseconds at `tsc_khz` without overflowing for
/// centuries of uptime.
pub fn ticks_to_ns(ticks: u64, tsc_khz: u64) -> u64 {
    if tsc_khz == 0 {
        return 0;
    }
    let khz = tsc_khz as u128;
    ((ticks as u128 * 1_000_000) / khz) as u64
}

/// Converts nanoseconds to TSC ticks.
pub fn ns_to_ticks(ns: u64, tsc_khz: u64) -> u64 {
    ((ns as u128 * tsc_khz as u128) / 1_000_000) as u64
}

/// Splits nanoseconds into (seconds, nanoseconds).
pub fn split_ns(ns: u64) -> (i64, i64) {
    ((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(ticks_to_ns(3_000_000, 3_000_000), 1_000_000);
        assert_eq!(ns_to_ticks(1_000_000_000, 2_500_000), 2_500_000_000);
        assert_eq!(split_ns(1_500_000_000), (1, 500_000_000));
        // 100 years at 5 GHz does not overflow.
        let t = 5_000_000u64 * 1000 * 3600 * 24 * 365 * 100;
        assert!(ticks_to_ns(t, 5_000_000) > 0);
        assert_eq!(ticks_to_ns(5, 0), 0);
    }
}
