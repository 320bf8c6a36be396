//! Snapshots through the API: save a running instance to a file, put it in
//! standby (saved and ended; `start` restores it), and make a new instance
//! from a snapshot file. The volt library does the work, as the CLI does.
use axum::extract::rejection::JsonRejection;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::json_body;
use super::error::{blocking, ApiError, Problem};
use super::instances::{find, view, CreateInstance, InstanceView};

/// Where to save.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// An absolute path on voltd's host (replaced if it exists).
    pub path: String,
    /// End the instance once it is saved.
    #[serde(default)]
    pub stop: bool,
}

/// What a snapshot cost.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotView {
    pub path: String,
    /// Guest pages written.
    pub pages: u64,
    /// Bytes the file occupies on disk, and its (sparse) length.
    pub disk_bytes: u64,
    pub file_len: u64,
    /// From the monitor taking the request to the file being in place.
    pub duration_ms: f64,
}

#[utoipa::path(post, path = "/v1/instances/{name}/snapshot", operation_id = "snapshot_instance",
    params(("name" = String, Path)), request_body = SnapshotRequest,
    responses((status = 201, body = SnapshotView), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "not running")))]
pub async fn snapshot(
    Path(name): Path<String>,
    body: Result<Json<SnapshotRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let r = json_body(body)?;
    blocking(move || {
        let path = std::path::PathBuf::from(&r.path);
        if !path.is_absolute() {
            return Err(ApiError::bad_request("the snapshot path must be absolute"));
        }
        let (_, i) = find(&name)?;
        if !optivolt_volt::instance::alive(i.child) {
            return Err(ApiError::conflict(format!("{}: not running", i.name)));
        }
        let t = optivolt_volt::snapshot::take(&i.id, &path, r.stop)?;
        let v = SnapshotView {
            path: t.path.to_string_lossy().into_owned(),
            pages: t.pages,
            disk_bytes: t.disk_bytes,
            file_len: t.file_len,
            duration_ms: t.duration_ms,
        };
        Ok((StatusCode::CREATED, Json(v)).into_response())
    })
    .await
}

#[utoipa::path(post, path = "/v1/instances/{name}/standby", operation_id = "standby_instance",
    params(("name" = String, Path)),
    responses((status = 200, body = InstanceView, description = "saved and stopped; start restores it"),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "not running")))]
pub async fn standby(Path(name): Path<String>) -> Result<Json<InstanceView>, ApiError> {
    blocking(move || {
        let (mut db, i) = find(&name)?;
        if !optivolt_volt::instance::alive(i.child) {
            return Err(ApiError::conflict(format!("{}: not running", i.name)));
        }
        optivolt_volt::snapshot::standby_one(&mut db, &i)?;
        Ok(Json(view(&find(&i.id)?.1)))
    })
    .await
}

/// `POST /v1/instances` with `snapshot`: a new instance restored from the
/// file (only name, ports and restart apply; the rest is the snapshot's).
pub fn create_restored(c: &CreateInstance) -> Result<Response, ApiError> {
    let snap = c.snapshot.as_deref().unwrap_or_default();
    if c.image.is_some()
        || !c.args.is_empty()
        || !c.env.is_empty()
        || c.memory.is_some()
        || !c.volumes.is_empty()
        || c.network.is_some()
    {
        return Err(ApiError::bad_request(
            "with snapshot, only name, ports and restart may be given (the rest is the snapshot's)",
        ));
    }
    let file = std::path::PathBuf::from(snap);
    if !file.is_absolute() {
        return Err(ApiError::bad_request("the snapshot path must be absolute"));
    }
    if !file.exists() {
        return Err(ApiError::not_found(format!("no such snapshot: {snap}")));
    }
    let restart = match &c.restart {
        Some(p) => optivolt_volt::restart::Policy::parse(p).map_err(ApiError::bad_request)?,
        None => optivolt_volt::restart::Policy::No,
    };
    let id =
        optivolt_volt::snapshot::detach_restore(c.name.as_deref(), &file, &c.ports, restart, None)
            .map_err(|e| {
                let m = format!("{e:#}");
                if m.contains("snapshot") || m.contains("-p") {
                    ApiError::bad_request(m)
                } else {
                    ApiError::from(e)
                }
            })?;
    let (_, i) =
        find(&id).map_err(|_| ApiError::conflict(format!("{id} was removed while it started")))?;
    Ok((StatusCode::CREATED, Json(view(&i))).into_response())
}
