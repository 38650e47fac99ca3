//! OGC API Tiles of item footprints: tile matrix sets, a collection's
//! tilesets, its Mapbox Vector Tiles, `TileJSON` 3.0.0 and a `MapLibre` style.
//!
//! Tiles are never stale and cheap to cache: every write to a collection
//! records a change stamp, which the `TileJSON`, style and tileset templates
//! carry as `?v=<stamp>`. A tile asked for with the current stamp may be
//! kept forever (`immutable`); without it, briefly. The ETag hashes the
//! stamp, the collection, the tile and the limit, so the next request after
//! a write gets a new tile.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use catalog::links::{JSON, Links, link};
use catalog::search::SearchParams;
use catalog::store::tiles::{DEFAULT_TILE_LIMIT, FOOTPRINT_LAYER, MAX_TILE_LIMIT, MAX_ZOOM};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::collections::collection_id;
use crate::auth::Caller;
use crate::error::{ApiError, Exception};
use crate::extract::{Base, Path, Query};
use crate::state::AppState;
use crate::tile_cache::{CachedTile, accepts_gzip, gunzip, gzip};

/// The media type of a Mapbox Vector Tile.
pub const MVT: &str = "application/vnd.mapbox-vector-tile";
/// The only tile matrix set served.
pub const WEB_MERCATOR_QUAD: &str = "WebMercatorQuad";
const TMS_URI: &str = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad";
const CRS_3857: &str = "http://www.opengis.net/def/crs/EPSG/0/3857";
const TILING_SCHEME_REL: &str = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme";

pub(crate) fn web_mercator_quad(tms: &str) -> Result<(), ApiError> {
    if tms == WEB_MERCATOR_QUAD {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no tile matrix set {tms:?}; this server tiles in WebMercatorQuad"
        )))
    }
}

/// The tile matrix set `WebMercatorQuad` (OGC 2D TMS 2.0, JSON).
fn tile_matrix_set(links: &Links) -> Value {
    let matrices: Vec<Value> = (0..=MAX_ZOOM)
        .map(|z| {
            let n = 1u64 << z;
            #[expect(clippy::cast_precision_loss, reason = "2^24 is exact in f64")]
            let scale = n as f64;
            json!({
                "id": z.to_string(),
                "scaleDenominator": 559_082_264.028_717_8 / scale,
                "cellSize": 156_543.033_928_041 / scale,
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [-20_037_508.342_789_244, 20_037_508.342_789_244],
                "tileWidth": 256,
                "tileHeight": 256,
                "matrixWidth": n,
                "matrixHeight": n,
            })
        })
        .collect();
    json!({
        "id": WEB_MERCATOR_QUAD,
        "title": "Google Maps Compatible for the World",
        "uri": TMS_URI,
        "crs": CRS_3857,
        "orderedAxes": ["X", "Y"],
        "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "tileMatrices": matrices,
        "links": [link("self", &links.url("/tileMatrixSets/WebMercatorQuad"), JSON)],
    })
}

/// The tile matrix sets this server tiles in.
#[utoipa::path(
    get, path = "/tileMatrixSets", operation_id = "getTileMatrixSetsList", tag = "Tiles",
    responses((status = 200, description = "The tile matrix sets", content_type = "application/json", body = Object))
)]
pub async fn tile_matrix_sets(Base(links): Base) -> Response {
    let href = links.url("/tileMatrixSets/WebMercatorQuad");
    axum::Json(json!({
        "tileMatrixSets": [{
            "id": WEB_MERCATOR_QUAD,
            "title": "Google Maps Compatible for the World",
            "uri": TMS_URI,
            "links": [link(TILING_SCHEME_REL, &href, JSON), link("self", &href, JSON)],
        }],
        "links": [link("self", &links.url("/tileMatrixSets"), JSON)],
    }))
    .into_response()
}

