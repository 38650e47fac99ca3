//! Bulk loads through a staging table (`catalog::store::staging`), against a
//! real PostGIS: a staged load gives exactly the catalog a plain load gives;
//! rows the database refuses are left out one by one; a killed load leaves
//! nothing visible (a plain one whole batches only) and the next load clears
//! what it left; writes that arrive during a staged load are kept.

#![allow(clippy::unwrap_used, reason = "test code")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catalog::ItemRecord;
use catalog::load::{LoadOptions, LoadReport};
use catalog::store::staging::{Stager, encode_row, staging_table};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use support::{TestDb, collection, item};

const BIN: &str = env!("CARGO_BIN_EXE_arcolake");

fn options(batch_size: usize, staging: bool) -> LoadOptions {
    LoadOptions {
        batch_size: batch_size.try_into().unwrap(),
        staging,
        ..LoadOptions::default()
    }
}

async fn load(db: &TestDb, path: &Path, options: &LoadOptions) -> LoadReport {
    catalog::load::load(&db.store(), vec![path.to_path_buf()], options)
        .await
        .unwrap()
}

fn write_lines(path: &Path, docs: &[Value]) {
    let text: Vec<String> = docs.iter().map(ToString::to_string).collect();
    std::fs::write(path, text.join("\n")).unwrap();
}

/// Items of every shape a load meets: spans, links (generated ones are
/// dropped), 3D, null and mixed geometries, properties of each kind, text
/// that needs escaping, and ids met more than once.
fn varied_items(c: &str) -> Vec<Value> {
    let mut docs: Vec<Value> = (0..240)
        .map(|i| {
            let day = 1 + i % 28;
            let mut it = item(
                c,
                &format!("i{i:03}"),
                f64::from(i % 60) * 3.0 - 90.0,
                f64::from(i % 30) * 2.0 - 30.0,
                &format!("2024-02-{day:02}T10:00:00Z"),
            );
            it["properties"]["eo:cloud_cover"] = json!(f64::from(i) / 3.0);
            it["properties"]["platform"] = json!(if i % 2 == 0 { "s2a" } else { "s2b" });
            it["properties"]["gsd"] = json!(10 + i % 3);
            it["properties"]["flag"] = json!(i % 5 == 0);
            it["properties"]["bands"] = json!(["B02", "B03"]);
            it["properties"]["created"] = json!("2024-03-01T00:00:00Z");
            it
        })
        .collect();
    let mut span = item(c, "span", 5.0, 5.0, "2024-01-01T00:00:00Z");
    span["properties"] = json!({"datetime": null, "start_datetime": "2020-01-01T00:00:00Z",
                                "end_datetime": "2023-06-30T12:00:00Z", "extra": {"nested": [1, 2.5]}});
    span["links"] = json!([
        {"rel": "self", "href": "https://example.org/self.json"},
        {"rel": "license", "href": "https://example.org/license", "type": "text/html"}
    ]);
    docs.push(span);
    let mut point3d = item(c, "point-3d", 0.0, 0.0, "2024-01-02T00:00:00Z");
    point3d["geometry"] = json!({"type": "Point", "coordinates": [10.5, 45.25, 1234.5]});
    point3d["bbox"] = json!([10.5, 45.25, 10.5, 45.25]);
    docs.push(point3d);
    let mut mixed = item(c, "mixed-z", 0.0, 0.0, "2024-01-03T00:00:00Z");
    mixed["geometry"] = json!({"type": "GeometryCollection", "geometries": [
        {"type": "Point", "coordinates": [1.0, 2.0]},
        {"type": "LineString", "coordinates": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}
    ]});
    mixed.as_object_mut().unwrap().remove("bbox");
    docs.push(mixed);
    let mut multi = item(c, "antimeridian", 0.0, 0.0, "2024-01-04T00:00:00Z");
    multi["geometry"] = json!({"type": "MultiPolygon", "coordinates": [
        [[[179.5, 10.0], [180.0, 10.0], [180.0, 11.0], [179.5, 11.0], [179.5, 10.0]]],
        [[[-180.0, 10.0], [-179.5, 10.0], [-179.5, 11.0], [-180.0, 11.0], [-180.0, 10.0]]]
    ]});
    multi["bbox"] = json!([179.5, 10.0, -179.5, 11.0]);
    docs.push(multi);
    let mut null_geometry = item(c, "no-geometry", 0.0, 0.0, "2024-01-05T00:00:00Z");
    null_geometry["geometry"] = Value::Null;
    null_geometry.as_object_mut().unwrap().remove("bbox");
    docs.push(null_geometry);
    for (id, geometry) in [
        (
            "collection-2d",
            json!({"type": "GeometryCollection", "geometries": [
            {"type": "Point", "coordinates": [1.0, 2.0]},
            {"type": "LineString", "coordinates": [[1.0, 2.0], [4.0, 5.0]]}]}),
        ),
        (
            "multipoint",
            json!({"type": "MultiPoint", "coordinates": [[1.5, 2.5], [3.5, 4.5]]}),
        ),
        (
            "multiline",
            json!({"type": "MultiLineString", "coordinates": [[[0.0, 0.0], [1.0, 1.0]], [[2.0, 2.0], [3.0, 3.5]]]}),
        ),
        (
            "holed",
            json!({"type": "Polygon", "coordinates": [
            [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [0.0, 0.0]],
            [[2.0, 2.0], [2.0, 4.0], [4.0, 4.0], [4.0, 2.0], [2.0, 2.0]]]}),
        ),
    ] {
        let mut it = item(c, id, 0.0, 0.0, "2024-01-07T00:00:00Z");
        it["geometry"] = geometry;
        it.as_object_mut().unwrap().remove("bbox");
        docs.push(it);
    }
    let mut escaped = item(c, "é/ü \"q\" %2F", 0.0, 0.0, "2024-01-06T00:00:00Z");
    escaped["properties"]["title"] = json!("tab\tnew\nline \\ \u{1F30D}");
    docs.push(escaped);
    // Met three and two times: the last version stays, its revision the count.
    for (n, cover) in [(1, 1.0), (2, 2.0), (3, 3.0)] {
        let mut again = item(c, "again", 1.0, 1.0, &format!("2024-05-0{n}T00:00:00Z"));
        again["properties"]["eo:cloud_cover"] = json!(cover);
        docs.insert(n * 70, again);
    }
    let mut twice = item(c, "i100", 2.0, 2.0, "2024-06-01T00:00:00Z");
    twice["properties"]["only_in_the_second"] = json!("x");
    docs.push(twice);
    docs
}

