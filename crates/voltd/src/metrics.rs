//! `/metrics`: every instance's state, CPU, memory, uptime and restarts in
//! the Prometheus/OpenMetrics text format (`prometheus-client`), one scrape
//! for all of them. Until the benchmark report defines an energy model,
//! CPU-seconds and resident memory are the cost figures.
use std::sync::atomic::AtomicU64;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::api::ApiError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    instance: String,
    image: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    instance: String,
    state: String,
}

/// The text exposition of every instance.
pub fn render() -> anyhow::Result<String> {
    let mut db = optivolt_volt::instance::Db::open_default()?;
    let list = db.list()?;
    let mut reg = Registry::default();
    let running = Family::<Labels, Gauge>::default();
    let cpu = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let rss = Family::<Labels, Gauge>::default();
    let uptime = Family::<Labels, Gauge>::default();
    let restarts = Family::<Labels, Gauge>::default();
    let state = Family::<StateLabels, Gauge>::default();
    reg.register(
        "volt_instance_running",
        "1 while the instance's VM runs",
        running.clone(),
    );
    reg.register(
        "volt_instance_cpu_seconds",
        "Host CPU seconds of the instance's monitor process (vCPU and I/O threads)",
        cpu.clone(),
    );
    reg.register(
        "volt_instance_memory_rss_bytes",
        "Resident memory of the instance's monitor process, guest RAM it touched included",
        rss.clone(),
    );
    reg.register(
        "volt_instance_uptime_seconds",
        "Seconds since the instance started",
        uptime.clone(),
    );
    reg.register(
        "volt_instance_restarts",
        "Restarts by the restart policy",
        restarts.clone(),
    );
    reg.register(
        "volt_instance_state",
        "1 for the instance's state (stopped, starting, running, stopping)",
        state.clone(),
    );
    for i in &list {
        let l = Labels {
            instance: i.name.clone(),
            image: i.image.clone(),
        };
        let m = crate::api::metrics_of(i);
        running
            .get_or_create(&l)
            .set(i64::from(m.state == "running"));
        if let Some(c) = m.cpu_seconds {
            cpu.get_or_create(&l).set(c);
        }
        if let Some(r) = m.rss_bytes {
            rss.get_or_create(&l).set(r as i64);
        }
        uptime.get_or_create(&l).set(m.uptime_seconds.unwrap_or(0));
        restarts.get_or_create(&l).set(i64::from(m.restarts));
        state
            .get_or_create(&StateLabels {
                instance: i.name.clone(),
                state: m.state.clone(),
            })
            .set(1);
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)?;
    Ok(out)
}

pub async fn prometheus() -> Response {
    match tokio::task::spawn_blocking(render).await {
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => ApiError::from(anyhow::anyhow!("{e}")).into_response(),
    }
}
