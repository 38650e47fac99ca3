//! The read side of the STAC API against a real PostGIS.

#![allow(clippy::unwrap_used, reason = "test code")]

mod support;

use std::collections::HashSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use support::{TestApp, ids, item, link, local};

async fn two_collections() -> TestApp {
    let app = TestApp::new().await;
    app.collection("s2").await;
    app.collection("l8").await;
    app.items(vec![
        item("s2", "a", 10.0, 50.0, "2024-01-01T00:00:00Z"),
        item("s2", "b", 11.0, 50.0, "2024-02-01T00:00:00Z"),
        item("s2", "c", -120.0, 35.0, "2024-03-01T00:00:00Z"),
        item("l8", "a", 10.0, 50.0, "2024-01-15T00:00:00Z"),
    ])
    .await;
    app
}

#[tokio::test]
async fn landing_page_links_everything_a_client_needs() {
    let app = two_collections().await;
    let r = app.get("/").await;
    assert_eq!(r.status, StatusCode::OK);
    let rels: Vec<&str> = r.body["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    for rel in [
        "self",
        "root",
        "conformance",
        "service-desc",
        "service-doc",
        "data",
        "search",
        "child",
        "http://www.opengis.net/def/rel/ogc/1.0/queryables",
        "http://www.opengis.net/def/rel/ogc/1.0/sortables",
    ] {
        assert!(rels.contains(&rel), "landing page lacks {rel}: {rels:?}");
    }
    let search_methods: HashSet<&str> = r.body["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["rel"] == "search")
        .map(|l| l["method"].as_str().unwrap())
        .collect();
    assert_eq!(search_methods, HashSet::from(["GET", "POST"]));
    assert_eq!(
        link(&r.body, "self").unwrap()["href"],
        "http://stac.test/api/"
    );
    let conforms: Vec<&str> = r.body["conformsTo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in [
        "https://api.stacspec.org/v1.0.0/core",
        "https://api.stacspec.org/v1.0.0/collections",
        "https://api.stacspec.org/v1.0.0/ogcapi-features",
        "https://api.stacspec.org/v1.0.0/item-search",
    ] {
        assert!(conforms.contains(&c), "missing {c}");
    }
    let c = app.get("/conformance").await;
    assert_eq!(c.body["conformsTo"], r.body["conformsTo"]);
}

#[tokio::test]
async fn openapi_document_declares_the_limit_qgis_reads() {
    let app = TestApp::new().await;
    let r = app.get("/api").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/vnd.oai.openapi+json")
    );
    assert_eq!(
        r.body["components"]["parameters"]["limit"]["schema"]["maximum"],
        catalog::search::MAX_LIMIT
    );
    let params = &r.body["paths"]["/collections/{collectionId}/items"]["get"]["parameters"];
    assert!(
        params
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["$ref"] == "#/components/parameters/limit")
    );
    let html = app.get("/api.html").await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(
        html.text.contains("fetch(\"api\")") && !html.text.contains("https://"),
        "the docs page must work offline"
    );
}

#[test]
fn committed_openapi_document_matches_the_code() {
    let committed =
        std::fs::read_to_string(support::fixture("../openapi/openapi.json")).unwrap_or_default();
    assert!(
        committed == api::openapi_json(),
        "openapi/openapi.json is out of date: run `arcolake openapi > openapi/openapi.json` and review the diff"
    );
}

