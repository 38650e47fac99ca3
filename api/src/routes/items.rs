//! Items of a collection: OGC API Features reads and the item transaction
//! extension (including the all-or-nothing bulk POST of an ItemCollection).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use catalog::access::Visibility;
use catalog::links::link;
use catalog::model::merge_patch;
use catalog::search::{Search, SearchParams};
use catalog::{ItemId, ItemRecord, document};
use serde_json::{Value, json};

use super::collections::collection_id;
use crate::auth::Caller;
use crate::error::{ApiError, Exception};
use crate::extract::{Admin, Base, ClientAddr, Json, Path, Query};
use crate::item_page::{Origin, render};
use crate::response::{GEOJSON, JSON, cacheable, json_text};
use crate::state::AppState;

pub(crate) fn item_id(id: String) -> Result<ItemId, ApiError> {
    ItemId::new(id).map_err(ApiError::bad_request)
}

/// `sign=true|false` of an item response.
pub fn wants_signing(value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "sign must be true or false, not {other:?}"
        ))),
    }
}

/// Give the items' assets what the caller needs to read them: signed
/// hrefs when asked for (which spends a signing request), else public
/// `alternate` hrefs.
pub async fn prepare_assets(
    state: &AppState,
    links: &catalog::links::Links,
    caller: &Caller,
    address: ClientAddr,
    items: &mut [catalog::store::StoredItem],
    sign: bool,
) -> Result<(), ApiError> {
    if sign {
        state.settings.limits.spend(
            crate::limits::Kind::Sign,
            &address.limit_key(&caller.who),
            1,
        )?;
    }
    crate::assets::Signer::new(state, links, caller)
        .items(items, sign)
        .await
}

/// The items of one collection (OGC API Features).
#[utoipa::path(
    get, path = "/collections/{collectionId}/items", operation_id = "getFeatures", tag = "Features",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("bbox" = Option<String>, Query, description = "`west,south,east,north` or `west,south,zmin,east,north,zmax` in CRS84"),
        ("datetime" = Option<String>, Query, description = "An RFC 3339 instant or interval"),
        ("limit" = Option<u32>, Query, description = "Page size"),
        ("token" = Option<String>, Query, description = "Page token from a `next` or `prev` link"),
        ("filter" = Option<String>, Query, description = "CQL2 filter (see `/collections/{collectionId}/queryables`)"),
        ("filter-lang" = Option<String>, Query, description = "`cql2-text` (default) or `cql2-json`"),
        ("filter-crs" = Option<String>, Query, description = "Only `http://www.opengis.net/def/crs/OGC/1.3/CRS84`"),
        ("sortby" = Option<String>, Query, description = "Sort keys: `-datetime,+eo:cloud_cover`"),
        ("fields" = Option<String>, Query, description = "Members to include or (with `-`) exclude: `id,-geometry`"),
        ("query" = Option<String>, Query, description = "Query extension object, as JSON"),
        ("q" = Option<String>, Query, description = "Free text over title, description, keywords; commas separate alternatives"),
    ),
    responses(
        (status = 200, description = "An ItemCollection page; `numberMatched` on every page (counted for the first, carried by the page tokens)", content_type = "application/geo+json", body = Object),
        (status = 400, description = "Invalid parameters", body = Exception),
        (status = 404, description = "No such collection", body = Exception),
    )
)]
pub async fn list_items(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    address: ClientAddr,
    Path(collection): Path<String>,
    uri: Uri,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    let collection = collection_id(collection)?;
    // `ids`, `collections` and `intersects` belong to item search, not to
    // this endpoint; they are ignored here as OGC API Features allows.
    let params = SearchParams {
        ids: None,
        intersects: None,
        collections: Some(collection.as_str().to_owned()),
        ..params
    };
    let sign = wants_signing(params.other.get("sign").map(String::as_str))?;
    let mut search = Search::from_params(&params)?;
    search.collections = vec![collection.as_str().to_owned()];
    search.visibility = caller.visibility.clone();
    let mut page = state.store.search(&search).await?;
    // An empty page may mean no such collection; a full one proves it exists.
    if page.items.is_empty()
        && !state
            .store
            .collection_visible(collection.as_str(), &caller.visibility)
            .await?
    {
        return Err(catalog::Error::CollectionNotFound { id: collection }.into());
    }
    prepare_assets(&state, &links, &caller, address, &mut page.items, sign).await?;
    let context = vec![
        link("parent", &links.collection(collection.as_str()), JSON),
        link("collection", &links.collection(collection.as_str()), JSON),
    ];
    let href = links.items(collection.as_str());
    Ok(render(
        &page,
        &links,
        &Origin::Get { href, uri: &uri },
        context,
        &search.fields,
    ))
}

/// One item.
#[utoipa::path(
    get, path = "/collections/{collectionId}/items/{itemId}", operation_id = "getFeature", tag = "Features",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("itemId" = String, Path, description = "Item id"),
    ),
    responses(
        (status = 200, description = "The item", content_type = "application/geo+json", body = Object),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No such collection or item", body = Exception),
    )
)]
pub async fn get_item(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    address: ClientAddr,
    Path((collection, id)): Path<(String, String)>,
    Query(params): Query<std::collections::BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let sign = wants_signing(params.get("sign").map(String::as_str))?;
    let mut stored = state
        .store
        .get_item(
            &collection_id(collection)?,
            &item_id(id)?,
            &caller.visibility,
        )
        .await?;
    prepare_assets(
        &state,
        &links,
        &caller,
        address,
        std::slice::from_mut(&mut stored),
        sign,
    )
    .await?;
    Ok(cacheable(
        &headers,
        GEOJSON,
        document::item(&stored, &links),
    ))
}

