//! The landing page and the conformance declaration.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, Exception};
use crate::extract::Base;
use crate::openapi::OPENAPI_MEDIA_TYPE;
use crate::response::{GEOJSON, JSON};
use crate::state::AppState;
use catalog::links::{QUERYABLES_REL, SCHEMA_JSON, SORTABLES_REL};

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
    // Filter extension and every CQL2 class the compiler executes.
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "https://api.stacspec.org/v1.0.0-rc.2/ogcapi-features/extensions/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/accent-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/array-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    // Sort, fields, query and free text on item search and item lists.
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.1.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#sort",
    "https://api.stacspec.org/v1.1.0/ogcapi-features#sort",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#fields",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#query",
    "https://api.stacspec.org/v1.0.0-rc.1/item-search#free-text",
    "https://api.stacspec.org/v1.0.0-rc.1/ogcapi-features#free-text",
    // Collection search (GET /collections, POST /collections-search).
    "https://api.stacspec.org/v1.0.0-rc.1/collection-search",
    "https://api.stacspec.org/v1.0.0-rc.1/collection-search#free-text",
    "https://api.stacspec.org/v1.0.0-rc.1/collection-search#filter",
    "https://api.stacspec.org/v1.0.0-rc.1/collection-search#sort",
    "https://api.stacspec.org/v1.0.0-rc.1/collection-search#fields",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/simple-query",
    // Aggregation.
    "https://api.stacspec.org/v0.3.0/aggregation",
    // OGC API Tiles: vector tiles of each collection's footprints
    // (`routes::tiles`), in WebMercatorQuad.
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
];

/// Most collections linked as `child` from the landing page.
const MAX_CHILD_LINKS: usize = 1000;

/// The landing page: what this API is and where everything is.
#[utoipa::path(
    get, path = "/", operation_id = "getLandingPage", tag = "Core",
    responses(
        (status = 200, description = "The landing page (a STAC Catalog with `conformsTo`)", content_type = "application/json", body = Object),
        (status = 303, description = "A browser (an `Accept` preferring `text/html`) is sent to the browse page"),
        (status = 500, description = "Server error", body = Exception),
    )
)]
pub async fn get_landing(
    State(state): State<AppState>,
    Base(links): Base,
    caller: crate::auth::Caller,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let l = &links;
    if crate::routes::browse::prefers_html(&headers) {
        let mut response = axum::response::Redirect::to(&l.url("/browse")).into_response();
        response.headers_mut().insert(
            axum::http::header::VARY,
            axum::http::HeaderValue::from_static("accept"),
        );
        return Ok(response);
    }
    let mut out: Vec<Value> = vec![
        json!({"rel": "self", "type": JSON, "href": l.root()}),
        json!({"rel": "root", "type": JSON, "href": l.root()}),
        json!({"rel": "conformance", "type": JSON, "href": l.url("/conformance"), "title": "Conformance classes"}),
        json!({"rel": "service-desc", "type": OPENAPI_MEDIA_TYPE, "href": l.url("/api"), "title": "OpenAPI definition"}),
        json!({"rel": "service-doc", "type": "text/html", "href": l.url("/api.html"), "title": "API documentation"}),
        json!({"rel": "alternate", "type": "text/html", "href": l.url("/browse"), "title": "Browse the catalog"}),
        json!({"rel": "data", "type": JSON, "href": l.collections(), "title": "Collections"}),
        json!({"rel": "search", "type": GEOJSON, "href": l.search(), "method": "GET", "title": "Item search"}),
        json!({"rel": "search", "type": GEOJSON, "href": l.search(), "method": "POST", "title": "Item search"}),
        json!({"rel": QUERYABLES_REL, "type": SCHEMA_JSON, "href": l.queryables(None), "title": "Queryables"}),
        json!({"rel": SORTABLES_REL, "type": SCHEMA_JSON, "href": l.sortables(None), "title": "Sortables"}),
        json!({"rel": "aggregate", "type": JSON, "href": l.url("/aggregate"), "method": "GET", "title": "Aggregate"}),
        json!({"rel": "aggregations", "type": JSON, "href": l.url("/aggregations"), "title": "Available aggregations"}),
        json!({"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes", "type": JSON, "href": l.url("/tileMatrixSets"), "title": "Tile matrix sets"}),
    ];
    for c in state
        .store
        .list_collections(&caller.visibility)
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
    let mut response = axum::Json(body).into_response();
    // Browsers get the page: the answer depends on `Accept`.
    response.headers_mut().append(
        axum::http::header::VARY,
        axum::http::HeaderValue::from_static("accept"),
    );
    Ok(response)
}

/// The conformance classes this server implements.
#[utoipa::path(
    get, path = "/conformance", operation_id = "getConformanceDeclaration", tag = "Core",
    responses((status = 200, description = "Conformance classes", content_type = "application/json", body = Object))
)]
pub async fn get_conformance() -> Response {
    axum::Json(json!({ "conformsTo": CONFORMANCE })).into_response()
}
