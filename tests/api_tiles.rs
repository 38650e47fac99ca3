//! Vector tiles of footprints: tilesets, `TileJSON`, style, the MVT bytes
//! (decoded and checked feature by feature), change stamps, caching and
//! the access policy.

#![allow(
    clippy::many_single_char_names,
    clippy::cast_possible_wrap,
    clippy::unwrap_used,
    reason = "tile coordinates read best as z/x/y; MVT zigzag decoding; test assertions"
)]

mod support;

use std::f64::consts::PI;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use geozero::mvt::{Message as _, Tile};
use serde_json::{Value, json};
use support::{TOKEN, TestApp};

const C: &str = "tiled";

/// The position of (lon, lat) in tile z/x/y, in tile units (extent 4096).
fn tile_position(z: u8, x: u32, y: u32, lon: f64, lat: f64) -> (f64, f64) {
    let n = f64::from(1u32 << z);
    let lat = lat.to_radians();
    let px = (lon + 180.0) / 360.0 * n - f64::from(x);
    let py = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / PI) / 2.0 * n - f64::from(y);
    (px * 4096.0, py * 4096.0)
}

/// Every vertex of a feature's geometry, in tile units.
fn vertices(geometry: &[u32]) -> Vec<(f64, f64)> {
    let zigzag = |v: u32| f64::from((v >> 1) as i32 ^ -((v & 1) as i32));
    let (mut x, mut y, mut i, mut out) = (0.0, 0.0, 0, Vec::new());
    while i < geometry.len() {
        let (command, count) = (geometry[i] & 7, geometry[i] >> 3);
        i += 1;
        if command == 7 {
            continue;
        }
        for _ in 0..count {
            x += zigzag(geometry[i]);
            y += zigzag(geometry[i + 1]);
            i += 2;
            out.push((x, y));
        }
    }
    out
}

/// A decoded footprint: its feature id, string and number properties, and
/// the bounds of its vertices.
#[derive(Debug)]
struct Footprint {
    fid: u64,
    props: serde_json::Map<String, Value>,
    bounds: [f64; 4],
}

