//! Bulk loading from disk into a real PostGIS.

#![allow(clippy::unwrap_used, reason = "test code")]

mod support;

use std::path::{Path, PathBuf};

use catalog::CollectionId;
use catalog::load::{LoadOptions, LoadReport};
use support::{TestDb, collection, item};

fn options(batch_size: usize) -> LoadOptions {
    LoadOptions {
        batch_size: batch_size.try_into().unwrap(),
        ..LoadOptions::default()
    }
}

async fn load(db: &TestDb, paths: &[PathBuf], options: &LoadOptions) -> LoadReport {
    catalog::load::load(&db.store(), paths.to_vec(), options)
        .await
        .unwrap()
}

async fn ids(db: &TestDb, collection: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT id FROM items WHERE collection = $1 ORDER BY id")
        .bind(collection)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

fn write_lines(path: &Path, docs: &[serde_json::Value]) {
    let text: Vec<String> = docs.iter().map(ToString::to_string).collect();
    std::fs::write(path, text.join("\n")).unwrap();
}

fn places(report: &LoadReport) -> Vec<String> {
    report
        .failures
        .iter()
        .map(catalog::load::Failure::place)
        .collect()
}

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
            .any(|f| f.place().ends_with("mixed.ndjson:1202") && f.line == Some(1202)),
        "{:?}",
        report.failures
    );
    assert!(
        report.failures.iter().any(|f| f.reason.contains("missing")),
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

#[tokio::test]
async fn a_directory_with_a_root_collection_loads_its_sibling_and_geojson_items_once() {
    let db = TestDb::new().await;
    // A batch of one: an item loaded twice would count as an update.
    let report = load(&db, &[support::fixture("load/siblings")], &options(1)).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.collections, 1);
    assert_eq!((report.items_inserted, report.items_updated), (5, 0));
    assert_eq!(
        ids(&db, "siblings").await,
        ["deep", "linked", "more-1", "more-2", "sibling"]
    );
}

#[tokio::test]
async fn static_catalog_directory_and_its_root_given_together_load_each_item_once() {
    let db = TestDb::new().await;
    let paths = [
        support::fixture("stac"),
        support::fixture("stac/catalog.json"),
        support::fixture("stac/sentinel-2-l2a/collection.json"),
    ];
    let report = load(&db, &paths, &options(1)).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        (
            report.collections,
            report.items_inserted,
            report.items_updated
        ),
        (2, 40, 0)
    );
}

