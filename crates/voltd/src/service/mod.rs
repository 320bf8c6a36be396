//! Services in voltd: for each, listeners on the host (the published
//! ports) and on its network's gateway (`NAME.internal` for the guests),
//! a pool of replicas, and the tasks that keep it right — health checks,
//! scale-to-zero and autoscaling, rolling updates — plus one resolver per
//! network. Replicas are ordinary detached instances (`NAME-N`, restart
//! always) on the service's volt network; the balancer reaches them at
//! their guest addresses from inside the network's namespace, so the
//! `volt run -p` relay is not in the data path.
pub mod backend;
mod dns;
mod health;
mod http;
pub mod manager;
pub mod metrics;
mod netns;
mod replica;
mod scale;
mod tcp;
pub mod update;

pub use manager::{manager, Service, ServiceView};

/// Runs blocking volt code (SQLite, process spawns) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    use anyhow::Context;
    tokio::task::spawn_blocking(f)
        .await
        .context("a blocking task panicked")?
}