/// One tile matrix set.
#[utoipa::path(
    get, path = "/tileMatrixSets/{tileMatrixSetId}", operation_id = "getTileMatrixSet", tag = "Tiles",
    params(("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`")),
    responses(
        (status = 200, description = "The tile matrix set", content_type = "application/json", body = Object),
        (status = 404, description = "No such tile matrix set", body = Exception),
    )
)]
pub async fn get_tile_matrix_set(
    Base(links): Base,
    Path(tms): Path<String>,
) -> Result<Response, ApiError> {
    web_mercator_quad(&tms)?;
    Ok(axum::Json(tile_matrix_set(&links)).into_response())
}

/// What a tileset of a collection says of itself.
struct Tileset {
    id: String,
    title: String,
    bbox: Option<Value>,
    stamp: i64,
}

async fn tileset(state: &AppState, caller: &Caller, id: String) -> Result<Tileset, ApiError> {
    let id = collection_id(id)?;
    let stored = state.store.get_collection(&id, &caller.visibility).await?;
    let doc: Value = serde_json::from_str(&stored.content).unwrap_or(Value::Null);
    Ok(Tileset {
        stamp: state.store.stamp_of(&[id.as_str().to_owned()]).await?,
        title: doc["title"].as_str().unwrap_or(id.as_str()).to_owned(),
        bbox: doc["extent"]["spatial"]["bbox"].get(0).cloned(),
        id: id.as_str().to_owned(),
    })
}

impl Tileset {
    fn base(&self, links: &Links) -> String {
        format!("{}/tiles/{WEB_MERCATOR_QUAD}", links.collection(&self.id))
    }

    /// The tile URL template, with the change stamp.
    fn template(&self, links: &Links, names: (&str, &str, &str)) -> String {
        format!(
            "{}/{{{}}}/{{{}}}/{{{}}}?v={}",
            self.base(links),
            names.0,
            names.1,
            names.2,
            self.stamp
        )
    }

    fn document(&self, links: &Links) -> Value {
        let mut doc = json!({
            "title": format!("Footprints of {}", self.title),
            "dataType": "vector",
            "crs": CRS_3857,
            "tileMatrixSetURI": TMS_URI,
            "links": [
                link("self", &self.base(links), JSON),
                link(TILING_SCHEME_REL, &links.url("/tileMatrixSets/WebMercatorQuad"), JSON),
                {"rel": "item", "type": MVT, "templated": true,
                 "href": self.template(links, ("tileMatrix", "tileRow", "tileCol"))},
                link("describedby", &format!("{}/tilejson.json?v={}", self.base(links), self.stamp), JSON),
                link("stylesheet", &format!("{}/style.json?v={}", self.base(links), self.stamp), JSON),
            ],
            "layers": [{
                "id": FOOTPRINT_LAYER,
                "dataType": "vector",
                "geometryDimension": 2,
                "minTileMatrix": "0",
                "maxTileMatrix": MAX_ZOOM.to_string(),
            }],
        });
        if let Some(Value::Array(b)) = &self.bbox
            && b.len() == 4
        {
            doc["boundingBox"] = bounding_box([&b[0], &b[1], &b[2], &b[3]]);
        }
        doc
    }
}

/// An OGC tileset's `boundingBox` of a longitude/latitude box.
pub(crate) fn bounding_box(b: [&Value; 4]) -> Value {
    json!({
        "lowerLeft": [b[0], b[1]],
        "upperRight": [b[2], b[3]],
        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    })
}

