#![allow(clippy::unwrap_used, reason = "test code")]
//! No input gets a 500: coordinates that are not longitude/latitude, inputs
//! PostGIS cannot compute with, searches past the statement timeout, and
//! single-item writes that keep the catalog's bookkeeping in step.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{TestApp, item};

fn assert_exception(r: &support::Reply, status: StatusCode, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert!(r.body["code"].is_string(), "{}", r.text);
    let d = r.body["description"].as_str().unwrap();
    assert!(d.contains(needle), "{needle:?} not in {d:?}");
}

#[tokio::test]
async fn projected_coordinates_are_a_400_that_names_the_field() {
    let app = TestApp::new().await;
    app.collection("c").await;
    let mut it = item("c", "utm", 10.0, 50.0, "2024-01-01T00:00:00Z");
    it["geometry"] = json!({"type": "Point", "coordinates": [500_000.0, 5_500_000.0]});
    it["bbox"] = json!([500_000.0, 5_500_000.0, 500_000.0, 5_500_000.0]);
    let r = app.write("POST", "/collections/c/items", Some(&it)).await;
    assert_exception(&r, StatusCode::BAD_REQUEST, "geometry");
    assert!(
        r.body["description"]
            .as_str()
            .unwrap()
            .contains("longitude 500000")
    );
    let mut it = item("c", "bad-bbox", 10.0, 50.0, "2024-01-01T00:00:00Z");
    it["bbox"] = json!([500_000.0, 5_500_000.0, 500_100.0, 5_500_100.0]);
    let r = app.write("POST", "/collections/c/items", Some(&it)).await;
    assert_exception(&r, StatusCode::BAD_REQUEST, "bbox");
    // A PUT and a PATCH are checked the same way.
    let ok = item("c", "ok", 10.0, 50.0, "2024-01-01T00:00:00Z");
    assert_eq!(
        app.write("POST", "/collections/c/items", Some(&ok))
            .await
            .status,
        StatusCode::CREATED
    );
    let patch = json!({"geometry": {"type": "Point", "coordinates": [10.0, 91.0]}});
    let r = app
        .write("PATCH", "/collections/c/items/ok", Some(&patch))
        .await;
    assert_exception(&r, StatusCode::BAD_REQUEST, "latitude 91");
    // The geohash aggregation over what was accepted answers.
    let r = app
        .get("/aggregate?aggregations=grid_geohash_frequency&grid_geohash_frequency_precision=5")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn spatial_inputs_postgis_cannot_compute_are_400s() {
    let app = TestApp::new().await;
    app.collection("c").await;
    app.items(vec![item("c", "a", 10.0, 50.0, "2024-01-01T00:00:00Z")])
        .await;
    // A self-intersecting ("bow-tie") polygon inside a GEOMETRYCOLLECTION:
    // GEOS raises a TopologyException, which PostGIS reports as XX000.
    let bowtie = "GEOMETRYCOLLECTION(POLYGON((9 49, 11 51, 11 49, 9 51, 9 49)))";
    for op in ["S_DISJOINT", "S_CROSSES"] {
        let filter = format!("{op}(geometry, {bowtie})");
        let r = app
            .post(
                "/search",
                &json!({"filter-lang": "cql2-text", "filter": filter}),
            )
            .await;
        assert_exception(&r, StatusCode::BAD_REQUEST, "spatial operation");
        let r = app
            .post(
                "/aggregate",
                &json!({"filter-lang": "cql2-text", "filter": filter, "aggregations": ["total_count"]}),
            )
            .await;
        assert_exception(&r, StatusCode::BAD_REQUEST, "spatial operation");
    }
}

#[tokio::test]
async fn a_search_past_the_statement_timeout_is_a_503_with_retry_after() {
    let app = TestApp::new().await;
    app.collection("c").await;
    let items: Vec<Value> = (0..3000)
        .map(|i| {
            item(
                "c",
                &format!("i{i}"),
                f64::from(i % 360) - 179.5,
                f64::from(i % 170) - 84.5,
                "2024-01-01T00:00:00Z",
            )
        })
        .collect();
    app.items(items).await;
    // The same catalog, served with a statement timeout no query can meet.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(
            app.db
                .options
                .clone()
                .options([("statement_timeout", "1ms")]),
        )
        .await
        .unwrap();
    let router = api::app(
        catalog::Store::new(pool, 10_000),
        api::ServeConfig::default(),
    );
    let slow = TestApp {
        router,
        db: support::TestDb::new().await,
    };
    let body = json!({
        "filter-lang": "cql2-text",
        "filter": "S_INTERSECTS(geometry, POLYGON((-170 -80, 170 -80, 170 80, -170 80, -170 -80))) AND \"eo:cloud_cover\" IS NULL",
        "sortby": [{"field": "id", "direction": "desc"}],
        "limit": 1000,
        "context": true
    });
    let r = slow.post("/search", &body).await;
    assert_exception(&r, StatusCode::SERVICE_UNAVAILABLE, "try again");
    assert!(r.headers.get("retry-after").is_some(), "{:?}", r.headers);
}

#[tokio::test]
async fn long_span_items_written_one_by_one_are_found_by_datetime() {
    let app = TestApp::new().await;
    app.collection("c").await;
    let mut long = item("c", "decade", 10.0, 50.0, "2010-01-01T00:00:00Z");
    long["properties"] = json!({
        "datetime": null,
        "start_datetime": "2010-01-01T00:00:00Z",
        "end_datetime": "2020-01-01T00:00:00Z",
        "my:score": 3
    });
    assert_eq!(
        app.write("POST", "/collections/c/items", Some(&long))
            .await
            .status,
        StatusCode::CREATED
    );
    let r = app
        .get("/search?datetime=2015-06-01T00:00:00Z&collections=c")
        .await;
    assert_eq!(support::ids(&r.body), ["decade"], "{}", r.text);
    // A PUT that widens the span and a PATCH that widens it again.
    long["properties"]["start_datetime"] = json!("2000-01-01T00:00:00Z");
    assert_eq!(
        app.write("PUT", "/collections/c/items/decade", Some(&long))
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .get("/search?datetime=2005-06-01T00:00:00Z&collections=c")
        .await;
    assert_eq!(support::ids(&r.body), ["decade"], "{}", r.text);
    let patch = json!({"properties": {"start_datetime": "1990-01-01T00:00:00Z"}});
    assert_eq!(
        app.write("PATCH", "/collections/c/items/decade", Some(&patch))
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .get("/search?datetime=1995-06-01T00:00:00Z&collections=c")
        .await;
    assert_eq!(support::ids(&r.body), ["decade"], "{}", r.text);
    // The property written by the PATCH is a queryable at once.
    let r = app
        .get("/search?filter=%22my:score%22%3D3&collections=c")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}
