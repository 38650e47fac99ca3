//! The landing page and the conformance declaration.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, Exception};
use crate::extract::Base;
use crate::openapi::OPENAPI_MEDIA_TYPE;
use crate::response::{GEOJSON, JSON};
use crate::state::AppState;

/// Every conformance class this server implements, STAC API v1.0.0 and the
/// OGC API Features parts it builds on.
pub const CONFORMANCE: &[&str] = &[
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/ogcapi-features/extensions/transaction",
    "https://api.stacspec.org/v1.0.0/collections/extensions/transaction",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
];

/// Most collections linked as `child` from the landing page.
const MAX_CHILD_LINKS: usize = 1000;

/// The landing page: what this API is and where everything is.
#[utoipa::path(
    get, path = "/", operation_id = "getLandingPage", tag = "Core",
    responses(
        (status = 200, description = "The landing page (a STAC Catalog with `conformsTo`)", content_type = "application/json", body = Object),
        (status = 500, description = "Server error", body = Exception),
    )
)]
pub async fn get_landing(
    State(state): State<AppState>,
    Base(links): Base,
) -> Result<Response, ApiError> {
    let l = &links;
    let mut out: Vec<Value> = vec![
        json!({"rel": "self", "type": JSON, "href": l.root()}),
        json!({"rel": "root", "type": JSON, "href": l.root()}),
        json!({"rel": "conformance", "type": JSON, "href": l.url("/conformance"), "title": "Conformance classes"}),
        json!({"rel": "service-desc", "type": OPENAPI_MEDIA_TYPE, "href": l.url("/api"), "title": "OpenAPI definition"}),
        json!({"rel": "service-doc", "type": "text/html", "href": l.url("/api.html"), "title": "API documentation"}),
        json!({"rel": "data", "type": JSON, "href": l.collections(), "title": "Collections"}),
        json!({"rel": "search", "type": GEOJSON, "href": l.search(), "method": "GET", "title": "Item search"}),
        json!({"rel": "search", "type": GEOJSON, "href": l.search(), "method": "POST", "title": "Item search"}),
    ];
    for c in state
        .store
        .list_collections()
        .await?
        .into_iter()
        .take(MAX_CHILD_LINKS)
    {
        let title = serde_json::from_str::<Value>(&c.content)
            .ok()
            .and_then(|v| v.get("title").cloned());
        let mut child = json!({"rel": "child", "type": JSON, "href": l.collection(&c.id)});
        if let Some(t) = title {
            child["title"] = t;
        }
        out.push(child);
    }
    let settings = &state.settings;
    let body = json!({
        "type": "Catalog",
        "id": settings.catalog_id,
        "title": settings.title,
        "description": settings.description,
        "stac_version": "1.0.0",
        "conformsTo": CONFORMANCE,
        "links": out,
    });
    Ok(axum::Json(body).into_response())
}

/// The conformance classes this server implements.
#[utoipa::path(
    get, path = "/conformance", operation_id = "getConformanceDeclaration", tag = "Core",
    responses((status = 200, description = "Conformance classes", content_type = "application/json", body = Object))
)]
pub async fn get_conformance() -> Response {
    axum::Json(json!({ "conformsTo": CONFORMANCE })).into_response()
}