/// The tilesets of a collection.
#[utoipa::path(
    get, path = "/collections/{collectionId}/tiles", operation_id = "getCollectionVectorTileSetsList", tag = "Tiles",
    params(("collectionId" = String, Path, description = "Collection id")),
    responses(
        (status = 200, description = "The tilesets (one: its footprints in WebMercatorQuad)", content_type = "application/json", body = Object),
        (status = 404, description = "No such collection", body = Exception),
    )
)]
pub async fn collection_tilesets(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let set = tileset(&state, &caller, id).await?;
    let doc = set.document(&links);
    Ok(axum::Json(json!({
        "tilesets": [{
            "title": doc["title"],
            "dataType": "vector",
            "crs": CRS_3857,
            "tileMatrixSetURI": TMS_URI,
            "links": [
                link("self", &set.base(&links), JSON),
                link(TILING_SCHEME_REL, &links.url("/tileMatrixSets/WebMercatorQuad"), JSON),
            ],
        }],
        "links": [
            link("self", &format!("{}/tiles", links.collection(&set.id)), JSON),
            link("collection", &links.collection(&set.id), JSON),
        ],
    }))
    .into_response())
}

/// A collection's tileset of footprints.
#[utoipa::path(
    get, path = "/collections/{collectionId}/tiles/{tileMatrixSetId}", operation_id = "getCollectionVectorTileSet", tag = "Tiles",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
    ),
    responses(
        (status = 200, description = "The tileset, with its templated `item` link", content_type = "application/json", body = Object),
        (status = 404, description = "No such collection or tile matrix set", body = Exception),
    )
)]
pub async fn collection_tileset(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path((id, tms)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    web_mercator_quad(&tms)?;
    let set = tileset(&state, &caller, id).await?;
    Ok(axum::Json(set.document(&links)).into_response())
}

/// `TileJSON` 3.0.0 of a collection's footprints.
#[utoipa::path(
    get, path = "/collections/{collectionId}/tiles/{tileMatrixSetId}/tilejson.json", operation_id = "getCollectionTileJson", tag = "Tiles",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
    ),
    responses(
        (status = 200, description = "TileJSON 3.0.0: an XYZ template with the change stamp", content_type = "application/json", body = Object),
        (status = 404, description = "No such collection", body = Exception),
    )
)]
pub async fn collection_tilejson(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path((id, tms)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    web_mercator_quad(&tms)?;
    let set = tileset(&state, &caller, id).await?;
    Ok(axum::Json(tilejson(&set, &links, &state.settings.tile_properties)).into_response())
}

fn tilejson(set: &Tileset, links: &Links, properties: &[String]) -> Value {
    let mut fields = json!({
        "id": "String: the STAC item id",
        "collection": "String: the collection id",
        "datetime": "String: the item's datetime (or the start of its span)",
    });
    for name in properties {
        fields[name] = json!(format!("The item property {name:?}, where the item has it"));
    }
    let mut doc = json!({
        "tilejson": "3.0.0",
        "name": format!("Footprints of {}", set.title),
        "scheme": "xyz",
        "tiles": [set.template(links, ("z", "y", "x"))],
        "minzoom": 0,
        "maxzoom": MAX_ZOOM,
        "vector_layers": [{
            "id": FOOTPRINT_LAYER,
            "fields": fields,
            "minzoom": 0,
            "maxzoom": MAX_ZOOM,
        }],
    });
    if let Some(Value::Array(b)) = &set.bbox
        && b.len() == 4
        && b.iter().all(Value::is_number)
    {
        doc["bounds"] = Value::Array(b.clone());
    }
    doc
}

/// A `MapLibre` style drawing a collection's footprints.
#[utoipa::path(
    get, path = "/collections/{collectionId}/tiles/{tileMatrixSetId}/style.json", operation_id = "getCollectionStyle", tag = "Tiles",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
    ),
    responses(
        (status = 200, description = "A MapLibre style: one vector source (the TileJSON), fill and outline layers", content_type = "application/json", body = Object),
        (status = 404, description = "No such collection", body = Exception),
    )
)]
pub async fn collection_style(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path((id, tms)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    web_mercator_quad(&tms)?;
    let set = tileset(&state, &caller, id).await?;
    let tilejson = format!("{}/tilejson.json?v={}", set.base(&links), set.stamp);
    Ok(axum::Json(style(
        &format!("{}-footprints", set.id),
        &format!("Footprints of {}", set.title),
        &tilejson,
    ))
    .into_response())
}

/// A `MapLibre` style of one vector source (`tilejson`): fill and outline.
fn style(source: &str, name: &str, tilejson: &str) -> Value {
    json!({
        "version": 8,
        "name": name,
        "sources": {source: {"type": "vector", "url": tilejson}},
        "layers": [
            {
                "id": format!("{source}-fill"), "type": "fill", "source": source,
                "source-layer": FOOTPRINT_LAYER,
                "paint": {"fill-color": "#e8743b", "fill-opacity": 0.12},
            },
            {
                "id": format!("{source}-outline"), "type": "line", "source": source,
                "source-layer": FOOTPRINT_LAYER,
                "paint": {"line-color": "#e8743b", "line-width": 1},
            },
        ],
    })
}

/// The query parameters of a tile: any `/search` parameter filters it;
/// `limit` caps its features, `v` is the change stamp of the template.
struct TileQuery {
    search: catalog::search::Search,
    limit: u32,
    v: Option<i64>,
    /// The query string without `v` (and without `api_key`), for the
    /// templates of `TileJSON` and style.
    passed: String,
}

fn tile_query(uri: &axum::http::Uri, mut params: SearchParams) -> Result<TileQuery, ApiError> {
    let limit = match params.limit.take().filter(|l| !l.is_empty()) {
        None => DEFAULT_TILE_LIMIT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_TILE_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {MAX_TILE_LIMIT}"
                ))
            })?,
    };
    let v = match params.other.remove("v").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_request("v must be a change stamp (a number)"))?,
        ),
    };
    params.other.remove("api_key");
    let search = catalog::search::Search::from_params(&params)?;
    let passed = uri.query().map_or_else(String::new, |q| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                url::form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, _)| k != "v" && k != "api_key"),
            )
            .finish()
    });
    Ok(TileQuery {
        search,
        limit,
        v,
        passed,
    })
}

