//! Summary statistics over repeated measurements.
use std::time::Duration;

/// Median, minimum, maximum and mean of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
    pub mean: Duration,
    pub n: usize,
}

impl Summary {
    /// Summarises `v` (which must not be empty).
    pub fn of(v: &[Duration]) -> Summary {
        let mut s = v.to_vec();
        s.sort();
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2
        };
        let total: Duration = s.iter().sum();
        Summary {
            median,
            min: s[0],
            max: s[n - 1],
            mean: total / n as u32,
            n,
        }
    }
}

/// Milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        let d = |x| Duration::from_micros(x);
        let s = Summary::of(&[d(5), d(1), d(3)]);
        assert_eq!((s.median, s.min, s.max, s.mean), (d(3), d(1), d(5), d(3)));
        assert_eq!(
            Summary::of(&[d(1), d(2), d(3), d(10)]).median,
            Duration::from_nanos(2500)
        );
    }
}
