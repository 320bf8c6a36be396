//! Errors as JSON problem objects: `{"code": "...", "message": "..."}`.
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A stable, machine-readable code (`not_found`, `bad_request`, …).
    pub code: String,
    /// One line for a human.
    pub message: String,
}

/// An error with its HTTP status.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub Problem);

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError(
            status,
            Problem {
                code: code.into(),
                message: message.into(),
            },
        )
    }
    pub fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m)
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", m)
    }
    pub fn conflict(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", m)
    }
}

impl From<anyhow::Error> for ApiError {
    /// volt's errors are one line with the fix; their kind decides the status.
    fn from(e: anyhow::Error) -> ApiError {
        let m = format!("{e:#}");
        let lower = m.to_lowercase();
        if lower.contains("removed while") {
            ApiError::conflict(m)
        } else if lower.contains("no such") || lower.contains("does not exist") {
            ApiError::not_found(m)
        } else if lower.contains("already in use")
            || lower.contains("already exists")
            || lower.contains("in use by")
            || lower.contains("is running")
            || lower.contains("removed while")
        {
            ApiError::conflict(m)
        } else if lower.starts_with("invalid") || lower.contains("expected") {
            ApiError::bad_request(m)
        } else {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

/// The body of a JSON request, or the problem with it (413 beyond the
/// limit: `too_large`; otherwise `bad_request`).
pub fn json_body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_request"
        };
        ApiError::new(status, code, e.body_text())
    })
}

/// Runs blocking volt code (SQLite, process spawns) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
}
