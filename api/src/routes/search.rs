//! Item search, GET and POST.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use catalog::search::{Search, SearchParams};
use serde_json::Value;

use super::items::{prepare_assets, wants_signing};
use crate::auth::Caller;
use crate::error::{ApiError, Exception};
use crate::extract::{Base, ClientAddr, Query, SearchJson};
use crate::item_page::{Origin, render};
use crate::state::AppState;

/// Search items across collections (GET).
#[utoipa::path(
    get, path = "/search", operation_id = "getItemSearch", tag = "Item Search",
    params(
        ("bbox" = Option<String>, Query, description = "`west,south,east,north` or `west,south,zmin,east,north,zmax` in CRS84; west > east crosses the antimeridian"),
        ("intersects" = Option<String>, Query, description = "A GeoJSON geometry, as JSON text"),
        ("datetime" = Option<String>, Query, description = "An RFC 3339 instant or interval (`a/b`, `../b`, `a/..`)"),
        ("ids" = Option<String>, Query, description = "Comma-separated item ids"),
        ("collections" = Option<String>, Query, description = "Comma-separated collection ids"),
        ("limit" = Option<u32>, Query, description = "Page size"),
        ("token" = Option<String>, Query, description = "Page token from a `next` or `prev` link"),
        ("filter" = Option<String>, Query, description = "CQL2 filter (see `/queryables`)"),
        ("filter-lang" = Option<String>, Query, description = "`cql2-text` (default) or `cql2-json`"),
        ("filter-crs" = Option<String>, Query, description = "Only `http://www.opengis.net/def/crs/OGC/1.3/CRS84`"),
        ("sortby" = Option<String>, Query, description = "Sort keys: `-datetime,+eo:cloud_cover`; ties broken by collection and id"),
        ("fields" = Option<String>, Query, description = "Members to include or (with `-`) exclude: `id,-geometry,properties.eo:cloud_cover`"),
        ("query" = Option<String>, Query, description = "Query extension object, as JSON: `{\"eo:cloud_cover\":{\"lt\":20}}`"),
        ("q" = Option<String>, Query, description = "Free text over title, description, keywords; commas separate alternatives"),
        ("context" = Option<String>, Query, description = "`on`: count `numberMatched` exactly, however large"),
    ),
    responses(
        (status = 200, description = "An ItemCollection page", content_type = "application/geo+json", body = Object),
        (status = 400, description = "Invalid search", body = Exception),
    )
)]
pub async fn search_get(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    address: ClientAddr,
    uri: Uri,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    let sign = wants_signing(params.other.get("sign").map(String::as_str))?;
    let mut search = Search::from_params(&params)?;
    search.visibility = caller.visibility.clone();
    let mut page = state.store.search(&search).await?;
    prepare_assets(&state, &links, &caller, address, &mut page.items, sign).await?;
    Ok(render(
        &page,
        &links,
        &Origin::Get {
            href: links.search(),
            uri: &uri,
        },
        Vec::new(),
        &search.fields,
    ))
}

/// Search items across collections (POST).
#[utoipa::path(
    post, path = "/search", operation_id = "postItemSearch", tag = "Item Search",
    request_body(content = Object, description = "A STAC search: bbox, intersects, datetime, ids, collections, limit, token, filter, filter-lang, filter-crs, sortby, fields, query, q, context", content_type = "application/json"),
    responses(
        (status = 200, description = "An ItemCollection page", content_type = "application/geo+json", body = Object),
        (status = 400, description = "Invalid search", body = Exception),
        (status = 413, description = "Body too large", body = Exception),
        (status = 415, description = "Not JSON", body = Exception),
    )
)]
pub async fn search_post(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    address: ClientAddr,
    SearchJson(body): SearchJson,
) -> Result<Response, ApiError> {
    let Value::Object(members) = &body else {
        return Err(ApiError::bad_request(
            "the search body must be a JSON object",
        ));
    };
    // The parser GET uses, reading the members as JSON.
    let sign = match members.get("sign") {
        None | Some(Value::Null | Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(Value::String(s)) => wants_signing(Some(s))?,
        Some(_) => return Err(ApiError::bad_request("sign must be true or false")),
    };
    let mut search = Search::from_members(members)?;
    search.visibility = caller.visibility.clone();
    let mut page = state.store.search(&search).await?;
    prepare_assets(&state, &links, &caller, address, &mut page.items, sign).await?;
    Ok(render(
        &page,
        &links,
        &Origin::Post {
            href: links.search(),
            body: &body,
        },
        Vec::new(),
        &search.fields,
    ))
}