#[tokio::test]
async fn items_without_a_collection_take_the_one_given_and_others_are_reported() {
    let db = TestDb::new().await;
    let dir = support::fixture("load/no-collection");
    let without = load(&db, std::slice::from_ref(&dir), &options(100)).await;
    assert_eq!(without.items_inserted, 0);
    assert!(
        without
            .failures
            .iter()
            .all(|f| f.reason.contains("--collection") || f.reason.contains("elsewhere")),
        "{:?}",
        without.failures
    );
    assert_eq!(without.failures.len(), 7, "{:?}", without.failures);

    let given = LoadOptions {
        collection: Some(CollectionId::new("plain").unwrap()),
        ..options(100)
    };
    let report = load(&db, &[dir], &given).await;
    assert_eq!(report.items_inserted, 6, "{:?}", report.failures);
    assert_eq!(
        ids(&db, "plain").await,
        ["fc-1", "fc-2", "fc-4", "nd-1", "nd-2", "nd-3"]
    );
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let f = &report.failures[0];
    assert!(
        f.file.ends_with("items.geojson") && f.line == Some(60),
        "the failure names the file and the line the feature starts on: {f:?}"
    );
    assert_eq!(f.pointer.as_deref(), Some("features[2]"));
    assert!(
        f.reason.contains("\"elsewhere\"") && f.reason.contains("--collection"),
        "{f:?}"
    );
    let stored: String = sqlx::query_scalar(
        "SELECT content->>'collection' FROM items WHERE collection = 'plain' AND id = 'nd-1'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(stored, "plain");
}

#[tokio::test]
async fn a_collection_given_that_does_not_exist_stops_the_load() {
    let db = TestDb::new().await;
    let given = LoadOptions {
        collection: Some(CollectionId::new("nowhere").unwrap()),
        ..options(100)
    };
    let result = catalog::load::load(
        &db.store(),
        vec![support::fixture("load/no-collection/items.ndjson")],
        &given,
    )
    .await;
    assert!(
        matches!(result, Err(catalog::Error::CollectionNotFound { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn items_given_before_their_collection_load_because_collections_are_read_first() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let items = dir.path().join("items.ndjson");
    write_lines(
        &items,
        &[
            item("later", "a", 0.0, 0.0, "2024-01-01T00:00:00Z"),
            item("later", "b", 0.0, 0.0, "2024-01-01T00:00:00Z"),
        ],
    );
    let single = dir.path().join("single.json");
    std::fs::write(
        &single,
        item("later", "c", 0.0, 0.0, "2024-01-01T00:00:00Z").to_string(),
    )
    .unwrap();
    let coll = dir.path().join("z-collection.ndjson");
    write_lines(&coll, &[collection("later")]);
    let report = load(&db, &[items, single, coll], &options(100)).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!((report.collections, report.items_inserted), (1, 3));
}

#[tokio::test]
async fn batch_size_bounds_the_items_of_each_transaction() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("five.ndjson");
    let mut docs = vec![collection("b")];
    docs.extend((0..5).map(|i| item("b", &format!("i{i}"), 0.0, 0.0, "2024-01-01T00:00:00Z")));
    write_lines(&path, &docs);
    let report = load(&db, &[path], &options(2)).await;
    assert_eq!(report.items_inserted, 5, "{:?}", report.failures);
    // Rows written by one transaction share its id (xmin).
    let sizes: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM items WHERE collection = 'b' \
         GROUP BY xmin::text ORDER BY min(id)",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(sizes, [2, 2, 1], "items per transaction");
}

/// Make the database refuse the item with id `poison`, as it refuses input
/// that validation cannot foresee.
async fn poison(db: &TestDb) {
    sqlx::query(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.id = 'poison' THEN RAISE EXCEPTION 'poisoned item'; END IF; RETURN NEW; END $$",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON items \
         FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    )
    .execute(&db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_refused_batch_leaves_nothing_behind_and_only_the_refused_item_is_left_out() {
    let db = TestDb::new().await;
    poison(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.ndjson");
    let mut bad = item("p", "poison", 0.0, 0.0, "2000-01-01T00:00:00Z");
    bad["properties"] = serde_json::json!({
        "datetime": null, "start_datetime": "2000-01-01T00:00:00Z",
        "end_datetime": "2020-01-01T00:00:00Z", "only_in_poison": 1
    });
    let mut docs = vec![collection("p")];
    docs.extend((0..3).map(|i| item("p", &format!("g{i}"), 0.0, 0.0, "2024-01-01T00:00:00Z")));
    docs.push(bad);
    docs.extend((3..6).map(|i| item("p", &format!("g{i}"), 0.0, 0.0, "2024-01-01T00:00:00Z")));
    write_lines(&path, &docs);

    let report = load(&db, &[path], &options(100)).await;
    assert_eq!(report.items_inserted, 6);
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert!(
        places(&report)[0].ends_with("batch.ndjson:5"),
        "{:?}",
        report.failures
    );
    assert!(
        report.failures[0].reason.contains("poisoned item"),
        "{:?}",
        report.failures
    );
    assert_eq!(ids(&db, "p").await, ["g0", "g1", "g2", "g3", "g4", "g5"]);
    // Nothing of the refused transaction stayed: neither the queryables
    // bookkeeping nor the collection's longest item span.
    let props: i64 =
        sqlx::query_scalar("SELECT count(*) FROM item_properties WHERE name = 'only_in_poison'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(props, 0);
    let span: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM max_item_span)::float8 FROM collections WHERE id = 'p'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(span < 86_400.0, "max_item_span {span}");
}

#[tokio::test]
async fn binary_and_parquet_files_are_reported_as_not_json() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("items.parquet");
    std::fs::write(&parquet, b"PAR1\x15\x04\x15\x80\x01\x00\x00PAR1").unwrap();
    let named_json = dir.path().join("items.json");
    std::fs::write(&named_json, b"PAR1\x15\x04\x15\x80\x01\x00\x00PAR1").unwrap();
    let binary = dir.path().join("blob.ndjson");
    std::fs::write(&binary, b"\x00\x01\x02\x03\xff\xfe").unwrap();
    let report = load(&db, &[parquet, named_json, binary], &options(100)).await;
    assert_eq!(report.failures.len(), 3, "{:?}", report.failures);
    for f in &report.failures {
        assert!(f.reason.contains("not a JSON or NDJSON file"), "{f:?}");
        assert!(!f.reason.contains("expected value"), "{f:?}");
    }
    assert!(report.failures[0].reason.contains("Parquet"));
    assert!(report.failures[1].reason.contains("Parquet"));
    assert!(report.failures[2].reason.contains("binary"));
}

/// `root/catalog/collection.json` with `item` links, and an item outside `root/catalog`.
fn catalog_with_links(root: &Path) -> PathBuf {
    let catalog = root.join("catalog");
    std::fs::create_dir_all(catalog.join("with space")).unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    let outside = root.join("outside/secret.json");
    std::fs::write(
        &outside,
        item("l", "secret", 0.0, 0.0, "2024-01-01T00:00:00Z").to_string(),
    )
    .unwrap();
    std::fs::write(
        catalog.join("with space/inside.json"),
        item("l", "inside", 0.0, 0.0, "2024-01-01T00:00:00Z").to_string(),
    )
    .unwrap();
    std::fs::write(
        catalog.join("with space/by-url.json"),
        item("l", "by-url", 0.0, 0.0, "2024-01-01T00:00:00Z").to_string(),
    )
    .unwrap();
    let by_url = url::Url::from_file_path(catalog.join("with space/by-url.json")).unwrap();
    let outside_url = url::Url::from_file_path(&outside).unwrap();
    let mut c = collection("l");
    c["links"] = serde_json::json!([
        {"rel": "item", "href": "./with%20space/inside.json"},
        {"rel": "item", "href": by_url.as_str()},
        {"rel": "item", "href": "../outside/secret.json"},
        {"rel": "item", "href": outside.to_str().unwrap()},
        {"rel": "item", "href": outside_url.as_str()},
        {"rel": "child", "href": "../outside/missing.json"}
    ]);
    let root_doc = catalog.join("collection.json");
    std::fs::write(&root_doc, serde_json::to_string_pretty(&c).unwrap()).unwrap();
    root_doc
}

#[tokio::test]
async fn links_leading_outside_the_catalog_are_refused_unless_allowed() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let root_doc = catalog_with_links(dir.path());

    let report = load(&db, std::slice::from_ref(&root_doc), &options(100)).await;
    assert_eq!(
        ids(&db, "l").await,
        ["by-url", "inside"],
        "{:?}",
        report.failures
    );
    let refused: Vec<_> = report
        .failures
        .iter()
        .map(|f| {
            (
                f.pointer.clone().unwrap_or_default(),
                f.line.is_some(),
                f.reason.contains("--follow-outside"),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("links[2]".to_owned(), true, true),
            ("links[3]".to_owned(), true, true),
            ("links[4]".to_owned(), true, true),
            ("links[5]".to_owned(), true, true),
        ],
        "{:?}",
        report.failures
    );

    let allowed = LoadOptions {
        follow_outside: true,
        ..options(100)
    };
    let report = load(&db, &[root_doc], &allowed).await;
    assert_eq!(ids(&db, "l").await, ["by-url", "inside", "secret"]);
    assert_eq!(
        report.failures.len(),
        1,
        "only the missing file: {:?}",
        report.failures
    );
    assert!(report.failures[0].reason.contains("missing.json"));
}

#[cfg(unix)]
#[tokio::test]
async fn symbolic_links_in_a_directory_stay_inside_it_unless_allowed() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("collection.json"), collection("s").to_string()).unwrap();
    let outside = dir.path().join("secret.json");
    std::fs::write(
        &outside,
        item("s", "secret", 0.0, 0.0, "2024-01-01T00:00:00Z").to_string(),
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, root.join("secret.json")).unwrap();
    std::os::unix::fs::symlink(&root, root.join("loop")).unwrap();

    let report = load(&db, std::slice::from_ref(&root), &options(100)).await;
    assert!(ids(&db, "s").await.is_empty());
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert!(report.failures[0].reason.contains("--follow-outside"));

    let allowed = LoadOptions {
        follow_outside: true,
        ..options(100)
    };
    let report = load(&db, &[root], &allowed).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(ids(&db, "s").await, ["secret"]);
}

async fn analyze_count(db: &TestDb, collection: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = items_partition_name($1)",
    )
    .bind(collection)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_small_load_refreshes_the_statistics_of_its_own_partitions_only() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.ndjson");
    let mut docs = vec![collection("big"), collection("small")];
    docs.extend((0..2000).map(|i| item("big", &format!("b{i}"), 1.0, 1.0, "2024-01-01T00:00:00Z")));
    write_lines(&big, &docs);
    load(&db, &[big], &options(500)).await;
    let big_before = analyze_count(&db, "big").await;
    assert!(
        big_before >= 1,
        "a load of the whole catalog analyses everything"
    );
    let started: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await
        .unwrap();

    let small = dir.path().join("small.ndjson");
    let docs: Vec<_> = (0..10)
        .map(|i| item("small", &format!("s{i}"), 2.0, 2.0, "2024-01-01T00:00:00Z"))
        .collect();
    write_lines(&small, &docs);
    let report = load(&db, &[small], &options(500)).await;
    assert_eq!(report.items_inserted, 10);
    assert_eq!(
        analyze_count(&db, "big").await,
        big_before,
        "untouched partition"
    );
    // (The small collection was staged: its partition is a new table.)
    let analysed: bool = sqlx::query_scalar(
        "SELECT coalesce(last_analyze >= $1, false) FROM pg_stat_user_tables \
         WHERE relname = items_partition_name('small')",
    )
    .bind(started)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(analysed, "the partition written is vacuumed and analysed");
}
