//! `/v1/volumes`: named volumes.
use axum::extract::rejection::JsonRejection;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{blocking, ApiError, Problem};

#[derive(Debug, Serialize, ToSchema)]
pub struct VolumeView {
    pub name: String,
    /// The host directory behind it.
    pub mountpoint: String,
    pub created: i64,
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVolume {
    pub name: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

fn view(m: &optivolt_volt::volumes::Meta) -> VolumeView {
    VolumeView {
        name: m.name.clone(),
        mountpoint: optivolt_volt::volumes::data_of(&m.name)
            .display()
            .to_string(),
        created: m.created,
        labels: m.labels.clone(),
    }
}

#[utoipa::path(get, path = "/v1/volumes", operation_id = "list_volumes", responses((status = 200, body = [VolumeView])))]
pub async fn list() -> Result<Json<Vec<VolumeView>>, ApiError> {
    blocking(|| {
        Ok(Json(
            optivolt_volt::volumes::all()?.iter().map(view).collect(),
        ))
    })
    .await
}

#[utoipa::path(post, path = "/v1/volumes", operation_id = "create_volume", request_body = CreateVolume,
    responses((status = 201, body = VolumeView), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub async fn create(body: Result<Json<CreateVolume>, JsonRejection>) -> Result<Response, ApiError> {
    let c = super::error::json_body(body)?;
    blocking(move || {
        let labels: Vec<(String, String)> = c.labels.clone().into_iter().collect();
        if !optivolt_volt::volumes::valid_name(&c.name) {
            return Err(ApiError::bad_request(format!(
                "{:?} is not a volume name",
                c.name
            )));
        }
        if !optivolt_volt::volumes::create(&c.name, &labels)? {
            return Err(ApiError::conflict(format!(
                "volume {} already exists",
                c.name
            )));
        }
        let m = optivolt_volt::volumes::meta(&c.name)?;
        Ok((StatusCode::CREATED, Json(view(&m))).into_response())
    })
    .await
}

#[utoipa::path(delete, path = "/v1/volumes/{name}", operation_id = "delete_volume", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem, description = "in use")))]
pub async fn remove(Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    blocking(move || {
        optivolt_volt::volumes::remove_unused(&name)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
