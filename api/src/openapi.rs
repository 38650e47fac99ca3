//! The OpenAPI document: generated from the routes by utoipa, then given the
//! shared `limit` parameter that clients such as QGIS read their page size
//! from (`components.parameters.limit.schema.maximum`).

use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::Exception;

/// The media type `/api` is served with.
pub const OPENAPI_MEDIA_TYPE: &str = "application/vnd.oai.openapi+json;version=3.1";

/// Document-level metadata; the paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "arcolake",
        description = "STAC API over an ARCO data lake: collections, items, item search, transactions, signed URLs and asset streaming.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    // The streaming route's path ends in a wildcard, which the router
    // registers by hand; its operation is listed here.
    paths(crate::routes::assets::stream),
    components(schemas(Exception)),
    modifiers(&BearerAuth),
    tags(
        (name = "Core", description = "Landing page and conformance"),
        (name = "Collections", description = "STAC Collections"),
        (name = "Features", description = "Items of a collection (OGC API Features)"),
        (name = "Item Search", description = "Search across collections"),
        (name = "Aggregation", description = "Counts and frequency distributions over a search"),
        (name = "Transactions", description = "Writes; need the admin bearer token"),
        (name = "Tiles", description = "OGC API Tiles: vector tiles of item footprints"),
        (name = "Assets", description = "Signed URLs, prefix tokens and the streaming route"),
        (name = "Health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Turn the generated document into the served one: declare `limit` once
/// under `components.parameters` and reference it from every operation.
pub fn finish(api: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(api).unwrap_or_else(|_| json!({}));
    let limit = json!({
        "name": "limit",
        "in": "query",
        "required": false,
        "description": format!(
            "Items per page: at least 1; larger values than {} are answered with {} items.",
            catalog::search::MAX_LIMIT, catalog::search::MAX_LIMIT
        ),
        "schema": {
            "type": "integer",
            "minimum": 1,
            "maximum": catalog::search::MAX_LIMIT,
            "default": catalog::search::DEFAULT_LIMIT,
        },
        "style": "form",
        "explode": false,
    });
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(ops) = item.as_object_mut() else {
                continue;
            };
            for op in ops.values_mut() {
                let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                    continue;
                };
                for p in params.iter_mut() {
                    if p.get("name") == Some(&json!("limit"))
                        && p.get("in") == Some(&json!("query"))
                    {
                        *p = json!({"$ref": "#/components/parameters/limit"});
                    }
                }
            }
        }
    }
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.insert("parameters".into(), json!({ "limit": limit }));
    }
    doc
}