pub(crate) fn tile_coordinates(tms: &str, z: u8, y: u32, x: u32) -> Result<(), ApiError> {
    web_mercator_quad(tms)?;
    if z > MAX_ZOOM || u64::from(x) >= 1u64 << z || u64::from(y) >= 1u64 << z {
        return Err(ApiError::not_found(format!(
            "tile {z}/{y}/{x} lies outside WebMercatorQuad (zoom 0 to {MAX_ZOOM}, row and column below 2^zoom)"
        )));
    }
    Ok(())
}

/// The answer with one tile: ETag over the stamp, the search, the tile and
/// the cap; `immutable` with the current stamp; `private` when the caller's
/// grants shaped it.
async fn tile_answer(
    state: &AppState,
    query: &TileQuery,
    (z, y, x): (u8, u32, u32),
    private: bool,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let stamp = state.store.stamp_of(&query.search.collections).await?;
    // The whole search text (the caller's visibility included) and the
    // property set, under a strong digest: a cached tile is never served
    // for another search or another caller's grants.
    let digest = Sha256::digest(format!(
        "{stamp}|{}|{z}/{y}/{x}|{}|{:?}",
        query.search.fingerprint_text(),
        query.limit,
        state.settings.tile_properties
    ));
    let key = format!("\"{}\"", crate::response::hex(&digest[..12]));
    let etag = representation_etag(&key, Some("gzip"), headers);
    let mut answer = tile_headers(
        &etag,
        private,
        query.v == Some(stamp),
        state.settings.tile_max_age,
    );
    if not_modified(headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().extend(answer);
        return Ok(response);
    }
    let tile = match state.settings.tiles.get(&key) {
        Some(tile) => tile,
        None => {
            let made = state
                .store
                .search_tile(
                    &query.search,
                    (z, x, y),
                    query.limit,
                    &state.settings.tile_properties,
                )
                .await?;
            let tile = CachedTile {
                encoding: (!made.bytes.is_empty()).then_some("gzip"),
                bytes: if made.bytes.is_empty() {
                    Bytes::new()
                } else {
                    gzip(&made.bytes)
                },
                limited: made.limited,
            };
            state.settings.tiles.put(key, &tile);
            tile
        }
    };
    if tile.limited {
        answer.insert("x-feature-limit-reached", HeaderValue::from_static("true"));
    }
    let mut response = tile_body(&tile, MVT, headers)?;
    response.headers_mut().extend(answer);
    Ok(response)
}

