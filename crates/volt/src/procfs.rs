//! Reading `/proc/PID`: one parser of `stat` for every caller that needs a
//! process's state, parent, CPU time or start time.

/// The fields of `/proc/PID/stat` volt uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// R, S, D, Z, T, …
    pub state: char,
    pub ppid: u32,
    /// Clock ticks in user and kernel mode.
    pub utime: u64,
    pub stime: u64,
    /// Clock ticks after boot when the process started.
    pub start: u64,
}

/// Parses a `stat` line. The command name may hold spaces and
/// parentheses: the fields start after the last `)`.
pub fn parse_stat(s: &str) -> Option<Stat> {
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split(' ').collect();
    let num = |i: usize| f.get(i).and_then(|v| v.trim().parse::<u64>().ok());
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: num(1)? as u32,
        utime: num(11)?,
        stime: num(12)?,
        start: num(19)?,
    })
}

/// `/proc/PID/stat` of a process, if it exists.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Clock ticks per second.
pub fn hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat(pid).map(|s| (s.utime + s.stime) as f64 / hz())
}

/// Resident memory of a process, bytes (`statm`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    Some(statm.split(' ').nth(1)?.parse::<u64>().ok()? * 4096)
}

/// Proportional set size of a process, bytes (`smaps_rollup`): its pages,
/// each shared one divided among the processes that map it.
pub fn pss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kib: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_spaces_and_parentheses() {
        let line = "42 (a (b) c) S 7 42 42 0 -1 4194304 1 0 0 0 13 5 0 0 20 0 1 0 987 1000 1 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                ppid: 7,
                utime: 13,
                stime: 5,
                start: 987
            })
        );
        let me = stat(std::process::id()).unwrap();
        assert!(me.start > 0 && me.state != 'Z');
        assert!(parse_stat("garbage").is_none());
        let pss = pss_bytes(std::process::id()).unwrap();
        assert!(pss > 0 && pss <= rss_bytes(std::process::id()).unwrap() * 2);
    }
}
