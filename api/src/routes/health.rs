//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// The process is up.
#[utoipa::path(
    get, path = "/healthz", operation_id = "getHealth", tag = "Health",
    responses((status = 200, description = "The process is up", body = Object))
)]
pub async fn get_health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// The catalog database answers.
#[utoipa::path(
    get, path = "/readyz", operation_id = "getReadiness", tag = "Health",
    responses(
        (status = 200, description = "Ready to serve", body = Object),
        (status = 503, description = "The database does not answer", body = crate::error::Exception),
    )
)]
pub async fn get_readiness(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => axum::Json(json!({"status": "ok", "database": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"code": "ServiceUnavailable", "description": "the catalog database does not answer"})),
            )
                .into_response()
        }
    }
}
