//! `arcolake load` on the command line: its options, its JSON report and its
//! exit codes, against a test database.

#![allow(clippy::unwrap_used, reason = "test code")]

mod support;

use std::process::{Command, Output};

use serde_json::Value;
use support::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_arcolake");

fn load(db: &TestDb, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("load")
        .args(args)
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap()
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn fixture(path: &str) -> String {
    support::fixture(path).to_str().unwrap().to_owned()
}

#[test]
fn load_help_explains_batches_the_collection_option_and_following_links() {
    let out = Command::new(BIN).args(["load", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "Most items written per transaction",
        "--collection <ID>",
        "without a `collection` field",
        "another collection is not loaded and is reported as failed",
        "--follow-outside",
    ] {
        assert!(
            help.contains(expected),
            "{expected:?} missing from:\n{help}"
        );
    }
}

#[tokio::test]
async fn a_directory_with_a_root_collection_loads_every_document_and_exits_0() {
    let db = TestDb::new().await;
    let out = load(&db, &[&fixture("load/siblings")]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(0), "{r}");
    assert_eq!(
        (r["collections"].as_u64(), r["items_inserted"].as_u64()),
        (Some(1), Some(5))
    );
}

#[tokio::test]
async fn collection_less_items_load_with_collection_and_a_stray_one_is_reported_by_file_and_line() {
    let db = TestDb::new().await;
    let out = load(
        &db,
        &["--collection", "plain", &fixture("load/no-collection")],
    );
    let r = report(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a failed item makes load exit 2: {r}"
    );
    assert_eq!(r["items_inserted"], 6, "{r}");
    assert_eq!(r["failed"], 1, "{r}");
    let failure = &r["failures"][0];
    assert!(
        failure["file"].as_str().unwrap().ends_with("items.geojson"),
        "{r}"
    );
    assert_eq!(failure["line"], 60, "{r}");
    assert!(
        failure["place"]
            .as_str()
            .unwrap()
            .ends_with("items.geojson:60#features[2]"),
        "{r}"
    );
}

#[tokio::test]
async fn a_parquet_file_is_refused_as_not_json_and_load_exits_2() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("items.parquet");
    std::fs::write(&parquet, b"PAR1\x15\x04\x15\x80\x01\x00\x00PAR1").unwrap();
    let out = load(&db, &[parquet.to_str().unwrap()]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(2), "{r}");
    let reason = r["failures"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("not a JSON or NDJSON file") && reason.contains("Parquet"),
        "{reason}"
    );
    assert!(!reason.contains("expected value"), "{reason}");
}

#[tokio::test]
async fn an_unknown_collection_given_or_a_zero_batch_size_fails_before_loading() {
    let db = TestDb::new().await;
    let items = fixture("load/no-collection/items.ndjson");
    let out = load(&db, &["--collection", "nowhere", &items]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("collection nowhere not found"), "{stderr}");
    let out = load(&db, &["--batch-size", "0", &items]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--batch-size"),
        "a zero batch size is refused as such: {stderr}"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
