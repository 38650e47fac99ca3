//! Tiles of an item's asset: a `PMTiles` archive in the lake, passed
//! through as stored, or a vector dataset published into the catalog
//! (`arcolake publish`), tiled by PostGIS.
//!
//! Both answer the same paths under
//! `/collections/{c}/items/{i}/assets/{key}/tiles/WebMercatorQuad`:
//! tileset, `TileJSON`, style and `{z}/{y}/{x}`. The templates carry a
//! version (`?v=`): a hash of the archive's change token, or the layer's
//! change stamp; a tile asked for with the current one may be kept forever.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use catalog::links::{JSON, Links, link};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::collections::collection_id;
use super::items::item_id;
use super::tiles::{
    MVT, WEB_MERCATOR_QUAD, bounding_box, not_modified, representation_etag, tile_body,
    tile_coordinates, tile_headers, web_mercator_quad,
};
use crate::assets::{Signer, storage_error};
use crate::auth::Caller;
use crate::error::{ApiError, Exception};
use crate::extract::{Base, Path, Query};
use crate::pmtiles::Archive;
use crate::state::AppState;
use crate::tile_cache::CachedTile;

const TMS_URI: &str = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad";
const TILING_SCHEME_REL: &str = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme";
/// The media type of `PMTiles` archives.
pub const PMTILES: &str = "application/vnd.pmtiles";

/// The tiles behind one asset.
enum Layer {
    /// A `PMTiles` archive in a registered source.
    Archive {
        archive: Arc<Archive>,
        /// The source and path it is read from (for the cache key).
        at: String,
    },
    /// A vector dataset published into the catalog.
    Published(catalog::store::layers::Published),
}

/// An asset whose tiles are asked for, as the caller may see it.
struct AssetTiles {
    collection: String,
    item: String,
    key: String,
    title: String,
    restricted: bool,
    layer: Layer,
}

impl AssetTiles {
    fn base(&self, links: &Links) -> String {
        format!(
            "{}/assets/{}/tiles/{WEB_MERCATOR_QUAD}",
            links.item(&self.collection, &self.item),
            catalog::links::segment(&self.key)
        )
    }

    /// The version the templates carry.
    fn version(&self) -> String {
        match &self.layer {
            Layer::Archive { archive, .. } => {
                crate::response::hex(&Sha256::digest(archive.token.as_bytes())[..8])
            }
            Layer::Published(p) => p.stamp.to_string(),
        }
    }

    fn template(&self, links: &Links, names: (&str, &str, &str)) -> String {
        format!(
            "{}/{{{}}}/{{{}}}/{{{}}}?v={}",
            self.base(links),
            names.0,
            names.1,
            names.2,
            self.version()
        )
    }

    fn vector(&self) -> bool {
        match &self.layer {
            Layer::Archive { archive, .. } => archive.kind().vector,
            Layer::Published(_) => true,
        }
    }

    fn media_type(&self) -> &'static str {
        match &self.layer {
            Layer::Archive { archive, .. } => archive.kind().media_type,
            Layer::Published(_) => MVT,
        }
    }

    fn zooms(&self) -> (u8, u8) {
        match &self.layer {
            Layer::Archive { archive, .. } => {
                let h = archive.header();
                let max = h.max_zoom.min(catalog::store::tiles::MAX_ZOOM);
                (h.min_zoom.min(max), max)
            }
            Layer::Published(_) => (0, catalog::store::tiles::MAX_ZOOM),
        }
    }

    fn bounds(&self) -> Option<[f64; 4]> {
        match &self.layer {
            Layer::Archive { archive, .. } => {
                let h = archive.header();
                Some([
                    h.min_longitude,
                    h.min_latitude,
                    h.max_longitude,
                    h.max_latitude,
                ])
            }
            Layer::Published(p) => p.bbox,
        }
    }

    /// The vector layers: from the archive's metadata, or the published
    /// table's columns.
    async fn vector_layers(&self) -> Vec<Value> {
        let (min, max) = self.zooms();
        match &self.layer {
            Layer::Archive { archive, .. } => {
                if !self.vector() {
                    return Vec::new();
                }
                let meta = archive.metadata().await;
                // tippecanoe before 2.x kept them in a JSON string `json`.
                let layers = match &meta["vector_layers"] {
                    Value::Array(l) => l.clone(),
                    _ => meta["json"]
                        .as_str()
                        .and_then(|s| serde_json::from_str::<Value>(s).ok())
                        .and_then(|v| v["vector_layers"].as_array().cloned())
                        .unwrap_or_default(),
                };
                layers
                    .into_iter()
                    .filter(|l| l["id"].as_str().is_some_and(|id| !id.is_empty()))
                    .map(|mut l| {
                        if !l["fields"].is_object() {
                            l["fields"] = json!({});
                        }
                        l
                    })
                    .collect()
            }
            Layer::Published(p) => {
                let fields: serde_json::Map<String, Value> = p
                    .columns
                    .iter()
                    .map(|(name, kind)| (name.clone(), json!(kind)))
                    .collect();
                vec![json!({
                    "id": catalog::store::layers::LAYER_NAME,
                    "fields": fields,
                    "minzoom": min,
                    "maxzoom": max,
                })]
            }
        }
    }
}

