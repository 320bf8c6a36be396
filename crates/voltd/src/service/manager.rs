//! The services voltd runs: making one (ports bound, network, replicas,
//! tasks — or nothing, on any failure), reading them back at start,
//! removing them, and what the API shows of them.
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use optivolt_volt::instance::{Db, State};
use optivolt_volt::service::spec::{Port, Proto};
use optivolt_volt::service::store::{self, Record};
use optivolt_volt::service::{Plan, Spec};
use serde::Serialize;
use tokio::task::JoinHandle;

use super::backend::{Backend, Phase, Pool};
use super::blocking;
use super::netns::Netns;

/// Wake times kept for the API's percentiles.
const WAKES_KEPT: usize = 1000;

/// One running service.
pub struct Service {
    pub name: String,
    spec: RwLock<Arc<Spec>>,
    plan: RwLock<Arc<Plan>>,
    pub pool: Pool,
    pub ns: Arc<Netns>,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    pub client: super::http::Client,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// One wake at a time decides which replica to restore.
    pub waking: tokio::sync::Mutex<()>,
    pub updating: AtomicBool,
    /// Replicas being booted that are not in the pool yet.
    pub booting: std::sync::atomic::AtomicUsize,
    pub requests: AtomicU64,
    pub failed: AtomicU64,
    pub wake_times: Mutex<Vec<f64>>,
    pub status: Mutex<String>,
}

impl Service {
    pub fn spec(&self) -> Arc<Spec> {
        Arc::clone(&self.spec.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The checked spec (shared: read on every request).
    pub fn plan(&self) -> Arc<Plan> {
        Arc::clone(&self.plan.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn set_spec(&self, s: Spec, p: Plan) {
        *self.spec.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
        *self.plan.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
    }

    pub fn set_status(&self, s: &str) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = s.to_string();
    }

    pub fn record_wake(&self, secs: f64) {
        super::metrics::WAKE_SECONDS
            .get_or_create(&super::metrics::label(&self.name))
            .observe(secs);
        let mut w = self.wake_times.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() == WAKES_KEPT {
            w.remove(0);
        }
        w.push(secs);
    }

    fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tokio::spawn(f));
    }

    fn stop_tasks(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

/// Every service, and one namespace thread and resolver per network.
#[derive(Default)]
pub struct Manager {
    services: Mutex<HashMap<String, Arc<Service>>>,
    networks: Mutex<HashMap<String, Arc<Netns>>>,
    /// Serialises creations and removals (ports, networks, names).
    changing: tokio::sync::Mutex<()>,
}

static MANAGER: OnceLock<Manager> = OnceLock::new();

pub fn manager() -> &'static Manager {
    MANAGER.get_or_init(Manager::default)
}

/// Why a change was refused: the API's status for it.
#[derive(Debug)]
pub enum Refused {
    Bad(String),
    NotFound(String),
    Conflict(String),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Refused {
    fn from(e: anyhow::Error) -> Self {
        Refused::Failed(e)
    }
}

/// What the API shows of a replica.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplicaView {
    pub instance: String,
    pub ip: String,
    pub image: String,
    /// starting, ready, unhealthy, draining, standby, waking.
    pub phase: String,
    pub inflight: u32,
    /// Requests (http) or connections (tcp) sent to it.
    pub served: u64,
}

/// Wakes from standby so far.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WakeView {
    pub count: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// A service.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceView {
    pub name: String,
    #[schema(value_type = Object)]
    pub spec: Spec,
    /// ready, updating, or why the last update was rolled back.
    pub status: String,
    pub network: String,
    /// The address guests reach the service at (`NAME.internal`).
    pub gateway: String,
    pub ready: usize,
    pub standby: usize,
    pub replicas: Vec<ReplicaView>,
    pub requests: u64,
    pub failed_requests: u64,
    pub wakes: WakeView,
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).map(|s| s * 1000.0)
}