/// The caching headers of a tile: its ETag; `immutable` for a year when
/// asked for with the current version (stamp), else `max_age` seconds;
/// `private` when the caller's grants shaped it.
pub(crate) fn tile_headers(etag: &str, private: bool, current: bool, max_age: u32) -> HeaderMap {
    let cache = format!(
        "{}, max-age={}",
        if private { "private" } else { "public" },
        if current {
            "31536000, immutable".to_owned()
        } else {
            max_age.to_string()
        }
    );
    let mut answer = HeaderMap::new();
    answer.insert(
        header::ETAG,
        HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\"")),
    );
    answer.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&cache).unwrap_or(HeaderValue::from_static("no-cache")),
    );
    answer.insert(
        header::VARY,
        HeaderValue::from_static("authorization, accept-encoding"),
    );
    answer
}

/// The ETag of the representation this client gets of a tile kept under
/// `key` in `encoding`: a client that does not take gzip gets the tile
/// inflated, another representation, with its own validator.
pub(crate) fn representation_etag(
    key: &str,
    encoding: Option<&str>,
    headers: &HeaderMap,
) -> String {
    if encoding == Some("gzip") && !accepts_gzip(headers) {
        format!("{}-identity\"", key.trim_end_matches('"'))
    } else {
        key.to_owned()
    }
}

/// The client's `If-None-Match` names `etag` (or is `*`: the tile exists).
pub(crate) fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim() == "*"
                || v.split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == etag)
        })
}

/// A tile's body: 204 when empty; the stored bytes with their
/// `Content-Encoding`, gzip inflated for a client that does not take it.
/// (Brotli and zstd tiles of an archive pass as stored: every client that
/// reads such archives takes them.)
pub(crate) fn tile_body(
    tile: &CachedTile,
    media_type: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if tile.bytes.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let (body, encoding) = if tile.encoding != Some("gzip") || accepts_gzip(headers) {
        (tile.bytes.clone(), tile.encoding)
    } else {
        let inflated = gunzip(&tile.bytes).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "BadTile",
                "a stored tile said it was gzip-compressed but is not",
            )
        })?;
        (inflated, None)
    };
    let mut response = Response::new(Body::from(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(media_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Some(encoding) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    Ok(response)
}

/// One vector tile of a collection's footprints.
#[utoipa::path(
    get, path = "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}", operation_id = "getCollectionVectorTile", tag = "Tiles",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
        ("tileMatrix" = u8, Path, description = "Zoom level, 0 to 24"),
        ("tileRow" = u32, Path, description = "Row (y)"),
        ("tileCol" = u32, Path, description = "Column (x)"),
        ("v" = Option<i64>, Query, description = "The collection's change stamp (from a tileset, TileJSON or style): with the current one the tile may be cached forever"),
        ("limit" = Option<u32>, Query, description = "Most features, 1 to 50,000; default 10,000"),
        ("datetime" = Option<String>, Query, description = "Any `/search` parameter filters the footprints: datetime, ids, bbox, filter, filter-lang, query, sortby, q"),
    ),
    responses(
        (status = 200, description = "A Mapbox Vector Tile, layer `footprints`, newest first (or in `sortby` order); `X-Feature-Limit-Reached: true` when more items meet the tile", content_type = "application/vnd.mapbox-vector-tile"),
        (status = 204, description = "No footprint meets the tile"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "A bad limit or search parameter", body = Exception),
        (status = 404, description = "No such collection, or a tile outside the matrix", body = Exception),
    )
)]
pub async fn collection_tile(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, tms, z, y, x)): Path<(String, String, u8, u32, u32)>,
    uri: axum::http::Uri,
    Query(params): Query<SearchParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    tile_coordinates(&tms, z, y, x)?;
    let id = collection_id(id)?;
    let restricted = match state.store.collection_restricted(id.as_str()).await? {
        Some(r) if caller.visibility.sees(id.as_str(), r) => r,
        _ => return Err(catalog::Error::CollectionNotFound { id }.into()),
    };
    let mut query = tile_query(
        &uri,
        SearchParams {
            collections: None,
            ..params
        },
    )?;
    query.search.collections = vec![id.as_str().to_owned()];
    query.search.visibility = caller.visibility.clone();
    tile_answer(&state, &query, (z, y, x), restricted, &headers).await
}

