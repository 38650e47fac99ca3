#![allow(clippy::unwrap_used, reason = "test code")]
//! `arcolake export`: the static catalog loads back into exactly the items
//! and collections it came from, restricted collections stay out unless
//! asked for, and the stac-geoparquet parts split where the item schema
//! changes. (`tests/clients/export_check.py` reads the parquet with
//! stac-geoparquet, DuckDB and geopandas, and the static catalog with pystac.)

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use catalog::export::{ExportOptions, export};
use serde_json::{Value, json};
use support::TestDb;

/// Every item of `db` as (collection, id) → (content, links), and every
/// collection's content.
async fn snapshot(
    db: &TestDb,
) -> (
    BTreeMap<(String, String), (Value, Option<Value>)>,
    BTreeMap<String, Value>,
) {
    let items: Vec<(String, String, Value, Option<Value>)> =
        sqlx::query_as("SELECT collection, id, content::jsonb, links::jsonb FROM items")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let collections: Vec<(String, Value)> = sqlx::query_as("SELECT id, content FROM collections")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    (
        items
            .into_iter()
            .map(|(c, i, content, links)| ((c, i), (content, links)))
            .collect(),
        collections.into_iter().collect(),
    )
}

async fn load(db: &TestDb, path: &Path) -> catalog::load::LoadReport {
    catalog::load::load_paths(&db.store(), vec![path.to_owned()], 500)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_static_export_loads_back_into_the_same_catalog() {
    let db = TestDb::new().await;
    let report = load(&db, &support::fixture("stac")).await;
    assert_eq!(report.items_inserted, 40);
    // Odd ids: a file name cannot hold them as they are.
    let store = db.store();
    let mut odd = support::item(
        "sentinel-2-l2a",
        "a/b c%2F..",
        5.0,
        5.0,
        "2024-05-01T00:00:00Z",
    );
    odd["links"] =
        json!([{"rel": "license", "href": "https://example.org/licence", "type": "text/html"}]);
    store
        .create_item(&catalog::ItemRecord::from_value(odd, None).unwrap())
        .await
        .unwrap();
    let want = snapshot(&db).await;

    let out = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        page: 7,
        ..ExportOptions::default()
    };
    let r = export(&store, out.path(), &options).await.unwrap();
    assert_eq!((r.collections, r.items), (2, 41));
    assert!(out.path().join("catalog.json").is_file());
    let collection: Value = serde_json::from_slice(
        &std::fs::read(out.path().join("sentinel-2-l2a/collection.json")).unwrap(),
    )
    .unwrap();
    let item_links = collection["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["rel"] == "item")
        .count();
    assert_eq!(item_links, 21, "the collection links every item");
    assert!(
        collection["links"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| !l["href"].as_str().unwrap().starts_with("http") || l["rel"] == "license"),
        "links are relative: {collection}"
    );

    let fresh = TestDb::new().await;
    let back = load(&fresh, &out.path().join("catalog.json")).await;
    assert!(back.failures.is_empty(), "{:?}", back.failures);
    assert_eq!(back.items_inserted, 41);
    assert_eq!(
        snapshot(&fresh).await,
        want,
        "the export loads back into the same catalog"
    );
}

#[tokio::test]
async fn restricted_collections_stay_out_unless_asked_for_and_parts_follow_the_schema() {
    let db = TestDb::new().await;
    let store = db.store();
    let mut secret = support::collection("secret");
    secret["arcolake:access"] = json!("restricted");
    store
        .create_collection(&catalog::CollectionRecord::from_value(secret).unwrap())
        .await
        .unwrap();
    store
        .create_collection(
            &catalog::CollectionRecord::from_value(support::collection("open")).unwrap(),
        )
        .await
        .unwrap();
    let mut items = Vec::new();
    for i in 0..30 {
        let mut it = support::item(
            "open",
            &format!("i{i:02}"),
            1.0,
            1.0,
            "2024-01-01T00:00:00Z",
        );
        // From the 20th item on, a property the earlier ones lack.
        if i >= 20 {
            it["properties"]["gsd"] = json!(f64::from(i));
        }
        items.push(catalog::ItemRecord::from_value(it, None).unwrap());
    }
    items.push(
        catalog::ItemRecord::from_value(
            support::item("secret", "s1", 1.0, 1.0, "2024-01-01T00:00:00Z"),
            None,
        )
        .unwrap(),
    );
    store.insert_items(&items).await.unwrap();

    let out = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        page: 10,
        ..ExportOptions::default()
    };
    let r = export(&store, out.path(), &options).await.unwrap();
    assert_eq!(
        (r.collections, r.items),
        (1, 30),
        "the restricted collection is left out"
    );
    assert!(!out.path().join("secret").exists());
    // Pages 1-2 share a schema; page 3 has gsd: a second part.
    assert_eq!(r.parquet_files, 2);
    assert!(
        out.path()
            .join("geoparquet/open/part-00001.parquet")
            .is_file()
    );

    // Integers first, decimals later: the decimals go to a part of their
    // own, not cut to integers in a column inferred from the integers.
    store
        .create_collection(
            &catalog::CollectionRecord::from_value(support::collection("nums")).unwrap(),
        )
        .await
        .unwrap();
    let nums: Vec<catalog::ItemRecord> = (0..20)
        .map(|i| {
            let mut it = support::item(
                "nums",
                &format!("n{i:02}"),
                1.0,
                1.0,
                "2024-01-01T00:00:00Z",
            );
            it["properties"]["count"] = if i < 10 { json!(3) } else { json!(3.5) };
            catalog::ItemRecord::from_value(it, None).unwrap()
        })
        .collect();
    store.insert_items(&nums).await.unwrap();
    let only = ExportOptions {
        collections: vec!["nums".into()],
        page: 10,
        ..ExportOptions::default()
    };
    assert_eq!(
        export(&store, out.path(), &only)
            .await
            .unwrap()
            .parquet_files,
        2
    );
    let file = std::fs::File::open(out.path().join("geoparquet/nums/part-00001.parquet")).unwrap();
    let back = stac::geoparquet::from_reader(file).unwrap();
    assert!(
        back.items
            .iter()
            .all(|i| i.properties.additional_fields["count"] == json!(3.5)),
        "decimals kept"
    );

    let named = ExportOptions {
        collections: vec!["secret".into()],
        ..ExportOptions::default()
    };
    let err = export(&store, out.path(), &named)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--include-restricted"), "{err}");
    let r = export(
        &store,
        out.path(),
        &ExportOptions {
            include_restricted: true,
            ..named
        },
    )
    .await
    .unwrap();
    assert_eq!((r.collections, r.items), (1, 1));
}

