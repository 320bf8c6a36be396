//! Starting, waking, standing by and removing one replica (the volt
//! library's instance calls, on blocking threads), and waiting until a
//! replica answers.
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use optivolt_volt::instance::{Db, State};
use optivolt_volt::service::store;

use super::backend::{Backend, Phase};
use super::blocking;
use super::manager::Service;

/// Boots a new replica of `image`; it joins the pool as `Starting`.
pub async fn boot(svc: &Arc<Service>, image: &str) -> Result<Arc<Backend>> {
    let s = Arc::clone(svc);
    let image = image.to_string();
    let r = blocking(move || {
        let spec = s.spec();
        let plan = s.plan();
        let mut db = store::db()?;
        let r = store::reserve(&mut db, &s.name, &plan.network, &image)?;
        if let Err(e) = optivolt_volt::network::setup::pin_neighbour(&plan.network, r.ip) {
            let _ = store::remove_replica(&mut db, &r.instance);
            return Err(e);
        }
        let mut a: Vec<String> = vec!["-d".into()];
        let mut opt = |k: &str, v: String| {
            a.push(k.into());
            a.push(v);
        };
        opt("--name", r.instance.clone());
        opt("--restart", "always".into());
        opt("--network", plan.network.clone());
        opt("--ip", format!("{}/{}", r.ip, s.prefix));
        opt("--dns", s.gateway.to_string());
        opt("--env", format!("HOSTNAME={}", r.instance));
        if let Some(m) = &spec.memory {
            opt("--memory", m.clone());
        }
        for (k, v) in &spec.env {
            opt("--env", format!("{k}={v}"));
        }
        a.push(image.clone());
        a.extend(spec.args.iter().cloned());
        let started =
            optivolt_volt::run::parse_args(&a).and_then(|args| optivolt_volt::run::detach(&args));
        if let Err(e) = started {
            let _ = store::remove_replica(&mut db, &r.instance);
            return Err(e);
        }
        Ok(r)
    })
    .await?;
    let b = Backend::new(r, Phase::Starting);
    svc.pool.add(Arc::clone(&b));
    Ok(b)
}

/// Whether `b` answers its health check now.
pub async fn answers(svc: &Service, b: &Backend, timeout: Duration) -> bool {
    let port = svc.plan().ports[0].guest_port;
    let path = svc.plan().health_path.clone();
    let check = async {
        match path {
            None => svc.ns.connect(b.addr(port)).await.is_ok(),
            Some(p) => super::http::get_ok(svc, b, port, &p).await,
        }
    };
    tokio::time::timeout(timeout, check).await.unwrap_or(false)
}

/// Waits until `b` answers, at most `limit`; fails early if its instance
/// ended.
///
/// A SYN sent before the guest's tap is on the bridge is lost, and TCP
/// would send it again only after a second. So a fresh connection attempt
/// starts every millisecond for the first 50 ms (a restore's time), every
/// 10 ms after that (a boot's), each given up after 20 ms; the first that
/// connects is followed by the real health check.
pub async fn wait_ready(svc: &Service, b: &Backend, limit: Duration) -> Result<()> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let t = Instant::now();
    let port = svc.plan().ports[0].guest_port;
    let mut checked_state = Instant::now();
    let mut attempts = FuturesUnordered::new();
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {
                let gap = if t.elapsed() < Duration::from_millis(50) { 1 } else { 10 };
                next += Duration::from_millis(gap);
                if attempts.len() < 32 {
                    let connect = svc.ns.connect(b.addr(port));
                    attempts.push(tokio::time::timeout(Duration::from_millis(20), connect));
                }
            }
            Some(r) = attempts.next(), if !attempts.is_empty() => {
                if matches!(r, Ok(Ok(_))) {
                    let healthy = match &svc.plan().health_path {
                        None => true,
                        Some(_) => answers(svc, b, Duration::from_secs(1)).await,
                    };
                    if healthy {
                        return Ok(());
                    }
                    // Up but not healthy yet: the next check in 20 ms.
                    attempts.clear();
                    next = tokio::time::Instant::now() + Duration::from_millis(20);
                }
            }
        }
        if t.elapsed() > limit {
            bail!(
                "{} did not pass its health check within {:.0?}",
                b.name(),
                limit
            );
        }
        if checked_state.elapsed() > Duration::from_millis(250) {
            checked_state = Instant::now();
            let name = b.name().to_string();
            let ended = blocking(move || {
                let mut db = Db::open_default()?;
                Ok(match db.find(&name) {
                    Ok(i) => i.state == State::Exited || i.state == State::Dead,
                    Err(_) => true,
                })
            })
            .await
            .unwrap_or(false);
            if ended {
                bail!("{} ended before it passed its health check", b.name());
            }
        }
    }
}

/// Saves `b` and ends its process (it is `Draining` while this runs).
pub async fn standby(b: &Backend) -> Result<()> {
    let name = b.name().to_string();
    blocking(move || {
        let mut db = Db::open_default()?;
        let i = db.find(&name)?;
        optivolt_volt::snapshot::standby_one(&mut db, &i)
    })
    .await
}

/// Starts restoring `b` from its standby snapshot (its supervisor runs
/// `volt restore`); `wait_ready` sees it answer.
pub async fn wake(b: &Backend) -> Result<()> {
    let name = b.name().to_string();
    blocking(move || {
        let mut db = Db::open_default()?;
        let i = db.find(&name)?;
        optivolt_volt::instances::spawn_start(&mut db, &i).map(|_| ())
    })
    .await
}

/// Stops and removes `b`'s instance and its record.
pub async fn remove(b: &Backend) -> Result<()> {
    let name = b.name().to_string();
    blocking(move || {
        let mut db = store::db()?;
        if let Ok(i) = db.find(&name) {
            optivolt_volt::instances::remove_one(&mut db, &i)?;
        }
        store::remove_replica(&mut db, &name)
    })
    .await
}