/// One vector tile of the footprints a search matches, across collections.
#[utoipa::path(
    get, path = "/search/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}", operation_id = "getSearchVectorTile", tag = "Tiles",
    params(
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
        ("tileMatrix" = u8, Path, description = "Zoom level, 0 to 24"),
        ("tileRow" = u32, Path, description = "Row (y)"),
        ("tileCol" = u32, Path, description = "Column (x)"),
        ("v" = Option<i64>, Query, description = "The change stamp of the template"),
        ("limit" = Option<u32>, Query, description = "Most features, 1 to 50,000; default 10,000"),
        ("collections" = Option<String>, Query, description = "Any `/search` parameter filters the footprints: collections, datetime, ids, bbox, filter, filter-lang, query, sortby, q"),
    ),
    responses(
        (status = 200, description = "A Mapbox Vector Tile, layer `footprints`", content_type = "application/vnd.mapbox-vector-tile"),
        (status = 204, description = "No footprint meets the tile"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "A bad limit or search parameter", body = Exception),
        (status = 404, description = "A tile outside the matrix", body = Exception),
    )
)]
pub async fn search_tile(
    State(state): State<AppState>,
    caller: Caller,
    Path((tms, z, y, x)): Path<(String, u8, u32, u32)>,
    uri: axum::http::Uri,
    Query(params): Query<SearchParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    tile_coordinates(&tms, z, y, x)?;
    let mut query = tile_query(&uri, params)?;
    query.search.visibility = caller.visibility.clone();
    let private = caller.visibility != catalog::access::Visibility::public();
    tile_answer(&state, &query, (z, y, x), private, &headers).await
}

/// `TileJSON` 3.0.0 of a search's footprints: the template carries the
/// search's parameters and its change stamp.
#[utoipa::path(
    get, path = "/search/tiles/{tileMatrixSetId}/tilejson.json", operation_id = "getSearchTileJson", tag = "Tiles",
    params(
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
        ("collections" = Option<String>, Query, description = "Any `/search` parameter, carried into the tile template"),
    ),
    responses(
        (status = 200, description = "TileJSON 3.0.0", content_type = "application/json", body = Object),
        (status = 400, description = "A bad search parameter", body = Exception),
    )
)]
pub async fn search_tilejson(
    State(state): State<AppState>,
    Base(links): Base,
    Path(tms): Path<String>,
    uri: axum::http::Uri,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    web_mercator_quad(&tms)?;
    let query = tile_query(&uri, params)?;
    let stamp = state.store.stamp_of(&query.search.collections).await?;
    let set = Tileset {
        id: String::new(),
        title: "search".into(),
        bbox: None,
        stamp,
    };
    let mut doc = tilejson(&set, &links, &state.settings.tile_properties);
    let join = if query.passed.is_empty() { "" } else { "&" };
    doc["tiles"] = json!([format!(
        "{}/{{z}}/{{y}}/{{x}}?{}{join}v={stamp}",
        links.url("/search/tiles/WebMercatorQuad"),
        query.passed
    )]);
    doc["name"] = json!("Footprints of a search");
    Ok(axum::Json(doc).into_response())
}

