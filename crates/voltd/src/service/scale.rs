//! Scale-to-zero and autoscaling. A replica idle for the service's idle
//! time (no request or connection in flight) is saved and stopped
//! (standby), down to the warm minimum; a request that finds no ready
//! replica waits while one is restored. Under load above the target per
//! replica, replicas are added (standby ones restored first, else new ones
//! booted) up to the maximum; below it for the cool-down, removed.
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backend::{Backend, Lease, Phase};
use super::manager::Service;

/// How long a request waits for a replica before 503.
const WAIT: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_millis(100);

impl Service {
    /// A ready replica for one request or connection: waits while one
    /// wakes or starts; the reason if none comes.
    pub async fn acquire(self: &Arc<Self>, avoid: Option<&str>) -> Result<Lease, String> {
        let until = Instant::now() + WAIT;
        let mut changed = self.pool.watch();
        loop {
            changed.borrow_and_update();
            if let Some(l) = self.pool.pick(self.plan().balance, avoid) {
                return Ok(l);
            }
            let coming = self.pool.count(Phase::Starting) + self.pool.count(Phase::Waking);
            if coming == 0 && !self.wake_one().await {
                let draining = self.pool.count(Phase::Draining) + self.pool.count(Phase::Unhealthy);
                if draining == 0 {
                    return Err(format!("service {}: no replica to send it to", self.name));
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "service {}: no replica became ready within {WAIT:?}",
                    self.name
                ));
            }
            // Woken by any change; unhealthy ones are checked again on a timer.
            let _ =
                tokio::time::timeout(left.min(Duration::from_millis(200)), changed.changed()).await;
        }
    }

    /// Starts restoring one replica in standby; whether there was one.
    pub async fn wake_one(self: &Arc<Self>) -> bool {
        let _g = self.waking.lock().await;
        let Some(b) = self
            .pool
            .all()
            .into_iter()
            .find(|b| b.phase() == Phase::Standby)
        else {
            return false;
        };
        self.pool.set(&b, Phase::Waking);
        let s = Arc::clone(self);
        tokio::spawn(async move { s.finish_wake(b).await });
        true
    }

    async fn finish_wake(self: Arc<Self>, b: Arc<Backend>) {
        let t = Instant::now();
        let woke = async {
            super::replica::wake(&b).await?;
            let started = t.elapsed();
            super::replica::wait_ready(&self, &b, Duration::from_secs(10)).await?;
            anyhow::Ok(started)
        };
        match woke.await {
            Ok(started) => {
                let secs = t.elapsed().as_secs_f64();
                tracing::info!(
                    replica = b.name(),
                    ms = secs * 1000.0,
                    started_ms = started.as_secs_f64() * 1000.0,
                    "woke from standby"
                );
                self.record_wake(secs);
                b.touch();
                self.pool.swap(&b, Phase::Waking, Phase::Ready);
            }
            Err(e) => {
                tracing::error!(replica = b.name(), "cannot wake: {e:#}");
                self.pool.swap(&b, Phase::Waking, Phase::Unhealthy);
            }
        }
    }

    async fn to_standby(self: Arc<Self>, b: Arc<Backend>) {
        match super::replica::standby(&b).await {
            Ok(()) => {
                self.pool.swap(&b, Phase::Draining, Phase::Standby);
            }
            Err(e) => {
                tracing::warn!(replica = b.name(), "cannot go to standby: {e:#}");
                self.pool.swap(&b, Phase::Draining, Phase::Ready);
            }
        }
    }
}

/// Replicas that count as up (serving or about to).
fn up(svc: &Service) -> usize {
    svc.pool.count(Phase::Ready)
        + svc.pool.count(Phase::Starting)
        + svc.pool.count(Phase::Waking)
        + svc.booting.load(std::sync::atomic::Ordering::Acquire)
}

pub async fn run(svc: Arc<Service>) {
    let mut above_since: Option<Instant> = None;
    let mut below_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(TICK).await;
        if svc.updating.load(std::sync::atomic::Ordering::Acquire) {
            continue;
        }
        let plan = svc.plan();
        let warm = plan.autoscale.as_ref().map_or(0, |a| a.min) as usize;
        // Scale to zero, one replica at a time, keeping `warm` up.
        if let Some(idle) = plan.idle {
            let ready: Vec<Arc<Backend>> = svc
                .pool
                .all()
                .into_iter()
                .filter(|b| b.phase() == Phase::Ready)
                .collect();
            if let Some(b) = ready.iter().find(|b| b.idle_for() >= idle) {
                if up(&svc) > warm && svc.pool.swap(b, Phase::Ready, Phase::Draining) {
                    // A request may have taken it just before: it finishes first.
                    tokio::spawn(Arc::clone(&svc).to_standby(Arc::clone(b)));
                }
            }
        }
        let Some(a) = plan.autoscale.clone() else {
            continue;
        };
        let load = svc.pool.inflight() as usize;
        let n = up(&svc);
        let want = load
            .div_ceil(a.target_inflight as usize)
            .clamp(a.min as usize, a.max as usize);
        if want > n {
            below_since = None;
            let since = *above_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= a.warmup {
                above_since = None;
                for _ in n..want {
                    if !svc.wake_one().await {
                        let s = Arc::clone(&svc);
                        let image = s.spec().image.clone();
                        s.booting.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                        tokio::spawn(async move {
                            let booted = super::replica::boot(&s, &image).await;
                            s.booting.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                            match booted {
                                Ok(b) => {
                                    if super::replica::wait_ready(&s, &b, Duration::from_secs(30))
                                        .await
                                        .is_ok()
                                    {
                                        s.pool.swap(&b, Phase::Starting, Phase::Ready);
                                    }
                                }
                                Err(e) => {
                                    tracing::error!(service = %s.name, "cannot scale out: {e:#}")
                                }
                            }
                        });
                    }
                }
            }
        } else if want < n && plan.idle.is_none() {
            // Without scale-to-zero, surplus replicas are removed.
            above_since = None;
            let since = *below_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= a.cooldown {
                below_since = None;
                let last = svc
                    .pool
                    .all()
                    .into_iter()
                    .filter(|b| b.phase() == Phase::Ready)
                    .max_by_key(|b| b.replica.seq);
                if let Some(b) = last {
                    let s = Arc::clone(&svc);
                    tokio::spawn(async move { super::update::retire(&s, &b).await });
                }
            }
        } else {
            above_since = None;
            below_since = None;
        }
    }
}
