//! The `/v1` API: the router, authentication, limits and the OpenAPI
//! document generated from the handlers (`utoipa`).
mod error;
mod images;
mod instances;
mod services;
mod snapshots;
mod volumes;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use subtle::ConstantTimeEq;
use utoipa::OpenApi;

pub use error::{ApiError, Problem};
pub use instances::metrics_of;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 << 10;
/// Longest a request (other than a followed log) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(OpenApi)]
#[openapi(
    info(title = "voltd", description = "The OptiVolt control plane: instances, services, images and volumes on one machine."),
    paths(
        instances::list, instances::create, instances::get_one, instances::remove,
        instances::start, instances::stop, instances::restart, instances::logs,
        instances::metrics_json, snapshots::snapshot, snapshots::standby,
        images::list, images::pull, images::remove,
        services::list, services::create, services::get_one, services::update, services::remove,
        volumes::list, volumes::create, volumes::remove,
    ),
    components(schemas(
        Problem, snapshots::SnapshotRequest, snapshots::SnapshotView, instances::InstanceView, instances::CreateInstance, instances::InstanceMetrics, instances::LiveCounters,
        images::ImageView, images::PullRequest, services::UpdateService,
        crate::service::ServiceView, crate::service::manager::ReplicaView, crate::service::manager::WakeView, volumes::VolumeView, volumes::CreateVolume,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(c) = doc.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The OpenAPI document, as served.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The whole application; with `token`, `/v1` requires it as a bearer token.
pub fn router(token: Option<String>) -> Router {
    let timed = Router::new()
        .route(
            "/v1/instances",
            get(instances::list).post(instances::create),
        )
        .route(
            "/v1/instances/{name}",
            get(instances::get_one).delete(instances::remove),
        )
        .route("/v1/instances/{name}/start", post(instances::start))
        .route("/v1/instances/{name}/stop", post(instances::stop))
        .route("/v1/instances/{name}/restart", post(instances::restart))
        .route("/v1/instances/{name}/metrics", get(instances::metrics_json))
        .route("/v1/instances/{name}/snapshot", post(snapshots::snapshot))
        .route("/v1/instances/{name}/standby", post(snapshots::standby))
        .route("/v1/services", get(services::list).post(services::create))
        .route(
            "/v1/services/{name}",
            get(services::get_one)
                .patch(services::update)
                .delete(services::remove),
        )
        .route("/v1/images", get(images::list))
        .route("/v1/images/pull", post(images::pull))
        .route("/v1/images/{*reference}", delete(images::remove))
        .route("/v1/volumes", get(volumes::list).post(volumes::create))
        .route("/v1/volumes/{name}", delete(volumes::remove))
        .route(
            "/v1/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], openapi_json()) }),
        )
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    // A followed log lasts as long as the instance: no timeout.
    let streams = Router::new().route("/v1/instances/{name}/logs", get(instances::logs));
    let v1 = timed
        .merge(streams)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(token, authenticate));
    Router::new()
        .route("/metrics", get(crate::metrics::prometheus))
        .merge(v1)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
}

/// Bearer-token check, in constant time; a Unix-socket app has no token.
async fn authenticate(State(token): State<Option<String>>, req: Request, next: Next) -> Response {
    if let Some(want) = token {
        let got = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let same: bool = got.as_bytes().ct_eq(want.as_bytes()).into();
        if !same {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required (Authorization: Bearer …)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Reaps the supervisors this voltd started when they end (they are its
/// children until it dies; then init's).
pub async fn reap_supervisors() {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = tokio::task::spawn_blocking(|| {
            let Ok(mut db) = optivolt_volt::instance::Db::open_default() else {
                return;
            };
            let Ok(list) = db.list() else { return };
            for i in list {
                if let Some((pid, _)) = i.supervisor {
                    let mut status = 0;
                    // SAFETY: waitpid on one PID with WNOHANG; `status` is ours.
                    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checked_in_openapi_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let want = super::openapi_json() + "\n";
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/openapi.json is stale: run UPDATE_DOCS=1 cargo test -p optivolt-voltd openapi"
        );
    }
    #[test]
    fn the_openapi_document_validates() {
        // openapi-spec-validator (PyPI), in the venv scripts/test.sh makes.
        let v = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/pyvenv/bin/openapi-spec-validator"
        );
        if !std::path::Path::new(v).exists() {
            eprintln!(
                "=== SKIPPED the_openapi_document_validates: no {v} (scripts/test.sh makes it) ==="
            );
            return;
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let o = std::process::Command::new(v).arg(path).output().unwrap();
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