pub fn view(s: &Service) -> ServiceView {
    let mut w = s
        .wake_times
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    w.sort_by(|a, b| a.total_cmp(b));
    let replicas = s
        .pool
        .all()
        .iter()
        .map(|b| ReplicaView {
            instance: b.name().to_string(),
            ip: b.ip().to_string(),
            image: b.replica.image.clone(),
            phase: b.phase().as_str().to_string(),
            inflight: b.inflight.load(Ordering::Relaxed),
            served: b.served.load(Ordering::Relaxed),
        })
        .collect();
    ServiceView {
        name: s.name.clone(),
        spec: (*s.spec()).clone(),
        status: s.status.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        network: s.plan().network.clone(),
        gateway: s.gateway.to_string(),
        ready: s.pool.count(Phase::Ready),
        standby: s.pool.count(Phase::Standby),
        replicas,
        requests: s.requests.load(Ordering::Relaxed),
        failed_requests: s.failed.load(Ordering::Relaxed),
        wakes: WakeView {
            count: w.len(),
            p50_ms: percentile(&w, 0.5),
            p99_ms: percentile(&w, 0.99),
        },
    }
}

/// The host listeners of a plan, bound before anything else is made.
async fn bind_ports(plan: &Plan) -> Result<Vec<tokio::net::TcpListener>, Refused> {
    let mut out = Vec::new();
    for p in &plan.ports {
        let addr = SocketAddr::from((p.host, p.host_port));
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => out.push(l),
            Err(e) => {
                return Err(Refused::Conflict(format!(
                    "cannot listen on {addr}: {e} (is the port taken?)"
                )))
            }
        }
    }
    Ok(out)
}