/// A `MapLibre` style of a search's footprints: its source is the search's
/// `TileJSON`, with the same parameters.
#[utoipa::path(
    get, path = "/search/tiles/{tileMatrixSetId}/style.json", operation_id = "getSearchStyle", tag = "Tiles",
    params(
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
        ("collections" = Option<String>, Query, description = "Any `/search` parameter, carried into the TileJSON URL"),
    ),
    responses(
        (status = 200, description = "A MapLibre style", content_type = "application/json", body = Object),
        (status = 400, description = "A bad search parameter", body = Exception),
    )
)]
pub async fn search_style(
    State(state): State<AppState>,
    Base(links): Base,
    Path(tms): Path<String>,
    uri: axum::http::Uri,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    web_mercator_quad(&tms)?;
    let query = tile_query(&uri, params)?;
    let stamp = state.store.stamp_of(&query.search.collections).await?;
    let join = if query.passed.is_empty() { "" } else { "&" };
    let tilejson = format!(
        "{}?{}{join}v={stamp}",
        links.url("/search/tiles/WebMercatorQuad/tilejson.json"),
        query.passed
    );
    Ok(axum::Json(style(
        "search-footprints",
        "Footprints of a search",
        &tilejson,
    ))
    .into_response())
}

/// A JSON value with every object's members in key order, so the same
/// search always has the same text (and hash).
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: std::collections::BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Register a search for its tiles: a long filter is sent once, and its
/// tiles, `TileJSON` and style are named by a content hash of the search.
#[utoipa::path(
    post, path = "/searches", operation_id = "registerSearch", tag = "Tiles",
    request_body(content = Object, description = "A search body as POST /search takes it (without token or limit)", content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"id\", \"links\": [tilejson, style, tiles]}`; the same search always gets the same id", content_type = "application/json", body = Object),
        (status = 400, description = "Not a valid search", body = Exception),
        (status = 429, description = "Too many registrations from this caller", body = Exception),
    )
)]
pub async fn register_search(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    address: crate::extract::ClientAddr,
    crate::extract::SearchJson(body): crate::extract::SearchJson,
) -> Result<Response, ApiError> {
    // Each new search is a row: registering is limited like signing.
    state.settings.limits.spend(
        crate::limits::Kind::Sign,
        &address.limit_key(&caller.who),
        1,
    )?;
    let Value::Object(members) = &body else {
        return Err(ApiError::bad_request(
            "the search body must be a JSON object",
        ));
    };
    let mut members = members.clone();
    members.remove("token");
    members.remove("limit");
    members.remove("sign");
    catalog::search::Search::from_members(&members)?;
    let body = canonical(&Value::Object(members));
    let digest = Sha256::digest(body.to_string().as_bytes());
    let id = crate::response::hex(&digest[..10]);
    state.store.register_search(&id, &body).await?;
    let base = links.url(&format!("/searches/{id}/tiles/WebMercatorQuad"));
    Ok(axum::Json(json!({
        "id": id,
        "links": [
            link("tilejson", &format!("{base}/tilejson.json"), JSON),
            link("stylesheet", &format!("{base}/style.json"), JSON),
            {"rel": "item", "type": MVT, "templated": true, "href": format!("{base}/{{z}}/{{y}}/{{x}}")},
        ],
    }))
    .into_response())
}

