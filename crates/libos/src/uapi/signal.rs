//! Signal numbers' descriptions, as strsignal(3) and the shell give them.

/// What a shell prints when a job ends by `sig` (dash's words; bash adds
/// " (core dumped)" where a core would be written); `None` for the signals
/// shells keep quiet about (SIGINT, SIGPIPE).
pub fn death_message(sig: u32) -> Option<&'static str> {
    Some(match sig {
        1 => "Hangup",
        3 => "Quit",
        4 => "Illegal instruction",
        5 => "Trace/breakpoint trap",
        6 => "Aborted",
        7 => "Bus error",
        8 => "Floating point exception",
        9 => "Killed",
        10 => "User defined signal 1",
        11 => "Segmentation fault",
        12 => "User defined signal 2",
        14 => "Alarm clock",
        15 => "Terminated",
        16 => "Stack fault",
        24 => "CPU time limit exceeded",
        25 => "File size limit exceeded",
        26 => "Virtual timer expired",
        27 => "Profiling timer expired",
        29 => "I/O possible",
        30 => "Power failure",
        31 => "Bad system call",
        2 | 13 => return None,
        _ => "Unknown signal",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_name_aborts_and_keep_quiet_about_broken_pipes() {
        assert_eq!(death_message(6), Some("Aborted"));
        assert_eq!(death_message(11), Some("Segmentation fault"));
        assert_eq!(death_message(13), None);
        assert_eq!(death_message(2), None);
    }
}
