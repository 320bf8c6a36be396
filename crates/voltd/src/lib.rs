//! voltd: a REST API (`/v1`, OpenAPI at `/v1/openapi.json`) and Prometheus
//! metrics (`/metrics`) over volt's instances, images and volumes.
//!
//! voltd holds no VM itself: every instance runs under its own supervisor
//! (`volt __supervise`, as with `volt run -d`), recorded in volt's SQLite
//! store, so voltd can stop, crash or be upgraded while instances go on;
//! when it starts again it reads what runs from the store.
pub mod api;
mod listen;
pub mod metrics;
pub mod service;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// voltd's command line.
#[derive(clap::Parser, Debug)]
#[command(
    name = "voltd",
    version,
    about = "The OptiVolt control plane: REST API and metrics"
)]
pub struct Args {
    /// Where to listen: unix:///PATH (access by file permission, 0660) or
    /// tcp://ADDR:PORT (bearer token required). Repeatable.
    #[arg(long = "listen", required_unless_present = "print_openapi")]
    pub listen: Vec<String>,
    /// The API token (first line of the file). Required with a TCP listener;
    /// never on the command line.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    pub print_openapi: bool,
}

pub fn main(a: Args) -> Result<()> {
    if a.print_openapi {
        println!("{}", api::openapi_json());
        return Ok(());
    }
    let token = match &a.token_file {
        Some(f) => {
            let t = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?;
            let t = t.lines().next().unwrap_or("").trim().to_string();
            if t.len() < 16 {
                bail!("the token in {} is shorter than 16 characters", f.display());
            }
            Some(t)
        }
        None => None,
    };
    let listeners = a
        .listen
        .iter()
        .map(|l| listen::Spec::parse(l))
        .collect::<Result<Vec<_>>>()?;
    if token.is_none() && listeners.iter().any(|l| matches!(l, listen::Spec::Tcp(_))) {
        bail!("a tcp:// listener needs --token-file (the API would be open to every local user)");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(listen::serve(listeners, token))
}
