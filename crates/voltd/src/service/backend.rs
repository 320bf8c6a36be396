//! The replicas as the balancer sees them: each one's phase, in-flight
//! count and last activity; choosing one for a request; waiting until one
//! is ready.
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use optivolt_volt::service::spec::Balance;
use optivolt_volt::service::store::Replica;

/// Where a replica is in its life, as the balancer sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Booted or restored; not yet answering its health check.
    Starting,
    /// Answers; takes new requests.
    Ready,
    /// Failed its checks; taken out until it answers again.
    Unhealthy,
    /// Being replaced or removed: finishes what it has, takes nothing new.
    Draining,
    /// Saved to its snapshot, no process; woken by the next connection.
    Standby,
    /// Being restored from standby.
    Waking,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Unhealthy => "unhealthy",
            Phase::Draining => "draining",
            Phase::Standby => "standby",
            Phase::Waking => "waking",
        }
    }
}

pub struct Backend {
    pub replica: Replica,
    phase: Mutex<Phase>,
    /// Requests (http) or connections (tcp) in progress.
    pub inflight: AtomicU32,
    pub served: AtomicU64,
    last_active: Mutex<Instant>,
}

impl Backend {
    pub fn new(replica: Replica, phase: Phase) -> Arc<Backend> {
        Arc::new(Backend {
            replica,
            phase: Mutex::new(phase),
            inflight: AtomicU32::new(0),
            served: AtomicU64::new(0),
            last_active: Mutex::new(Instant::now()),
        })
    }

    pub fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.replica.ip
    }

    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from((self.replica.ip, port))
    }

    pub fn name(&self) -> &str {
        &self.replica.instance
    }

    /// Time since the last request or connection ended (zero while busy).
    pub fn idle_for(&self) -> std::time::Duration {
        if self.inflight.load(Ordering::Acquire) > 0 {
            return std::time::Duration::ZERO;
        }
        self.last_active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    pub fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

/// A request or connection on a backend; counts it until dropped.
pub struct Lease(pub Arc<Backend>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.touch();
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every replica of a service.
pub struct Pool {
    backends: RwLock<Vec<Arc<Backend>>>,
    rr: AtomicUsize,
    /// Bumped on every change of phase or membership.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            backends: RwLock::new(Vec::new()),
            rr: AtomicUsize::new(0),
            changed: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Pool {
    pub fn all(&self) -> Vec<Arc<Backend>> {
        self.backends
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn add(&self, b: Arc<Backend>) {
        self.backends
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(b);
        self.bump();
    }

    pub fn remove(&self, name: &str) {
        self.backends
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|b| b.name() != name);
        self.bump();
    }

    pub fn set(&self, b: &Backend, p: Phase) {
        let mut g = b.phase.lock().unwrap_or_else(|e| e.into_inner());
        if *g != p {
            tracing::info!(
                replica = b.name(),
                from = g.as_str(),
                to = p.as_str(),
                "phase"
            );
            *g = p;
            drop(g);
            self.bump();
        }
    }

    /// Moves `b` from `from` to `to` if it is in `from`; whether it did.
    pub fn swap(&self, b: &Backend, from: Phase, to: Phase) -> bool {
        let mut g = b.phase.lock().unwrap_or_else(|e| e.into_inner());
        if *g != from {
            return false;
        }
        *g = to;
        drop(g);
        self.bump();
        true
    }

    pub fn count(&self, p: Phase) -> usize {
        self.all().iter().filter(|b| b.phase() == p).count()
    }

    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A ready backend for one request, `avoid` excepted if another is ready.
    pub fn pick(&self, how: Balance, avoid: Option<&str>) -> Option<Lease> {
        let all = self.backends.read().unwrap_or_else(|e| e.into_inner());
        let ready: Vec<&Arc<Backend>> = all.iter().filter(|b| b.phase() == Phase::Ready).collect();
        let choice: Vec<&Arc<Backend>> = match avoid {
            Some(a) if ready.iter().any(|b| b.name() != a) => {
                ready.into_iter().filter(|b| b.name() != a).collect()
            }
            _ => ready,
        };
        if choice.is_empty() {
            return None;
        }
        let start = self.rr.fetch_add(1, Ordering::Relaxed) % choice.len();
        let b = match how {
            Balance::RoundRobin => choice[start],
            Balance::LeastConnections => {
                // The least loaded, ties broken by rotation.
                let mut best = choice[start];
                for k in 1..choice.len() {
                    let c = choice[(start + k) % choice.len()];
                    if c.inflight.load(Ordering::Acquire) < best.inflight.load(Ordering::Acquire) {
                        best = c;
                    }
                }
                best
            }
        };
        b.inflight.fetch_add(1, Ordering::AcqRel);
        b.served.fetch_add(1, Ordering::Relaxed);
        Some(Lease(Arc::clone(b)))
    }

    /// Requests in flight over every replica.
    pub fn inflight(&self) -> u32 {
        self.all()
            .iter()
            .map(|b| b.inflight.load(Ordering::Acquire))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(n: u32) -> Arc<Backend> {
        Backend::new(
            Replica {
                service: "s".into(),
                instance: format!("s-{n}"),
                ip: Ipv4Addr::new(10, 0, 0, n as u8),
                image: "i".into(),
                seq: n,
            },
            Phase::Ready,
        )
    }

    #[test]
    fn least_connections_prefers_the_idle_one() {
        let p = Pool::default();
        p.add(backend(1));
        p.add(backend(2));
        let a = p.pick(Balance::LeastConnections, None).unwrap();
        let b = p.pick(Balance::LeastConnections, None).unwrap();
        assert_ne!(a.0.name(), b.0.name());
        drop(a);
        let c = p.pick(Balance::LeastConnections, None).unwrap();
        assert_ne!(c.0.name(), b.0.name());
        assert_eq!(p.inflight(), 2);
    }

    #[test]
    fn only_ready_ones_and_avoid() {
        let p = Pool::default();
        let one = backend(1);
        p.add(Arc::clone(&one));
        p.add(backend(2));
        p.set(&one, Phase::Draining);
        for _ in 0..4 {
            assert_eq!(p.pick(Balance::RoundRobin, None).unwrap().0.name(), "s-2");
        }
        p.set(&one, Phase::Ready);
        for _ in 0..4 {
            assert_eq!(
                p.pick(Balance::RoundRobin, Some("s-2")).unwrap().0.name(),
                "s-1"
            );
        }
        p.remove("s-1");
        assert_eq!(
            p.pick(Balance::RoundRobin, Some("s-2")).unwrap().0.name(),
            "s-2"
        );
        p.remove("s-2");
        assert!(p.pick(Balance::RoundRobin, None).is_none());
    }

    #[test]
    fn idle_time_counts_from_the_last_lease() {
        let p = Pool::default();
        p.add(backend(1));
        let l = p.pick(Balance::RoundRobin, None).unwrap();
        assert_eq!(l.0.idle_for(), std::time::Duration::ZERO);
        let b = Arc::clone(&l.0);
        drop(l);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(b.idle_for() >= std::time::Duration::from_millis(5));
    }
}