/// The asset `key` of item `item`, with the tiles behind it.
async fn asset_tiles(
    state: &AppState,
    links: &Links,
    caller: &Caller,
    (collection, item, key): (String, String, String),
) -> Result<AssetTiles, ApiError> {
    let collection = collection_id(collection)?;
    let item = item_id(item)?;
    let stored = state
        .store
        .get_item(&collection, &item, &caller.visibility)
        .await?;
    let doc: Value = serde_json::from_str(&stored.content).unwrap_or(Value::Null);
    let asset = doc["assets"].get(&key).ok_or_else(|| {
        ApiError::not_found(format!("item {:?} has no asset {key:?}", item.as_str()))
    })?;
    // One access check for the request: it knows each collection's flag
    // once read (the item's, and the source's, usually the same).
    let mut access = Signer::new(state, links, caller);
    let restricted = access.restricted(collection.as_str()).await?;
    let title = asset["title"]
        .as_str()
        .or(doc["properties"]["title"].as_str())
        .unwrap_or(key.as_str())
        .to_owned();
    let href = asset["href"].as_str().unwrap_or_default();
    let media_type = asset["type"].as_str().unwrap_or_default();
    // The file behind the asset must be one the caller may read, as on
    // the streaming route: its source's path filters, restricted sources
    // sharing it, and no anonymous reads where public assets are off.
    let (chosen, path) = readable_file(&mut access, href).await?;
    // Anyone but an anonymous caller gets answers shaped by grants.
    let restricted = restricted || caller.visibility != catalog::access::Visibility::public();
    let layer = if media_type.starts_with(PMTILES)
        || (media_type.is_empty() && href.ends_with(".pmtiles"))
    {
        open_archive(state, chosen, &path).await?
    } else {
        let published = state
            .store
            .published_layer(collection.as_str(), item.as_str(), &key)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "asset {key:?} is neither a PMTiles archive nor a published vector \
                     layer (publish it with `arcolake publish {} {} {key}`)",
                    collection.as_str(),
                    item.as_str()
                ))
            })?;
        if published.href != href {
            return Err(ApiError::not_found(format!(
                "asset {key:?} now names another file than the one published; publish it again"
            )));
        }
        Layer::Published(published)
    };
    Ok(AssetTiles {
        collection: collection.as_str().to_owned(),
        item: item.as_str().to_owned(),
        key,
        title,
        restricted,
        layer,
    })
}

/// The source and path of the file behind `href`, when the caller may
/// read it.
async fn readable_file<'a>(
    access: &mut Signer<'a>,
    href: &str,
) -> Result<(&'a storage::Registered, String), ApiError> {
    let covering = access.locate(href)?;
    let not_served =
        || ApiError::not_found("the asset's file lies in no source this caller may read");
    let (chosen, path) = covering.first().cloned().ok_or_else(not_served)?;
    if !access.may_read(&covering, chosen, &path).await? {
        return Err(not_served());
    }
    Ok((chosen, path))
}

async fn open_archive(
    state: &AppState,
    chosen: &storage::Registered,
    path: &str,
) -> Result<Layer, ApiError> {
    let source = chosen.source.clone();
    let heads = &state.settings.heads;
    let entry = match heads.get(&chosen.name, path) {
        Some(entry) => entry,
        None => {
            let entry = source
                .head(path)
                .await
                .map_err(storage_error)?
                .ok_or_else(|| ApiError::not_found("the archive is not in its source"))?;
            heads.put(&chosen.name, path, &entry);
            entry
        }
    };
    let archive = state
        .settings
        .archives
        .open(&chosen.name, source, path, &entry)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "BadArchive",
                format!("the asset is not a readable PMTiles v3 archive: {e}"),
            )
        })?;
    if archive.kind().unknown {
        tracing::warn!(
            source = %chosen.name,
            path = %path,
            tile_type = archive.stored_type(),
            "PMTiles archive of an unknown tile type: served as application/octet-stream"
        );
    }
    Ok(Layer::Archive {
        archive,
        at: format!("{}\u{0}{path}", chosen.name),
    })
}