/// Everything a load writes, as text, in a stable order.
async fn catalog_rows(db: &TestDb) -> Vec<String> {
    let items: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' | ', collection, id, encode(ST_AsEWKB(geometry), 'hex'), datetime, \
         start_datetime, end_datetime, content::text, links::text, properties::text, revision) \
         FROM items ORDER BY collection, id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let props: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', collection, name, kind) FROM item_properties ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let spans: Vec<String> =
        sqlx::query_scalar("SELECT concat_ws(' ', id, max_item_span) FROM collections ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    items.into_iter().chain(props).chain(spans).collect()
}

/// The indexes of a collection's partition, without their names, and how
/// many of them are attached to the parent's.
async fn partition_indexes(db: &TestDb, c: &str) -> (Vec<String>, i64) {
    let defs = sqlx::query_scalar(
        "SELECT regexp_replace(pg_get_indexdef(x.indexrelid), 'INDEX \\S+ ON \\S+', 'INDEX ON p') \
         FROM pg_index x WHERE x.indrelid = items_partition_name($1)::regclass ORDER BY 1",
    )
    .bind(c)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let attached = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits i JOIN pg_index x ON x.indexrelid = i.inhrelid \
         WHERE x.indrelid = items_partition_name($1)::regclass",
    )
    .bind(c)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    (defs, attached)
}