/// The search a registered id names, as the caller may run it.
async fn registered(
    state: &AppState,
    caller: &Caller,
    id: &str,
    uri: &axum::http::Uri,
    params: SearchParams,
) -> Result<TileQuery, ApiError> {
    let body = state
        .store
        .registered_search(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no registered search {id:?}")))?;
    let Value::Object(members) = body else {
        return Err(ApiError::not_found(format!("no registered search {id:?}")));
    };
    // Only the cap and the stamp come from the URL.
    let mut query = tile_query(
        uri,
        SearchParams {
            limit: params.limit,
            other: params.other,
            ..SearchParams::default()
        },
    )?;
    query.search = catalog::search::Search::from_members(&members)?;
    query.search.visibility = caller.visibility.clone();
    Ok(query)
}

/// One vector tile of a registered search's footprints.
#[utoipa::path(
    get, path = "/searches/{searchId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}", operation_id = "getRegisteredSearchVectorTile", tag = "Tiles",
    params(
        ("searchId" = String, Path, description = "The id POST /searches gave"),
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
        ("tileMatrix" = u8, Path, description = "Zoom level, 0 to 24"),
        ("tileRow" = u32, Path, description = "Row (y)"),
        ("tileCol" = u32, Path, description = "Column (x)"),
        ("v" = Option<i64>, Query, description = "The change stamp of the template"),
        ("limit" = Option<u32>, Query, description = "Most features, 1 to 50,000; default 10,000"),
    ),
    responses(
        (status = 200, description = "A Mapbox Vector Tile, layer `footprints`", content_type = "application/vnd.mapbox-vector-tile"),
        (status = 204, description = "No footprint meets the tile"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No such registered search, or a tile outside the matrix", body = Exception),
    )
)]
pub async fn registered_search_tile(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, tms, z, y, x)): Path<(String, String, u8, u32, u32)>,
    uri: axum::http::Uri,
    Query(params): Query<SearchParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    tile_coordinates(&tms, z, y, x)?;
    let query = registered(&state, &caller, &id, &uri, params).await?;
    let private = caller.visibility != catalog::access::Visibility::public();
    tile_answer(&state, &query, (z, y, x), private, &headers).await
}

/// `TileJSON` 3.0.0 of a registered search.
#[utoipa::path(
    get, path = "/searches/{searchId}/tiles/{tileMatrixSetId}/tilejson.json", operation_id = "getRegisteredSearchTileJson", tag = "Tiles",
    params(
        ("searchId" = String, Path, description = "The id POST /searches gave"),
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
    ),
    responses(
        (status = 200, description = "TileJSON 3.0.0", content_type = "application/json", body = Object),
        (status = 404, description = "No such registered search", body = Exception),
    )
)]
pub async fn registered_search_tilejson(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path((id, tms)): Path<(String, String)>,
    uri: axum::http::Uri,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    web_mercator_quad(&tms)?;
    let query = registered(&state, &caller, &id, &uri, params).await?;
    let stamp = state.store.stamp_of(&query.search.collections).await?;
    let set = Tileset {
        id: String::new(),
        title: "registered search".into(),
        bbox: None,
        stamp,
    };
    let mut doc = tilejson(&set, &links, &state.settings.tile_properties);
    doc["tiles"] = json!([format!(
        "{}/{{z}}/{{y}}/{{x}}?v={stamp}",
        links.url(&format!("/searches/{id}/tiles/WebMercatorQuad"))
    )]);
    doc["name"] = json!(format!("Footprints of search {id}"));
    Ok(axum::Json(doc).into_response())
}

/// A `MapLibre` style of a registered search.
#[utoipa::path(
    get, path = "/searches/{searchId}/tiles/{tileMatrixSetId}/style.json", operation_id = "getRegisteredSearchStyle", tag = "Tiles",
    params(
        ("searchId" = String, Path, description = "The id POST /searches gave"),
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
    ),
    responses(
        (status = 200, description = "A MapLibre style", content_type = "application/json", body = Object),
        (status = 404, description = "No such registered search", body = Exception),
    )
)]
pub async fn registered_search_style(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path((id, tms)): Path<(String, String)>,
    uri: axum::http::Uri,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    web_mercator_quad(&tms)?;
    let query = registered(&state, &caller, &id, &uri, params).await?;
    let stamp = state.store.stamp_of(&query.search.collections).await?;
    let tilejson = format!(
        "{}?v={stamp}",
        links.url(&format!(
            "/searches/{id}/tiles/WebMercatorQuad/tilejson.json"
        ))
    );
    Ok(axum::Json(style(
        &format!("search-{id}"),
        &format!("Footprints of search {id}"),
        &tilejson,
    ))
    .into_response())
}
