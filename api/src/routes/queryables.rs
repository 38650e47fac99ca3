//! Queryables and sortables: the properties filters, queries and sorts may
//! name, as JSON Schema.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use catalog::links::SCHEMA_JSON;

use super::collections::collection_id;
use crate::auth::Caller;
use crate::error::{ApiError, Exception};
use crate::extract::{Base, Path};
use crate::response::cacheable;
use crate::state::AppState;
use catalog::CollectionId;
use catalog::links::Links;

/// The queryables (or, with `sortables`, the sortables) of one collection
/// or of all, as a JSON Schema document.
async fn schema(
    state: &AppState,
    links: &Links,
    caller: &Caller,
    headers: &HeaderMap,
    collection: Option<String>,
    sortables: bool,
) -> Result<Response, ApiError> {
    let id: Option<CollectionId> = collection.map(collection_id).transpose()?;
    if let Some(id) = &id {
        state
            .store
            .require_collection(id, &caller.visibility)
            .await?;
    }
    let scope: Vec<String> = id.iter().map(|i| i.as_str().to_owned()).collect();
    let q = state.store.queryables(&scope, &caller.visibility).await?;
    let name = id.as_ref().map(CollectionId::as_str);
    let what = if sortables { "Sortables" } else { "Queryables" };
    let title = name.map_or_else(
        || format!("{what} of all collections"),
        |n| format!("{what} of {n}"),
    );
    let doc = if sortables {
        q.sortables().to_schema(&links.sortables(name), &title)
    } else {
        q.to_schema(&links.queryables(name), &title)
    };
    Ok(cacheable(headers, SCHEMA_JSON, doc.to_string()))
}

/// Queryables of every collection.
#[utoipa::path(
    get, path = "/queryables", operation_id = "getQueryables", tag = "Item Search",
    responses((status = 200, description = "JSON Schema of the queryables", content_type = "application/schema+json", body = Object))
)]
pub async fn get_queryables(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    schema(&state, &links, &caller, &headers, None, false).await
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
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    schema(&state, &links, &caller, &headers, Some(id), false).await
}

/// Sortables of every collection: what `sortby` accepts.
#[utoipa::path(
    get, path = "/sortables", operation_id = "getSortables", tag = "Item Search",
    responses((status = 200, description = "JSON Schema of the properties `sortby` accepts", content_type = "application/schema+json", body = Object))
)]
pub async fn get_sortables(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    schema(&state, &links, &caller, &headers, None, true).await
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
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    schema(&state, &links, &caller, &headers, Some(id), true).await
}