async fn staging_tables(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relname LIKE 'items\\_load\\_%' AND relkind = 'r'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

async fn latest_stamp(db: &TestDb, c: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(max(stamp), 0)::int8 FROM collection_changes WHERE collection = $1",
    )
    .bind(c)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_staged_load_gives_exactly_the_catalog_of_a_plain_one() {
    let dir = tempfile::tempdir().unwrap();
    let collections = dir.path().join("collections.ndjson");
    write_lines(&collections, &[collection("v")]);
    let items = dir.path().join("items.ndjson");
    write_lines(&items, &varied_items("v"));

    let staged = TestDb::new().await;
    let plain = TestDb::new().await;
    let mut stamps = Vec::new();
    for db in [&staged, &plain] {
        load(db, &collections, &options(10, true)).await;
        stamps.push(latest_stamp(db, "v").await);
    }
    // Batches of 50 rows per COPY; the plain load writes one item per
    // transaction, so that each repeat of an id counts as a revision.
    let report = load(&staged, &items, &options(50, true)).await;
    assert_eq!(report.staged, ["v"]);
    assert_eq!(report.items_inserted, 249, "distinct items");
    let plain_report = load(&plain, &items, &options(1, false)).await;
    assert!(plain_report.staged.is_empty());
    // The items column is 2D: both ways refuse the two 3D geometries.
    let refused = |r: &LoadReport| -> Vec<(Option<usize>, bool)> {
        r.failures
            .iter()
            .map(|f| (f.line, f.reason.contains("Z dimension")))
            .collect()
    };
    assert_eq!(refused(&report), [(Some(245), true), (Some(246), true)]);
    assert_eq!(refused(&report), refused(&plain_report));

    let (a, b) = (catalog_rows(&staged).await, catalog_rows(&plain).await);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    let again = a.iter().find(|r| r.starts_with("v | again |")).unwrap();
    assert!(
        again.ends_with("| 3") && again.contains("\"eo:cloud_cover\":3.0"),
        "{again}"
    );
    assert!(a.iter().any(|r| r.starts_with("v only_in_the_second ")));
    assert_eq!(
        partition_indexes(&staged, "v").await,
        partition_indexes(&plain, "v").await
    );
    let (defs, attached) = partition_indexes(&staged, "v").await;
    assert_eq!(usize::try_from(attached).unwrap(), defs.len());
    assert!(
        defs.iter()
            .any(|d| d.starts_with("CREATE UNIQUE INDEX ON p USING btree (collection, id)"))
    );
    let pkey: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'p' \
         AND conrelid = items_partition_name('v')::regclass)",
    )
    .fetch_one(&staged.pool)
    .await
    .unwrap();
    assert!(pkey, "the partition carries the primary key");
    // Its indexes are named after the parent's.
    let part: String = sqlx::query_scalar("SELECT items_partition_name('v')")
        .fetch_one(&staged.pool)
        .await
        .unwrap();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid \
         WHERE x.indrelid = items_partition_name('v')::regclass",
    )
    .fetch_all(&staged.pool)
    .await
    .unwrap();
    assert!(names.contains(&format!("{part}_pkey")), "{names:?}");
    assert!(names.contains(&format!("{part}_datetime_idx")), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with(&part) && !n.contains("_load_")),
        "{names:?}"
    );
    assert!(
        latest_stamp(&staged, "v").await > stamps[0],
        "the change stamp moved"
    );
    assert_eq!(staging_tables(&staged).await, 0);
    // The partition takes the API's writes like any other.
    let dup: Result<_, _> = sqlx::query("INSERT INTO items (collection, id, datetime, start_datetime, end_datetime, content) \
         SELECT collection, id, datetime, start_datetime, end_datetime, content FROM items WHERE id = 'i001'")
        .execute(&staged.pool)
        .await;
    assert!(dup.is_err(), "the key is enforced");

    // A second load into the collection, now not empty, is a plain one.
    let more = dir.path().join("more.ndjson");
    write_lines(
        &more,
        &[item("v", "late", 0.0, 0.0, "2024-07-01T00:00:00Z")],
    );
    let report = load(&staged, &more, &options(50, true)).await;
    assert!(report.staged.is_empty());
    assert_eq!(report.items_inserted, 1);
}

