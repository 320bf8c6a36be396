//! The layer-4 balancer: each connection goes whole to one replica
//! (least connections or round robin); a replica that refuses it is taken
//! out and the next one tried.
use std::sync::Arc;
use std::time::Duration;

use super::backend::Phase;
use super::manager::Service;

async fn relay(svc: Arc<Service>, mut client: tokio::net::TcpStream, port: u16) {
    svc.requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut avoid: Option<String> = None;
    for _ in 0..3 {
        let lease = match svc.acquire(avoid.as_deref()).await {
            Ok(l) => l,
            Err(why) => {
                tracing::warn!(service = %svc.name, "{why}");
                break;
            }
        };
        let addr = lease.0.addr(port);
        match tokio::time::timeout(Duration::from_secs(2), svc.ns.connect(addr)).await {
            Ok(Ok(mut up)) => {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                return;
            }
            _ => {
                svc.pool.swap(&lease.0, Phase::Ready, Phase::Unhealthy);
                avoid = Some(lease.0.name().to_string());
            }
        }
    }
    svc.failed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

pub async fn serve(svc: Arc<Service>, l: tokio::net::TcpListener, port: u16) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                tokio::spawn(relay(Arc::clone(&svc), s, port));
            }
            Err(e) => {
                tracing::warn!(service = %svc.name, "accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
