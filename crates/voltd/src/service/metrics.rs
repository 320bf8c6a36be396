//! The services' families in `/metrics`: requests and failed requests,
//! requests in flight, replicas by phase, and the wake-from-standby
//! latency as a histogram.
use std::sync::atomic::Ordering;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::backend::Phase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    service: String,
    phase: String,
}

pub fn label(service: &str) -> ServiceLabel {
    ServiceLabel {
        service: service.to_string(),
    }
}

fn wake_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
    ])
}

type Wakes = Family<ServiceLabel, Histogram, fn() -> Histogram>;

/// Seconds from a wake's start (a connection found no ready replica) to
/// the restored replica answering.
pub static WAKE_SECONDS: LazyLock<Wakes> =
    LazyLock::new(|| Family::new_with_constructor(wake_histogram));

const PHASES: [Phase; 6] = [
    Phase::Starting,
    Phase::Ready,
    Phase::Unhealthy,
    Phase::Draining,
    Phase::Standby,
    Phase::Waking,
];

pub fn register(reg: &mut Registry) {
    let requests = Family::<ServiceLabel, Counter>::default();
    let failed = Family::<ServiceLabel, Counter>::default();
    let inflight = Family::<ServiceLabel, Gauge>::default();
    let replicas = Family::<PhaseLabels, Gauge>::default();
    reg.register(
        "volt_service_requests",
        "Requests (http) or connections (tcp) the balancer took",
        requests.clone(),
    );
    reg.register(
        "volt_service_failed_requests",
        "Requests answered 502/503 by the balancer (no replica could take them)",
        failed.clone(),
    );
    reg.register(
        "volt_service_inflight",
        "Requests or connections in progress",
        inflight.clone(),
    );
    reg.register(
        "volt_service_replicas",
        "Replicas by phase (starting, ready, unhealthy, draining, standby, waking)",
        replicas.clone(),
    );
    reg.register(
        "volt_service_wake_seconds",
        "From a connection that found no ready replica to a replica restored from standby answering",
        WAKE_SECONDS.clone(),
    );
    for s in super::manager().all() {
        let l = label(&s.name);
        requests
            .get_or_create(&l)
            .inc_by(s.requests.load(Ordering::Relaxed));
        failed
            .get_or_create(&l)
            .inc_by(s.failed.load(Ordering::Relaxed));
        inflight.get_or_create(&l).set(i64::from(s.pool.inflight()));
        for p in PHASES {
            replicas
                .get_or_create(&PhaseLabels {
                    service: s.name.clone(),
                    phase: p.as_str().into(),
                })
                .set(s.pool.count(p) as i64);
        }
    }
}