fn decode(bytes: &[u8]) -> Vec<Footprint> {
    let tile = Tile::decode(bytes).expect("an MVT");
    assert_eq!(tile.layers.len(), 1);
    let layer = &tile.layers[0];
    assert_eq!(layer.name, "footprints");
    assert_eq!(layer.extent, Some(4096));
    layer
        .features
        .iter()
        .map(|f| {
            let mut props = serde_json::Map::new();
            for pair in f.tags.chunks(2) {
                let key = layer.keys[pair[0] as usize].clone();
                let v = &layer.values[pair[1] as usize];
                let value = support::mvt_value(v);
                props.insert(key, value);
            }
            let vs = vertices(&f.geometry);
            let bounds = vs.iter().fold(
                [f64::MAX, f64::MAX, f64::MIN, f64::MIN],
                |[a, b, c, d], (x, y)| [a.min(*x), b.min(*y), c.max(*x), d.max(*y)],
            );
            Footprint {
                fid: f.id.expect("a feature id"),
                props,
                bounds,
            }
        })
        .collect()
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

async fn get(app: &TestApp, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut b = Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let response = tower::ServiceExt::oneshot(app.router.clone(), b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

async fn catalog() -> TestApp {
    let app = TestApp::new().await;
    app.collection(C).await;
    let mut items = vec![
        support::item(C, "paris-old", 2.35, 48.85, "2020-01-01T00:00:00Z"),
        support::item(C, "paris-new", 2.35, 48.85, "2024-01-01T00:00:00Z"),
        support::item(C, "nairobi", 36.8, -1.3, "2022-06-01T00:00:00Z"),
    ];
    // A footprint across the antimeridian, split into two parts.
    let mut fiji = support::item(C, "fiji", 179.9, -17.0, "2023-03-01T00:00:00Z");
    fiji["geometry"] = json!({"type": "MultiPolygon", "coordinates": [
        [[[179.8, -17.1], [180.0, -17.1], [180.0, -16.9], [179.8, -16.9], [179.8, -17.1]]],
        [[[-180.0, -17.1], [-179.8, -17.1], [-179.8, -16.9], [-180.0, -16.9], [-180.0, -17.1]]]
    ]});
    fiji["bbox"] = json!([179.8, -17.1, -179.8, -16.9]);
    fiji["properties"]["platform"] = json!("sentinel-2a");
    items.push(fiji);
    for it in items {
        let r = app
            .write("POST", &format!("/collections/{C}/items"), Some(&it))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    app
}

fn tile_url(z: u8, x: u32, y: u32) -> String {
    format!("/collections/{C}/tiles/WebMercatorQuad/{z}/{y}/{x}")
}

#[tokio::test]
async fn tiles_hold_the_footprints_where_they_lie_with_their_properties() {
    let app = catalog().await;
    // z=0 holds everything, newest first.
    let r = get(&app, &tile_url(0, 0, 0), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers[header::CONTENT_TYPE],
        "application/vnd.mapbox-vector-tile"
    );
    let features = decode(&r.body);
    let ids: Vec<&str> = features
        .iter()
        .map(|f| f.props["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    for f in &features {
        assert_eq!(f.props["collection"], C);
        assert!(f.props["datetime"].as_str().unwrap().ends_with('Z'));
    }
    let by_id = |id: &str| features.iter().find(|f| f.props["id"] == id).unwrap();
    assert_eq!(by_id("paris-new").props["eo:cloud_cover"], 12.5);
    assert_eq!(by_id("fiji").props["platform"], "sentinel-2a");
    assert_ne!(by_id("paris-new").fid, by_id("paris-old").fid);
    // Feature ids are stable per item.
    let again = decode(&get(&app, &tile_url(0, 0, 0), &[]).await.body);
    assert_eq!(
        again.iter().find(|f| f.props["id"] == "fiji").unwrap().fid,
        by_id("fiji").fid
    );

    // At zoom 8 the Paris footprints lie where they should, within a unit
    // and a half.
    let (z, x, y) = (8u8, 129u32, 88u32);
    let features = decode(&get(&app, &tile_url(z, x, y), &[]).await.body);
    let paris = features
        .iter()
        .find(|f| f.props["id"] == "paris-new")
        .unwrap();
    let (w, n) = tile_position(z, x, y, 2.25, 48.95);
    let (e, s) = tile_position(z, x, y, 2.45, 48.75);
    // Clipped to the tile and its 64-unit buffer.
    let expected = [w, n, e, s].map(|v| v.clamp(-64.0, 4096.0 + 64.0));
    for (got, want) in paris.bounds.iter().zip(expected) {
        assert!(
            (got - want).abs() <= 1.5,
            "{:?} vs {expected:?}",
            paris.bounds
        );
    }
    assert!(features.iter().all(|f| f.props["id"] != "nairobi"));

    // The antimeridian footprint is drawn on both edges of the world at z=2.
    let east = decode(&get(&app, &tile_url(2, 3, 2), &[]).await.body);
    let west = decode(&get(&app, &tile_url(2, 0, 2), &[]).await.body);
    let fiji_east = east.iter().find(|f| f.props["id"] == "fiji").unwrap();
    let fiji_west = west.iter().find(|f| f.props["id"] == "fiji").unwrap();
    assert!(fiji_east.bounds[2] >= 4095.0, "{:?}", fiji_east.bounds);
    assert!(fiji_west.bounds[0] <= 1.0, "{:?}", fiji_west.bounds);

    // An empty tile is a 204; outside the matrix a 404 with JSON.
    assert_eq!(
        get(&app, &tile_url(8, 0, 0), &[]).await.status,
        StatusCode::NO_CONTENT
    );
    for bad in [tile_url(2, 4, 0), tile_url(25, 0, 0), tile_url(1, 0, 2)] {
        let r = get(&app, &bad, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}");
        assert!(serde_json::from_slice::<Value>(&r.body).is_ok());
    }
    let r = get(
        &app,
        &format!("/collections/{C}/tiles/WorldCRS84Quad/0/0/0"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_feature_cap_keeps_the_newest_and_says_so() {
    let app = catalog().await;
    let r = get(&app, &format!("{}?limit=2", tile_url(0, 0, 0)), &[]).await;
    assert_eq!(r.headers["x-feature-limit-reached"], "true");
    let mut ids: Vec<String> = decode(&r.body)
        .iter()
        .map(|f| f.props["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["fiji", "paris-new"]);
    let r = get(&app, &tile_url(0, 0, 0), &[]).await;
    assert!(!r.headers.contains_key("x-feature-limit-reached"));
    // Exactly as many items as the cap: all drawn, nothing left out.
    let r = get(&app, &format!("{}?limit=4", tile_url(0, 0, 0)), &[]).await;
    assert!(!r.headers.contains_key("x-feature-limit-reached"));
    assert_eq!(decode(&r.body).len(), 4);
    let r = get(&app, &format!("{}?limit=3", tile_url(0, 0, 0)), &[]).await;
    assert_eq!(r.headers["x-feature-limit-reached"], "true");
    assert_eq!(decode(&r.body).len(), 3);
    let r = get(&app, &format!("{}?limit=0", tile_url(0, 0, 0)), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_write_changes_the_stamp_the_etag_and_the_next_tile() {
    let app = catalog().await;
    let set: Value = serde_json::from_slice(
        &get(
            &app,
            &format!("/collections/{C}/tiles/WebMercatorQuad"),
            &[],
        )
        .await
        .body,
    )
    .unwrap();
    let template = set["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "item")
        .unwrap()["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let stamp = template.rsplit("?v=").next().unwrap().to_owned();
    let url = format!("{}?v={stamp}", tile_url(0, 0, 0));
    let first = get(&app, &url, &[]).await;
    assert_eq!(
        first.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let etag = first.headers[header::ETAG].to_str().unwrap().to_owned();
    let cached = get(&app, &url, &[("if-none-match", &etag)]).await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);

    // Delete an item through the API: new stamp, new ETag, the item gone.
    let r = app
        .write("DELETE", &format!("/collections/{C}/items/nairobi"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let after = get(&app, &url, &[("if-none-match", &etag)]).await;
    assert_eq!(after.status, StatusCode::OK);
    assert_ne!(after.headers[header::ETAG].to_str().unwrap(), etag);
    assert!(
        after.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age=5")
    );
    assert!(
        decode(&after.body)
            .iter()
            .all(|f| f.props["id"] != "nairobi")
    );
    let tilejson: Value = serde_json::from_slice(
        &get(
            &app,
            &format!("/collections/{C}/tiles/WebMercatorQuad/tilejson.json"),
            &[],
        )
        .await
        .body,
    )
    .unwrap();
    let new_stamp = tilejson["tiles"][0]
        .as_str()
        .unwrap()
        .rsplit("?v=")
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(new_stamp, stamp);
    // An update is a change too.
    let mut moved = support::item(C, "paris-old", 2.35, 48.85, "2020-01-01T00:00:00Z");
    moved["properties"]["platform"] = json!("landsat-9");
    let r = app
        .write(
            "PUT",
            &format!("/collections/{C}/items/paris-old"),
            Some(&moved),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let latest: Value = serde_json::from_slice(
        &get(
            &app,
            &format!("/collections/{C}/tiles/WebMercatorQuad/tilejson.json"),
            &[],
        )
        .await
        .body,
    )
    .unwrap();
    assert_ne!(latest["tiles"][0], tilejson["tiles"][0]);
}

#[tokio::test]
async fn tilesets_tilejson_and_style_lead_to_working_tiles() {
    let app = catalog().await;
    // Landing → collection → tilesets → tileset → item template → tile.
    let landing: Value = serde_json::from_slice(&get(&app, "/", &[]).await.body).unwrap();
    assert!(
        landing["conformsTo"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt")
    );
    let collection: Value =
        serde_json::from_slice(&get(&app, &format!("/collections/{C}"), &[]).await.body).unwrap();
    let tilesets_href = collection["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector")
        .unwrap()["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let local = |href: &str| {
        href.strip_prefix("http://stac.test/api")
            .unwrap()
            .to_owned()
    };
    let tilesets: Value =
        serde_json::from_slice(&get(&app, &local(&tilesets_href), &[]).await.body).unwrap();
    let one_tileset = tilesets["tilesets"][0]["links"][0]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let tileset: Value =
        serde_json::from_slice(&get(&app, &local(&one_tileset), &[]).await.body).unwrap();
    assert_eq!(tileset["dataType"], "vector");
    let item = tileset["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "item")
        .unwrap();
    assert_eq!(item["type"], "application/vnd.mapbox-vector-tile");
    let href = item["href"]
        .as_str()
        .unwrap()
        .replace("{tileMatrix}", "0")
        .replace("{tileRow}", "0")
        .replace("{tileCol}", "0");
    assert_eq!(get(&app, &local(&href), &[]).await.status, StatusCode::OK);
    let scheme = tileset["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme")
        .unwrap()["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let tms: Value = serde_json::from_slice(&get(&app, &local(&scheme), &[]).await.body).unwrap();
    assert_eq!(tms["tileMatrices"].as_array().unwrap().len(), 25);
    assert_eq!(tms["tileMatrices"][3]["matrixWidth"], 8);

    let tilejson: Value = serde_json::from_slice(
        &get(
            &app,
            &format!("/collections/{C}/tiles/WebMercatorQuad/tilejson.json"),
            &[],
        )
        .await
        .body,
    )
    .unwrap();
    assert_eq!(tilejson["tilejson"], "3.0.0");
    let tiles = tilejson["tiles"][0].as_str().unwrap();
    assert!(tiles.starts_with(
        "http://stac.test/api/collections/tiled/tiles/WebMercatorQuad/{z}/{y}/{x}?v="
    ));
    assert_eq!(tilejson["vector_layers"][0]["id"], "footprints");
    assert!(tilejson["vector_layers"][0]["fields"]["id"].is_string());
    assert_eq!(tilejson["bounds"], json!([-180, -90, 180, 90]));
    let xyz = local(tiles)
        .replace("{z}", "0")
        .replace("{y}", "0")
        .replace("{x}", "0");
    assert_eq!(get(&app, &xyz, &[]).await.status, StatusCode::OK);

    let style: Value = serde_json::from_slice(
        &get(
            &app,
            &format!("/collections/{C}/tiles/WebMercatorQuad/style.json"),
            &[],
        )
        .await
        .body,
    )
    .unwrap();
    assert_eq!(style["version"], 8);
    let source = style["sources"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert!(
        source["url"]
            .as_str()
            .unwrap()
            .contains("/tilejson.json?v=")
    );
    let kinds: Vec<&str> = style["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["fill", "line"]);
}

#[tokio::test]
async fn restricted_collections_have_no_tiles_for_callers_without_access() {
    let app = TestApp::new().await;
    let mut c = support::collection("hidden");
    c["arcolake:access"] = json!("restricted");
    let r = app.write("POST", "/collections", Some(&c)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let it = support::item("hidden", "h1", 10.0, 10.0, "2024-01-01T00:00:00Z");
    let r = app
        .write("POST", "/collections/hidden/items", Some(&it))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let admin = format!("Bearer {TOKEN}");
    for path in [
        "/collections/hidden/tiles",
        "/collections/hidden/tiles/WebMercatorQuad",
        "/collections/hidden/tiles/WebMercatorQuad/tilejson.json",
        "/collections/hidden/tiles/WebMercatorQuad/style.json",
        "/collections/hidden/tiles/WebMercatorQuad/0/0/0",
    ] {
        assert_eq!(
            get(&app, path, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
        let r = get(&app, path, &[("authorization", &admin)]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    let r = get(
        &app,
        "/collections/hidden/tiles/WebMercatorQuad/0/0/0",
        &[("authorization", &admin)],
    )
    .await;
    assert!(
        r.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
    assert_eq!(decode(&r.body).len(), 1);
    // Search tiles show the restricted footprint only to callers who see it.
    let all = "/search/tiles/WebMercatorQuad/0/0/0";
    assert_eq!(get(&app, all, &[]).await.status, StatusCode::NO_CONTENT);
    let named = format!("{all}?collections=hidden");
    assert_eq!(get(&app, &named, &[]).await.status, StatusCode::NO_CONTENT);
    let r = get(&app, all, &[("authorization", &admin)]).await;
    assert_eq!(decode(&r.body).len(), 1);
    let cache = r.headers[header::CACHE_CONTROL].to_str().unwrap();
    assert!(cache.starts_with("private"), "{cache}");
}

fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn filtered_tiles_hold_exactly_what_the_same_search_finds() {
    let app = catalog().await;
    let filters = [
        ("platform = 'sentinel-2a'", "cql2-text"),
        (
            r#"{"op": "=", "args": [{"property": "platform"}, "sentinel-2a"]}"#,
            "cql2-json",
        ),
        ("datetime >= TIMESTAMP('2022-01-01T00:00:00Z')", "cql2-text"),
        ("eo:cloud_cover < 20 AND id <> 'paris-old'", "cql2-text"),
    ];
    for (filter, lang) in filters {
        let q = format!("filter={}&filter-lang={lang}", encoded(filter));
        let found = app.get(&format!("/search?{q}&limit=100")).await;
        assert_eq!(found.status, StatusCode::OK, "{}", found.text);
        let mut want = support::ids(&found.body);
        want.sort();
        for path in [
            format!("/search/tiles/WebMercatorQuad/0/0/0?{q}"),
            format!("{}?{q}", tile_url(0, 0, 0)),
        ] {
            let r = get(&app, &path, &[]).await;
            let mut got: Vec<String> = if r.status == StatusCode::NO_CONTENT {
                Vec::new()
            } else {
                decode(&r.body)
                    .iter()
                    .map(|f| f.props["id"].as_str().unwrap().to_owned())
                    .collect()
            };
            got.sort();
            assert_eq!(got, want, "{path}");
        }
    }
    // Other search parameters filter too, and a bad one is a 400 with JSON.
    let r = get(
        &app,
        "/search/tiles/WebMercatorQuad/0/0/0?ids=nairobi,fiji",
        &[],
    )
    .await;
    let mut got: Vec<String> = decode(&r.body)
        .iter()
        .map(|f| f.props["id"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["fiji", "nairobi"]);
    let r = get(
        &app,
        "/search/tiles/WebMercatorQuad/0/0/0?filter=nosuch%20%3D%201",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(serde_json::from_slice::<Value>(&r.body).is_ok());
    // A search's TileJSON carries its parameters and the stamp.
    let tilejson: Value = serde_json::from_slice(
        &get(
            &app,
            "/search/tiles/WebMercatorQuad/tilejson.json?collections=tiled&datetime=2023-01-01T00:00:00Z/..",
            &[],
        )
        .await
        .body,
    )
    .unwrap();
    let template = tilejson["tiles"][0].as_str().unwrap();
    assert!(template.contains("collections=tiled"), "{template}");
    assert!(template.contains("&v="), "{template}");
    let url = template
        .strip_prefix("http://stac.test/api")
        .unwrap()
        .replace("{z}", "0")
        .replace("{y}", "0")
        .replace("{x}", "0");
    let r = get(&app, &url, &[]).await;
    assert_eq!(
        r.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let mut got: Vec<String> = decode(&r.body)
        .iter()
        .map(|f| f.props["id"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["fiji", "paris-new"]);
    // Its style's source is that TileJSON, with the same parameters.
    let style: Value = serde_json::from_slice(
        &get(
            &app,
            "/search/tiles/WebMercatorQuad/style.json?collections=tiled&datetime=2023-01-01T00:00:00Z/..",
            &[],
        )
        .await
        .body,
    )
    .unwrap();
    let source = style["sources"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    let url = source["url"].as_str().unwrap();
    assert!(
        url.contains("/search/tiles/WebMercatorQuad/tilejson.json?collections=tiled"),
        "{url}"
    );
}

#[tokio::test]
async fn a_registered_search_names_its_tiles_by_its_content() {
    let app = catalog().await;
    let body = json!({
        "collections": [C],
        "filter": {"op": ">=", "args": [{"property": "datetime"}, {"timestamp": "2022-01-01T00:00:00Z"}]},
        "filter-lang": "cql2-json",
    });
    let r = app.post("/searches", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    // The same search, its members in another order, gets the same id.
    let reordered = json!({
        "filter-lang": "cql2-json",
        "filter": {"args": [{"property": "datetime"}, {"timestamp": "2022-01-01T00:00:00Z"}], "op": ">="},
        "collections": [C],
    });
    assert_eq!(
        app.post("/searches", &reordered).await.body["id"],
        id.as_str()
    );
    let tilejson_href = r.body["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "tilejson")
        .unwrap()["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let local = |href: &str| {
        href.strip_prefix("http://stac.test/api")
            .unwrap()
            .to_owned()
    };
    let tilejson: Value =
        serde_json::from_slice(&get(&app, &local(&tilejson_href), &[]).await.body).unwrap();
    let xyz = local(tilejson["tiles"][0].as_str().unwrap())
        .replace("{z}", "0")
        .replace("{y}", "0")
        .replace("{x}", "0");
    let tile = get(&app, &xyz, &[]).await;
    assert_eq!(tile.status, StatusCode::OK);
    let mut got: Vec<String> = decode(&tile.body)
        .iter()
        .map(|f| f.props["id"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut want = support::ids(&app.post("/search", &body).await.body);
    want.sort();
    assert_eq!(got, want);
    assert_eq!(got, ["fiji", "nairobi", "paris-new"]);
    // Bad searches and unknown ids are answered with JSON.
    let bad = app.post("/searches", &json!({"bbox": "nope"})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let r = get(&app, "/searches/0000/tiles/WebMercatorQuad/0/0/0", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(serde_json::from_slice::<Value>(&r.body).is_ok());
}

#[tokio::test]
async fn tiles_come_gzip_compressed_when_asked_and_plain_otherwise() {
    let app = catalog().await;
    let plain = get(&app, &tile_url(0, 0, 0), &[]).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none());
    // Twice: once made, once from the (compressed) cache.
    for _ in 0..2 {
        let packed = get(&app, &tile_url(0, 0, 0), &[("accept-encoding", "gzip, br")]).await;
        assert_eq!(packed.status, StatusCode::OK);
        assert_eq!(packed.headers[header::CONTENT_ENCODING], "gzip");
        assert!(
            packed.headers[header::VARY]
                .to_str()
                .unwrap()
                .contains("accept-encoding")
        );
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&packed.body[..]),
            &mut inflated,
        )
        .unwrap();
        assert_eq!(inflated, plain.body);
        // Two representations, two validators, each answered by a 304.
        assert_ne!(packed.headers[header::ETAG], plain.headers[header::ETAG]);
        let etag = packed.headers[header::ETAG].to_str().unwrap().to_owned();
        let again = get(
            &app,
            &tile_url(0, 0, 0),
            &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    }
    let etag = plain.headers[header::ETAG].to_str().unwrap().to_owned();
    let again = get(&app, &tile_url(0, 0, 0), &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    let any = get(&app, &tile_url(0, 0, 0), &[("if-none-match", "*")]).await;
    assert_eq!(any.status, StatusCode::NOT_MODIFIED);
    let refused = get(&app, &tile_url(0, 0, 0), &[("accept-encoding", "gzip;q=0")]).await;
    assert_eq!(refused.body, plain.body);
}

#[tokio::test]
async fn the_feature_properties_are_the_configured_ones() {
    let app = TestApp::with_settings(api::ServeConfig {
        admin_token: Some(TOKEN.into()),
        public_url: Some("http://stac.test/api/".parse().unwrap()),
        // Two of known type, one of none (carried as a jsonb), one that
        // would repeat a feature column.
        tile_properties: ["platform", "sat:orbit_state", "survey:pass", "id"]
            .map(str::to_owned)
            .into(),
        ..api::ServeConfig::default()
    })
    .await;
    app.collection(C).await;
    let mut item = support::item(C, "one", 2.35, 48.85, "2024-01-01T00:00:00Z");
    item["properties"]["platform"] = json!("sentinel-2b");
    item["properties"]["sat:orbit_state"] = json!("descending");
    item["properties"]["gsd"] = json!(10);
    item["properties"]["survey:pass"] = json!(7);
    let r = app
        .write("POST", &format!("/collections/{C}/items"), Some(&item))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = get(&app, &tile_url(0, 0, 0), &[]).await;
    let feats = decode(&r.body);
    assert_eq!(feats.len(), 1);
    let keys: Vec<&str> = feats[0].props.keys().map(String::as_str).collect();
    for want in [
        "id",
        "collection",
        "datetime",
        "platform",
        "sat:orbit_state",
    ] {
        assert!(keys.contains(&want), "{want} in {keys:?}");
    }
    for gone in ["eo:cloud_cover", "gsd"] {
        assert!(!keys.contains(&gone), "{gone} in {keys:?}");
    }
    assert_eq!(feats[0].props["sat:orbit_state"], "descending");
    assert_eq!(feats[0].props["survey:pass"].as_f64(), Some(7.0));
    assert_eq!(feats[0].props["id"], "one");
    let tilejson: Value = serde_json::from_slice(
        &get(
            &app,
            &format!("/collections/{C}/tiles/WebMercatorQuad/tilejson.json"),
            &[],
        )
        .await
        .body,
    )
    .unwrap();
    let fields = tilejson["vector_layers"][0]["fields"].as_object().unwrap();
    assert!(fields.contains_key("sat:orbit_state") && !fields.contains_key("gsd"));
}

#[tokio::test]
async fn superseded_stamps_are_pruned_and_the_newest_kept() {
    let app = catalog().await;
    let store = app.db.store();
    let before = store.stamp_of(&[C.to_owned()]).await.unwrap();
    let everything = store.stamp_of(&[]).await.unwrap();
    let pruned = store.prune_stamps().await.unwrap();
    assert!(
        pruned > 0,
        "four item writes and a collection left older stamps"
    );
    assert_eq!(store.prune_stamps().await.unwrap(), 0);
    assert_eq!(store.stamp_of(&[C.to_owned()]).await.unwrap(), before);
    assert_eq!(store.stamp_of(&[]).await.unwrap(), everything);
    // And a write after pruning still moves the stamp on.
    let item = support::item(C, "later", 5.0, 5.0, "2025-01-01T00:00:00Z");
    app.write("POST", &format!("/collections/{C}/items"), Some(&item))
        .await;
    assert!(store.stamp_of(&[C.to_owned()]).await.unwrap() > before);
}
