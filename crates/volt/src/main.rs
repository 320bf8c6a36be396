//! The `volt` executable.
//!
//! `volt run` is on the boot path of every unikernel, so it skips Rust's
//! runtime start-up (`#![no_main]`: no `/proc/self/maps` read for the stack
//! guard, no alternate signal stack) and does by hand the one part it needs:
//! ignoring SIGPIPE, so that a closed output pipe is an EPIPE for the guest
//! rather than the death of the monitor.
#![no_main]

use std::io::Write;
use std::time::Instant;

#[no_mangle]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let started = Instant::now();
    optivolt_volt::instance::supervise::die_with_parent();
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let code = optivolt_volt::real_main(started);
    let _ = std::io::stdout().flush();
    code
}
