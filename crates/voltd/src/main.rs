//! `voltd`: the OptiVolt control plane for one machine.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = optivolt_voltd::Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    match optivolt_voltd::main(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voltd: {e:#}");
            ExitCode::from(1)
        }
    }
}