/// An archive's `version` as `TileJSON` wants it (semver): tippecanoe
/// writes a bare major version ("2"), which becomes "2.0.0"; anything
/// else that is not semver is left out.
fn semver(version: &str) -> Option<String> {
    let (core, rest) = match version.find(['-', '+']) {
        Some(i) => version.split_at(i),
        None => (version, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut full = parts.join(".");
    for _ in parts.len()..3 {
        full.push_str(".0");
    }
    full.push_str(rest);
    Some(full)
}

type AssetPath = (String, String, String);
type AssetTmsPath = (String, String, String, String);

/// The tilesets of an asset.
#[utoipa::path(
    get, path = "/collections/{collectionId}/items/{itemId}/assets/{assetKey}/tiles", operation_id = "getAssetTileSetsList", tag = "Tiles",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("itemId" = String, Path, description = "Item id"),
        ("assetKey" = String, Path, description = "Asset key: a PMTiles archive or a published vector layer"),
    ),
    responses(
        (status = 200, description = "The tilesets (one, in WebMercatorQuad)", content_type = "application/json", body = Object),
        (status = 404, description = "No such item or asset, or the asset has no tiles", body = Exception),
    )
)]
pub async fn asset_tilesets(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path((c, i, k)): Path<AssetPath>,
) -> Result<Response, ApiError> {
    let tiles = asset_tiles(&state, &links, &caller, (c, i, k)).await?;
    let doc = tileset_document(&tiles, &links);
    Ok(axum::Json(json!({
        "tilesets": [{
            "title": doc["title"],
            "dataType": doc["dataType"],
            "crs": doc["crs"],
            "tileMatrixSetURI": TMS_URI,
            "links": [
                link("self", &tiles.base(&links), JSON),
                link(TILING_SCHEME_REL, &links.url("/tileMatrixSets/WebMercatorQuad"), JSON),
            ],
        }],
        "links": [
            link("self", &tiles.base(&links).replace("/tiles/WebMercatorQuad", "/tiles"), JSON),
            link("item", &links.item(&tiles.collection, &tiles.item), "application/geo+json"),
        ],
    }))
    .into_response())
}

fn tileset_document(tiles: &AssetTiles, links: &Links) -> Value {
    let (min, max) = tiles.zooms();
    let data_type = if tiles.vector() { "vector" } else { "map" };
    let mut doc = json!({
        "title": tiles.title,
        "dataType": data_type,
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": TMS_URI,
        "links": [
            link("self", &tiles.base(links), JSON),
            link(TILING_SCHEME_REL, &links.url("/tileMatrixSets/WebMercatorQuad"), JSON),
            {"rel": "item", "type": tiles.media_type(), "templated": true,
             "href": tiles.template(links, ("tileMatrix", "tileRow", "tileCol"))},
            link("describedby", &format!("{}/tilejson.json?v={}", tiles.base(links), tiles.version()), JSON),
            link("stylesheet", &format!("{}/style.json?v={}", tiles.base(links), tiles.version()), JSON),
        ],
        "tileMatrixSetLimits": (min..=max).map(|z| {
            let n = (1u64 << z) - 1;
            json!({"tileMatrix": z.to_string(), "minTileRow": 0, "maxTileRow": n, "minTileCol": 0, "maxTileCol": n})
        }).collect::<Vec<_>>(),
    });
    if let Some(b) = tiles.bounds() {
        let b = b.map(Value::from);
        doc["boundingBox"] = bounding_box([&b[0], &b[1], &b[2], &b[3]]);
    }
    doc
}

/// An asset's tileset.
#[utoipa::path(
    get, path = "/collections/{collectionId}/items/{itemId}/assets/{assetKey}/tiles/{tileMatrixSetId}", operation_id = "getAssetTileSet", tag = "Tiles",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("itemId" = String, Path, description = "Item id"),
        ("assetKey" = String, Path, description = "Asset key"),
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
    ),
    responses(
        (status = 200, description = "The tileset, with its templated `item` link", content_type = "application/json", body = Object),
        (status = 404, description = "No such item, asset or tile matrix set", body = Exception),
    )
)]
pub async fn asset_tileset(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path((c, i, k, tms)): Path<AssetTmsPath>,
) -> Result<Response, ApiError> {
    web_mercator_quad(&tms)?;
    let tiles = asset_tiles(&state, &links, &caller, (c, i, k)).await?;
    Ok(axum::Json(tileset_document(&tiles, &links)).into_response())
}

