//! Search extensions against a real PostGIS: CQL2 filters (text and JSON,
//! every operator class), sort with keyset paging for every sortable type,
//! fields, query, free text, collection search, aggregation, queryables and
//! big inputs.

#![allow(clippy::unwrap_used, reason = "test code")]

mod support;

use std::cmp::Ordering;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{TestApp, ids, link, local};

fn square(lon: f64, lat: f64) -> Value {
    let s = 0.1;
    json!({"type": "Polygon", "coordinates": [[[lon - s, lat - s], [lon + s, lat - s], [lon + s, lat + s], [lon - s, lat + s], [lon - s, lat - s]]]})
}

fn item(collection: &str, id: &str, lon: f64, lat: f64, properties: Value) -> Value {
    let mut v = json!({
        "type": "Feature", "stac_version": "1.0.0", "id": id, "collection": collection,
        "geometry": square(lon, lat), "bbox": [lon - 0.1, lat - 0.1, lon + 0.1, lat + 0.1],
        "links": [], "assets": {"data": {"href": format!("s3://bucket/{id}.tif")}}
    });
    v["properties"] = properties;
    v
}

/// Five items in `sat` with varied properties, one in `other`.
async fn catalog() -> TestApp {
    let app = TestApp::new().await;
    app.collection("sat").await;
    app.collection("other").await;
    app.items(vec![
        item("sat", "a", 10.0, 50.0, json!({"datetime": "2024-01-01T00:00:00Z", "eo:cloud_cover": 5, "platform": "sentinel-2a",
            "instruments": ["msi"], "gsd": 10, "title": "Alpine lake", "keywords": ["lake", "alps"], "flag": true,
            "created": "2024-01-02T00:00:00Z", "mission": "Sentinel-2", "view:off_nadir": 2})),
        item("sat", "b", 11.0, 50.0, json!({"datetime": "2024-02-01T00:00:00Z", "eo:cloud_cover": 25, "platform": "sentinel-2b",
            "instruments": ["msi"], "gsd": 10, "title": "Forest", "flag": false, "created": "2024-01-01T00:00:00Z", "mission": "sentinel-2"})),
        item("sat", "c", -120.0, 35.0, json!({"datetime": "2024-03-01T00:00:00Z", "eo:cloud_cover": 60, "platform": "landsat-8",
            "instruments": ["oli", "tirs"], "gsd": 30, "description": "Desert near the Café"})),
        item("sat", "d", 10.05, 50.0, json!({"datetime": null, "start_datetime": "2023-12-01T00:00:00Z",
            "end_datetime": "2024-06-30T00:00:00Z", "platform": "Landsat-9", "instruments": ["oli"], "gsd": 30})),
        item("sat", "e", 30.0, -10.0, json!({"datetime": "2024-01-15T00:00:00Z", "eo:cloud_cover": 90, "platform": "sentinel-2a",
            "instruments": ["msi"], "gsd": 20, "view:off_nadir": 15, "proj:epsg": 32631, "proj:code": "EPSG:32631"})),
        item("other", "f", 10.0, 50.0, json!({"datetime": "2024-01-01T00:00:00Z", "eo:cloud_cover": 5, "platform": "x", "other_only": 1})),
    ])
    .await;
    app
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn filter_ids(app: &TestApp, text: &str) -> Result<Vec<String>, String> {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("collections", "sat")
        .append_pair("limit", "100")
        .append_pair("filter", text)
        .finish();
    let r = app.get(&format!("/search?{q}")).await;
    if r.status != StatusCode::OK {
        return Err(r.body["description"].as_str().unwrap_or(&r.text).to_owned());
    }
    let by_text = sorted(ids(&r.body));
    // The same filter as cql2-json, by POST, must find the same items.
    let json: Value =
        serde_json::from_str(&cql2::parse_text(text).unwrap().to_json().unwrap()).unwrap();
    let r = app
        .post("/search", &json!({"collections": ["sat"], "limit": 100, "filter": json, "filter-lang": "cql2-json"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{text} as JSON: {}", r.text);
    assert_eq!(
        sorted(ids(&r.body)),
        by_text,
        "{text}: text and JSON disagree"
    );
    Ok(by_text)
}

/// Filters over [`catalog`]'s `sat` collection, and the ids they match:
/// every CQL2 class the conformance page declares.
const CORPUS: &[(&str, &[&str])] = &[
    // basic-cql2: comparisons, and/or/not, isNull, typed by queryables
    ("\"eo:cloud_cover\" < 20", &["a"]),
    ("eo:cloud_cover >= 25 AND eo:cloud_cover <= 60", &["b", "c"]),
    ("eo:cloud_cover IS NULL", &["d"]),
    // `"datetime": null` (an item given by its range) is null; the
    // span's ends are null where the document does not give them.
    ("datetime IS NULL", &["d"]),
    ("datetime IS NOT NULL", &["a", "b", "c", "e"]),
    ("start_datetime IS NOT NULL", &["d"]),
    ("end_datetime IS NULL", &["a", "b", "c", "e"]),
    ("NOT eo:cloud_cover < 50", &["c", "e"]),
    ("platform = 'sentinel-2a'", &["a", "e"]),
    ("platform <> 'sentinel-2a'", &["b", "c", "d"]),
    ("gsd = 10 OR gsd = 20", &["a", "b", "e"]),
    ("id IN ('a','c')", &["a", "c"]),
    ("collection = 'sat' AND id = 'b'", &["b"]),
    ("created > '2024-01-01T12:00:00Z'", &["a"]),
    ("datetime > TIMESTAMP('2024-01-20T00:00:00Z')", &["b", "c"]),
    ("flag = true", &["a"]),
    ("view:off_nadir > 10", &["e"]),
    // advanced comparison: like, between, in
    ("eo:cloud_cover BETWEEN 20 AND 70", &["b", "c"]),
    ("platform LIKE 'sentinel%'", &["a", "b", "e"]),
    ("mission LIKE 'sentinel%'", &["b"]),
    ("platform IN ('landsat-8','sentinel-2b')", &["b", "c"]),
    ("eo:cloud_cover IN (5, 90)", &["a", "e"]),
    // case- and accent-insensitive
    ("CASEI(platform) = casei('LANDSAT-9')", &["d"]),
    ("CASEI(mission) LIKE casei('SENTINEL%')", &["a", "b"]),
    ("ACCENTI(description) LIKE accenti('%Cafe%')", &["c"]),
    (
        "CASEI(ACCENTI(description)) LIKE casei(accenti('%CAFÉ%'))",
        &["c"],
    ),
    ("description LIKE '%Cafe%'", &[]),
    // arrays: scalar equality means any element
    ("instruments = 'oli'", &["c", "d"]),
    ("A_CONTAINS(instruments, ('oli','tirs'))", &["c"]),
    (
        "A_CONTAINEDBY(instruments, ('oli','tirs','msi'))",
        &["a", "b", "c", "d", "e"],
    ),
    // pgstac's spelling, which many clients send.
    ("A_CONTAINED_BY(instruments, ('oli','tirs'))", &["c", "d"]),
    ("A_OVERLAPS(instruments, ('tirs','x'))", &["c"]),
    ("A_EQUALS(instruments, ('tirs','oli'))", &["c"]),
    // spatial
    ("S_INTERSECTS(geometry, BBOX(9,49,12,51))", &["a", "b", "d"]),
    (
        "S_INTERSECTS(geometry, POLYGON((9 49, 10.5 49, 10.5 51, 9 51, 9 49)))",
        &["a", "d"],
    ),
    (
        "S_WITHIN(geometry, POLYGON((-121 34, -119 34, -119 36, -121 36, -121 34)))",
        &["c"],
    ),
    ("S_CONTAINS(geometry, POINT(10 50))", &["a", "d"]),
    (
        "S_DISJOINT(geometry, BBOX(-180,-90,0,90))",
        &["a", "b", "d", "e"],
    ),
    (
        "S_EQUALS(geometry, POLYGON((29.9 -10.1, 30.1 -10.1, 30.1 -9.9, 29.9 -9.9, 29.9 -10.1)))",
        &["e"],
    ),
    (
        "S_OVERLAPS(geometry, BBOX(10,49.95,10.5,50.5))",
        &["a", "d"],
    ),
    (
        "S_TOUCHES(geometry, BBOX(10.1,50.1,10.3,50.3))",
        &["a", "d"],
    ),
    ("S_TOUCHES(geometry, BBOX(10.12,50.1,10.3,50.3))", &["d"]),
    (
        "S_CROSSES(geometry, LINESTRING(9 50, 12 50))",
        &["a", "b", "d"],
    ),
    // temporal: an item's datetime is its whole span
    (
        "T_INTERSECTS(datetime, INTERVAL('2024-02-15T00:00:00Z','2024-03-15T00:00:00Z'))",
        &["c", "d"],
    ),
    (
        "T_BEFORE(datetime, TIMESTAMP('2024-01-10T00:00:00Z'))",
        &["a"],
    ),
    (
        "T_AFTER(datetime, TIMESTAMP('2024-01-20T00:00:00Z'))",
        &["b", "c"],
    ),
    (
        "T_DURING(datetime, INTERVAL('2023-01-01T00:00:00Z','2025-01-01T00:00:00Z'))",
        &["a", "b", "c", "d", "e"],
    ),
    (
        "T_CONTAINS(datetime, TIMESTAMP('2024-04-01T00:00:00Z'))",
        &["d"],
    ),
    (
        "T_INTERSECTS(datetime, INTERVAL('2024-06-30T00:00:00Z','..'))",
        &["d"],
    ),
    (
        "T_EQUALS(datetime, TIMESTAMP('2024-01-15T00:00:00Z'))",
        &["e"],
    ),
    (
        "T_DISJOINT(datetime, INTERVAL('..','2024-01-31T00:00:00Z'))",
        &["b", "c"],
    ),
    (
        "T_STARTS(datetime, INTERVAL('2023-12-01T00:00:00Z','2024-12-31T00:00:00Z'))",
        &["d"],
    ),
    (
        "T_FINISHEDBY(datetime, TIMESTAMP('2024-06-30T00:00:00Z'))",
        &["d"],
    ),
    (
        "T_METBY(INTERVAL('2024-06-30T00:00:00Z','2024-07-30T00:00:00Z'), datetime)",
        &["d"],
    ),
    (
        "T_MEETS(datetime, INTERVAL('2024-06-30T00:00:00Z','2024-12-31T00:00:00Z'))",
        &["d"],
    ),
    (
        "T_MEETS(datetime, INTERVAL('2024-01-01T00:00:00Z','2024-02-01T00:00:00Z'))",
        &["a"],
    ),
    (
        "T_OVERLAPS(datetime, INTERVAL('2024-03-01T00:00:00Z','2024-12-31T00:00:00Z'))",
        &["d"],
    ),
    (
        "T_OVERLAPS(datetime, INTERVAL('2023-01-01T00:00:00Z','2024-03-01T00:00:00Z'))",
        &[],
    ),
    (
        "T_OVERLAPPEDBY(datetime, INTERVAL('2023-06-01T00:00:00Z','2024-01-01T00:00:00Z'))",
        &["d"],
    ),
    (
        "T_STARTEDBY(datetime, INTERVAL('2023-12-01T00:00:00Z','2024-01-31T00:00:00Z'))",
        &["d"],
    ),
    (
        "T_STARTEDBY(datetime, INTERVAL('2024-01-15T00:00:00Z','2024-01-31T00:00:00Z'))",
        &[],
    ),
    (
        "T_FINISHES(datetime, INTERVAL('2023-01-01T00:00:00Z','2024-06-30T00:00:00Z'))",
        &["d"],
    ),
    (
        "T_FINISHES(datetime, INTERVAL('2023-12-31T00:00:00Z','2024-01-15T00:00:00Z'))",
        &["e"],
    ),
    // property-property and arithmetic
    ("eo:cloud_cover < gsd", &["a"]),
    ("eo:cloud_cover * 2 > 100", &["c", "e"]),
    ("eo:cloud_cover - gsd >= 40", &["e"]),
    ("eo:cloud_cover / 0 > 1", &[]),
    ("eo:cloud_cover + gsd > 80", &["c", "e"]),
    ("eo:cloud_cover + gsd + 1 = 16", &["a"]),
    ("eo:cloud_cover % 20 = 5", &["a", "b"]),
    ("eo:cloud_cover % 0 = 0", &[]),
    ("gsd ^ 2 > 500", &["c", "d"]),
    ("2 ^ (gsd / 10) = 4", &["e"]),
    ("eo:cloud_cover div 20 = 1", &["b"]),
    ("eo:cloud_cover div 0 = 0", &[]),
];

#[tokio::test]
async fn every_cql2_class_finds_the_expected_items_in_text_and_json() {
    let app = catalog().await;
    for (text, expected) in CORPUS {
        let got = filter_ids(&app, text)
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        let expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(got, expected, "{text}");
    }
}

#[tokio::test]
async fn pgstac_operator_spellings_are_accepted_in_cql2_json() {
    let app = catalog().await;
    // pgstac's snake_case names in cql2-json, as those clients write them.
    for (op, expected) in [
        ("a_contained_by", json!(["c", "d"])),
        ("A_Contained_By", json!(["c", "d"])),
        ("a_containedBy", json!(["c", "d"])),
    ] {
        let filter = json!({"op": op, "args": [{"property": "instruments"}, ["oli", "tirs"]]});
        let r = app
            .post(
                "/search",
                &json!({"collections": ["sat"], "limit": 100, "filter": filter}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{op}: {}", r.text);
        assert_eq!(json!(sorted(ids(&r.body))), expected, "{op}");
    }
    let r = app
        .post("/search", &json!({"collections": ["sat"], "filter": {"op": "t_overlapped_by", "args": [{"property": "datetime"}, {"interval": ["2023-06-01T00:00:00Z", "2024-01-01T00:00:00Z"]}]}}))
        .await;
    assert_eq!(ids(&r.body), ["d"], "{}", r.text);
}

#[tokio::test]
async fn malformed_filters_are_400s_that_say_what_is_wrong() {
    let app = catalog().await;
    let cases = [
        ("nope = 1", "nope"),
        ("eo:cloud_cover = 'cloudy'", "not a number"),
        ("eo:cloud_cover <", "cql2-text"),
        (
            "S_INTERSECTS(geometry, POLYGON((0 0, 1 0, 1 1)))",
            "geometry",
        ),
        ("instruments < 3", "array"),
        ("platform = geometry", "compare"),
        ("created > 'last week'", "timestamp"),
        ("T_BEFORE(datetime, 5)", "instant"),
    ];
    for (text, needle) in cases {
        let err = filter_ids(&app, text).await.expect_err(text);
        assert!(
            err.contains(needle),
            "{text}: {err:?} should mention {needle:?}"
        );
    }
    for body in [
        json!({"filter": {"op": "frobnicate", "args": [1]}}),
        json!({"filter": {"op": "=", "args": [{"property": "gsd"}]}}),
        json!({"filter": "gsd = 1", "filter-lang": "cql2-json"}),
        json!({"filter": {"op": "=", "args": [{"property": "gsd"}, 1]}, "filter-lang": "cql2-text"}),
        json!({"filter": true, "filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"}),
    ] {
        let r = app.post("/search", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(r.body["description"].as_str().unwrap().len() > 10);
    }
}

#[tokio::test]
async fn filters_may_name_any_property_of_the_catalog_and_unknown_names_are_400s() {
    let app = catalog().await;
    let r = app
        .get("/collections/other/items?filter=other_only%3D1")
        .await;
    assert_eq!(ids(&r.body), ["f"], "{}", r.text);
    // `other_only` is carried by no item of `sat`, but by one of the
    // catalog: clients offer the catalog's queryables whatever collection
    // is chosen, so it matches nothing there rather than being refused.
    for uri in [
        "/collections/sat/items?filter=other_only%3D1",
        "/search?collections=sat&filter=other_only%3D1",
        "/collections/sat/items?sortby=-other_only&filter=other_only%3E0",
    ] {
        let r = app.get(uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
        assert!(ids(&r.body).is_empty(), "{uri}: {}", r.text);
        assert_eq!(r.body["numberMatched"], 0, "{uri}");
    }
    let r = app
        .post("/search", &json!({"collections": ["sat"], "filter": {"op": "=", "args": [{"property": "other_only"}, 1]}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(ids(&r.body).is_empty());
    // It is missing, so null, on every item of `sat`; it sorts as missing.
    let r = app
        .get("/collections/sat/items?filter=other_only%20IS%20NULL&sortby=other_only&limit=100")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(sorted(ids(&r.body)), ["a", "b", "c", "d", "e"]);
    // A name no item of the catalog carries is still a 400 that names it,
    // on item lists, search and sort alike.
    for uri in [
        "/collections/sat/items?filter=nope%3D1",
        "/search?collections=sat&filter=nope%3D1",
        "/search?filter=nope%3D1",
        "/collections/sat/items?sortby=nope",
    ] {
        let r = app.get(uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.text);
        assert!(
            r.body["description"].as_str().unwrap().contains("nope"),
            "{uri}: {}",
            r.text
        );
    }
    // STAC common metadata is queryable though no item carries it.
    let r = app
        .get("/search?collections=other&filter=constellation%3D'x'")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A property written a moment ago is a queryable at once.
    app.items(vec![item(
        "sat",
        "g",
        0.0,
        0.0,
        json!({"datetime": "2024-05-01T00:00:00Z", "fresh": "yes"}),
    )])
    .await;
    let r = app.get("/search?filter=fresh%3D'yes'").await;
    assert_eq!(ids(&r.body), ["g"], "{}", r.text);
}

#[tokio::test]
async fn queryables_are_json_schema_typed_by_what_items_hold() {
    let app = catalog().await;
    let r = app.get("/collections/sat/queryables").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/schema+json");
    let q = &r.body;
    assert_eq!(q["$id"], "http://stac.test/api/collections/sat/queryables");
    assert_eq!(q["type"], "object");
    assert_eq!(q["properties"]["eo:cloud_cover"]["type"], "number");
    assert_eq!(q["properties"]["eo:cloud_cover"]["maximum"], 100);
    assert_eq!(q["properties"]["created"]["format"], "date-time");
    assert_eq!(q["properties"]["flag"]["type"], "boolean");
    assert_eq!(q["properties"]["instruments"]["type"], "array");
    // The geometry is described inline: an offline client resolves nothing.
    assert_eq!(q["properties"]["geometry"]["type"], "object");
    assert_eq!(q["properties"]["geometry"]["format"], "geometry-any");
    assert!(q["properties"]["geometry"]["title"].is_string());
    for doc in [&r.text, &app.get("/queryables").await.text] {
        assert!(
            !doc.contains("$ref") && !doc.contains("geojson.org"),
            "{doc}"
        );
    }
    assert!(q["properties"].get("other_only").is_none());
    let all = app.get("/queryables").await;
    assert!(all.body["properties"].get("other_only").is_some());
    assert_eq!(
        app.get("/collections/nope/queryables").await.status,
        StatusCode::NOT_FOUND
    );
    let c = app.get("/collections/sat").await;
    let l = link(&c.body, "http://www.opengis.net/def/rel/ogc/1.0/queryables").unwrap();
    assert_eq!(
        local(l["href"].as_str().unwrap()),
        "/collections/sat/queryables"
    );
}

#[tokio::test]
async fn queryables_take_titles_from_summaries_and_the_extensions() {
    let app = TestApp::new().await;
    let mut c = support::collection("ls");
    c["summaries"] = json!({
        "tile": {"title": "Tile", "type": "string"},
        "landsat:wrs_row": {"title": "Row of the path"},
        "gsd": [30],
        "eo:cloud_cover": {"minimum": 0, "maximum": 100},
    });
    let r = app.write("POST", "/collections", Some(&c)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    app.collection("plain").await;
    app.items(vec![
        item("ls", "x", 0.0, 0.0, json!({"datetime": "2024-01-01T00:00:00Z", "tile": "T32",
            "landsat:wrs_path": "195", "landsat:wrs_row": "026", "s2:mgrs_tile": "32TNS", "mgrs:utm_zone": 32,
            "sar:instrument_mode": "IW", "view:incidence_angle": 30.5, "sat:absolute_orbit": 41000,
            "proj:shape": [10, 10], "file:size": 1024, "table:row_count": 7, "raster:bands": [],
            "s2:water_percentage": 1.5, "landsat:cloud_cover_land": 3, "cube:dimensions": {},
            "eo:cloud_cover": 10})),
        item("plain", "y", 0.0, 0.0, json!({"datetime": "2024-01-01T00:00:00Z", "tile": 5})),
    ])
    .await;
    let r = app.get("/collections/ls/queryables").await;
    assert_eq!(r.status, StatusCode::OK);
    let title = |name: &str| r.body["properties"][name]["title"].clone();
    for (name, expected) in [
        // From the collection's summaries (they win over the built-in titles).
        ("tile", "Tile"),
        ("landsat:wrs_row", "Row of the path"),
        // From the extensions' field definitions.
        ("landsat:wrs_path", "WRS path"),
        ("s2:mgrs_tile", "MGRS tile"),
        ("mgrs:utm_zone", "UTM zone"),
        ("sar:instrument_mode", "Instrument mode"),
        ("view:incidence_angle", "Incidence angle (°)"),
        ("sat:absolute_orbit", "Absolute orbit"),
        ("proj:shape", "Shape (rows, columns)"),
        ("file:size", "File size (bytes)"),
        ("table:row_count", "Row count"),
        ("raster:bands", "Raster bands"),
        ("s2:water_percentage", "Water (%)"),
        ("landsat:cloud_cover_land", "Cloud cover over land (%)"),
        ("cube:dimensions", "Dimensions"),
        ("gsd", "Ground sample distance (m)"),
    ] {
        assert_eq!(
            title(name),
            expected,
            "{name}: {}",
            r.body["properties"][name]
        );
    }
    // A summary that is a list or a range has no title to give.
    assert_eq!(title("eo:cloud_cover"), "Cloud cover (%)");
    // The whole catalog's queryables take the summaries' titles too; a
    // collection whose summaries say nothing keeps the item-typed schema.
    let all = app.get("/queryables").await;
    assert_eq!(all.body["properties"]["tile"]["title"], "Tile");
    let plain = app.get("/collections/plain/queryables").await;
    assert_eq!(plain.body["properties"]["tile"], json!({"type": "number"}));
}

#[tokio::test]
async fn sortables_list_exactly_what_sortby_accepts() {
    let app = catalog().await;
    let r = app.get("/sortables").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["content-type"], "application/schema+json");
    assert_eq!(r.body["$id"], "http://stac.test/api/sortables");
    let sortables: Vec<String> = r.body["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for name in [
        "id",
        "collection",
        "datetime",
        "eo:cloud_cover",
        "platform",
        "created",
        "flag",
        "other_only",
    ] {
        assert!(
            sortables.iter().any(|s| s == name),
            "{name} in {sortables:?}"
        );
    }
    for name in ["geometry", "instruments", "keywords"] {
        assert!(
            !sortables.iter().any(|s| s == name),
            "{name} in {sortables:?}"
        );
    }
    // Every sortable sorts; every other queryable is refused by sortby.
    let queryables = app.get("/queryables").await;
    for name in queryables.body["properties"].as_object().unwrap().keys() {
        let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        let r = app.get(&format!("/search?sortby=-{encoded}")).await;
        let expected = if sortables.contains(name) {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(r.status, expected, "sortby={name}: {}", r.text);
    }
    let c = app.get("/collections/sat/sortables").await;
    assert_eq!(c.status, StatusCode::OK);
    assert!(c.body["properties"].get("eo:cloud_cover").is_some());
    assert!(c.body["properties"].get("other_only").is_none());
    assert!(c.body["properties"].get("instruments").is_none());
    assert_eq!(
        app.get("/collections/nope/sortables").await.status,
        StatusCode::NOT_FOUND
    );
    let rel = "http://www.opengis.net/def/rel/ogc/1.0/sortables";
    let coll = app.get("/collections/sat").await;
    assert_eq!(
        local(link(&coll.body, rel).unwrap()["href"].as_str().unwrap()),
        "/collections/sat/sortables"
    );
    let landing = app.get("/").await;
    assert_eq!(
        local(link(&landing.body, rel).unwrap()["href"].as_str().unwrap()),
        "/sortables"
    );
    let api = app.get("/api").await;
    for path in ["/sortables", "/collections/{collectionId}/sortables"] {
        assert!(
            api.body["paths"][path]["get"].is_object(),
            "{path} in the OpenAPI document"
        );
    }
}

/// The order a sort must produce: keys compared with missing values
/// largest, then (collection, id) in the first key's direction.
fn expected_order(items: &[Value], keys: &[(&str, bool)]) -> Vec<String> {
    let get = |i: &Value, k: &str| -> Value {
        match k {
            "id" | "collection" => i[k].clone(),
            "datetime" => i["properties"]["datetime"]
                .as_str()
                .or(i["properties"]["start_datetime"].as_str())
                .map_or(Value::Null, |s| Value::String(s.to_owned())),
            _ => i["properties"][k].clone(),
        }
    };
    let cmp = |a: &Value, b: &Value| match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::Number(x), Value::Number(y)) => x.as_f64().unwrap().total_cmp(&y.as_f64().unwrap()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.as_str().unwrap().cmp(b.as_str().unwrap()),
    };
    let mut v: Vec<&Value> = items.iter().collect();
    v.sort_by(|a, b| {
        for (k, desc) in keys {
            let o = cmp(&get(a, k), &get(b, k));
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        let o = (a["collection"].as_str(), a["id"].as_str())
            .cmp(&(b["collection"].as_str(), b["id"].as_str()));
        if keys[0].1 { o.reverse() } else { o }
    });
    v.iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_sortable_type_pages_exactly_both_ways() {
    let app = TestApp::new().await;
    app.collection("sat").await;
    // Duplicated values and missing values, so ties and nulls are paged over.
    let items: Vec<Value> = (0..23)
        .map(|n| {
            let platform = ["a", "b", "c"][n % 3];
            let mut p = json!({"datetime": format!("2024-01-{:02}T00:00:00Z", 1 + n % 7),
                "platform": platform, "created": format!("2024-02-{:02}T00:00:00Z", 1 + n % 4)});
            if n % 5 != 0 {
                p["eo:cloud_cover"] = json!((n * 7) % 4 * 10);
                p["flag"] = json!(n % 2 == 0);
            }
            item(
                "sat",
                &format!("i{n:02}"),
                f64::from(u8::try_from(n).unwrap()),
                0.0,
                p,
            )
        })
        .collect();
    app.items(items.clone()).await;
    let sorts: &[&[(&str, bool)]] = &[
        &[("eo:cloud_cover", false)],
        &[("eo:cloud_cover", true)],
        &[("platform", false)],
        &[("platform", true)],
        &[("datetime", false)],
        &[("created", true)],
        &[("flag", false)],
        &[("id", true)],
        &[("datetime", true), ("eo:cloud_cover", false)],
        &[("platform", false), ("created", true), ("flag", true)],
    ];
    for keys in sorts {
        let sortby: Vec<String> = keys
            .iter()
            .map(|(k, d)| format!("{}{k}", if *d { "-" } else { "+" }))
            .collect();
        let sortby = sortby.join(",");
        let expected = expected_order(&items, keys);
        // Forward through every page by GET.
        let mut got = Vec::new();
        let mut uri = format!(
            "/search?limit=4&sortby={}",
            url::form_urlencoded::byte_serialize(sortby.as_bytes()).collect::<String>()
        );
        let mut last;
        loop {
            let r = app.get(&uri).await;
            assert_eq!(r.status, StatusCode::OK, "{sortby}: {}", r.text);
            got.extend(ids(&r.body));
            last = r.body.clone();
            match link(&r.body, "next") {
                Some(l) => uri = local(l["href"].as_str().unwrap()),
                None => break,
            }
        }
        assert_eq!(got, expected, "sortby={sortby}");
        // And back through the prev links.
        let mut back: Vec<String> = ids(&last).into_iter().rev().collect();
        let mut page = last;
        while let Some(l) = link(&page, "prev") {
            let r = app.get(&local(l["href"].as_str().unwrap())).await;
            back.extend(ids(&r.body).into_iter().rev());
            page = r.body;
        }
        back.reverse();
        assert_eq!(back, expected, "sortby={sortby} walking back");
        // POST with the JSON form pages the same.
        let body_sort: Vec<Value> = keys
            .iter()
            .map(|(k, d)| json!({"field": format!("properties.{k}"), "direction": if *d { "desc" } else { "asc" }}))
            .collect();
        let mut got = Vec::new();
        let mut body = json!({"limit": 5, "sortby": body_sort});
        loop {
            let r = app.post("/search", &body).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            got.extend(ids(&r.body));
            match link(&r.body, "next") {
                Some(l) => body = l["body"].clone(),
                None => break,
            }
        }
        assert_eq!(got, expected, "POST sortby={sortby}");
    }
}

#[tokio::test]
async fn fields_query_and_free_text() {
    let app = catalog().await;
    let r = app
        .get("/search?collections=sat&ids=a&fields=properties.eo:cloud_cover")
        .await;
    let f = &r.body["features"][0];
    assert_eq!(f["properties"], json!({"eo:cloud_cover": 5}), "{}", r.text);
    assert!(f.get("assets").is_none() && f.get("links").is_none() && f["id"] == "a");
    let r = app
        .post(
            "/search",
            &json!({"ids": ["a"], "fields": {"exclude": ["assets", "properties.title"]}}),
        )
        .await;
    let f = &r.body["features"][0];
    assert!(f.get("assets").is_none() && f["properties"].get("title").is_none());
    assert!(f["properties"]["platform"].is_string() && f["links"].is_array());
    assert!(link(&r.body, "self").is_some());

    let query_cases = [
        (json!({"eo:cloud_cover": {"lt": "20"}}), vec!["a"]),
        (
            json!({"eo:cloud_cover": {"gte": 25, "lte": 60}}),
            vec!["b", "c"],
        ),
        (json!({"instruments": {"in": ["oli"]}}), vec!["c", "d"]),
        (json!({"instruments": {"eq": "tirs"}}), vec!["c"]),
        (
            json!({"platform": {"startsWith": "sentinel"}}),
            vec!["a", "b", "e"],
        ),
        (
            json!({"platform": {"endsWith": "-2a"}, "gsd": {"neq": 10}}),
            vec!["e"],
        ),
        (json!({"description": {"contains": "Caf"}}), vec!["c"]),
        (
            json!({"platform": {"in": ["landsat-8", "Landsat-9"]}}),
            vec!["c", "d"],
        ),
    ];
    for (query, expected) in query_cases {
        let r = app
            .post("/search", &json!({"collections": ["sat"], "query": query}))
            .await;
        assert_eq!(
            sorted(ids(&r.body)),
            expected,
            "POST query {query}: {}",
            r.text
        );
        let encoded: String =
            url::form_urlencoded::byte_serialize(query.to_string().as_bytes()).collect();
        let r = app
            .get(&format!("/search?collections=sat&query={encoded}"))
            .await;
        assert_eq!(sorted(ids(&r.body)), expected, "GET query {query}");
    }

    for (q, expected) in [
        ("lake", vec!["a"]),
        ("alpine lake", vec!["a"]),
        ("forest,desert", vec!["b", "c"]),
        ("lake alpine", vec![]),
    ] {
        let encoded: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let r = app.get(&format!("/search?q={encoded}")).await;
        assert_eq!(sorted(ids(&r.body)), expected, "q={q}: {}", r.text);
    }
    let r = app.post("/search", &json!({"q": ["forest", "alps"]})).await;
    assert_eq!(sorted(ids(&r.body)), ["a", "b"]);
}

#[tokio::test]
async fn collection_search_by_get_and_post() {
    let app = TestApp::new().await;
    for (id, title, keywords, west, start) in [
        (
            "s2",
            "Sentinel-2 Level-2A",
            vec!["optical", "sentinel"],
            0.0,
            "2017-01-01T00:00:00Z",
        ),
        (
            "l8",
            "Landsat 8",
            vec!["optical", "landsat"],
            20.0,
            "2013-01-01T00:00:00Z",
        ),
        (
            "dem",
            "Copernicus DEM",
            vec!["elevation", "sentinel"],
            40.0,
            "2020-01-01T00:00:00Z",
        ),
    ] {
        let mut c = support::collection(id);
        c["title"] = json!(title);
        c["keywords"] = json!(keywords);
        c["extent"] = json!({"spatial": {"bbox": [[west, 0, west + 10.0, 10]]}, "temporal": {"interval": [[start, null]]}});
        let r = app.write("POST", "/collections", Some(&c)).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let coll_ids = |b: &Value| -> Vec<String> {
        b["collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = app.get("/collections?q=sentinel").await;
    assert_eq!(
        coll_ids(&r.body),
        ["s2", "dem"],
        "title matches rank first: {}",
        r.text
    );
    assert_eq!(r.body["numberMatched"], 2);
    let r = app.get("/collections?bbox=15,0,45,5").await;
    assert_eq!(coll_ids(&r.body), ["dem", "l8"]);
    let r = app
        .get("/collections?datetime=../2015-01-01T00:00:00Z")
        .await;
    assert_eq!(coll_ids(&r.body), ["l8"]);
    let r = app
        .get("/collections?filter=title%20LIKE%20'Sentinel%25'")
        .await;
    assert_eq!(coll_ids(&r.body), ["s2"], "{}", r.text);
    let r = app
        .get("/collections?sortby=-title&limit=2&fields=id,title")
        .await;
    assert_eq!(coll_ids(&r.body), ["s2", "l8"]);
    assert!(r.body["collections"][0].get("extent").is_none());
    let next = link(&r.body, "next").unwrap();
    let r = app.get(&local(next["href"].as_str().unwrap())).await;
    assert_eq!(coll_ids(&r.body), ["dem"]);
    let r = app
        .post(
            "/collections-search",
            &json!({"q": "optical", "sortby": [{"field": "id", "direction": "asc"}], "limit": 1}),
        )
        .await;
    assert_eq!(coll_ids(&r.body), ["l8"], "{}", r.text);
    let next = link(&r.body, "next").unwrap();
    assert_eq!(next["method"], "POST");
    let r = app.post("/collections-search", &next["body"]).await;
    assert_eq!(coll_ids(&r.body), ["s2"]);
    assert_eq!(
        app.get("/collections?bbox=1,2").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.post("/collections-search", &json!({"filter": {"op": "nope"}}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn aggregations_count_and_bucket_what_the_search_matches() {
    let app = catalog().await;
    let r = app.get("/aggregations").await;
    assert!(
        r.body["aggregations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "cloud_cover_frequency")
    );
    let r = app
        .get("/aggregate?collections=sat&filter=gsd%3E%3D10&aggregations=total_count,collection_frequency,cloud_cover_frequency,datetime_frequency,grid_geohash_frequency,datetime_max")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let agg = |name: &str| {
        r.body["aggregations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(agg("total_count")["value"], 5);
    assert_eq!(
        agg("collection_frequency")["buckets"],
        json!([{"key": "sat", "data_type": "string", "frequency": 5}])
    );
    let cc: Vec<(f64, i64)> = agg("cloud_cover_frequency")["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["key"].as_f64().unwrap(), b["frequency"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        cc,
        [(0.0, 1), (20.0, 1), (60.0, 1), (90.0, 1)],
        "{}",
        agg("cloud_cover_frequency")
    );
    let months: Vec<String> = agg("datetime_frequency")["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        months,
        [
            "2023-12-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
            "2024-02-01T00:00:00Z",
            "2024-03-01T00:00:00Z"
        ]
    );
    let cells: i64 = agg("grid_geohash_frequency")["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["frequency"].as_i64().unwrap())
        .sum();
    assert_eq!(cells, 5);
    assert_eq!(agg("datetime_max")["value"], "2024-03-01T00:00:00Z");
    let r = app.post("/aggregate", &json!({"filter": "platform = 'sentinel-2a'", "filter-lang": "cql2-text", "aggregations": ["total_count", "grid_geotile_frequency"], "grid_geotile_frequency_precision": 2})).await;
    assert_eq!(r.body["aggregations"][0]["value"], 2, "{}", r.text);
    assert_eq!(
        r.body["aggregations"][1]["buckets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = app
        .get("/collections/other/aggregate?aggregations=total_count")
        .await;
    assert_eq!(r.body["aggregations"][0]["value"], 1);
    assert_eq!(
        app.get("/aggregate?aggregations=nope").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn big_inputs_are_answered_or_refused_with_the_limit() {
    let app = catalog().await;
    // An intersects polygon with 100,000 vertices around (10, 50).
    let n = 100_000;
    let ring: Vec<Value> = (0..=n)
        .map(|i| {
            let a = std::f64::consts::TAU * f64::from(i % n) / f64::from(n);
            json!([10.0 + 2.0 * a.cos(), 50.0 + 2.0 * a.sin()])
        })
        .collect();
    let polygon = json!({"type": "Polygon", "coordinates": [ring]});
    let r = app
        .post(
            "/search",
            &json!({"collections": ["sat"], "intersects": polygon}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        &r.text[..r.text.len().min(300)]
    );
    assert_eq!(sorted(ids(&r.body)), ["a", "b", "d"]);
    let r = app.post("/search", &json!({"collections": ["sat"], "filter": {"op": "s_intersects", "args": [{"property": "geometry"}, polygon]}})).await;
    assert_eq!(sorted(ids(&r.body)), ["a", "b", "d"]);

    // A CQL2 expression nested 200 levels, as text and as JSON.
    let mut text = "gsd = 10".to_owned();
    let mut json_expr = json!({"op": "=", "args": [{"property": "gsd"}, 10]});
    for _ in 0..100 {
        text = format!("NOT (NOT ({text}))");
        json_expr = json!({"op": "not", "args": [{"op": "not", "args": [json_expr]}]});
    }
    let encoded: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
    let r = app
        .get(&format!("/search?collections=sat&filter={encoded}"))
        .await;
    assert_eq!(sorted(ids(&r.body)), ["a", "b"], "{}", r.text);
    let r = app
        .post(
            "/search",
            &json!({"collections": ["sat"], "filter": json_expr}),
        )
        .await;
    assert_eq!(sorted(ids(&r.body)), ["a", "b"], "{}", r.text);
    // Far deeper is refused with the limit.
    let mut deep = "gsd = 10".to_owned();
    for _ in 0..600 {
        deep = format!("({deep})");
    }
    let r = app
        .post(
            "/search",
            &json!({"filter": deep, "filter-lang": "cql2-text"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("at most"), "{}", r.text);
    let mut body = "1".to_owned();
    for _ in 0..5_000 {
        body = format!("[{body}]");
    }
    let r = app
        .send(
            axum::http::Request::post("/search")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(format!("{{\"filter\": {body}}}")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("at most"), "{}", r.text);

    // An `in` list of 10,000 values.
    let mut values: Vec<Value> = (0..10_000).map(|i| json!(format!("id-{i}"))).collect();
    values.push(json!("c"));
    let r = app
        .post(
            "/search",
            &json!({"filter": {"op": "in", "args": [{"property": "id"}, values]}}),
        )
        .await;
    assert_eq!(ids(&r.body), ["c"], "{}", &r.text[..r.text.len().min(300)]);
    let numbers: Vec<Value> = (0..10_000).map(|i| json!(i)).collect();
    let r = app.post("/search", &json!({"collections": ["sat"], "filter": {"op": "in", "args": [{"property": "eo:cloud_cover"}, numbers]}})).await;
    assert_eq!(sorted(ids(&r.body)), ["a", "b", "c", "e"]);
}

/// GET `uri` from `router`, expecting a 200 and JSON.
async fn get_from(router: &axum::Router, uri: &str) -> Value {
    let response = tower::ServiceExt::oneshot(
        router.clone(),
        axum::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "{uri}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn counts_say_when_they_are_estimates_and_context_on_is_exact() {
    let app = catalog().await;
    let r = app.get("/search?limit=1").await;
    assert_eq!(r.body["numberMatched"], 6);
    assert!(r.body.get("numberMatchedIsEstimate").is_none());
    let r = app.get("/search?limit=1&context=on&filter=gsd%3E0").await;
    assert_eq!(r.body["numberMatched"], 5);

    // A collection large enough for the planner to read the first page in
    // index order (no window count), and stores with lowered count limits
    // and time budgets over it.
    let mut seed = support::item("big", "seed", 5.0, 5.0, "2020-01-01T00:00:00Z");
    seed["properties"]["tile"] = json!("x");
    app.collection("big").await;
    app.items(vec![seed]).await;
    let n: i64 = 40_000;
    sqlx::query(
        "INSERT INTO items (collection, id, geometry, datetime, start_datetime, end_datetime, content, properties, links) \
         SELECT collection, id || '-' || g, geometry, datetime + g * interval '1 minute', \
                start_datetime + g * interval '1 minute', end_datetime + g * interval '1 minute', \
                jsonb_set(content::jsonb, '{id}', to_jsonb(id || '-' || g))::json, properties, links \
         FROM items, generate_series(1, $1) AS g WHERE collection = 'big' AND id = 'seed'",
    )
    .bind(n)
    .execute(&app.db.pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE items")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let total = n + 1;
    let router = |count_limit: u64, budget_ms: u64| {
        api::app(
            catalog::Store::new(app.db.pool.clone(), count_limit)
                .with_count_timeout(std::time::Duration::from_millis(budget_ms)),
            api::ServeConfig {
                public_url: Some("http://stac.test/api/".parse().unwrap()),
                ..api::ServeConfig::default()
            },
        )
    };
    let estimate = |body: &Value| body["numberMatchedIsEstimate"] == json!(true);
    // `tile = 'x'` reads a property without statistics: the planner expects
    // a small share of the rows (far fewer than match).
    let filtered = "/search?collections=big&limit=1&filter=tile%3D'x'";

    // The planner expects far more than twice the limit: its estimate is
    // answered at once, flagged, and carried to the following pages.
    let small = router(10, 10_000);
    let first = get_from(&small, "/search?collections=big&limit=1").await;
    assert!(estimate(&first), "{first}");
    let guess = first["numberMatched"].as_i64().unwrap();
    assert!(
        (total / 2..=total * 2).contains(&guess),
        "{guess} of {total}"
    );
    let next = link(&first, "next").unwrap();
    let second = get_from(&small, &local(next["href"].as_str().unwrap())).await;
    assert_eq!(second["numberMatched"], first["numberMatched"], "{second}");
    assert!(estimate(&second));

    // The planner expects fewer than twice the limit, so the capped count
    // runs, and finds more than the limit: one more than it, flagged.
    let capped = router(1_000, 10_000);
    let body = get_from(&capped, filtered).await;
    assert_eq!(body["numberMatched"], 1_001, "{body}");
    assert!(estimate(&body));

    // The capped count runs out of time: the planner's estimate stands.
    let hurried = router(1_000_000, 1);
    let body = get_from(&hurried, filtered).await;
    assert!(estimate(&body), "{body}");
    let guess = body["numberMatched"].as_i64().unwrap();
    assert!(guess < total && guess != 1_001, "{guess}");

    // Given the time, the same capped count is exact.
    let patient = router(1_000_000, 30_000);
    let body = get_from(&patient, filtered).await;
    assert_eq!(body["numberMatched"], total);
    assert!(body.get("numberMatchedIsEstimate").is_none(), "{body}");

    // `context=on` counts exactly however low the limits are.
    for uri in [
        format!("{filtered}&context=on"),
        "/search?collections=big&limit=1&context=on".to_owned(),
    ] {
        let body = get_from(&hurried, &uri).await;
        assert_eq!(body["numberMatched"], total, "{uri}");
        assert!(body.get("numberMatchedIsEstimate").is_none(), "{uri}");
        let body = get_from(&small, &uri).await;
        assert_eq!(body["numberMatched"], total, "{uri}");
    }
}

#[tokio::test]
async fn frequent_queryables_have_expression_indexes_the_compiler_matches() {
    let app = catalog().await;
    let store = app.db.store();
    let mut conn = app.db.pool.acquire().await.unwrap();
    // Forbid the scans that need no expression index, so the plan shows
    // whether the compiler's expression matches one.
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("SET enable_indexscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    for (filter, property) in [
        ("eo:cloud_cover < 20", "eo:cloud_cover"),
        ("platform = 'x'", "platform"),
        ("gsd = 10", "gsd"),
        ("proj:epsg = 32631", "proj:epsg"),
        ("proj:code = 'EPSG:32631'", "proj:code"),
    ] {
        let search = catalog::search::Search::from_params(&catalog::search::SearchParams {
            filter: Some(filter.to_owned()),
            ..Default::default()
        })
        .unwrap();
        let plan = store.explain(&search, &mut conn).await.unwrap();
        let indexed = plan
            .lines()
            .any(|l| l.contains("Index Cond") && l.contains(&format!("'{property}'")));
        assert!(indexed, "{filter}: {plan}");
    }
    // Sorting by cloud cover reads its index in order: no sort step.
    sqlx::query("SET enable_indexscan = on")
        .execute(&mut *conn)
        .await
        .unwrap();
    let search = catalog::search::Search::from_params(&catalog::search::SearchParams {
        sortby: Some("eo:cloud_cover".to_owned()),
        ..Default::default()
    })
    .unwrap();
    let plan = store.explain(&search, &mut conn).await.unwrap();
    assert!(
        plan.contains("Index Scan") && !plan.contains("Sort  ("),
        "{plan}"
    );
}
