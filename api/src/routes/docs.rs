//! The OpenAPI document and a self-contained page that renders it.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

use crate::openapi::OPENAPI_MEDIA_TYPE;
use crate::state::AppState;

/// The OpenAPI document of this service.
#[utoipa::path(
    get, path = "/api", operation_id = "getOpenApi", tag = "Core",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/vnd.oai.openapi+json;version=3.1", body = Object))
)]
pub async fn get_openapi(State(state): State<AppState>) -> Response {
    let mut response = state.openapi.as_ref().clone().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(OPENAPI_MEDIA_TYPE),
    );
    response
}

/// Human-readable API documentation; works without internet access.
#[utoipa::path(
    get, path = "/api.html", operation_id = "getApiDocs", tag = "Core",
    responses((status = 200, description = "API documentation", content_type = "text/html"))
)]
pub async fn get_api_docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