/// `TileJSON` 3.0.0 of an asset's tiles.
#[utoipa::path(
    get, path = "/collections/{collectionId}/items/{itemId}/assets/{assetKey}/tiles/{tileMatrixSetId}/tilejson.json", operation_id = "getAssetTileJson", tag = "Tiles",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("itemId" = String, Path, description = "Item id"),
        ("assetKey" = String, Path, description = "Asset key"),
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
    ),
    responses(
        (status = 200, description = "TileJSON 3.0.0 (for an archive: from its header and metadata)", content_type = "application/json", body = Object),
        (status = 404, description = "No such item or asset", body = Exception),
    )
)]
pub async fn asset_tilejson(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path((c, i, k, tms)): Path<AssetTmsPath>,
) -> Result<Response, ApiError> {
    web_mercator_quad(&tms)?;
    let tiles = asset_tiles(&state, &links, &caller, (c, i, k)).await?;
    let (min, max) = tiles.zooms();
    let mut doc = json!({
        "tilejson": "3.0.0",
        "name": tiles.title,
        "scheme": "xyz",
        "tiles": [tiles.template(&links, ("z", "y", "x"))],
        "minzoom": min,
        "maxzoom": max,
    });
    if let Some(b) = tiles.bounds() {
        doc["bounds"] = json!(b);
    }
    if tiles.vector() {
        doc["vector_layers"] = Value::Array(tiles.vector_layers().await);
    }
    if let Layer::Archive { archive, .. } = &tiles.layer {
        let h = archive.header();
        doc["center"] = json!([h.center_longitude, h.center_latitude, h.center_zoom]);
        let meta = archive.metadata().await;
        for field in ["description", "attribution"] {
            if let Some(v) = meta[field].as_str().filter(|v| !v.is_empty()) {
                doc[field] = json!(v);
            }
        }
        if let Some(version) = meta["version"].as_str().and_then(semver) {
            doc["version"] = json!(version);
        }
        if let Some(name) = meta["name"].as_str().filter(|v| !v.is_empty()) {
            doc["name"] = json!(name);
        }
    }
    Ok(axum::Json(doc).into_response())
}

/// A `MapLibre` style of an asset's tiles.
#[utoipa::path(
    get, path = "/collections/{collectionId}/items/{itemId}/assets/{assetKey}/tiles/{tileMatrixSetId}/style.json", operation_id = "getAssetStyle", tag = "Tiles",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("itemId" = String, Path, description = "Item id"),
        ("assetKey" = String, Path, description = "Asset key"),
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
    ),
    responses(
        (status = 200, description = "A MapLibre style: a raster layer, or fill, line and circle layers for each vector layer", content_type = "application/json", body = Object),
        (status = 404, description = "No such item or asset", body = Exception),
    )
)]
pub async fn asset_style(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path((c, i, k, tms)): Path<AssetTmsPath>,
) -> Result<Response, ApiError> {
    web_mercator_quad(&tms)?;
    let tiles = asset_tiles(&state, &links, &caller, (c, i, k)).await?;
    let source = format!("{}-{}", tiles.item, tiles.key);
    let tilejson = format!("{}/tilejson.json?v={}", tiles.base(&links), tiles.version());
    let mut layers = Vec::new();
    if tiles.vector() {
        for layer in tiles.vector_layers().await {
            let id = layer["id"].as_str().unwrap_or_default();
            let of = |kind: &str, geometry: &str, paint: Value| {
                json!({
                    "id": format!("{source}-{id}-{kind}"), "type": kind, "source": source,
                    "source-layer": id,
                    "filter": ["==", ["geometry-type"], geometry],
                    "paint": paint,
                })
            };
            layers.push(of(
                "fill",
                "Polygon",
                json!({"fill-color": "#3b8ee8", "fill-opacity": 0.25}),
            ));
            layers.push(of(
                "line",
                "LineString",
                json!({"line-color": "#3b8ee8", "line-width": 1.5}),
            ));
            layers.push(of(
                "circle",
                "Point",
                json!({"circle-color": "#3b8ee8", "circle-radius": 3}),
            ));
        }
    } else {
        layers.push(json!({"id": format!("{source}-raster"), "type": "raster", "source": source}));
    }
    let kind = if tiles.vector() { "vector" } else { "raster" };
    let mut spec = json!({"type": kind, "url": tilejson});
    if !tiles.vector() {
        spec["tileSize"] = json!(256);
    }
    Ok(axum::Json(json!({
        "version": 8,
        "name": tiles.title,
        "sources": {source: spec},
        "layers": layers,
    }))
    .into_response())
}

