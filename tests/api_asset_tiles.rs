#![allow(
    clippy::unwrap_used,
    clippy::too_many_lines,
    reason = "test code; a publication's life reads best as one scenario"
)]
//! Tiles of an item's asset: `PMTiles` archives of the lake passed through
//! byte for byte from every backend (local, S3, WebDAV, XrdHttp), their
//! `TileJSON` and style; vector datasets published into the catalog
//! (`arcolake publish`), their tiles and feature pages, republished
//! atomically when the file changes; the access policy over both.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use bytes::Bytes;
use futures::StreamExt as _;
use geozero::mvt::{Message as _, Tile};
use pmtiles::{AsyncBackend, AsyncPmTilesReader, BackendResponse, PmtResult, TileCoord};
use serde_json::{Value, json};
use storage::sources::{PublicAssets, SignMode};
use storage::{PathFilter, Registered, Registry, Source};
use support::backends::{backends, local_source};
use support::{TOKEN, TestApp};
use tower::ServiceExt as _;

const ROOT: &str = "http://stac.test/api";
const PMTILES: &str = "application/vnd.pmtiles";

fn registered(name: &str, collection: &str, source: &Arc<dyn Source>) -> Registered {
    Registered {
        name: name.into(),
        collection: collection.into(),
        source: Arc::clone(source),
        sign: SignMode::Proxy,
        public_assets: PublicAssets::Proxy,
        paths: PathFilter::default(),
    }
}

async fn app_over(sources: Vec<Registered>) -> TestApp {
    TestApp::with_settings(api::ServeConfig {
        admin_token: Some(TOKEN.into()),
        public_url: Some(format!("{ROOT}/").parse().unwrap()),
        registry: Arc::new(Registry::new(sources).unwrap()),
        ..api::ServeConfig::default()
    })
    .await
}