impl Manager {
    pub fn get(&self, name: &str) -> Option<Arc<Service>> {
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Service>> {
        let mut v: Vec<_> = self
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Whether voltd answers DNS on network `net`.
    pub fn serves(&self, net: &str) -> bool {
        self.networks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(net)
    }

    /// The services on network `net`.
    pub fn on_network(&self, net: &str) -> Vec<Arc<Service>> {
        self.all()
            .into_iter()
            .filter(|s| s.plan().network == net)
            .collect()
    }

    /// The namespace thread of network `net`, with its resolver.
    async fn netns(&'static self, net: &str, gateway: Ipv4Addr) -> Result<Arc<Netns>> {
        if let Some(n) = self
            .networks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(net)
        {
            return Ok(Arc::clone(n));
        }
        let path = optivolt_volt::network::setup::netns_path(net);
        let ns = Arc::new(Netns::enter(&path)?);
        let udp = ns
            .udp(SocketAddr::from((gateway, 53)))
            .await
            .with_context(|| format!("cannot serve DNS on {gateway}:53 in network {net}"))?;
        tokio::spawn(super::dns::serve(self, net.to_string(), udp));
        self.networks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(net.to_string(), Arc::clone(&ns));
        Ok(ns)
    }

    /// Makes service `spec`: everything, or nothing.
    pub async fn create(&'static self, spec: Spec) -> Result<Arc<Service>, Refused> {
        let plan = spec.check().map_err(|e| Refused::Bad(format!("{e:#}")))?;
        let _g = self.changing.lock().await;
        if self.get(&spec.name).is_some() {
            return Err(Refused::Conflict(format!(
                "service {} already exists",
                spec.name
            )));
        }
        let image = spec.image.clone();
        let exists = blocking(move || {
            let store = optivolt_volt::store::Store::open_default()?;
            Ok(store.find(&image)?.is_some())
        })
        .await?;
        if !exists {
            return Err(Refused::NotFound(format!(
                "no such image: {} (POST /v1/images/pull first)",
                spec.image
            )));
        }
        let listeners = bind_ports(&plan).await?;
        let (s2, network) = (spec.clone(), plan.network.clone());
        let default_net = spec.network.is_none();
        let made_net = blocking(move || {
            let mut db = store::db()?;
            store::insert(&mut db, &s2)?;
            let made = match optivolt_volt::network::find(&mut db, &network)? {
                Some(_) => false,
                None if default_net => {
                    if let Err(e) = optivolt_volt::network::create(&mut db, &network, None) {
                        store::remove(&mut db, &s2.name)?;
                        return Err(e);
                    }
                    true
                }
                None => {
                    store::remove(&mut db, &s2.name)?;
                    bail!("no such network: {network} (volt network create {network})")
                }
            };
            Ok(made)
        })
        .await
        .map_err(|e| {
            let m = format!("{e:#}");
            if m.contains("already exists") {
                Refused::Conflict(m)
            } else if m.contains("no such network") {
                Refused::NotFound(m)
            } else {
                Refused::Failed(e)
            }
        })?;
        let svc = match self.start(spec.clone(), plan.clone(), listeners).await {
            Ok(s) => s,
            Err(e) => {
                self.forget(&spec.name, made_net.then_some(plan.network.clone()))
                    .await;
                return Err(Refused::Failed(e));
            }
        };
        // The first replicas; a failure here undoes the whole service.
        let mut boots = Vec::new();
        for _ in 0..plan.replicas {
            boots.push(super::replica::boot(&svc, &spec.image).await);
        }
        let mut failed = None;
        for b in boots {
            match b {
                Ok(b) => {
                    let limit = super::update::ready_limit(&plan);
                    if let Err(e) = super::replica::wait_ready(&svc, &b, limit).await {
                        failed.get_or_insert(e);
                    } else {
                        svc.pool.swap(&b, Phase::Starting, Phase::Ready);
                    }
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            self.teardown(&svc, made_net).await;
            return Err(Refused::Failed(
                e.context(format!("service {} was not created", spec.name)),
            ));
        }
        Ok(svc)
    }

    /// The running side of a recorded service: listeners, tasks.
    async fn start(
        &'static self,
        spec: Spec,
        plan: Plan,
        listeners: Vec<tokio::net::TcpListener>,
    ) -> Result<Arc<Service>> {
        let net = plan.network.clone();
        let n = blocking(move || {
            let mut db = store::db()?;
            optivolt_volt::network::find(&mut db, &net)?
                .with_context(|| format!("network {net} is gone"))
        })
        .await?;
        let gateway = n.gateway();
        let ns = self.netns(&plan.network, gateway).await?;
        // The service's address on its network, for the guests: each
        // guest port once (the first host port's protocol).
        let mut served: Vec<(tokio::net::TcpListener, Port)> = listeners
            .into_iter()
            .zip(plan.ports.iter().cloned())
            .collect();
        for (i, p) in plan.ports.iter().enumerate() {
            if plan.ports[..i].iter().any(|q| q.guest_port == p.guest_port) {
                continue;
            }
            let addr = SocketAddr::from((gateway, p.guest_port));
            let l = ns
                .listen(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} in network {}", plan.network))?;
            served.push((l, p.clone()));
        }
        let svc = Arc::new(Service {
            name: spec.name.clone(),
            client: super::http::client(Arc::clone(&ns)),
            spec: RwLock::new(Arc::new(spec)),
            plan: RwLock::new(Arc::new(plan.clone())),
            pool: Pool::default(),
            ns,
            gateway,
            prefix: n.prefix,
            tasks: Mutex::new(Vec::new()),
            waking: tokio::sync::Mutex::new(()),
            updating: AtomicBool::new(false),
            booting: std::sync::atomic::AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            wake_times: Mutex::new(Vec::new()),
            status: Mutex::new("ready".into()),
        });
        for (l, p) in served {
            let s = Arc::clone(&svc);
            let port = p.guest_port;
            match p.proto {
                Proto::Http => svc.spawn(super::http::serve(s, l, port)),
                Proto::Tcp => svc.spawn(super::tcp::serve(s, l, port)),
            }
        }
        svc.spawn(super::health::run(Arc::clone(&svc)));
        svc.spawn(super::scale::run(Arc::clone(&svc)));
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(svc.name.clone(), Arc::clone(&svc));
        Ok(svc)
    }

    /// Drops a service's record (and the network voltd made for it).
    async fn forget(&self, name: &str, network: Option<String>) {
        let name = name.to_string();
        let _ = blocking(move || {
            let mut db = store::db()?;
            store::remove(&mut db, &name)?;
            if let Some(n) = network {
                optivolt_volt::network::remove(&mut db, &n)?;
            }
            Ok(())
        })
        .await;
    }

    /// Stops the service's tasks, removes its replicas and its record.
    async fn teardown(&self, svc: &Arc<Service>, remove_net: bool) {
        svc.stop_tasks();
        super::metrics::WAKE_SECONDS.remove(&super::metrics::label(&svc.name));
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&svc.name);
        for b in svc.pool.all() {
            svc.pool.set(&b, Phase::Draining);
        }
        super::update::drain_all(svc, Duration::from_secs(10)).await;
        for b in svc.pool.all() {
            if let Err(e) = super::replica::remove(&b).await {
                tracing::warn!(replica = b.name(), "cannot remove: {e:#}");
            }
            svc.pool.remove(b.name());
        }
        let plan = svc.plan();
        let net = (remove_net || svc.spec().network.is_none()).then(|| plan.network.clone());
        let others = net.as_ref().is_some_and(|n| !self.on_network(n).is_empty());
        if others {
            self.forget(&svc.name, None).await;
        } else {
            if let Some(n) = &net {
                self.networks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(n);
            }
            self.forget(&svc.name, net).await;
        }
    }

    /// Removes service `name` and its replicas.
    pub async fn remove(&'static self, name: &str) -> Result<(), Refused> {
        let _g = self.changing.lock().await;
        let Some(svc) = self.get(name) else {
            return Err(Refused::NotFound(format!("no such service: {name}")));
        };
        self.teardown(&svc, false).await;
        Ok(())
    }

    /// Runs again what the store holds (at voltd's start).
    pub async fn restore_all(&'static self) -> Result<()> {
        let records: Vec<Record> = blocking(|| {
            let mut db = store::db()?;
            store::list(&mut db)
        })
        .await?;
        for r in records {
            if let Err(e) = self.restore(r.clone()).await {
                tracing::error!(service = %r.spec.name, "cannot run the service again: {e:#}");
            }
        }
        Ok(())
    }

    async fn restore(&'static self, r: Record) -> Result<()> {
        let plan = r.spec.check()?;
        let listeners = match bind_ports(&plan).await {
            Ok(l) => l,
            Err(Refused::Conflict(m)) => bail!("{m}"),
            Err(_) => bail!("cannot bind the service's ports"),
        };
        let name = r.spec.name.clone();
        let svc = self.start(r.spec, plan, listeners).await?;
        let replicas = blocking(move || {
            let mut db = store::db()?;
            let rs = store::replicas(&mut db, &name)?;
            let mut idb = Db::open_default()?;
            Ok(rs
                .into_iter()
                .map(|r| {
                    let st = idb.find(&r.instance).map(|i| i.state).ok();
                    (r, st)
                })
                .collect::<Vec<_>>())
        })
        .await?;
        for (r, st) in replicas {
            let phase = match st {
                Some(State::Standby) => Phase::Standby,
                Some(_) => Phase::Starting,
                None => continue,
            };
            let _ = optivolt_volt::network::setup::pin_neighbour(&svc.plan().network, r.ip);
            let b = Backend::new(r, phase);
            svc.pool.add(Arc::clone(&b));
            if phase == Phase::Starting {
                if st != Some(State::Running) {
                    let _ = super::replica::wake(&b).await;
                }
                if super::replica::answers(&svc, &b, Duration::from_secs(1)).await {
                    svc.pool.swap(&b, Phase::Starting, Phase::Ready);
                }
            }
        }
        Ok(())
    }
}