#[tokio::test]
async fn collections_split_between_jobs_export_every_item_once_and_in_order() {
    let db = TestDb::new().await;
    load(&db, &support::fixture("stac")).await;
    let want = snapshot(&db).await;
    let store = db.store();
    let out = tempfile::tempdir().unwrap();
    // Ranges of at least 4 items, six jobs (a share of 7 items), pages of
    // 3: each collection of 20 is cut into five ranges, which the jobs take
    // from one queue and write side by side.
    let options = ExportOptions {
        page: 3,
        jobs: 6,
        split_min: 4,
        ..ExportOptions::default()
    };
    let r = export(&store, out.path(), &options).await.unwrap();
    assert_eq!((r.collections, r.items), (2, 40));

    for c in want.1.keys() {
        let dir = out.path().join(c);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with(".item-links")),
            "{names:?}"
        );
        let collection: Value =
            serde_json::from_slice(&std::fs::read(dir.join("collection.json")).unwrap()).unwrap();
        let hrefs: Vec<&str> = collection["links"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["rel"] == "item")
            .map(|l| l["href"].as_str().unwrap())
            .collect();
        let mut sorted = hrefs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(hrefs, sorted, "every item once, in id order");
        let in_db = want.0.keys().filter(|(col, _)| col == c).count();
        assert_eq!(hrefs.len(), in_db);

        let mut ids = Vec::new();
        let mut parts = 0;
        for entry in std::fs::read_dir(out.path().join("geoparquet").join(c)).unwrap() {
            let file = std::fs::File::open(entry.unwrap().path()).unwrap();
            let back = stac::geoparquet::from_reader(file).unwrap();
            ids.extend(back.items.into_iter().map(|i| i.id));
            parts += 1;
        }
        assert!(parts >= 5, "a part per range at least: {parts}");
        ids.sort_unstable();
        let mut want_ids: Vec<String> = want
            .0
            .keys()
            .filter(|(col, _)| col == c)
            .map(|(_, id)| id.clone())
            .collect();
        want_ids.sort_unstable();
        assert_eq!(ids, want_ids, "the parts hold every item once");
    }

    let fresh = TestDb::new().await;
    let back = load(&fresh, &out.path().join("catalog.json")).await;
    assert!(back.failures.is_empty(), "{:?}", back.failures);
    assert_eq!(snapshot(&fresh).await, want);
}