/// One tile of an asset: an archive's stored bytes as they are, with their
/// media type and `Content-Encoding`; or a published layer's features.
#[utoipa::path(
    get, path = "/collections/{collectionId}/items/{itemId}/assets/{assetKey}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}", operation_id = "getAssetTile", tag = "Tiles",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("itemId" = String, Path, description = "Item id"),
        ("assetKey" = String, Path, description = "Asset key"),
        ("tileMatrixSetId" = String, Path, description = "`WebMercatorQuad`"),
        ("tileMatrix" = u8, Path, description = "Zoom level"),
        ("tileRow" = u32, Path, description = "Row (y)"),
        ("tileCol" = u32, Path, description = "Column (x)"),
        ("v" = Option<String>, Query, description = "The version from the tileset or TileJSON: with the current one the tile may be cached forever"),
    ),
    responses(
        (status = 200, description = "The tile: MVT, PNG, JPEG, WebP or AVIF as the archive holds it (unknown types as application/octet-stream)"),
        (status = 204, description = "The archive or layer has no tile here"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No such item or asset, or a tile outside the matrix", body = Exception),
        (status = 502, description = "The archive is unreadable", body = Exception),
    )
)]
pub async fn asset_tile(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path((collection, item, key, tms, z, y, x)): Path<(
        String,
        String,
        String,
        String,
        u8,
        u32,
        u32,
    )>,
    Query(params): Query<std::collections::BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    tile_coordinates(&tms, z, y, x)?;
    let tiles = asset_tiles(&state, &links, &caller, (collection, item, key)).await?;
    let version = tiles.version();
    let key = match &tiles.layer {
        Layer::Archive { at, archive } => format!("pmtiles\u{0}{at}\u{0}{}", archive.token),
        Layer::Published(layer) => format!("layer\u{0}{}\u{0}{}", layer.table, layer.stamp),
    };
    let digest = Sha256::digest(format!("{key}|{z}/{y}/{x}"));
    let cache_key = format!("\"{}\"", crate::response::hex(&digest[..12]));
    let encoding = match &tiles.layer {
        Layer::Archive { archive, .. } => archive.kind().encoding,
        Layer::Published(_) => Some("gzip"),
    };
    let etag = representation_etag(&cache_key, encoding, &headers);
    let mut answer = tile_headers(
        &etag,
        tiles.restricted,
        params.get("v") == Some(&version),
        state.settings.tile_max_age,
    );
    if not_modified(&headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().extend(answer);
        return Ok(response);
    }
    let tile = match state.settings.tiles.get(&cache_key) {
        Some(tile) => tile,
        None => {
            let tile = match &tiles.layer {
                Layer::Archive { archive, .. } => {
                    let bytes = archive.tile(z, x, y).await.map_err(|e| {
                        ApiError::new(
                            StatusCode::BAD_GATEWAY,
                            "BadArchive",
                            format!("tile {z}/{y}/{x} of the archive is unreadable: {e}"),
                        )
                    })?;
                    CachedTile {
                        bytes: bytes.unwrap_or_default(),
                        encoding: archive.kind().encoding,
                        limited: false,
                    }
                }
                Layer::Published(layer) => {
                    let made = state.store.layer_tile(layer, (z, x, y)).await?;
                    CachedTile {
                        encoding: (!made.bytes.is_empty()).then_some("gzip"),
                        bytes: if made.bytes.is_empty() {
                            bytes::Bytes::new()
                        } else {
                            crate::tile_cache::gzip(&made.bytes)
                        },
                        limited: made.limited,
                    }
                }
            };
            state.settings.tiles.put(cache_key, &tile);
            tile
        }
    };
    if tile.limited {
        answer.insert("x-feature-limit-reached", HeaderValue::from_static("true"));
    }
    let mut response = tile_body(&tile, tiles.media_type(), &headers)?;
    response.headers_mut().extend(answer);
    Ok(response)
}