/// Create an item, or (with an ItemCollection body) many items at once:
/// all are written or none is.
#[utoipa::path(
    post, path = "/collections/{collectionId}/items", operation_id = "postFeature", tag = "Transactions",
    params(("collectionId" = String, Path, description = "Collection id")),
    request_body(content = Object, description = "A STAC Item, or an ItemCollection for a bulk write", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", content_type = "application/geo+json", body = Object),
        (status = 400, description = "Invalid item; the description names the field (and the feature index)", body = Exception),
        (status = 401, description = "No bearer token", body = Exception),
        (status = 403, description = "Writes disabled or wrong token", body = Exception),
        (status = 404, description = "No such collection", body = Exception),
        (status = 409, description = "An item with this id exists", body = Exception),
        (status = 413, description = "Body too large", body = Exception),
        (status = 415, description = "Not JSON", body = Exception),
    )
)]
pub async fn create_item(
    State(state): State<AppState>,
    _admin: Admin,
    Base(links): Base,
    Path(collection): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let collection = collection_id(collection)?;
    if body.get("type").and_then(Value::as_str) == Some("FeatureCollection") {
        let Some(Value::Array(features)) = body.get("features") else {
            return Err(ApiError::bad_request(
                "invalid item collection: features: must be an array",
            ));
        };
        let mut records = Vec::with_capacity(features.len());
        for (i, f) in features.iter().enumerate() {
            let record = ItemRecord::from_value(f.clone(), Some(&collection))
                .map_err(|e| ApiError::bad_request(format!("features[{i}]: {e}")))?;
            records.push(record);
        }
        let counts = state.store.insert_items(&records).await?;
        let body = json!({"type": "BulkResult", "collection": collection.as_str(), "inserted": counts.inserted});
        return Ok(json_text(StatusCode::CREATED, JSON, body.to_string()));
    }
    let record = ItemRecord::from_value(body, Some(&collection))?;
    state.store.create_item(&record).await?;
    let stored = state
        .store
        .get_item(&record.collection, &record.id, &Visibility::all())
        .await?;
    let mut response = json_text(
        StatusCode::CREATED,
        GEOJSON,
        document::item(&stored, &links),
    );
    if let Ok(v) = HeaderValue::from_str(&links.item(&stored.collection, &stored.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

fn check_same_id(record: &ItemRecord, id: &ItemId) -> Result<(), catalog::Error> {
    if &record.id != id {
        return Err(catalog::Error::invalid_item(
            "id",
            format!(
                "is {:?} but the path names {:?}; ids cannot be changed",
                record.id.as_str(),
                id.as_str()
            ),
        ));
    }
    Ok(())
}

/// Replace an item.
#[utoipa::path(
    put, path = "/collections/{collectionId}/items/{itemId}", operation_id = "putFeature", tag = "Transactions",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("itemId" = String, Path, description = "Item id"),
    ),
    request_body(content = Object, description = "A STAC Item", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced", content_type = "application/geo+json", body = Object),
        (status = 400, description = "Invalid item", body = Exception),
        (status = 404, description = "No such collection or item", body = Exception),
    )
)]
pub async fn replace_item(
    State(state): State<AppState>,
    _admin: Admin,
    Base(links): Base,
    Path((collection, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let (collection, id) = (collection_id(collection)?, item_id(id)?);
    let record = ItemRecord::from_value(body, Some(&collection))?;
    check_same_id(&record, &id)?;
    state.store.replace_item(&record).await?;
    let stored = state
        .store
        .get_item(&collection, &id, &Visibility::all())
        .await?;
    Ok(json_text(
        StatusCode::OK,
        GEOJSON,
        document::item(&stored, &links),
    ))
}

/// Update an item with a JSON merge patch (RFC 7396).
#[utoipa::path(
    patch, path = "/collections/{collectionId}/items/{itemId}", operation_id = "patchFeature", tag = "Transactions",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("itemId" = String, Path, description = "Item id"),
    ),
    request_body(content = Object, description = "A JSON merge patch", content_type = "application/merge-patch+json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", content_type = "application/geo+json", body = Object),
        (status = 400, description = "The result is not a valid item", body = Exception),
        (status = 404, description = "No such collection or item", body = Exception),
    )
)]
pub async fn patch_item(
    State(state): State<AppState>,
    _admin: Admin,
    Base(links): Base,
    Path((collection, id)): Path<(String, String)>,
    Json(patch): Json<Value>,
) -> Result<Response, ApiError> {
    let (collection, id) = (collection_id(collection)?, item_id(id)?);
    if !patch.is_object() {
        return Err(ApiError::bad_request("a merge patch must be a JSON object"));
    }
    state
        .store
        .patch_item(&collection, &id, |mut current| {
            merge_patch(&mut current, &patch);
            let record = ItemRecord::from_value(current, Some(&collection))?;
            check_same_id(&record, &id)?;
            Ok(record)
        })
        .await?;
    let stored = state
        .store
        .get_item(&collection, &id, &Visibility::all())
        .await?;
    Ok(json_text(
        StatusCode::OK,
        GEOJSON,
        document::item(&stored, &links),
    ))
}

/// Delete an item.
#[utoipa::path(
    delete, path = "/collections/{collectionId}/items/{itemId}", operation_id = "deleteFeature", tag = "Transactions",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("itemId" = String, Path, description = "Item id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such collection or item", body = Exception),
    )
)]
pub async fn delete_item(
    State(state): State<AppState>,
    _admin: Admin,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state
        .store
        .delete_item(&collection_id(collection)?, &item_id(id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
