//! Collections: read, and the collection transaction extension.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use catalog::access::Visibility;
use catalog::links::{Links, link};
use catalog::model::merge_patch;
use catalog::search::collections::{Candidate, CollectionParams, CollectionSearch};
use catalog::{CollectionId, CollectionRecord, document};
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{ApiError, Exception};
use crate::extract::{Admin, Base, Json, Path, Query, SearchJson};
use crate::item_page::{Origin, paging_link, self_link};
use crate::response::{JSON, cacheable, json_text};
use crate::state::AppState;

pub(crate) fn collection_id(id: String) -> Result<CollectionId, ApiError> {
    CollectionId::new(id).map_err(ApiError::bad_request)
}

/// Collections, searched: `bbox`, `datetime`, `q`, `filter`, `sortby`,
/// `fields`, `limit` and `token` (collection search).
#[utoipa::path(
    get, path = "/collections", operation_id = "getCollections", tag = "Collections",
    params(
        ("bbox" = Option<String>, Query, description = "Collections whose overall extent intersects `west,south,east,north`"),
        ("datetime" = Option<String>, Query, description = "Collections whose temporal extent overlaps an instant or interval"),
        ("q" = Option<String>, Query, description = "Free text over title, description and keywords, ranked; commas separate alternatives"),
        ("filter" = Option<String>, Query, description = "CQL2 over collection members (`license = 'CC-BY-4.0'`)"),
        ("filter-lang" = Option<String>, Query, description = "`cql2-text` (default) or `cql2-json`"),
        ("sortby" = Option<String>, Query, description = "`-title,id`; default: relevance with `q`, else id"),
        ("fields" = Option<String>, Query, description = "Members to include or (with `-`) exclude"),
        ("limit" = Option<u32>, Query, description = "Page size (default 100)"),
        ("token" = Option<String>, Query, description = "Page token from a `next` or `prev` link"),
    ),
    responses(
        (status = 200, description = "A page of collections", content_type = "application/json", body = Object),
        (status = 400, description = "Invalid search", body = Exception),
    )
)]
pub async fn list_collections(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    uri: Uri,
    Query(params): Query<CollectionParams>,
) -> Result<Response, ApiError> {
    let search = CollectionSearch::from_params(&params)?;
    let origin = Origin::Get {
        href: links.collections(),
        uri: &uri,
    };
    collection_page(&state, &links, &caller, &search, &origin).await
}

/// Collection search by POST, on its own route so it does not clash with
/// creating a collection (`POST /collections`).
#[utoipa::path(
    post, path = "/collections-search", operation_id = "postCollectionSearch", tag = "Collections",
    request_body(content = Object, description = "bbox, datetime, q, filter, filter-lang, sortby, fields, limit, token", content_type = "application/json"),
    responses(
        (status = 200, description = "A page of collections", content_type = "application/json", body = Object),
        (status = 400, description = "Invalid search", body = Exception),
    )
)]
pub async fn search_collections(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    SearchJson(body): SearchJson,
) -> Result<Response, ApiError> {
    let Value::Object(members) = &body else {
        return Err(ApiError::bad_request(
            "the search body must be a JSON object",
        ));
    };
    let search = CollectionSearch::from_body(members)?;
    let origin = Origin::Post {
        href: links.collections_search(),
        body: &body,
    };
    collection_page(&state, &links, &caller, &search, &origin).await
}

async fn collection_page(
    state: &AppState,
    links: &Links,
    caller: &Caller,
    search: &CollectionSearch,
    origin: &Origin<'_>,
) -> Result<Response, ApiError> {
    let stored = state.store.list_collections(&caller.visibility).await?;
    let candidates = stored
        .iter()
        .filter_map(|c| {
            serde_json::from_str(&c.content).ok().map(|doc| Candidate {
                id: c.id.clone(),
                doc,
            })
        })
        .collect();
    let page = search.run(candidates)?;
    let mut body = String::from("{\"collections\":[");
    for (i, c) in page.collections.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let Some(s) = stored.iter().find(|s| s.id == c.id) else {
            continue;
        };
        let text = crate::assets::collection_document(state, links, s);
        if search.fields.is_default() {
            body.push_str(&text);
        } else {
            let mut v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            search.fields.apply(&mut v);
            body.push_str(&v.to_string());
        }
    }
    let mut page_links = vec![
        self_link(origin, JSON),
        link("root", &links.root(), JSON),
        link("parent", &links.root(), JSON),
    ];
    if let Some(t) = &page.next {
        page_links.push(paging_link("next", origin, t, JSON));
    }
    if let Some(t) = &page.prev {
        page_links.push(paging_link("prev", origin, t, JSON));
    }
    let _ = write!(
        body,
        "],\"links\":{},\"numberMatched\":{},\"numberReturned\":{}}}",
        Value::Array(page_links),
        page.matched,
        page.collections.len()
    );
    Ok(json_text(StatusCode::OK, JSON, body))
}