/// The query of a published layer's feature page.
#[derive(Debug, Default, serde::Deserialize)]
pub struct FeaturesQuery {
    bbox: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// Features per page unless asked otherwise, and at most.
const FEATURES_LIMIT: (i64, i64) = (100, 10_000);

/// The features of a published vector layer (OGC API Features: `bbox`,
/// `limit`, paging by `next` links).
#[utoipa::path(
    get, path = "/collections/{collectionId}/items/{itemId}/assets/{assetKey}/items", operation_id = "getAssetFeatures", tag = "Tiles",
    params(
        ("collectionId" = String, Path, description = "Collection id"),
        ("itemId" = String, Path, description = "Item id"),
        ("assetKey" = String, Path, description = "Asset key of a published layer"),
        ("bbox" = Option<String>, Query, description = "minx,miny,maxx,maxy in longitude/latitude"),
        ("limit" = Option<u32>, Query, description = "Features per page, 1 to 10,000; default 100"),
        ("after" = Option<i64>, Query, description = "Continue after this feature id (from a `next` link)"),
    ),
    responses(
        (status = 200, description = "A GeoJSON FeatureCollection", content_type = "application/geo+json", body = Object),
        (status = 400, description = "A bad bbox, limit or after", body = Exception),
        (status = 404, description = "No such item or asset, or the asset is not a published layer", body = Exception),
    )
)]
pub async fn asset_features(
    State(state): State<AppState>,
    Base(links): Base,
    caller: Caller,
    Path(path): Path<AssetPath>,
    Query(query): Query<FeaturesQuery>,
) -> Result<Response, ApiError> {
    let tiles = asset_tiles(&state, &links, &caller, path).await?;
    let Layer::Published(layer) = &tiles.layer else {
        return Err(ApiError::not_found(
            "the asset is a tile archive: it has tiles but no features to list",
        ));
    };
    let limit = match query.limit.as_deref() {
        None | Some("") => FEATURES_LIMIT.0,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=FEATURES_LIMIT.1).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {}",
                    FEATURES_LIMIT.1
                ))
            })?,
    };
    let after = match query.after.as_deref() {
        None | Some("") => 0,
        Some(a) => a
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request("after must be a feature id (a whole number)"))?,
    };
    let bbox = match query.bbox.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(text) => {
            let numbers: Vec<f64> = text
                .split(',')
                .map(|v| v.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    ApiError::bad_request("bbox must be four numbers: minx,miny,maxx,maxy")
                })?;
            let b: [f64; 4] = numbers.try_into().map_err(|_| {
                ApiError::bad_request("bbox must be four numbers: minx,miny,maxx,maxy")
            })?;
            if b[1] > b[3] || b.iter().any(|v| !v.is_finite()) {
                return Err(ApiError::bad_request(
                    "bbox must be minx,miny,maxx,maxy with miny <= maxy",
                ));
            }
            Some(b)
        }
    };
    let (features, next) = state
        .store
        .layer_features(layer, bbox, after, limit)
        .await?;
    let self_url = format!(
        "{}/assets/{}/items",
        links.item(&tiles.collection, &tiles.item),
        catalog::links::segment(&tiles.key)
    );
    let mut page_links = vec![
        link("self", &self_url, "application/geo+json"),
        link(
            "item",
            &links.item(&tiles.collection, &tiles.item),
            "application/geo+json",
        ),
    ];
    if let Some(last) = next {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(b) = &query.bbox {
            q.append_pair("bbox", b);
        }
        q.append_pair("limit", &limit.to_string());
        q.append_pair("after", &last.to_string());
        page_links.push(link(
            "next",
            &format!("{self_url}?{}", q.finish()),
            "application/geo+json",
        ));
    }
    let mut response = axum::Json(json!({
        "type": "FeatureCollection",
        "numberReturned": features.len(),
        "features": features,
        "links": page_links,
    }))
    .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/geo+json"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::semver;

    #[test]
    fn archive_versions_become_semver_or_are_left_out() {
        assert_eq!(semver("2").as_deref(), Some("2.0.0"));
        assert_eq!(semver("1.4").as_deref(), Some("1.4.0"));
        assert_eq!(semver("3.0.1-rc.1").as_deref(), Some("3.0.1-rc.1"));
        assert_eq!(semver("v2"), None);
        assert_eq!(semver(""), None);
        assert_eq!(semver("1.2.3.4"), None);
    }
}
