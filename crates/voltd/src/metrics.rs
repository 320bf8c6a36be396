//! `/metrics`: every instance's state, CPU, memory (RSS, PSS, guest RAM
//! backed), uptime and restarts, and its monitor's live counters (exits,
//! network bytes and packets, the guest's system calls by jump and by trap,
//! patched sites, page faults, relayed connections) in the
//! Prometheus/OpenMetrics text format (`prometheus-client`), one scrape for
//! all of them; and the services' (`crate::service::metrics`). Until the benchmark report defines an energy model,
//! CPU-seconds and memory are the cost figures.
use std::sync::atomic::AtomicU64;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
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
struct PathLabels {
    instance: String,
    image: String,
    /// How system calls arrived: `jump` (a patched site) or `trap`.
    path: String,
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
    let pss = Family::<Labels, Gauge>::default();
    reg.register(
        "volt_instance_memory_pss_bytes",
        "Proportional set size of the monitor process (shared pages divided among their users)",
        pss.clone(),
    );
    let guest_mem = Family::<Labels, Gauge>::default();
    reg.register(
        "volt_instance_guest_memory_bytes",
        "Guest RAM the host backs now (pages the guest touched and still holds)",
        guest_mem.clone(),
    );
    let counter = |reg: &mut Registry, name: &str, help: &str| {
        let f = Family::<Labels, Counter>::default();
        reg.register(name, help, f.clone());
        f
    };
    let energy = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    reg.register(
        "volt_instance_energy_joules",
        "Energy since the instance started, estimated with the Cloud Carbon Footprint method (one vCPU for the uptime, the CPU-seconds used, the PSS held, x PUE)",
        energy.clone(),
    );
    let exits = counter(
        &mut reg,
        "volt_instance_exits",
        "VM exits since the monitor started",
    );
    let rx_bytes = counter(
        &mut reg,
        "volt_instance_network_receive_bytes",
        "Bytes the guest received",
    );
    let rx_packets = counter(
        &mut reg,
        "volt_instance_network_receive_packets",
        "Frames the guest received",
    );
    let tx_bytes = counter(
        &mut reg,
        "volt_instance_network_transmit_bytes",
        "Bytes the guest sent",
    );
    let tx_packets = counter(
        &mut reg,
        "volt_instance_network_transmit_packets",
        "Frames the guest sent",
    );
    let faults = counter(
        &mut reg,
        "volt_instance_page_faults",
        "Application page faults the library OS served",
    );
    let conns = counter(
        &mut reg,
        "volt_instance_connections",
        "TCP connections relayed through published ports",
    );
    let open_conns = Family::<Labels, Gauge>::default();
    reg.register(
        "volt_instance_open_connections",
        "TCP connections open now through published ports",
        open_conns.clone(),
    );
    let patched = Family::<Labels, Gauge>::default();
    reg.register(
        "volt_instance_patched_sites",
        "syscall sites the library OS rewrote into jumps",
        patched.clone(),
    );
    let syscalls = Family::<PathLabels, Counter>::default();
    reg.register(
        "volt_instance_syscalls",
        "System calls, by how they arrived (jump: a patched site; trap)",
        syscalls.clone(),
    );
    reg.register(
        "volt_instance_state",
        "1 for the instance's state (stopped, starting, running, stopping, standby)",
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
        if let Some(p) = m.pss_bytes {
            pss.get_or_create(&l).set(p as i64);
        }
        if let Some(j) = m.energy_joules {
            energy.get_or_create(&l).set(j);
        }
        if let Some(c) = m.live {
            guest_mem.get_or_create(&l).set(c.guest_memory_bytes as i64);
            exits.get_or_create(&l).inc_by(c.exits);
            rx_bytes.get_or_create(&l).inc_by(c.rx_bytes);
            rx_packets.get_or_create(&l).inc_by(c.rx_packets);
            tx_bytes.get_or_create(&l).inc_by(c.tx_bytes);
            tx_packets.get_or_create(&l).inc_by(c.tx_packets);
            faults.get_or_create(&l).inc_by(c.page_faults);
            conns.get_or_create(&l).inc_by(c.connections);
            open_conns.get_or_create(&l).set(c.open_connections as i64);
            patched.get_or_create(&l).set(c.patched_sites as i64);
            for (path, n) in [("jump", c.syscalls_by_jump), ("trap", c.syscalls_by_trap)] {
                syscalls
                    .get_or_create(&PathLabels {
                        instance: l.instance.clone(),
                        image: l.image.clone(),
                        path: path.into(),
                    })
                    .inc_by(n);
            }
        }
        restarts.get_or_create(&l).set(i64::from(m.restarts));
        state
            .get_or_create(&StateLabels {
                instance: i.name.clone(),
                state: m.state.clone(),
            })
            .set(1);
    }
    crate::service::metrics::register(&mut reg);
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
