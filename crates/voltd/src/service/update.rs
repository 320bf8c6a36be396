//! Rolling updates: replicas are replaced one at a time — a new one is
//! booted on the new image, must pass its health check, joins the pool,
//! and only then is an old one drained (no new requests; those in flight
//! finish) and removed. If a new replica fails its check, the update stops
//! and the replicas already replaced are rolled back the same way.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use optivolt_volt::service::Plan;

use super::backend::{Backend, Phase};
use super::manager::Service;

/// How long a new replica has to pass its health check.
pub fn ready_limit(plan: &Plan) -> Duration {
    (plan.health_interval * 10).max(Duration::from_secs(10))
}

/// Waits until the draining replicas have nothing in flight (bounded).
pub async fn drain_all(svc: &Service, limit: Duration) {
    let t = Instant::now();
    while t.elapsed() < limit {
        let busy = svc
            .pool
            .all()
            .iter()
            .any(|b| b.phase() == Phase::Draining && b.inflight.load(Ordering::Acquire) > 0);
        if !busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drains `b` and removes it.
pub async fn retire(svc: &Service, b: &Arc<Backend>) {
    svc.pool.set(b, Phase::Draining);
    let t = Instant::now();
    while b.inflight.load(Ordering::Acquire) > 0 && t.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Err(e) = super::replica::remove(b).await {
        tracing::warn!(replica = b.name(), "cannot remove: {e:#}");
    }
    svc.pool.remove(b.name());
}

/// Boots one replica of `image` and waits for its health check; removes it
/// again if it fails.
async fn replacement(svc: &Arc<Service>, image: &str) -> Result<Arc<Backend>> {
    let b = super::replica::boot(svc, image).await?;
    match super::replica::wait_ready(svc, &b, ready_limit(&svc.plan())).await {
        Ok(()) => {
            svc.pool.swap(&b, Phase::Starting, Phase::Ready);
            Ok(b)
        }
        Err(e) => {
            svc.pool.set(&b, Phase::Draining);
            let _ = super::replica::remove(&b).await;
            svc.pool.remove(b.name());
            Err(e)
        }
    }
}

/// Replaces every replica not on `to` by one on `to`, one at a time. On
/// failure, what was replaced goes back to `from`; the error says why.
pub async fn roll(svc: &Arc<Service>, from: &str, to: &str) -> Result<(), String> {
    let old: Vec<Arc<Backend>> = svc
        .pool
        .all()
        .into_iter()
        .filter(|b| b.replica.image != to)
        .collect();
    let mut done: Vec<Arc<Backend>> = Vec::new();
    for o in &old {
        match replacement(svc, to).await {
            Ok(n) => {
                done.push(n);
                if o.phase() == Phase::Standby {
                    let _ = super::replica::remove(o).await;
                    svc.pool.remove(o.name());
                } else {
                    retire(svc, o).await;
                }
            }
            Err(e) => {
                let why = format!("{e:#}");
                tracing::error!(service = %svc.name, "update to {to} failed: {why}; rolling back");
                for n in &done {
                    if replacement(svc, from).await.is_ok() {
                        retire(svc, n).await;
                    }
                }
                return Err(why);
            }
        }
    }
    Ok(())
}

/// Why an update did not happen (or was undone).
#[derive(Debug)]
pub enum Failed {
    /// Another update runs.
    Busy(String),
    /// The changed spec is not valid.
    Invalid(String),
    /// A new replica failed; what was replaced went back.
    RolledBack(String),
}

/// `PATCH /v1/services/NAME`: a new image (rolled), a new replica count, or both.
pub async fn apply(
    svc: &Arc<Service>,
    image: Option<String>,
    replicas: Option<u32>,
) -> Result<(), Failed> {
    if svc.updating.swap(true, Ordering::AcqRel) {
        return Err(Failed::Busy(
            "an update of this service is in progress".into(),
        ));
    }
    let r = apply_locked(svc, image, replicas).await;
    svc.updating.store(false, Ordering::Release);
    r
}

async fn apply_locked(
    svc: &Arc<Service>,
    image: Option<String>,
    replicas: Option<u32>,
) -> Result<(), Failed> {
    let mut spec = (*svc.spec()).clone();
    let from = spec.image.clone();
    if let Some(i) = &image {
        spec.image = i.clone();
    }
    if let Some(r) = replicas {
        spec.replicas = Some(r);
    }
    let plan = spec
        .check()
        .map_err(|e| Failed::Invalid(format!("{e:#}")))?;
    svc.set_status("updating");
    if let Some(to) = image.as_deref().filter(|i| *i != from) {
        if let Err(why) = roll(svc, &from, to).await {
            let msg = format!("update to {to} rolled back: {why}");
            svc.set_status(&msg);
            save(svc).await;
            return Err(Failed::RolledBack(msg));
        }
    }
    svc.set_spec(spec, plan.clone());
    // The count: add or retire replicas to match.
    if replicas.is_some() {
        let live: Vec<Arc<Backend>> = svc.pool.all();
        let n = live.len() as u32;
        if plan.replicas > n {
            for _ in n..plan.replicas {
                let image = svc.spec().image.clone();
                if let Err(e) = replacement(svc, &image).await {
                    let msg = format!("cannot add a replica: {e:#}");
                    svc.set_status(&msg);
                    save(svc).await;
                    return Err(Failed::RolledBack(msg));
                }
            }
        } else {
            let mut surplus = live;
            surplus.sort_by_key(|b| std::cmp::Reverse(b.replica.seq));
            for b in surplus.iter().take((n - plan.replicas) as usize) {
                retire(svc, b).await;
            }
        }
    }
    svc.set_status("ready");
    save(svc).await;
    Ok(())
}

/// Stores the service's spec and status.
async fn save(svc: &Service) {
    let spec = svc.spec();
    let status = svc.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let _ = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut db = optivolt_volt::service::store::db()?;
        optivolt_volt::service::store::set_spec(&mut db, &spec)?;
        optivolt_volt::service::store::set_status(&mut db, &spec.name, &status)
    })
    .await;
}
