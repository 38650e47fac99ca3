#![allow(clippy::unwrap_used, reason = "test code")]
//! Boxes QGIS and map clients send: a box around the world filters nothing
//! but items without a footprint, and box searches answer the same however
//! often the same statement runs (no switch to a generic plan changes them).

mod support;

use serde_json::{Value, json};
use support::{TestApp, ids, item};

async fn app_with_items() -> TestApp {
    let app = TestApp::new().await;
    app.collection("c").await;
    let mut items: Vec<Value> = (0..60)
        .map(|i| {
            let lon = f64::from(i * 6) - 177.0;
            item(
                "c",
                &format!("i{i:02}"),
                lon,
                f64::from(i % 40) - 20.0,
                &format!("2024-01-{:02}T00:00:00Z", i % 28 + 1),
            )
        })
        .collect();
    let mut bare = item("c", "no-footprint", 0.0, 0.0, "2024-02-01T00:00:00Z");
    bare["geometry"] = Value::Null;
    bare.as_object_mut().unwrap().remove("bbox");
    items.push(bare);
    app.items(items).await;
    app
}

#[tokio::test]
async fn a_world_box_matches_every_item_with_a_footprint_in_the_unboxed_order() {
    let app = app_with_items().await;
    let all = ids(&app.get("/search?collections=c&limit=100").await.body);
    assert_eq!(all.len(), 61);
    let with_footprint: Vec<String> = all.into_iter().filter(|i| i != "no-footprint").collect();
    for uri in [
        "/search?collections=c&limit=100&bbox=-180,-90,180,90",
        "/collections/c/items?limit=100&bbox=-180,-90,180,90",
        "/search?collections=c&limit=100&bbox=-180,-90,-1000,180,90,1000",
    ] {
        let r = app.get(uri).await;
        assert_eq!(ids(&r.body), with_footprint, "{uri}: {}", r.text);
    }
    let r = app
        .post(
            "/search",
            &json!({"collections": ["c"], "limit": 100, "bbox": [-180, -90, 180, 90]}),
        )
        .await;
    assert_eq!(ids(&r.body), with_footprint);
}

#[tokio::test]
async fn box_searches_answer_the_same_on_every_execution() {
    let app = app_with_items().await;
    // Western half, eastern half, and a box across the antimeridian; each
    // asked more often than PostgreSQL needs to switch to a generic plan.
    for (bbox, expect) in [
        ("-180,-90,0,90", 30),
        ("0,-90,180,90", 30),
        ("170,-90,-170,90", 4),
    ] {
        let uri = format!("/search?collections=c&limit=100&bbox={bbox}");
        let first = ids(&app.get(&uri).await.body);
        assert_eq!(first.len(), expect, "{bbox}: {first:?}");
        for _ in 0..8 {
            assert_eq!(ids(&app.get(&uri).await.body), first, "{bbox}");
        }
    }
}
