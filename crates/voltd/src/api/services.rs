//! `/v1/services`: services behind voltd's balancer (see `crate::service`).
use axum::extract::rejection::JsonRejection;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use optivolt_volt::service::Spec;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{json_body, ApiError, Problem};
use crate::service::manager::{view, Refused};
use crate::service::update::Failed;
use crate::service::{manager, ServiceView};

impl From<Refused> for ApiError {
    fn from(r: Refused) -> ApiError {
        match r {
            Refused::Bad(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            Refused::NotFound(m) => ApiError::not_found(m),
            Refused::Conflict(m) => ApiError::conflict(m),
            Refused::Failed(e) => e.into(),
        }
    }
}

/// A change to a service.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateService {
    /// Roll every replica over to this image, one at a time.
    pub image: Option<String>,
    /// Add or remove replicas to have this many.
    pub replicas: Option<u32>,
}

#[utoipa::path(get, path = "/v1/services", operation_id = "list_services", responses((status = 200, body = [ServiceView])))]
pub async fn list() -> Json<Vec<ServiceView>> {
    Json(manager().all().iter().map(|s| view(s)).collect())
}

#[utoipa::path(
    post, path = "/v1/services", operation_id = "create_service",
    request_body(content = Object, description = "The service: name, image, ports ([HOST_IP:]HOST_PORT:GUEST_PORT[/http|/tcp]), replicas, memory, env, args, network, scale_to_zero (a duration), autoscale (min=N,max=N,target-inflight=N[,warmup=D][,cooldown=D]), health_path, health_interval, balance"),
    responses(
        (status = 201, body = ServiceView),
        (status = 400, body = Problem), (status = 422, body = Problem, description = "an invalid spec"),
        (status = 404, body = Problem, description = "no such image or network"),
        (status = 409, body = Problem, description = "the name or a port is taken"),
    )
)]
pub async fn create(body: Result<Json<Spec>, JsonRejection>) -> Result<Response, ApiError> {
    let spec = json_body(body)?;
    let svc = manager().create(spec).await?;
    Ok((StatusCode::CREATED, Json(view(&svc))).into_response())
}

fn find(name: &str) -> Result<std::sync::Arc<crate::service::Service>, ApiError> {
    manager()
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("no such service: {name}")))
}

#[utoipa::path(get, path = "/v1/services/{name}", operation_id = "get_service", params(("name" = String, Path)),
    responses((status = 200, body = ServiceView), (status = 404, body = Problem)))]
pub async fn get_one(Path(name): Path<String>) -> Result<Json<ServiceView>, ApiError> {
    let s = find(&name)?;
    Ok(Json(view(&s)))
}

#[utoipa::path(
    patch, path = "/v1/services/{name}", operation_id = "update_service", params(("name" = String, Path)),
    request_body = UpdateService,
    responses(
        (status = 200, body = ServiceView),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "another update is in progress"),
        (status = 422, body = Problem, description = "invalid, or rolled back: a new replica failed its health check"),
    )
)]
pub async fn update(
    Path(name): Path<String>,
    body: Result<Json<UpdateService>, JsonRejection>,
) -> Result<Json<ServiceView>, ApiError> {
    let u = json_body(body)?;
    let svc = find(&name)?;
    if let Some(i) = &u.image {
        let image = i.clone();
        let known = tokio::task::spawn_blocking(move || {
            optivolt_volt::store::Store::open_default().and_then(|s| Ok(s.find(&image)?.is_some()))
        })
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
        if !known {
            return Err(ApiError::not_found(format!("no such image: {i}")));
        }
    }
    match crate::service::update::apply(&svc, u.image, u.replicas).await {
        Ok(()) => Ok(Json(view(&svc))),
        Err(Failed::Busy(m)) => Err(ApiError::conflict(m)),
        Err(Failed::Invalid(m)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            m,
        )),
        Err(Failed::RolledBack(m)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rolled_back",
            m,
        )),
    }
}

#[utoipa::path(delete, path = "/v1/services/{name}", operation_id = "delete_service", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove(Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    manager().remove(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