#[tokio::test]
async fn rows_the_database_refuses_are_left_out_alone() {
    let db = TestDb::new().await;
    sqlx::query(
        "ALTER TABLE items ADD CONSTRAINT no_poison \
         CHECK (coalesce(properties->>'poison', '') <> 'yes')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.ndjson");
    let mut docs = vec![collection("p")];
    docs.extend((0..30).map(|i| item("p", &format!("g{i:02}"), 0.0, 0.0, "2024-01-01T00:00:00Z")));
    let mut bad = item("p", "poison", 0.0, 0.0, "2024-01-01T00:00:00Z");
    bad["properties"]["only_in_poison"] = json!(1);
    bad["properties"]["poison"] = json!("yes");
    docs.insert(12, bad);
    // g05 again, refused: its first version stays, as in a plain load.
    let mut again = item("p", "g05", 9.0, 9.0, "2024-09-09T00:00:00Z");
    again["properties"]["poison"] = json!("yes");
    docs.push(again);
    write_lines(&path, &docs);

    let report = load(&db, &path, &options(100, true)).await;
    assert_eq!(report.staged, ["p"]);
    assert_eq!(report.items_inserted, 30);
    assert_eq!(report.failures.len(), 2, "{:?}", report.failures);
    assert_eq!(report.failures[0].place(), format!("{}:13", path.display()));
    assert_eq!(report.failures[1].place(), format!("{}:33", path.display()));
    assert!(
        report.failures[0].reason.contains("no_poison"),
        "{:?}",
        report.failures
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM items WHERE collection = 'p'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 30);
    let props: i64 =
        sqlx::query_scalar("SELECT count(*) FROM item_properties WHERE name = 'only_in_poison'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(props, 0, "the refused item's properties are not queryables");
    let g05: (i32, bool) = sqlx::query_as(
        "SELECT revision, datetime = '2024-01-01T00:00:00Z' FROM items \
         WHERE collection = 'p' AND id = 'g05'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(g05, (1, true), "the first version of g05 stays");
    assert_eq!(staging_tables(&db).await, 0);
}

fn many_items(path: &Path, c: &str, n: usize) {
    let mut docs = vec![collection(c)];
    docs.extend((0..n).map(|i| {
        #[expect(clippy::cast_precision_loss, reason = "small test coordinates")]
        let lon = (i % 300) as f64 - 150.0;
        item(c, &format!("k{i:06}"), lon, 0.0, "2024-01-01T00:00:00Z")
    }));
    write_lines(path, &docs);
}

/// Start `arcolake load`, wait until `ready` holds, kill it.
async fn kill_load_when(db: &TestDb, args: &[&str], ready: &str) {
    let mut child = Command::new(BIN)
        .arg("load")
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let now: bool = sqlx::query_scalar(ready)
            .fetch_one(&db.pool)
            .await
            .unwrap_or(false);
        if now {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the load ended before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the load never got going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
}

async fn count(db: &TestDb, c: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM items WHERE collection = $1")
        .bind(c)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_killed_load_leaves_nothing_staged_and_only_whole_batches_written() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("many.ndjson");
    many_items(&path, "k", 40_000);
    let file = path.to_str().unwrap();
    let table = staging_table("k");

    // Staged: killed once its staging table holds rows, the catalog has none.
    // (An error while the table does not exist yet counts as not ready.)
    let ready = format!("SELECT EXISTS (SELECT 1 FROM {table})");
    kill_load_when(&db, &[file, "--batch-size", "500"], &ready).await;
    assert_eq!(
        count(&db, "k").await,
        0,
        "nothing of a killed staged load is visible"
    );
    assert_eq!(staging_tables(&db).await, 1, "its staging table is left");
    // The killed load's session, and with it its lock, ends a moment later.
    let started = Instant::now();
    while sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
        > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the lock outlived its load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = Command::new(BIN)
        .args(["load", file, "--batch-size", "500"])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["staged_collections"], json!(["k"]), "{report}");
    assert_eq!(count(&db, "k").await, 40_000, "{report}");
    assert_eq!(staging_tables(&db).await, 0, "the next load dropped it");

    // Plain: killed mid-way, whole batches only.
    sqlx::query("DELETE FROM items WHERE collection = 'k'")
        .execute(&db.pool)
        .await
        .unwrap();
    let ready = "SELECT count(*) >= 1500 FROM items WHERE collection = 'k'";
    kill_load_when(&db, &[file, "--batch-size", "500", "--no-staging"], ready).await;
    let n = count(&db, "k").await;
    assert!(n > 0 && n < 40_000, "{n}");
    assert_eq!(n % 500, 0, "whole batches only: {n}");
}

fn record(c: &str, id: &str, cover: f64) -> ItemRecord {
    let mut v = item(c, id, 0.0, 0.0, "2024-01-01T00:00:00Z");
    v["properties"]["eo:cloud_cover"] = json!(cover);
    ItemRecord::from_value(v, None).unwrap()
}

async fn partition_index_names(db: &TestDb, c: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid \
         WHERE x.indrelid = items_partition_name($1)::regclass ORDER BY 1",
    )
    .bind(c)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn writes_during_a_staged_load_are_kept_and_two_loads_never_share_a_staging_table() {
    let db = TestDb::new().await;
    let store = db.store();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ndjson");
    write_lines(&path, &[collection("w")]);
    load(&db, &path, &options(10, true)).await;
    let names_before = partition_index_names(&db, "w").await;

    let mut stager = Stager::begin(&store).await.unwrap();
    assert!(stager.stageable().contains("w"));
    let mut staging = stager.stage("w").await.unwrap();
    assert!(staging.is_staged());
    let rows: Vec<_> = (0..10)
        .map(|i| staging.admit(encode_row(&record("w", &format!("s{i}"), 50.0)).unwrap()))
        .collect();
    let refs: Vec<_> = rows.iter().collect();
    let sent = stager.write(&mut staging, &refs).await.unwrap();
    assert_eq!(sent.inserted, 10);
    assert_eq!(count(&db, "w").await, 0, "staged rows are not visible");

    // A second load finds the collection staged by the first: its rows go
    // into the live partition at once.
    let mut other = Stager::begin(&store).await.unwrap();
    let mut live = other.stage("w").await.unwrap();
    assert!(
        !live.is_staged(),
        "a second load does not share the staging table"
    );
    let row = live.admit(encode_row(&record("w", "s3", 1.0)).unwrap());
    let written = other.write(&mut live, &[&row]).await.unwrap();
    assert_eq!((written.inserted, written.updated), (1, 0));
    let counts = other.finish(&store, live).await.unwrap();
    assert_eq!((counts.counts.inserted, counts.counts.updated), (0, 0));
    assert!(!counts.swapped);
    drop(other);
    // And the API writes too.
    store
        .create_item(&record("w", "api-only", 2.0))
        .await
        .unwrap();
    assert_eq!(count(&db, "w").await, 2);

    let counts = stager.finish(&store, staging).await.unwrap();
    assert_eq!((counts.counts.inserted, counts.counts.updated), (9, 1));
    assert!(!counts.swapped, "upserted into the live partition");
    let rows: Vec<(String, i32, f64)> = sqlx::query_as(
        "SELECT id, revision, (properties->>'eo:cloud_cover')::float8 FROM items \
         WHERE collection = 'w' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 11);
    assert_eq!(rows[0], ("api-only".to_owned(), 1, 2.0));
    let s3 = rows.iter().find(|r| r.0 == "s3").unwrap();
    assert_eq!(
        s3,
        &("s3".to_owned(), 2, 50.0),
        "the load's version replaces the other's"
    );
    assert_eq!(staging_tables(&db).await, 0);
    assert_eq!(
        partition_index_names(&db, "w").await,
        names_before,
        "the live partition stayed in place"
    );
}

#[tokio::test]
async fn a_swap_that_cannot_get_its_lock_upserts_the_items_instead() {
    let db = TestDb::new().await;
    let store = db.store();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ndjson");
    write_lines(&path, &[collection("b")]);
    load(&db, &path, &options(10, true)).await;
    let names_before = partition_index_names(&db, "b").await;

    let mut stager = Stager::begin(&store).await.unwrap().swap_attempts(2);
    let mut staging = stager.stage("b").await.unwrap();
    let rows: Vec<_> = (0..12_000)
        .map(|i| staging.admit(encode_row(&record("b", &format!("b{i:05}"), 5.0)).unwrap()))
        .collect();
    let refs: Vec<_> = rows.iter().collect();
    stager.write(&mut staging, &refs).await.unwrap();
    // (The loader counts the kinds on its validation threads.)
    staging.note(std::collections::BTreeMap::from([(
        "eo:cloud_cover".to_owned(),
        std::collections::BTreeMap::from([(catalog::search::Kind::Number, 12_000)]),
    )]));
    // A long reader of items holds its lock through the swap's tries.
    let mut reader = db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE items IN ACCESS SHARE MODE")
        .execute(&mut *reader)
        .await
        .unwrap();
    let counts = stager.finish(&store, staging).await.unwrap();
    reader.rollback().await.unwrap();
    assert_eq!((counts.counts.inserted, counts.counts.updated), (12_000, 0));
    assert!(!counts.swapped);
    assert_eq!(count(&db, "b").await, 12_000);
    assert_eq!(staging_tables(&db).await, 0);
    assert_eq!(partition_index_names(&db, "b").await, names_before);
    let kinds: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM item_properties WHERE collection = 'b' AND name = 'eo:cloud_cover'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(kinds, 1, "the queryables are recorded");
}

#[tokio::test]
async fn a_load_of_many_new_collections_stages_a_bounded_number_and_writes_the_rest_live() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.ndjson");
    let n = catalog::store::staging::MAX_STAGED + 6;
    let mut docs: Vec<Value> = (0..n).map(|c| collection(&format!("m{c:03}"))).collect();
    // Interleaved: every collection is short of a batch until the end, so
    // the loader sends the fullest when too many rows wait.
    for i in 0..3 {
        for c in 0..n {
            docs.push(item(
                &format!("m{c:03}"),
                &format!("x{i}"),
                1.0,
                1.0,
                "2024-01-01T00:00:00Z",
            ));
        }
    }
    write_lines(&path, &docs);
    let report = load(&db, &path, &options(10, true)).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.items_inserted, 3 * n as u64);
    assert_eq!(report.staged.len(), catalog::store::staging::MAX_STAGED);
    let per: Vec<i64> = sqlx::query_scalar("SELECT count(*) FROM items GROUP BY collection")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(per.len(), n);
    assert!(per.iter().all(|c| *c == 3), "{per:?}");
    assert_eq!(staging_tables(&db).await, 0);
}
