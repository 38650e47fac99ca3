//! The transaction extension against a real PostGIS.

#![allow(clippy::unwrap_used, reason = "test code")]

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use support::{TestApp, collection, ids, item};

async fn count(app: &TestApp, collection: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM items WHERE collection = $1")
        .bind(collection)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn writes_need_the_admin_token() {
    let app = TestApp::new().await;
    let body = collection("c").to_string();
    let r = app
        .send(
            Request::post("/collections")
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["code"], "Unauthorized");
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let r = app
        .send(
            Request::post("/collections")
                .header("content-type", "application/json")
                .header("authorization", "Bearer wrong")
                .body(Body::from(body.clone()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let closed = TestApp::with_settings(api::ServeConfig::default()).await;
    let r = closed
        .write("POST", "/collections", Some(&collection("c")))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body["description"]
            .as_str()
            .unwrap()
            .contains("ARCOLAKE_ADMIN_TOKEN")
    );
    assert_eq!(
        closed.get("/collections/c").await.status,
        StatusCode::NOT_FOUND,
        "nothing was written"
    );
}

#[tokio::test]
async fn collection_lifecycle_create_replace_patch_delete() {
    let app = TestApp::new().await;
    let r = app
        .write("POST", "/collections", Some(&collection("c")))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.headers["location"], "http://stac.test/api/collections/c");
    let r = app
        .write("POST", "/collections", Some(&collection("c")))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["code"], "Conflict");

    let mut replaced = collection("c");
    replaced["title"] = json!("Replaced");
    let r = app.write("PUT", "/collections/c", Some(&replaced)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get("/collections/c").await.body["title"], "Replaced");
    let r = app
        .write("PUT", "/collections/other", Some(&replaced))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "id mismatch");
    let r = app
        .write("PUT", "/collections/missing", Some(&collection("missing")))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = app
        .write(
            "PATCH",
            "/collections/c",
            Some(&json!({"title": "Patched", "keywords": ["a"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got = app.get("/collections/c").await.body;
    assert_eq!(
        (got["title"].clone(), got["keywords"].clone()),
        (json!("Patched"), json!(["a"]))
    );
    let r = app
        .write("PATCH", "/collections/c", Some(&json!({"extent": null})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["description"].as_str().unwrap().contains("extent"));

    app.items(vec![item("c", "i1", 1.0, 1.0, "2024-01-01T00:00:00Z")])
        .await;
    let r = app.write("DELETE", "/collections/c", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/collections/c").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/collections/c/items/i1").await.status,
        StatusCode::NOT_FOUND
    );
    let partitions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'items'::regclass")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(partitions, 0, "the partition went with the collection");
    assert_eq!(
        app.write("DELETE", "/collections/c", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn invalid_documents_are_400s_that_name_the_field() {
    let app = TestApp::new().await;
    app.collection("c").await;
    let mut no_license = collection("x");
    no_license.as_object_mut().unwrap().remove("license");
    let r = app.write("POST", "/collections", Some(&no_license)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["description"].as_str().unwrap().contains("license"),
        "{}",
        r.text
    );

    // A valid item with one part made wrong, and the field the 400 must name.
    let altered = |change: fn(&mut Value)| {
        let mut i = item("c", "x", 0.0, 0.0, "2024-01-01T00:00:00Z");
        change(&mut i);
        i
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"type": "Feature"}), "id"),
        (
            altered(|i| i["properties"]["datetime"] = json!("soon")),
            "properties.datetime",
        ),
        (
            altered(|i| i["properties"]["datetime"] = Value::Null),
            "start_datetime",
        ),
        (
            altered(|i| {
                i["geometry"] = json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]});
            }),
            "geometry",
        ),
        (altered(|i| i["collection"] = json!("other")), "collection"),
        (altered(|i| i["assets"] = json!([])), "assets"),
        (altered(|i| i["bbox"] = json!([1, 2])), "bbox"),
        (
            altered(|i| i["properties"]["note"] = json!("a\u{0}b")),
            "properties.note",
        ),
    ];
    for (body, field) in cases {
        let r = app.write("POST", "/collections/c/items", Some(&body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(
            r.body["description"].as_str().unwrap().contains(field),
            "{field}: {}",
            r.text
        );
    }
    assert_eq!(count(&app, "c").await, 0);
}

#[tokio::test]
async fn item_lifecycle_create_replace_patch_delete() {
    let app = TestApp::new().await;
    app.collection("c").await;
    let body = item("c", "i", 1.0, 2.0, "2024-01-01T00:00:00Z");
    let r = app.write("POST", "/collections/c/items", Some(&body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.headers["location"],
        "http://stac.test/api/collections/c/items/i"
    );
    assert_eq!(
        app.write("POST", "/collections/c/items", Some(&body))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.write("POST", "/collections/nope/items", Some(&body))
            .await
            .status,
        StatusCode::BAD_REQUEST,
        "collection mismatch"
    );
    let mut elsewhere = body.clone();
    elsewhere.as_object_mut().unwrap().remove("collection");
    assert_eq!(
        app.write("POST", "/collections/nope/items", Some(&elsewhere))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let mut moved = item("c", "i", 50.0, 50.0, "2024-06-01T00:00:00Z");
    moved["properties"]["title"] = json!("moved");
    let r = app
        .write("PUT", "/collections/c/items/i", Some(&moved))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        ids(&app.get("/search?bbox=49,49,51,51").await.body),
        ["i"],
        "geometry column follows the document"
    );
    assert!(ids(&app.get("/search?bbox=0,1,2,3").await.body).is_empty());
    assert_eq!(
        app.write("PUT", "/collections/c/items/j", Some(&moved))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.write(
            "PUT",
            "/collections/c/items/missing",
            Some(&item("c", "missing", 0.0, 0.0, "2024-01-01T00:00:00Z"))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    let r = app
        .write(
            "PATCH",
            "/collections/c/items/i",
            Some(&json!({"properties": {"eo:cloud_cover": 99, "title": null}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got = app.get("/collections/c/items/i").await.body;
    assert_eq!(got["properties"]["eo:cloud_cover"], 99);
    assert!(got["properties"].get("title").is_none());
    let r = app
        .write(
            "PATCH",
            "/collections/c/items/i",
            Some(&json!({"properties": {"datetime": "tomorrow"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    assert_eq!(
        app.write("DELETE", "/collections/c/items/i", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.write("DELETE", "/collections/c/items/i", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(count(&app, "c").await, 0);
}

#[tokio::test]
async fn bulk_item_collection_is_all_or_nothing() {
    let app = TestApp::new().await;
    app.collection("c").await;
    let good: Vec<Value> = (0..50)
        .map(|i| item("c", &format!("i{i}"), 1.0, 1.0, "2024-01-01T00:00:00Z"))
        .collect();
    let mut with_bad = good.clone();
    with_bad[37]["properties"]["datetime"] = json!("not a date");
    let r = app
        .write(
            "POST",
            "/collections/c/items",
            Some(&json!({"type": "FeatureCollection", "features": with_bad})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["description"]
            .as_str()
            .unwrap()
            .contains("features[37]"),
        "{}",
        r.text
    );
    assert_eq!(count(&app, "c").await, 0, "nothing written");

    app.items(vec![item("c", "i20", 1.0, 1.0, "2023-01-01T00:00:00Z")])
        .await;
    let r = app
        .write(
            "POST",
            "/collections/c/items",
            Some(&json!({"type": "FeatureCollection", "features": good})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        r.body["description"].as_str().unwrap().contains("i20"),
        "{}",
        r.text
    );
    assert_eq!(
        count(&app, "c").await,
        1,
        "the batch rolled back, the old item is intact"
    );
    assert_eq!(
        app.get("/collections/c/items/i20").await.body["properties"]["datetime"],
        "2023-01-01T00:00:00Z"
    );

    app.write("DELETE", "/collections/c/items/i20", None).await;
    let r = app
        .write(
            "POST",
            "/collections/c/items",
            Some(&json!({"type": "FeatureCollection", "features": good})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["inserted"], 50);
    assert_eq!(count(&app, "c").await, 50);
}

#[tokio::test]
async fn oversized_and_non_json_bodies_are_refused_cleanly() {
    let app = TestApp::with_settings(api::ServeConfig {
        admin_token: Some(support::TOKEN.into()),
        body_limit: 4096,
        ..api::ServeConfig::default()
    })
    .await;
    let big = json!({"type": "FeatureCollection", "features": vec![item("c", "x", 0.0, 0.0, "2024-01-01T00:00:00Z"); 20]});
    let r = app.write("POST", "/collections/c/items", Some(&big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.body["code"], "PayloadTooLarge");
    let r = app
        .send(
            Request::post("/collections")
                .header("authorization", format!("Bearer {}", support::TOKEN))
                .header("content-type", "application/xml")
                .body(Body::from("<collection/>"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.body["code"], "UnsupportedMediaType");
}
