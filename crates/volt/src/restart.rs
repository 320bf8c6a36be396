//! Restart policies (`--restart`, a Voltfile's `restart`): `no`,
//! `on-failure[:N]` (at most N restarts) and `always`, with Unikraft
//! Cloud's backoff between attempts.
use std::time::Duration;

/// When an instance is started again after its program ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    No,
    /// After a non-zero exit, at most `max` times (unbounded if `None`).
    OnFailure(Option<u32>),
    Always,
}

impl Policy {
    /// Reads `no`, `always`, `on-failure` or `on-failure:N`.
    pub fn parse(s: &str) -> Result<Policy, String> {
        match s {
            // "never" is Unikraft Cloud's name for docker's "no".
            "no" | "never" => Ok(Policy::No),
            "always" => Ok(Policy::Always),
            "on-failure" => Ok(Policy::OnFailure(None)),
            _ => match s.strip_prefix("on-failure:").map(str::parse::<u32>) {
                Some(Ok(n)) => Ok(Policy::OnFailure(Some(n))),
                _ => Err(format!(
                    "restart policy {s:?}: expected no (never), always, on-failure or on-failure:N"
                )),
            },
        }
    }

    /// Whether to start again after the `restarts`-th end with `status`.
    pub fn restarts_after(&self, status: i32, restarts: u32) -> bool {
        match self {
            Policy::No => false,
            Policy::Always => true,
            Policy::OnFailure(max) => status != 0 && max.is_none_or(|m| restarts < m),
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::No => f.write_str("no"),
            Policy::Always => f.write_str("always"),
            Policy::OnFailure(None) => f.write_str("on-failure"),
            Policy::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
        }
    }
}

/// The wait before restart number `n` (0-based): 0, 5, 10, 20, 40 s …,
/// at most 5 minutes.
pub fn backoff(n: u32) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let s = 5u64.saturating_mul(1u64 << (n - 1).min(16));
    Duration::from_secs(s.min(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print_back() {
        for s in ["no", "always", "on-failure", "on-failure:3"] {
            assert_eq!(Policy::parse(s).unwrap().to_string(), s);
        }
        assert!(Policy::parse("on-failure:x").is_err());
        assert!(Policy::parse("sometimes").is_err());
    }

    #[test]
    fn on_failure_counts_and_ignores_success() {
        let p = Policy::OnFailure(Some(2));
        assert!(p.restarts_after(1, 0) && p.restarts_after(1, 1));
        assert!(!p.restarts_after(1, 2) && !p.restarts_after(0, 0));
        assert!(Policy::Always.restarts_after(0, 99));
        assert!(!Policy::No.restarts_after(1, 0));
    }

    #[test]
    fn backoff_doubles_from_five_seconds_up_to_five_minutes() {
        let s: Vec<u64> = (0..9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(s, [0, 5, 10, 20, 40, 80, 160, 300, 300]);
    }
}
