//! `volt`: run ordinary Linux programs as OptiVolt unikernels.
use std::process::ExitCode;
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

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::run(a, started),
        Command::Bench(a) => bench::bench(a),
    };
    match result {
        Ok(code) => ExitCode::from((code & 0xff) as u8),
        Err(e) => {
            eprintln!("volt: {e:#}");
            ExitCode::from(optivolt_abi::exit::VOLT_ERROR as u8)
        }
    }
}
