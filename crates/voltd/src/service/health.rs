//! Health checks: every interval, each replica that should answer is
//! asked (a TCP connect, or GET on the health path). One failure takes a
//! ready replica out; one success puts it back. Replicas in standby,
//! waking or draining are left to whoever moves them.
use std::sync::Arc;

use super::backend::Phase;
use super::manager::Service;

pub async fn run(svc: Arc<Service>) {
    loop {
        let interval = svc.plan().health_interval;
        tokio::time::sleep(interval).await;
        let mut checks = tokio::task::JoinSet::new();
        for b in svc.pool.all() {
            let p = b.phase();
            if !matches!(p, Phase::Ready | Phase::Unhealthy | Phase::Starting) {
                continue;
            }
            let s = Arc::clone(&svc);
            checks.spawn(async move {
                let ok = super::replica::answers(
                    &s,
                    &b,
                    interval.min(std::time::Duration::from_secs(1)),
                )
                .await;
                if ok {
                    s.pool.swap(&b, p, Phase::Ready);
                } else {
                    if s.pool.swap(&b, Phase::Ready, Phase::Unhealthy) {
                        tracing::warn!(replica = b.name(), "failed its health check: taken out");
                    }
                }
            });
        }
        while checks.join_next().await.is_some() {}
    }
}
