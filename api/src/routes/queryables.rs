//! Queryables: the properties filters, sorts and queries may name, as JSON
//! Schema.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use catalog::links::SCHEMA_JSON;

use super::collections::collection_id;
use crate::error::{ApiError, Exception};
use crate::extract::{Base, Path};
use crate::response::cacheable;
use crate::state::AppState;

/// Queryables of every collection.
#[utoipa::path(
    get, path = "/queryables", operation_id = "getQueryables", tag = "Item Search",
    responses((status = 200, description = "JSON Schema of the queryables", content_type = "application/schema+json", body = Object))
)]
pub async fn get_queryables(
    State(state): State<AppState>,
    Base(links): Base,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let q = state.store.queryables(&[], false).await?;
    let doc = q.to_schema(&links.queryables(None), "Queryables of all collections");
    Ok(cacheable(&headers, SCHEMA_JSON, doc.to_string()))
}

/// Queryables of one collection.
#[utoipa::path(
    get, path = "/collections/{collectionId}/queryables", operation_id = "getCollectionQueryables", tag = "Features",
    params(("collectionId" = String, Path, description = "Collection id")),
    responses(
        (status = 200, description = "JSON Schema of the collection's queryables", content_type = "application/schema+json", body = Object),
        (status = 404, description = "No such collection", body = Exception),
    )
)]
pub async fn get_collection_queryables(
    State(state): State<AppState>,
    Base(links): Base,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = collection_id(id)?;
    state.store.require_collection(&id).await?;
    let q = state
        .store
        .queryables(&[id.as_str().to_owned()], false)
        .await?;
    let doc = q.to_schema(
        &links.queryables(Some(id.as_str())),
        &format!("Queryables of {id}"),
    );
    Ok(cacheable(&headers, SCHEMA_JSON, doc.to_string()))
}
