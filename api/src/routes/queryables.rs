//! Queryables and sortables: the properties filters, queries and sorts may
//! name, as JSON Schema.

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

/// Sortables of every collection: what `sortby` accepts.
#[utoipa::path(
    get, path = "/sortables", operation_id = "getSortables", tag = "Item Search",
    responses((status = 200, description = "JSON Schema of the properties `sortby` accepts", content_type = "application/schema+json", body = Object))
)]
pub async fn get_sortables(
    State(state): State<AppState>,
    Base(links): Base,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let q = state.store.queryables(&[], false).await?;
    let doc = q
        .sortables()
        .to_schema(&links.sortables(None), "Sortables of all collections");
    Ok(cacheable(&headers, SCHEMA_JSON, doc.to_string()))
}

/// Sortables of one collection: the properties its items can be sorted by.
#[utoipa::path(
    get, path = "/collections/{collectionId}/sortables", operation_id = "getCollectionSortables", tag = "Features",
    params(("collectionId" = String, Path, description = "Collection id")),
    responses(
        (status = 200, description = "JSON Schema of the properties this collection's items can be sorted by", content_type = "application/schema+json", body = Object),
        (status = 404, description = "No such collection", body = Exception),
    )
)]
pub async fn get_collection_sortables(
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
    let doc = q.sortables().to_schema(
        &links.sortables(Some(id.as_str())),
        &format!("Sortables of {id}"),
    );
    Ok(cacheable(&headers, SCHEMA_JSON, doc.to_string()))
}