#[tokio::test]
async fn collections_and_items_have_absolute_links() {
    let app = two_collections().await;
    let r = app.get("/collections").await;
    assert_eq!(r.status, StatusCode::OK);
    let ids: Vec<&str> = r.body["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["l8", "s2"]);
    let c = app.get("/collections/s2").await;
    assert_eq!(c.status, StatusCode::OK);
    assert_eq!(
        link(&c.body, "items").unwrap()["href"],
        "http://stac.test/api/collections/s2/items"
    );
    let i = app.get("/collections/s2/items/a").await;
    assert_eq!(i.status, StatusCode::OK);
    assert_eq!(i.headers["content-type"], "application/geo+json");
    for rel in ["self", "parent", "collection", "root"] {
        assert!(
            link(&i.body, rel).unwrap()["href"]
                .as_str()
                .unwrap()
                .starts_with("http://stac.test/api/")
        );
    }
    assert_eq!(i.body["collection"], "s2");
}

#[tokio::test]
async fn same_item_id_lives_in_two_collections() {
    let app = two_collections().await;
    let s2 = app.get("/collections/s2/items/a").await;
    let l8 = app.get("/collections/l8/items/a").await;
    assert_eq!(s2.body["properties"]["datetime"], "2024-01-01T00:00:00Z");
    assert_eq!(l8.body["properties"]["datetime"], "2024-01-15T00:00:00Z");
    let r = app.get("/search?ids=a").await;
    let mut found: Vec<(String, String)> = r.body["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["collection"].as_str().unwrap().into(),
                f["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("l8".to_owned(), "a".to_owned()),
            ("s2".to_owned(), "a".to_owned())
        ]
    );
}

#[tokio::test]
async fn unknown_things_are_404_with_a_json_body() {
    let app = two_collections().await;
    for uri in [
        "/collections/nope",
        "/collections/nope/items",
        "/collections/s2/items/nope",
        "/no/such/path",
    ] {
        let r = app.get(uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.body["code"], "NotFound", "{uri}: {}", r.text);
        assert!(r.body["description"].as_str().unwrap().len() > 5);
    }
}

#[tokio::test]
async fn search_filters_by_bbox_datetime_ids_collections_and_intersects() {
    let app = two_collections().await;
    let r = app.get("/search?bbox=9,49,12,51&collections=s2").await;
    assert_eq!(ids(&r.body), ["b", "a"], "sorted by datetime, newest first");
    assert_eq!(r.body["numberMatched"], 2);
    assert_eq!(r.body["numberReturned"], 2);
    let r = app
        .get("/search?datetime=2024-01-10T00:00:00Z/2024-02-10T00:00:00Z")
        .await;
    assert_eq!(ids(&r.body), ["b", "a"]);
    assert_eq!(r.body["features"][1]["collection"], "l8");
    let r = app.get("/search?datetime=../2024-01-01T00:00:00Z").await;
    assert_eq!(ids(&r.body), ["a"]);
    let r = app.get("/search?datetime=2024-02-15T00:00:00Z/..").await;
    assert_eq!(ids(&r.body), ["c"]);
    let r = app.get("/search?datetime=2024-02-01T00:00:00Z").await;
    assert_eq!(ids(&r.body), ["b"]);
    let r = app
        .post("/search", &json!({"intersects": {"type": "Point", "coordinates": [-120.0, 35.0]}, "collections": ["s2", "l8"]}))
        .await;
    assert_eq!(ids(&r.body), ["c"]);
    let r = app
        .get(&format!(
            "/search?intersects={}",
            urlencode(r#"{"type":"Point","coordinates":[11,50]}"#)
        ))
        .await;
    assert_eq!(ids(&r.body), ["b"]);
    let r = app
        .post(
            "/search",
            &json!({"ids": ["a", "c"], "collections": ["s2"]}),
        )
        .await;
    assert_eq!(ids(&r.body), ["c", "a"]);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn antimeridian_bbox_matches_items_on_both_sides() {
    let app = TestApp::new().await;
    app.collection("pacific").await;
    app.items(vec![
        item("pacific", "east", 179.5, -17.0, "2024-01-01T00:00:00Z"),
        item("pacific", "west", -179.5, -17.0, "2024-01-02T00:00:00Z"),
        item("pacific", "greenwich", 0.0, -17.0, "2024-01-03T00:00:00Z"),
    ])
    .await;
    let r = app.get("/search?bbox=179,-18,-179,-16").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(ids(&r.body), ["west", "east"]);
    let r = app
        .post("/search", &json!({"bbox": [179, -18, -179, -16]}))
        .await;
    assert_eq!(ids(&r.body), ["west", "east"]);
    let r = app.get("/search?bbox=-1,-18,1,-16").await;
    assert_eq!(ids(&r.body), ["greenwich"]);
}

#[tokio::test]
async fn three_dimensional_bbox_is_accepted() {
    let app = two_collections().await;
    let r = app.get("/search?bbox=9,49,-100,12,51,100").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(ids(&r.body), ["b", "a", "a"]);
    let r = app
        .post(
            "/search",
            &json!({"bbox": [9, 49, 0, 12, 51, 10], "collections": ["s2"]}),
        )
        .await;
    assert_eq!(ids(&r.body), ["b", "a"]);
}

#[tokio::test]
async fn null_datetime_items_match_by_their_range() {
    let app = TestApp::new().await;
    app.collection("ranges").await;
    let mut ranged = item("ranges", "month", 5.0, 5.0, "2020-01-01T00:00:00Z");
    ranged["properties"] = json!({"datetime": null, "start_datetime": "2020-03-01T00:00:00Z", "end_datetime": "2020-03-31T23:59:59Z"});
    app.items(vec![
        ranged,
        item("ranges", "instant", 5.0, 5.0, "2020-05-01T00:00:00Z"),
    ])
    .await;
    let r = app.get("/search?datetime=2020-03-15T00:00:00Z").await;
    assert_eq!(ids(&r.body), ["month"]);
    let r = app
        .get("/search?datetime=2020-03-31T00:00:00Z/2020-06-01T00:00:00Z")
        .await;
    assert_eq!(ids(&r.body), ["instant", "month"]);
    let r = app
        .get("/search?datetime=2020-04-01T00:00:00Z/2020-04-30T00:00:00Z")
        .await;
    assert!(ids(&r.body).is_empty());
    let got = app.get("/collections/ranges/items/month").await;
    assert!(
        got.body["properties"]["datetime"].is_null(),
        "datetime stays present, as null"
    );
}

#[tokio::test]
async fn bad_search_input_is_a_400_that_says_what_is_wrong() {
    let app = two_collections().await;
    let cases = [
        ("/search?bbox=1,2,3", "bbox"),
        ("/search?bbox=a,b,c,d", "bbox"),
        ("/search?bbox=0,10,1,5", "south"),
        ("/search?datetime=../..", "open at both ends"),
        ("/search?datetime=yesterday", "RFC 3339"),
        (
            "/search?datetime=2021-01-01T00:00:00Z/2020-01-01T00:00:00Z",
            "starts after",
        ),
        ("/search?limit=0", "limit"),
        ("/search?limit=-1", "limit"),
        ("/search?limit=ten", "limit"),
        ("/search?token=garbage", "token"),
        ("/search?intersects=%7Bnope", "intersects"),
        (
            "/search?intersects=%7B%22type%22%3A%22Polygon%22%2C%22coordinates%22%3A%5B%5B%5B0%2C0%5D%2C%5B1%2C0%5D%2C%5B1%2C1%5D%5D%5D%7D",
            "Polygon ring",
        ),
        ("/search?filter=nope%3C10", "nope"),
        ("/search?filter=eo:cloud_cover%3C'x'", "not a number"),
        ("/search?filter=(((", "cql2-text"),
        ("/search?filter-crs=EPSG:4326&filter=true", "filter-crs"),
        ("/search?sortby=-nope", "nope"),
        ("/search?sortby=geometry", "cannot sort"),
        ("/search?query=%7B", "query"),
        (
            "/search?query=%7B%22eo:cloud_cover%22:%7B%22near%22:1%7D%7D",
            "near",
        ),
        ("/collections/s2/items?bbox=1", "bbox"),
        ("/search?ids=a%00b", "invalid input"),
        ("/search?collections=s2%00", "invalid input"),
    ];
    for (uri, needle) in cases {
        let r = app.get(uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.text);
        assert_eq!(r.body["code"], "BadRequest", "{uri}");
        let d = r.body["description"].as_str().unwrap();
        assert!(d.contains(needle), "{uri}: {d:?} should mention {needle:?}");
    }
    for body in [
        json!({"bbox": [1, 2]}),
        json!({"limit": "x"}),
        json!({"intersects": {"type": "Point"}}),
        json!({"collections": 5}),
        json!({"fields": null}),
        json!({"filter": {"op": "frobnicate", "args": []}}),
        json!({"sortby": [{"field": "datetime", "direction": "sideways"}]}),
        json!([1]),
    ] {
        let r = app.post("/search", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.body["code"], "BadRequest");
    }
    let r = app
        .send(
            Request::post("/search")
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .send(
            Request::post("/search")
                .header("content-type", "text/plain")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.body["code"], "UnsupportedMediaType");
    let r = app
        .send(Request::delete("/search").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.body["code"], "MethodNotAllowed");
}

/// POST `ids` and `collections` are arrays (the spec); a string is read as
/// the GET form, comma-separated (stac-api-validator sends
/// `"collections": "<id>"`); anything else is a 400 naming the field.
#[tokio::test]
async fn post_search_lists_are_arrays_or_comma_separated_strings() {
    let app = two_collections().await;
    for (body, field) in [
        (json!({"ids": 5}), "ids"),
        (json!({"ids": {"a": 1}}), "ids"),
        (json!({"collections": true}), "collections"),
        (json!({"collections": ["s2", 1]}), "collections"),
    ] {
        let r = app.post("/search", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.body["code"], "BadRequest", "{body}");
        let d = r.body["description"].as_str().unwrap();
        assert!(d.contains(field), "{body}: {d:?} should name {field}");
    }
    let arrays = app
        .post(
            "/search",
            &json!({"ids": ["a", "b"], "collections": ["s2"]}),
        )
        .await;
    assert_eq!(arrays.status, StatusCode::OK, "{}", arrays.text);
    assert_eq!(ids(&arrays.body), ["b", "a"]);
    let strings = app
        .post("/search", &json!({"ids": "a,b", "collections": "s2"}))
        .await;
    assert_eq!(strings.status, StatusCode::OK, "{}", strings.text);
    assert_eq!(ids(&strings.body), ["b", "a"]);
    // The GET form is comma-separated, as the spec defines it.
    let r = app.get("/search?ids=a,b&collections=s2").await;
    assert_eq!(ids(&r.body), ["b", "a"]);
}

#[tokio::test]
async fn get_and_post_are_read_by_one_parser() {
    let app = two_collections().await;
    // The same search both ways: the same answer, or the same 400 in the
    // same words.
    let cases = [
        (
            "bbox=9,49,12,51&collections=s2",
            json!({"bbox": [9, 49, 12, 51], "collections": ["s2"]}),
        ),
        ("ids=a,c&limit=1", json!({"ids": ["a", "c"], "limit": 1})),
        (
            "datetime=2024-02-01T00:00:00Z&limit=",
            json!({"datetime": "2024-02-01T00:00:00Z", "limit": null}),
        ),
        (
            "sortby=-id,collection&q=",
            json!({"sortby": [{"field": "id", "direction": "desc"}, {"field": "collection"}], "q": null}),
        ),
        (
            "filter=id%3D'a'&filter-lang=cql2-text",
            json!({"filter": "id='a'", "filter-lang": "cql2-text"}),
        ),
        (
            "query=%7B%22id%22%3A%7B%22eq%22%3A%22b%22%7D%7D",
            json!({"query": {"id": {"eq": "b"}}}),
        ),
        ("bbox=1,2,3", json!({"bbox": [1, 2, 3]})),
        ("limit=0", json!({"limit": 0})),
        ("datetime=yesterday", json!({"datetime": "yesterday"})),
        (
            "sortby=-nope",
            json!({"sortby": [{"field": "nope", "direction": "desc"}]}),
        ),
        ("token=garbage", json!({"token": "garbage"})),
        (
            "filter-crs=EPSG:4326&filter=true",
            json!({"filter-crs": "EPSG:4326", "filter": true}),
        ),
        (
            "query=%7B%22gsd%22%3A%7B%22near%22%3A1%7D%7D",
            json!({"query": {"gsd": {"near": 1}}}),
        ),
    ];
    for (query, body) in cases {
        let got = app.get(&format!("/search?{query}")).await;
        let posted = app.post("/search", &body).await;
        assert_eq!(
            got.status, posted.status,
            "{query} / {body}: {} / {}",
            got.text, posted.text
        );
        if got.status == StatusCode::OK {
            assert_eq!(ids(&got.body), ids(&posted.body), "{query} / {body}");
            assert_eq!(got.body["numberMatched"], posted.body["numberMatched"]);
        } else {
            assert_eq!(
                got.body["description"], posted.body["description"],
                "{query} / {body}"
            );
        }
    }
    // Collection search reads its members with the same parser.
    for (query, body) in [
        ("bbox=1,2,3", json!({"bbox": [1, 2, 3]})),
        ("limit=0", json!({"limit": 0})),
        ("datetime=yesterday", json!({"datetime": "yesterday"})),
        ("token=garbage", json!({"token": "garbage"})),
        ("sortby=-id&limit=1", json!({"sortby": "-id", "limit": "1"})),
    ] {
        let got = app.get(&format!("/collections?{query}")).await;
        let posted = app.post("/collections-search", &body).await;
        assert_eq!(
            got.status, posted.status,
            "{query} / {body}: {} / {}",
            got.text, posted.text
        );
        if got.status == StatusCode::OK {
            assert_eq!(
                got.body["collections"][0]["id"],
                posted.body["collections"][0]["id"]
            );
        } else {
            let search = app.get(&format!("/search?{query}")).await;
            assert_eq!(
                got.body["description"], posted.body["description"],
                "{query}"
            );
            assert_eq!(
                got.body["description"], search.body["description"],
                "{query}"
            );
        }
    }
}

#[tokio::test]
async fn large_limits_are_clamped_not_refused() {
    let app = two_collections().await;
    let r = app.get("/search?limit=1000000").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["numberReturned"], 4);
}

#[tokio::test]
async fn items_carry_etags_and_answer_if_none_match_with_304() {
    let app = two_collections().await;
    let r = app.get("/collections/s2/items/a").await;
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    let again = app
        .send(
            Request::get("/collections/s2/items/a")
                .header("if-none-match", &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    let c = app.get("/collections/s2").await;
    let etag = c.headers["etag"].to_str().unwrap().to_owned();
    let again = app
        .send(
            Request::get("/collections/s2")
                .header("if-none-match", &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn reads_allow_cross_origin_requests_and_compress() {
    let app = two_collections().await;
    let r = app
        .send(
            Request::get("/search")
                .header("origin", "https://notebook.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    let response = tower::ServiceExt::oneshot(
        app.router.clone(),
        Request::get("/search?limit=100")
            .header("accept-encoding", "gzip")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn forwarded_headers_count_only_behind_a_trusted_proxy() {
    let trusting = TestApp::with_settings(api::ServeConfig {
        trust_proxy: true,
        ..api::ServeConfig::default()
    })
    .await;
    let request = || {
        Request::get("/")
            .header("host", "internal:8080")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "stac.example.org")
            .header("x-forwarded-prefix", "/stac")
            .body(Body::empty())
            .unwrap()
    };
    let r = trusting.send(request()).await;
    assert_eq!(
        link(&r.body, "self").unwrap()["href"],
        "https://stac.example.org/stac/"
    );
    let plain = TestApp::with_settings(api::ServeConfig::default()).await;
    let r = plain.send(request()).await;
    assert_eq!(
        link(&r.body, "self").unwrap()["href"],
        "http://internal:8080/"
    );
    let r = plain
        .send(
            Request::get("/")
                .header("forwarded", "proto=https;host=evil.example")
                .header("host", "h:1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(link(&r.body, "self").unwrap()["href"], "http://h:1/");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::new().await;
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    let r = app.get("/readyz").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["database"], "ok");
}

#[tokio::test]
async fn collection_items_first_page_always_counts() {
    let app = two_collections().await;
    let r = app.get("/collections/s2/items?limit=1").await;
    assert_eq!(r.body["numberMatched"], 3);
    assert_eq!(r.body["numberReturned"], 1);
    let next = link(&r.body, "next").unwrap();
    let r2 = app.get(&local(next["href"].as_str().unwrap())).await;
    assert_eq!(r2.status, StatusCode::OK);
    assert_eq!(ids(&r2.body), ["b"]);
    assert!(link(&r2.body, "prev").is_some());
    assert_eq!(
        link(&r2.body, "collection").unwrap()["href"],
        "http://stac.test/api/collections/s2"
    );
}

#[tokio::test]
async fn a_long_span_written_later_is_still_found_mid_span() {
    let app = TestApp::new().await;
    app.collection("spans").await;
    app.items(vec![item(
        "spans",
        "short",
        5.0,
        5.0,
        "2020-06-15T00:00:00Z",
    )])
    .await;
    let mut long = item("spans", "year", 5.0, 5.0, "2020-01-01T00:00:00Z");
    long["properties"] = json!({"datetime": null, "start_datetime": "2019-01-01T00:00:00Z", "end_datetime": "2021-12-31T00:00:00Z"});
    let r = app
        .write(
            "PUT",
            "/collections/spans/items/short",
            Some(&{
                let mut s = long.clone();
                s["id"] = json!("short");
                s
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .get("/search?datetime=2020-06-01T00:00:00Z/2020-06-02T00:00:00Z&collections=spans")
        .await;
    assert_eq!(
        ids(&r.body),
        ["short"],
        "an item replaced with a 3-year span matches mid-span"
    );
    let r = app
        .write("POST", "/collections/spans/items", Some(&long))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app.get("/search?datetime=2021-06-01T00:00:00Z").await;
    assert_eq!(ids(&r.body), ["year", "short"]);
}
