//! The HTTP/1.1 balancer (hyper): each request goes to a ready replica
//! over a pool of keep-alive connections made in the network's namespace,
//! with `X-Forwarded-For`/`-Proto`/`-Host`; a request without a body that
//! could not be delivered (the replica refused or vanished) is tried on
//! another replica, and the failed one is taken out at once.
use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::backend::{Backend, Lease, Phase};
use super::manager::Service;
use super::netns::Netns;

pub type ProxyBody = BoxBody<Bytes, hyper::Error>;
pub type Client = hyper_util::client::legacy::Client<Connector, ProxyBody>;

/// Connections to replicas, made inside the network's namespace.
#[derive(Clone)]
pub struct Connector(Arc<Netns>);

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let ns = Arc::clone(&self.0);
        Box::pin(async move {
            let ip: Ipv4Addr = uri
                .host()
                .and_then(|h| h.parse().ok())
                .ok_or_else(|| std::io::Error::other("a replica URI without an address"))?;
            let addr = SocketAddr::from((ip, uri.port_u16().unwrap_or(80)));
            let s = tokio::time::timeout(Duration::from_secs(2), ns.connect(addr))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })??;
            Ok(TokioIo::new(s))
        })
    }
}

pub fn client(ns: Arc<Netns>) -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(Connector(ns))
}

/// A response body that holds its replica's lease until it ends.
struct Counted {
    inner: Incoming,
    _lease: Lease,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

fn plain(status: StatusCode, msg: String) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(msg + "\n"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Headers that belong to one connection, not to the request.
const HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop(h: &mut hyper::HeaderMap) {
    let named: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for n in HOP.iter().map(|s| s.to_string()).chain(named) {
        h.remove(n.as_str());
    }
}

/// Whether a request may be sent again: no body, and a method that is
/// safe to repeat.
fn repeatable(req: &Request<Incoming>) -> bool {
    let m = req.method();
    let safe = m == Method::GET || m == Method::HEAD || m == Method::OPTIONS;
    safe && req.body().is_end_stream()
}

async fn forward(
    svc: Arc<Service>,
    req: Request<Incoming>,
    peer: SocketAddr,
    port: u16,
) -> Response<ProxyBody> {
    svc.requests.fetch_add(1, Ordering::Relaxed);
    let again = repeatable(&req);
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers.clone();
    strip_hop(&mut headers);
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(h) = parts.headers.get(header::HOST) {
        headers.insert("x-forwarded-host", h.clone());
    }
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut body = Some(body);
    let mut avoid: Option<String> = None;
    let attempts = if again { 3 } else { 1 };
    for _ in 0..attempts {
        let t0 = std::time::Instant::now();
        let lease = match svc.acquire(avoid.as_deref()).await {
            Ok(l) => l,
            Err(why) => {
                svc.failed.fetch_add(1, Ordering::Relaxed);
                return plain(StatusCode::SERVICE_UNAVAILABLE, why);
            }
        };
        let uri: Uri = match format!("http://{}:{port}{pq}", lease.0.ip()).parse() {
            Ok(u) => u,
            Err(_) => return plain(StatusCode::BAD_REQUEST, "bad request target".into()),
        };
        let b: ProxyBody = match body.take() {
            Some(b) if !again => b.boxed(),
            _ => Empty::new().map_err(|never| match never {}).boxed(),
        };
        let mut out = Request::new(b);
        *out.method_mut() = parts.method.clone();
        *out.uri_mut() = uri;
        *out.headers_mut() = headers.clone();
        let t1 = t0.elapsed();
        match svc.client.request(out).await {
            Ok(resp) => {
                if t1 > std::time::Duration::from_millis(2) {
                    // It waited for a replica (a wake or a start): how long,
                    // and how long the replica then took to answer.
                    tracing::info!(
                        waited_ms = t1.as_secs_f64() * 1e3,
                        answered_ms = (t0.elapsed() - t1).as_secs_f64() * 1e3,
                        "answered after waiting for a replica"
                    );
                }
                let (mut rp, rb) = resp.into_parts();
                strip_hop(&mut rp.headers);
                let counted = Counted {
                    inner: rb,
                    _lease: lease,
                };
                return Response::from_parts(rp, counted.boxed());
            }
            Err(e) => {
                tracing::warn!(replica = lease.0.name(), "request failed: {e}");
                if e.is_connect() {
                    svc.pool.swap(&lease.0, Phase::Ready, Phase::Unhealthy);
                }
                avoid = Some(lease.0.name().to_string());
            }
        }
    }
    svc.failed.fetch_add(1, Ordering::Relaxed);
    plain(
        StatusCode::BAD_GATEWAY,
        format!("service {}: no replica answered", svc.name),
    )
}

/// Serves one listener (a published port, or the service's address on its
/// network) until the service is removed.
pub async fn serve(svc: Arc<Service>, l: tokio::net::TcpListener, port: u16) {
    loop {
        let (s, peer) = match l.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(service = %svc.name, "accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        let svc = Arc::clone(&svc);
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |req| {
                let svc = Arc::clone(&svc);
                async move { Ok::<_, Infallible>(forward(svc, req, peer, port).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(s), handler)
                .await;
        });
    }
}

/// Health check: GET `path` on the replica answers 2xx.
pub async fn get_ok(svc: &Service, b: &Backend, port: u16, path: &str) -> bool {
    let Ok(uri) = format!("http://{}:{port}{path}", b.ip()).parse::<Uri>() else {
        return false;
    };
    let mut req = Request::new(Empty::new().map_err(|never| match never {}).boxed());
    *req.uri_mut() = uri;
    req.headers_mut()
        .insert(header::USER_AGENT, HeaderValue::from_static("voltd-health"));
    match svc.client.request(req).await {
        Ok(r) => {
            let ok = r.status().is_success();
            let _ = r.into_body().collect().await;
            ok
        }
        Err(_) => false,
    }
}
