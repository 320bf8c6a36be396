//! `/v1/images`: the local store, pulls from registries, removal.
use axum::extract::rejection::JsonRejection;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, Problem};

/// An image in the store.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageView {
    pub reference: String,
    /// `sha256:` of the configuration.
    pub id: String,
    /// The manifest's digest.
    pub digest: String,
    pub size: u64,
    pub created: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// e.g. `localhost:5000/web:1`.
    pub reference: String,
}

/// Runs `f` on a thread of its own (the registry client makes its own
/// async runtime, which cannot nest in voltd's).
async fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the worker vanished",
        )
    })?
}

#[utoipa::path(get, path = "/v1/images", operation_id = "list_images", responses((status = 200, body = [ImageView])))]
pub async fn list() -> Result<Json<Vec<ImageView>>, ApiError> {
    on_thread(|| {
        let store = optivolt_volt::store::Store::open_default()?;
        let rows = optivolt_volt::images::rows(&store)?;
        Ok(Json(
            rows.into_iter()
                .map(|r| ImageView {
                    reference: r.reference.to_string(),
                    id: format!("sha256:{}", r.id),
                    digest: r.digest,
                    size: r.size,
                    created: r.created,
                })
                .collect(),
        ))
    })
    .await
}

struct Quiet;

impl optivolt_volt::store::registry::Progress for Quiet {
    fn step(&self, _: &str) {}
    fn bytes(&self, _: u64, _: u64) {}
}

#[utoipa::path(post, path = "/v1/images/pull", operation_id = "pull_image", request_body = PullRequest,
    responses((status = 200, body = ImageView), (status = 400, body = Problem), (status = 502, body = Problem, description = "the registry failed")))]
pub async fn pull(
    body: Result<Json<PullRequest>, JsonRejection>,
) -> Result<Json<ImageView>, ApiError> {
    let p = super::error::json_body(body)?;
    on_thread(move || {
        let store = optivolt_volt::store::Store::open_default()?;
        let r = optivolt_volt::store::Reference::parse(&p.reference)
            .map_err(|e| ApiError::bad_request(format!("{}: {e}", p.reference)))?;
        let digest = optivolt_volt::store::registry::pull(&store, &r, &Quiet)
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "registry", format!("{e:#}")))?;
        let rows = optivolt_volt::images::rows(&store)?;
        let row = rows.into_iter().find(|x| x.reference == r).ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "pulled, then not found",
            )
        })?;
        Ok(Json(ImageView {
            reference: row.reference.to_string(),
            id: format!("sha256:{}", row.id),
            digest,
            size: row.size,
            created: row.created,
        }))
    })
    .await
}

#[utoipa::path(delete, path = "/v1/images/{reference}", operation_id = "delete_image", params(("reference" = String, Path, description = "a name (that tag) or an ID (every tag)")),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove(Path(reference): Path<String>) -> Result<StatusCode, ApiError> {
    on_thread(move || {
        optivolt_volt::images::remove_images(&[reference])?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
