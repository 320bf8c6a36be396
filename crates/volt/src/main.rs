//! `volt`: run ordinary Linux programs as OptiVolt unikernels.
//!
//! `volt run` is on the boot path of every unikernel, so it skips Rust's
//! runtime start-up (`#![no_main]`: no `/proc/self/maps` read for the stack
//! guard, no alternate signal stack) and does by hand the one part it needs:
//! ignoring SIGPIPE, so that a closed output pipe is an EPIPE for the guest
//! rather than the death of the monitor.
#![no_main]

use std::io::Write;
use std::time::Instant;

use clap::{Parser, Subcommand};

mod bench;
mod image;
mod rootfs;
mod run;
mod size;

/// The library OS image, built by build.rs.
pub static LIBOS: &[u8] = include_bytes!(env!("OPTIVOLT_LIBOS_PATH"));

#[derive(Parser)]
#[command(
    name = "volt",
    version,
    about = "Run ordinary Linux programs as KVM unikernels",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a static x86-64 Linux binary as a unikernel and wait for it.
    Run(run::RunArgs),
    /// Benchmarks (boot time against a process and the bare-KVM floor).
    Bench(bench::BenchArgs),
}

#[no_mangle]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let started = Instant::now();
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let code = real_main(started);
    let _ = std::io::stdout().flush();
    code
}

fn real_main(started: Instant) -> i32 {
    // std::env::args works without the Rust runtime: glibc hands argv to std's
    // .init_array hook.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::run(a, started),
        Command::Bench(a) => bench::bench(a),
    };
    match result {
        Ok(code) => code & 0xff,
        Err(e) => {
            eprintln!("volt: {e:#}");
            optivolt_abi::exit::VOLT_ERROR
        }
    }
}
