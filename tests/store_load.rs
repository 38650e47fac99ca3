//! Bulk loading from disk into a real PostGIS.

#![allow(clippy::unwrap_used, reason = "test code")]

mod support;

use support::{TestDb, collection, item};

#[tokio::test]
async fn ndjson_with_collections_and_items_loads_in_order_and_reports_bad_lines() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.ndjson");
    let mut lines = vec![collection("first").to_string()];
    lines
        .extend((0..1200).map(|i| {
            item("first", &format!("a{i}"), 1.0, 1.0, "2024-01-01T00:00:00Z").to_string()
        }));
    lines.push("{broken".into());
    lines.push(item("missing", "x", 0.0, 0.0, "2024-01-01T00:00:00Z").to_string());
    lines.push(collection("second").to_string());
    lines.push(item("second", "b", 1.0, 1.0, "2024-01-01T00:00:00Z").to_string());
    std::fs::write(&path, lines.join("\n")).unwrap();

    let store = db.store();
    let report = catalog::load::load_paths(&store, vec![path.clone()], 500)
        .await
        .unwrap();
    assert_eq!(report.collections, 2);
    assert_eq!(report.items_inserted, 1201);
    assert_eq!(report.failures.len(), 2, "{:?}", report.failures);
    assert!(
        report
            .failures
            .iter()
            .any(|(p, _)| p.ends_with("mixed.ndjson:1202")),
        "{:?}",
        report.failures
    );
    assert!(
        report.failures.iter().any(|(_, r)| r.contains("missing")),
        "{:?}",
        report.failures
    );

    let again = catalog::load::load_paths(&store, vec![path], 500)
        .await
        .unwrap();
    assert_eq!(
        (again.items_inserted, again.items_updated),
        (0, 1201),
        "a second load upserts"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 1201);
}

#[tokio::test]
async fn static_catalog_is_followed_through_child_and_item_links() {
    let db = TestDb::new().await;
    let report =
        catalog::load::load_paths(&db.store(), vec![support::fixture("stac/catalog.json")], 7)
            .await
            .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!((report.collections, report.items_inserted), (2, 40));
    let links: Option<String> =
        sqlx::query_scalar("SELECT links::text FROM collections WHERE id = 'sentinel-2-l2a'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let links = links.unwrap_or_default();
    assert!(
        links.contains("license") && !links.contains("\"item\""),
        "static-catalog structure links are dropped: {links}"
    );
}