/// One collection.
#[utoipa::path(
    get, path = "/collections/{collectionId}", operation_id = "describeCollection", tag = "Collections",
    params(("collectionId" = String, Path, description = "Collection id")),
    responses(
        (status = 200, description = "The collection", content_type = "application/json", body = Object),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No such collection", body = Exception),
    )
)]
pub async fn get_collection(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = collection_id(id)?;
    let stored = state.store.get_collection(&id, &caller.visibility).await?;
    Ok(cacheable(
        &headers,
        JSON,
        crate::assets::collection_document(&state, &links, &stored),
    ))
}

fn created(location: &str, body: String) -> Response {
    let mut response = json_text(StatusCode::CREATED, JSON, body);
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// Create a collection.
#[utoipa::path(
    post, path = "/collections", operation_id = "postCollection", tag = "Transactions",
    request_body(content = Object, description = "A STAC Collection", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", content_type = "application/json", body = Object),
        (status = 400, description = "Invalid collection", body = Exception),
        (status = 401, description = "No bearer token", body = Exception),
        (status = 403, description = "Writes disabled or wrong token", body = Exception),
        (status = 409, description = "Collection exists", body = Exception),
        (status = 413, description = "Body too large", body = Exception),
        (status = 415, description = "Not JSON", body = Exception),
    )
)]
pub async fn create_collection(
    State(state): State<AppState>,
    _admin: Admin,
    Base(links): Base,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let record = CollectionRecord::from_value(body)?;
    state.store.create_collection(&record).await?;
    let stored = state
        .store
        .get_collection(&record.id, &Visibility::all())
        .await?;
    Ok(created(
        &links.collection(&stored.id),
        document::collection(&stored, &links),
    ))
}

/// Replace a collection.
#[utoipa::path(
    put, path = "/collections/{collectionId}", operation_id = "putCollection", tag = "Transactions",
    params(("collectionId" = String, Path, description = "Collection id")),
    request_body(content = Object, description = "A STAC Collection", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced", content_type = "application/json", body = Object),
        (status = 400, description = "Invalid collection", body = Exception),
        (status = 401, description = "No bearer token", body = Exception),
        (status = 403, description = "Writes disabled or wrong token", body = Exception),
        (status = 404, description = "No such collection", body = Exception),
    )
)]
pub async fn replace_collection(
    State(state): State<AppState>,
    _admin: Admin,
    Base(links): Base,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let id = collection_id(id)?;
    let record = CollectionRecord::from_value(body)?;
    if record.id != id {
        return Err(ApiError::bad_request(format!(
            "invalid collection: id: is {:?} but the path names {:?}; ids cannot be changed",
            record.id.as_str(),
            id.as_str()
        )));
    }
    state.store.replace_collection(&record).await?;
    let stored = state.store.get_collection(&id, &Visibility::all()).await?;
    Ok(json_text(
        StatusCode::OK,
        JSON,
        document::collection(&stored, &links),
    ))
}

/// Update a collection with a JSON merge patch (RFC 7396).
#[utoipa::path(
    patch, path = "/collections/{collectionId}", operation_id = "patchCollection", tag = "Transactions",
    params(("collectionId" = String, Path, description = "Collection id")),
    request_body(content = Object, description = "A JSON merge patch", content_type = "application/merge-patch+json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", content_type = "application/json", body = Object),
        (status = 400, description = "The result is not a valid collection", body = Exception),
        (status = 404, description = "No such collection", body = Exception),
    )
)]
pub async fn patch_collection(
    State(state): State<AppState>,
    _admin: Admin,
    Base(links): Base,
    Path(id): Path<String>,
    Json(patch): Json<Value>,
) -> Result<Response, ApiError> {
    let id = collection_id(id)?;
    if !patch.is_object() {
        return Err(ApiError::bad_request("a merge patch must be a JSON object"));
    }
    let mut current = state.store.collection_value(&id).await?;
    merge_patch(&mut current, &patch);
    let record = CollectionRecord::from_value(current)?;
    if record.id != id {
        return Err(ApiError::bad_request(
            "invalid collection: id: ids cannot be changed",
        ));
    }
    state.store.replace_collection(&record).await?;
    let stored = state.store.get_collection(&id, &Visibility::all()).await?;
    Ok(json_text(
        StatusCode::OK,
        JSON,
        document::collection(&stored, &links),
    ))
}

/// Delete a collection and all its items.
#[utoipa::path(
    delete, path = "/collections/{collectionId}", operation_id = "deleteCollection", tag = "Transactions",
    params(("collectionId" = String, Path, description = "Collection id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such collection", body = Exception),
    )
)]
pub async fn delete_collection(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = collection_id(id)?;
    state.store.delete_collection(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