/// Item `id` of `collection` whose assets are `(key, href, media type)`.
async fn item_with(app: &TestApp, collection: &str, id: &str, assets: &[(&str, String, &str)]) {
    let mut item = support::item(collection, id, 10.0, 50.0, "2024-01-01T00:00:00Z");
    item["assets"] = assets
        .iter()
        .map(|(key, href, media_type)| (key.to_string(), json!({"href": href, "type": media_type})))
        .collect::<serde_json::Map<String, Value>>()
        .into();
    let r = app
        .write(
            "POST",
            &format!("/collections/{collection}/items"),
            Some(&item),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn get(app: &TestApp, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut b = Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let response = app
        .router
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

fn local(href: &str) -> String {
    href.strip_prefix(ROOT).unwrap_or(href).to_owned()
}

/// An archive read from memory by the `pmtiles` crate: what the archive
/// holds, independent of the server's storage, caching and encoding.
struct Memory(Bytes);

impl AsyncBackend for Memory {
    async fn read(&self, offset: usize, length: usize) -> PmtResult<BackendResponse> {
        let end = (offset + length).min(self.0.len());
        Ok(BackendResponse::new(self.0.slice(offset.min(end)..end)))
    }
}

/// What the tests need of an archive's header.
struct Head {
    tile_type: pmtiles::TileType,
    tile_compression: pmtiles::Compression,
    min_zoom: u8,
    max_zoom: u8,
    min_longitude: f64,
}

/// Every tile of an archive file: (z, x, y) and its stored bytes.
async fn archive_tiles(file: &str) -> (Head, Vec<((u8, u32, u32), Bytes)>) {
    let bytes = Bytes::from(std::fs::read(support::fixture("ingest").join(file)).unwrap());
    let reader = Arc::new(
        AsyncPmTilesReader::try_from_source(Memory(bytes))
            .await
            .unwrap(),
    );
    let h = reader.get_header();
    let header = Head {
        tile_type: h.tile_type,
        tile_compression: h.tile_compression,
        min_zoom: h.min_zoom,
        max_zoom: h.max_zoom,
        min_longitude: h.min_longitude,
    };
    let mut entries = Arc::clone(&reader).entries();
    let mut tiles = Vec::new();
    while let Some(entry) = entries.next().await {
        let entry = entry.unwrap();
        for id in entry.iter_coords() {
            let coord = TileCoord::from(id);
            let tile = reader.get_tile(coord).await.unwrap().unwrap();
            tiles.push(((coord.z(), coord.x(), coord.y()), tile));
        }
    }
    assert!(!tiles.is_empty(), "{file} holds tiles");
    (header, tiles)
}

fn tile_path(collection: &str, item: &str, key: &str, (z, x, y): (u8, u32, u32)) -> String {
    format!("/collections/{collection}/items/{item}/assets/{key}/tiles/WebMercatorQuad/{z}/{y}/{x}")
}

#[tokio::test]
async fn archive_tiles_are_the_stored_bytes_on_every_backend() {
    let (vector_header, vector) = archive_tiles("points.pmtiles").await;
    let (raster_header, raster) = archive_tiles("raster.pmtiles").await;
    assert_eq!(vector_header.tile_type, pmtiles::TileType::Mvt);
    assert_eq!(raster_header.tile_type, pmtiles::TileType::Png);
    for (name, source) in backends() {
        let app = app_over(vec![registered(name, "lake", &source)]).await;
        app.collection("lake").await;
        item_with(
            &app,
            "lake",
            "maps",
            &[
                ("points", source.href("points.pmtiles"), PMTILES),
                ("raster", source.href("raster.pmtiles"), PMTILES),
            ],
        )
        .await;
        for (key, header, tiles) in [
            ("points", &vector_header, &vector),
            ("raster", &raster_header, &raster),
        ] {
            let encoding = header.tile_compression.content_encoding();
            for (zxy, stored) in tiles {
                let path = tile_path("lake", "maps", key, *zxy);
                let r = get(&app, &path, &[("accept-encoding", "gzip, br, zstd")]).await;
                assert_eq!(r.status, StatusCode::OK, "{name} {path}");
                assert_eq!(&r.body, stored, "{name} {path}: the archive's bytes");
                assert_eq!(
                    r.headers[header::CONTENT_TYPE],
                    header.tile_type.content_type(),
                    "{name} {path}"
                );
                assert_eq!(
                    r.headers
                        .get(header::CONTENT_ENCODING)
                        .map(|v| v.to_str().unwrap()),
                    encoding,
                    "{name} {path}"
                );
            }
        }
        // A client that does not take gzip gets the tile inflated.
        let ((z, x, y), stored) = &vector[0];
        if vector_header.tile_compression == pmtiles::Compression::Gzip {
            let r = get(
                &app,
                &tile_path("lake", "maps", "points", (*z, *x, *y)),
                &[],
            )
            .await;
            assert!(r.headers.get(header::CONTENT_ENCODING).is_none());
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&stored[..]), &mut plain)
                .unwrap();
            assert_eq!(r.body, plain, "{name}");
            let mvt = Tile::decode(&r.body[..]).unwrap();
            assert_eq!(mvt.layers[0].name, "points");
        }
        // Where the archive has no tile: 204; outside the matrix: 404.
        let max = vector_header.max_zoom;
        let missing = (max, (1u32 << max) - 1, 0);
        if !vector.iter().any(|(zxy, _)| *zxy == missing) {
            let r = get(&app, &tile_path("lake", "maps", "points", missing), &[]).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{name}");
        }
        let r = get(&app, &tile_path("lake", "maps", "points", (2, 4, 0)), &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{name}");
        assert!(r.json()["description"].is_string(), "{name}");
    }
}

#[tokio::test]
async fn archives_describe_themselves_in_tilejson_tileset_and_style() {
    let (header, tiles) = archive_tiles("points.pmtiles").await;
    let source = local_source(&support::fixture("ingest"));
    let app = app_over(vec![registered("lake", "lake", &source)]).await;
    app.collection("lake").await;
    item_with(
        &app,
        "lake",
        "maps",
        &[
            ("points", source.href("points.pmtiles"), PMTILES),
            ("raster", source.href("raster.pmtiles"), PMTILES),
        ],
    )
    .await;
    let base = "/collections/lake/items/maps/assets/points/tiles/WebMercatorQuad";
    let tilejson = get(&app, &format!("{base}/tilejson.json"), &[])
        .await
        .json();
    assert_eq!(tilejson["tilejson"], "3.0.0");
    assert_eq!(tilejson["minzoom"], header.min_zoom);
    assert_eq!(tilejson["maxzoom"], header.max_zoom);
    assert_eq!(tilejson["vector_layers"][0]["id"], "points");
    assert!(tilejson["vector_layers"][0]["fields"].is_object());
    let bounds = tilejson["bounds"].as_array().unwrap();
    assert!((bounds[0].as_f64().unwrap() - header.min_longitude).abs() < 1e-9);
    let template = tilejson["tiles"][0].as_str().unwrap();
    assert!(
        template.starts_with(&format!("{ROOT}{base}/{{z}}/{{y}}/{{x}}?v=")),
        "{template}"
    );
    // The versioned template's tiles may be kept forever; a second ask
    // with the ETag is a 304.
    let ((z, x, y), stored) = &tiles[0];
    let url = local(template)
        .replace("{z}", &z.to_string())
        .replace("{y}", &y.to_string())
        .replace("{x}", &x.to_string());
    let r = get(&app, &url, &[("accept-encoding", "gzip")]).await;
    assert_eq!(&r.body, stored);
    assert_eq!(
        r.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let etag = r.headers[header::ETAG].to_str().unwrap().to_owned();
    let r = get(
        &app,
        &url,
        &[("if-none-match", &etag), ("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    // The inflated tile is another representation, with its own validator.
    let r = get(&app, &url, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.headers[header::ETAG].to_str().unwrap(), etag);
    let r = get(&app, &url.replace("?v=", "?v=old"), &[]).await;
    assert_eq!(r.headers[header::CACHE_CONTROL], "public, max-age=5");

    // OGC tileset (OpenLayers' OGCVectorTile reads it).
    let tileset = get(&app, base, &[]).await.json();
    assert_eq!(tileset["dataType"], "vector");
    let item = tileset["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "item")
        .unwrap();
    assert_eq!(item["type"], "application/vnd.mapbox-vector-tile");
    let href = local(item["href"].as_str().unwrap())
        .replace("{tileMatrix}", &z.to_string())
        .replace("{tileRow}", &y.to_string())
        .replace("{tileCol}", &x.to_string());
    assert_eq!(
        get(&app, &href, &[("accept-encoding", "gzip")]).await.body,
        stored
    );
    let list = get(
        &app,
        "/collections/lake/items/maps/assets/points/tiles",
        &[],
    )
    .await
    .json();
    assert_eq!(list["tilesets"][0]["dataType"], "vector");

    // Styles: a vector archive gets fill, line and circle layers per
    // layer; a raster archive one raster layer.
    let style = get(&app, &format!("{base}/style.json"), &[]).await.json();
    assert_eq!(style["version"], 8);
    let (_, source_spec) = style["sources"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(source_spec["type"], "vector");
    assert!(
        source_spec["url"]
            .as_str()
            .unwrap()
            .contains("/tilejson.json?v=")
    );
    assert!(
        style["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["source-layer"] == "points")
    );
    let raster = get(
        &app,
        "/collections/lake/items/maps/assets/raster/tiles/WebMercatorQuad/style.json",
        &[],
    )
    .await
    .json();
    assert_eq!(raster["layers"][0]["type"], "raster");
    let raster_tilejson = get(
        &app,
        "/collections/lake/items/maps/assets/raster/tiles/WebMercatorQuad/tilejson.json",
        &[],
    )
    .await
    .json();
    assert!(raster_tilejson.get("vector_layers").is_none());

    // Errors say what was wrong.
    for (path, status) in [
        (
            "/collections/lake/items/maps/assets/nope/tiles/WebMercatorQuad",
            StatusCode::NOT_FOUND,
        ),
        (
            "/collections/lake/items/nope/assets/points/tiles/WebMercatorQuad",
            StatusCode::NOT_FOUND,
        ),
        (
            "/collections/lake/items/maps/assets/points/tiles/EuropeanETRS89",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r = get(&app, path, &[]).await;
        assert_eq!(r.status, status, "{path}");
        assert!(r.json()["description"].is_string(), "{path}");
    }
}

#[tokio::test]
async fn an_unknown_tile_type_is_served_as_octet_stream_and_a_rewritten_archive_is_read_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(support::fixture("ingest/raster.pmtiles")).unwrap();
    let (_, tiles) = archive_tiles("raster.pmtiles").await;
    bytes[99] = 42;
    std::fs::write(dir.path().join("odd.pmtiles"), &bytes).unwrap();
    let source = local_source(dir.path());
    let app = app_over(vec![registered("odd", "odd", &source)]).await;
    app.collection("odd").await;
    item_with(
        &app,
        "odd",
        "odd",
        &[("tiles", source.href("odd.pmtiles"), PMTILES)],
    )
    .await;
    let ((z, x, y), stored) = &tiles[0];
    let path = tile_path("odd", "odd", "tiles", (*z, *x, *y));
    let r = get(&app, &path, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(&r.body, stored);
    let etag = r.headers[header::ETAG].clone();

    // Rewritten as a PNG archive (another size, so another change token
    // even within the same second): read afresh, with a new ETag, once
    // the HEAD cache has let go of the old metadata.
    let mut png = std::fs::read(support::fixture("ingest/raster.pmtiles")).unwrap();
    png.extend_from_slice(b"trailing bytes after the archive's last section");
    std::fs::write(dir.path().join("odd.pmtiles"), &png).unwrap();
    tokio::time::sleep(api::assets::HEAD_FRESH + Duration::from_millis(100)).await;
    let r = get(&app, &path, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "image/png");
    assert_ne!(r.headers[header::ETAG], etag);
}

#[tokio::test]
async fn restricted_archives_need_a_grant() {
    let source = local_source(&support::fixture("ingest"));
    let app = app_over(vec![registered("secret", "secret", &source)]).await;
    let mut c = support::collection("secret");
    c["arcolake:access"] = json!("restricted");
    let r = app.write("POST", "/collections", Some(&c)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    item_with(
        &app,
        "secret",
        "maps",
        &[("points", source.href("points.pmtiles"), PMTILES)],
    )
    .await;
    let (_, tiles) = archive_tiles("points.pmtiles").await;
    let path = tile_path("secret", "maps", "points", tiles[0].0);
    let r = get(&app, &path, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get(
        &app,
        "/collections/secret/items/maps/assets/points/tiles/WebMercatorQuad/tilejson.json",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let (_, secret) = app
        .db
        .store()
        .create_api_key(Some("t"), &["secret".into()], None)
        .await
        .unwrap();
    let bearer = format!("Bearer {secret}");
    let r = get(
        &app,
        &path,
        &[("authorization", &bearer), ("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, tiles[0].1);
    assert!(
        r.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
}

// ---------------------------------------------------------------- published layers

/// The features of layer `name` of an MVT tile, with their properties.
fn features(bytes: &[u8], name: &str) -> Vec<serde_json::Map<String, Value>> {
    let tile = Tile::decode(bytes).unwrap();
    let Some(layer) = tile.layers.iter().find(|l| l.name == name) else {
        return Vec::new();
    };
    layer
        .features
        .iter()
        .map(|f| {
            f.tags
                .chunks(2)
                .map(|pair| {
                    let v = &layer.values[pair[1] as usize];
                    let value = support::mvt_value(v);
                    (layer.keys[pair[0] as usize].clone(), value)
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn published_layers_are_tiled_paged_and_replaced_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = support::fixture("ingest");
    std::fs::copy(ingest.join("boxes.fgb"), dir.path().join("boxes.fgb")).unwrap();
    std::fs::copy(
        ingest.join("points_plain.parquet"),
        dir.path().join("points.parquet"),
    )
    .unwrap();
    let source = local_source(dir.path());
    let app = app_over(vec![registered("vectors", "vectors", &source)]).await;
    app.collection("vectors").await;
    item_with(
        &app,
        "vectors",
        "layers",
        &[
            (
                "boxes",
                source.href("boxes.fgb"),
                "application/vnd.flatgeobuf",
            ),
            (
                "points",
                source.href("points.parquet"),
                "application/vnd.apache.parquet",
            ),
            (
                "cog",
                source.href("boxes.fgb"),
                "image/tiff; application=geotiff",
            ),
        ],
    )
    .await;
    let store = app.db.store();
    let registry = Registry::new(vec![registered("vectors", "vectors", &source)]).unwrap();
    let base = "/collections/vectors/items/layers/assets";

    // Not published yet: the answer says how to publish.
    let r = get(
        &app,
        &format!("{base}/boxes/tiles/WebMercatorQuad/0/0/0"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.json()["description"]
            .as_str()
            .unwrap()
            .contains("arcolake publish")
    );
    // A raster asset is refused with the reason.
    let e = ingest::publish::publish(&store, &registry, ("vectors", "layers", "cog"), false)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("neither GeoParquet nor FlatGeobuf"),
        "{e}"
    );

    let boxes = ingest::publish::publish(&store, &registry, ("vectors", "layers", "boxes"), false)
        .await
        .unwrap();
    assert_eq!((boxes.features, boxes.unchanged), (3, false));
    let points =
        ingest::publish::publish(&store, &registry, ("vectors", "layers", "points"), false)
            .await
            .unwrap();
    assert!(points.features >= 30, "{points:?}");

    // The world tile holds every box, with its attributes.
    let r = get(
        &app,
        &format!("{base}/boxes/tiles/WebMercatorQuad/0/0/0"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers[header::CONTENT_TYPE],
        "application/vnd.mapbox-vector-tile"
    );
    let feats = features(&r.body, "features");
    assert_eq!(feats.len(), 3);
    assert!(feats.iter().all(|f| f.contains_key("kind")), "{feats:?}");
    // boxes.fgb lies within 10..13 E, 50..52 N: tile z=5 x=17 y=10 holds
    // some of it, the tile over the Pacific none.
    let r = get(
        &app,
        &format!("{base}/boxes/tiles/WebMercatorQuad/5/10/17"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!features(&r.body, "features").is_empty());
    let r = get(
        &app,
        &format!("{base}/boxes/tiles/WebMercatorQuad/5/16/1"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = get(
        &app,
        &format!("{base}/points/tiles/WebMercatorQuad/0/0/0"),
        &[],
    )
    .await;
    assert_eq!(
        i64::try_from(features(&r.body, "features").len()).unwrap(),
        points.features
    );

    // TileJSON from the table.
    let tilejson = get(
        &app,
        &format!("{base}/boxes/tiles/WebMercatorQuad/tilejson.json"),
        &[],
    )
    .await
    .json();
    assert_eq!(tilejson["vector_layers"][0]["id"], "features");
    assert!(
        tilejson["vector_layers"][0]["fields"]["kind"].is_string(),
        "{tilejson}"
    );
    let b = tilejson["bounds"].as_array().unwrap();
    assert!(
        (b[0].as_f64().unwrap() - 10.0).abs() < 1e-6
            && (b[3].as_f64().unwrap() - 52.0).abs() < 1e-6,
        "{tilejson}"
    );
    let template = tilejson["tiles"][0].as_str().unwrap().to_owned();

    // Feature pages: limit, next links, bbox.
    let page = get(&app, &format!("{base}/boxes/items?limit=2"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let page = page.json();
    assert_eq!(page["features"].as_array().unwrap().len(), 2);
    let next = support::link(&page, "next").unwrap()["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let rest = get(&app, &local(&next), &[]).await.json();
    assert_eq!(rest["features"].as_array().unwrap().len(), 1);
    assert!(support::link(&rest, "next").is_none());
    let mut ids: Vec<i64> = page["features"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["features"].as_array().unwrap())
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "no gap, no repeat");
    let none = get(
        &app,
        &format!("{base}/boxes/items?bbox=-170,-10,-160,0"),
        &[],
    )
    .await
    .json();
    assert_eq!(none["features"].as_array().unwrap().len(), 0);
    for bad in ["bbox=1,2,3", "limit=0", "after=x"] {
        let r = get(&app, &format!("{base}/boxes/items?{bad}"), &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.json()["description"].is_string(), "{bad}");
    }

    // Publishing the same file again does nothing.
    let again = ingest::publish::publish(&store, &registry, ("vectors", "layers", "boxes"), false)
        .await
        .unwrap();
    assert!(again.unchanged);
    assert_eq!(again.stamp, boxes.stamp);

    // The file changes: the layer is replaced, with a new stamp, and the
    // old table is gone.
    std::fs::copy(
        ingest.join("boxes_streamed.fgb"),
        dir.path().join("boxes.fgb"),
    )
    .unwrap();
    let changed =
        ingest::publish::publish(&store, &registry, ("vectors", "layers", "boxes"), false)
            .await
            .unwrap();
    assert!(!changed.unchanged);
    assert_eq!(changed.features, 4);
    assert!(changed.stamp > boxes.stamp);
    let tilejson = get(
        &app,
        &format!("{base}/boxes/tiles/WebMercatorQuad/tilejson.json"),
        &[],
    )
    .await
    .json();
    assert_ne!(tilejson["tiles"][0].as_str().unwrap(), template);
    let r = get(
        &app,
        &format!("{base}/boxes/tiles/WebMercatorQuad/0/0/0"),
        &[],
    )
    .await;
    assert_eq!(features(&r.body, "features").len(), 4);
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'layers'")
            .fetch_one(&sqlx::PgPool::connect(&app.db.url()).await.unwrap())
            .await
            .unwrap();
    assert_eq!(tables, 2, "one table per published asset");

    // A file that cannot be read leaves the published layer as it was.
    std::fs::write(
        dir.path().join("boxes.fgb"),
        b"fgb\x03fgb\x00 but nothing after",
    )
    .unwrap();
    let e = ingest::publish::publish(&store, &registry, ("vectors", "layers", "boxes"), false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("boxes.fgb"), "{e}");
    let r = get(
        &app,
        &format!("{base}/boxes/tiles/WebMercatorQuad/0/0/0"),
        &[],
    )
    .await;
    assert_eq!(features(&r.body, "features").len(), 4);

    // The asset now names another file: the old layer is not served for it.
    let mut item = app.get("/collections/vectors/items/layers").await.body;
    item["assets"]["boxes"]["href"] = json!(source.href("points.parquet"));
    let r = app
        .write("PUT", "/collections/vectors/items/layers", Some(&item))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = get(
        &app,
        &format!("{base}/boxes/tiles/WebMercatorQuad/0/0/0"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.json()["description"]
            .as_str()
            .unwrap()
            .contains("publish it again")
    );
}

#[tokio::test]
async fn a_source_closed_to_anonymous_readers_has_no_tiles_for_them() {
    let source = local_source(&support::fixture("ingest"));
    let mut closed = registered("closed", "closed", &source);
    closed.public_assets = PublicAssets::None;
    let app = app_over(vec![closed]).await;
    app.collection("closed").await;
    item_with(
        &app,
        "closed",
        "maps",
        &[("points", source.href("points.pmtiles"), PMTILES)],
    )
    .await;
    let (_, tiles) = archive_tiles("points.pmtiles").await;
    let path = tile_path("closed", "maps", "points", tiles[0].0);
    let r = get(&app, &path, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["description"].is_string());
    // An identified caller reads it, and its answer is private.
    let bearer = format!("Bearer {TOKEN}");
    let r = get(
        &app,
        &path,
        &[("authorization", &bearer), ("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, tiles[0].1);
    assert!(
        r.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
}
