#![allow(clippy::unwrap_used, reason = "test code")]
//! The crawler against real files and real servers.
//!
//! Fixtures are `fixtures/ingest/` (made by `scripts/gen-fixtures`, with a
//! manifest of what GDAL, pyarrow and zarr read back). The backend test
//! crawls the same files from the S3, WebDAV and XrdHttp servers that
//! `scripts/test` starts (their URLs in `ARCOLAKE_TEST_S3_URL`,
//! `ARCOLAKE_TEST_WEBDAV_URL`, `ARCOLAKE_TEST_XRDHTTP_URL`).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use catalog::CollectionId;
use ingest::build::Namer;
use ingest::config::{CrawlOptions, GroupTemplate, OnMissing};
use ingest::crawl::{CrawlJob, CrawlReport, ensure_collection};
use ingest::read::{self, Format};
use ingest::source::{self, Source, SourceSettings};
use serde_json::Value;
use support::TestDb;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ingest")
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap())
        .unwrap()
}

async fn crawl(
    db: &TestDb,
    url: &str,
    collection: &str,
    settings: &SourceSettings,
    groups: &[GroupTemplate],
    on_missing: OnMissing,
) -> CrawlReport {
    let store = db.store();
    let src = source::open(url, settings).unwrap();
    let cid = CollectionId::new(collection).unwrap();
    ensure_collection(&store, &cid, None, url).await.unwrap();
    let job = CrawlJob {
        store,
        source: src,
        collection: cid,
        namer: Namer::new(groups).unwrap(),
        include: Vec::new(),
        exclude: Vec::new(),
        options: CrawlOptions {
            progress: false,
            on_missing,
            ..CrawlOptions::default()
        },
        secrets: settings.secrets(),
    };
    ingest::crawl(&job).await.unwrap()
}

async fn items(db: &TestDb, collection: &str) -> BTreeMap<String, Value> {
    let rows: Vec<(String, Value)> =
        sqlx::query_as("SELECT id, content FROM items WHERE collection = $1")
            .bind(collection)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    rows.into_iter().collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "one walk over the manifest, format by format"
)]
async fn local_crawl_matches_the_manifest() {
    let db = TestDb::new().await;
    let url = fixtures().to_str().unwrap().to_owned();
    let report = crawl(
        &db,
        &url,
        "fx",
        &SourceSettings::default(),
        &[],
        OnMissing::Remove,
    )
    .await;
    let m = manifest();
    assert!(report.complete);
    assert_eq!(report.read, 15, "{report:?}");
    // Corrupt inputs are error entries with the href and a reason; the text file and the hidden file are skipped.
    let errs: Vec<&str> = report
        .errors
        .iter()
        .map(|e| e.href.rsplit('/').next().unwrap())
        .collect();
    for bad in m["corrupt/"]["errors"].as_array().unwrap() {
        assert!(
            errs.contains(&bad.as_str().unwrap()),
            "{bad} missing from {errs:?}"
        );
    }
    assert_eq!(report.failed, 6);
    assert!(
        report
            .errors
            .iter()
            .all(|e| !e.reason.is_empty() && e.href.starts_with("file:///"))
    );
    let items = items(&db, "fx").await;
    assert!(!items.contains_key("hidden"), "hidden files are skipped");

    // COGs and GeoTIFFs.
    for (file, id) in [
        ("utm_uint16_cog.tif", "utm_uint16_cog"),
        ("laea_float32_nan_cog.tif", "laea_float32_nan_cog"),
        ("wgs84_striped.tif", "wgs84_striped"),
    ] {
        let want = &m[file];
        let item = &items[id];
        let asset = &item["assets"]["data"];
        assert_eq!(asset["proj:epsg"], want["epsg"], "{file}");
        assert_eq!(
            item["properties"]["proj:code"],
            format!("EPSG:{}", want["epsg"]),
            "{file}"
        );
        assert_eq!(asset["proj:shape"], want["shape"], "{file}");
        let bands = asset["raster:bands"].as_array().unwrap();
        assert_eq!(
            bands.len() as u64,
            want["bands"].as_u64().unwrap(),
            "{file}"
        );
        assert_eq!(bands[0]["data_type"], want["data_type"], "{file}");
        let media = asset["type"].as_str().unwrap();
        assert_eq!(
            media.contains("cloud-optimized"),
            want["cog"].as_bool().unwrap(),
            "{file}: {media}"
        );
        assert_eq!(
            asset["arcolake:tiff"]["overviews"], want["overviews"],
            "{file}"
        );
        for (i, v) in want["bbox"].as_array().unwrap().iter().enumerate() {
            assert!(
                close(item["bbox"][i].as_f64().unwrap(), v.as_f64().unwrap(), 2e-3),
                "{file} bbox {} vs {v}",
                item["bbox"]
            );
        }
    }
    let cog = &items["utm_uint16_cog"];
    assert_eq!(
        cog["properties"]["datetime"], "2023-06-15T10:46:21Z",
        "TIFFTAG_DATETIME"
    );
    assert_eq!(cog["assets"]["data"]["raster:bands"][0]["nodata"], 0);
    assert_eq!(cog["assets"]["data"]["raster:bands"][0]["scale"], 0.0001);
    assert_eq!(
        items["laea_float32_nan_cog"]["assets"]["data"]["raster:bands"][0]["nodata"],
        "nan"
    );

    // Zarr v2 and v3, geographic and projected.
    for (store, id) in [
        ("era_v2.zarr", "era_v2"),
        ("era_v3.zarr", "era_v3"),
        ("utm_v3.zarr", "utm_v3"),
    ] {
        let want = &m[store];
        let item = &items[id];
        assert_eq!(
            item["assets"]["data"]["type"], "application/vnd+zarr",
            "{store}"
        );
        assert_eq!(
            item["properties"]["start_datetime"], want["start"],
            "{store}"
        );
        assert_eq!(item["properties"]["end_datetime"], want["end"], "{store}");
        assert_eq!(item["properties"]["proj:epsg"], want["epsg"], "{store}");
        let vars: Vec<&String> = item["properties"]["cube:variables"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v["type"] == "data")
            .map(|(k, _)| k)
            .collect();
        let want_vars: Vec<String> = serde_json::from_value(want["variables"].clone()).unwrap();
        assert_eq!(vars, want_vars.iter().collect::<Vec<_>>(), "{store}");
        assert_eq!(
            item["assets"]["data"]["arcolake:zarr"]["zarr_format"], want["zarr_format"],
            "{store}"
        );
    }
    let era = &items["era_v2"];
    let native = m["era_v2.zarr"]["native_bbox"].as_array().unwrap();
    for i in 0..4 {
        assert!(
            close(
                era["bbox"][i].as_f64().unwrap(),
                native[i].as_f64().unwrap(),
                1e-6
            ),
            "cell edges: {}",
            era["bbox"]
        );
    }
    let x = &items["utm_v3"]["properties"]["cube:dimensions"]["x"];
    assert_eq!(x["extent"], serde_json::json!([600_000.0, 602_000.0]));

    // GeoParquet, with and without a covering column, native encoding, projected.
    for (file, id) in [
        ("points_covering.parquet", "points_covering"),
        ("points_plain.parquet", "points_plain"),
        ("points_native.parquet", "points_native"),
        ("points_utm.parquet", "points_utm"),
    ] {
        let want = &m[file];
        let item = &items[id];
        assert_eq!(
            item["properties"]["table:row_count"], want["rows"],
            "{file}"
        );
        assert_eq!(item["properties"]["proj:epsg"], want["epsg"], "{file}");
        assert_eq!(
            item["assets"]["data"]["arcolake:geoparquet"]["encoding"], want["encoding"],
            "{file}"
        );
        let b = want["bbox_lonlat"].as_array().unwrap();
        let tol = if id == "points_utm" { 0.05 } else { 1e-6 };
        for i in 0..4 {
            assert!(
                close(
                    item["bbox"][i].as_f64().unwrap(),
                    b[i].as_f64().unwrap(),
                    tol
                ),
                "{file} bbox {}",
                item["bbox"]
            );
        }
    }
    // FlatGeobuf and PMTiles.
    assert_eq!(items["boxes"]["properties"]["table:row_count"], 3);
    assert_eq!(items["boxes"]["bbox"], m["boxes.fgb"]["bbox"]);
    let pm = &items["points"]["assets"]["data"];
    assert_eq!(pm["pmtiles:tile_type"], "mvt");
    assert_eq!(pm["pmtiles:max_zoom"], m["points.pmtiles"]["max_zoom"]);
    assert_eq!(pm["pmtiles:vector_layers"][0]["id"], "points");
    let raster = &items["raster"]["assets"]["data"];
    assert_eq!(raster["pmtiles:tile_type"], "png");
    assert_eq!(items["raster"]["bbox"], m["raster.pmtiles"]["bbox"]);

    // Every item declares what it uses.
    for (id, item) in &items {
        let exts = item["stac_extensions"].as_array().unwrap();
        let zarr = item["assets"]["data"]["type"] == "application/vnd+zarr";
        let wanted = if zarr { "/datacube/" } else { "/file/" };
        assert!(
            exts.iter().any(|e| e.as_str().unwrap().contains(wanted)),
            "{id}: {exts:?}"
        );
    }
    // Extents were recomputed.
    let c: Value = sqlx::query_scalar("SELECT content FROM collections WHERE id = 'fx'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(
        c["extent"]["spatial"]["bbox"][0][0].as_f64().unwrap() < 0.5,
        "{}",
        c["extent"]
    );
    assert_eq!(
        c["extent"]["temporal"]["interval"][0][0]
            .as_str()
            .unwrap()
            .get(..10),
        Some("2023-01-01")
    );
}

#[tokio::test]
async fn header_reads_stay_within_the_io_budget() {
    let src: Arc<dyn Source> =
        source::open(fixtures().to_str().unwrap(), &SourceSettings::default()).unwrap();
    for (file, budget) in [
        ("utm_uint16_cog.tif", 2),
        ("laea_float32_nan_cog.tif", 2),
        ("points_covering.parquet", 2),
        ("points_utm.parquet", 2),
        ("points.pmtiles", 2),
        ("raster.pmtiles", 2),
        ("boxes.fgb", 2),
    ] {
        let entry = src.head(file).await.unwrap().unwrap();
        let format = Format::detect(&entry).unwrap();
        let stats = src.stats();
        let before = (
            stats.reads.load(Ordering::Relaxed),
            stats.whole_reads.load(Ordering::Relaxed),
        );
        read::read(&src, &entry, format).await.unwrap();
        let reads = stats.reads.load(Ordering::Relaxed) - before.0;
        let whole = stats.whole_reads.load(Ordering::Relaxed) - before.1;
        assert!(reads <= budget, "{file}: {reads} range reads");
        assert_eq!(whole, 0, "{file}: whole-object GET");
    }
}

#[tokio::test]
async fn recrawl_reads_only_changes_and_removes_what_is_gone() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("s2")).unwrap();
    for f in [
        "s2/T31UFU_20230615T104621_B02.tif",
        "s2/T31UFU_20230615T104621_B03.tif",
        "boxes.fgb",
        "points.pmtiles",
    ] {
        std::fs::copy(fixtures().join(f), root.join(f)).unwrap();
    }
    let group = GroupTemplate {
        pattern: r"(?P<tile>T\d{2}[A-Z]{3})_(?P<date>\d{8}T\d{6})_(?P<band>B\d{2})\.tif$".into(),
        id: "{tile}_{date}".into(),
        asset: Some("{band}".into()),
        datetime: Some("{date}".into()),
        datetime_format: Some("%Y%m%dT%H%M%S".into()),
        properties: [("s2:mgrs_tile".to_owned(), "{tile}".to_owned())].into(),
    };
    let url = root.to_str().unwrap().to_owned();
    let groups = [group];
    let settings = SourceSettings::default();
    let run = async |collection: &str, on_missing| {
        crawl(&db, &url, collection, &settings, &groups, on_missing).await
    };
    let first = run("re", OnMissing::Remove).await;
    assert_eq!((first.read, first.unchanged), (4, 0));
    let got = items(&db, "re").await;
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        ["T31UFU_20230615T104621", "boxes", "points"]
    );
    let s2 = &got["T31UFU_20230615T104621"];
    assert_eq!(
        s2["assets"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["B02", "B03"]
    );
    assert_eq!(s2["properties"]["s2:mgrs_tile"], "T31UFU");

    // The same storage crawled into another collection is tracked apart.
    let other = run("re-copy", OnMissing::Remove).await;
    assert_eq!((other.read, other.items_written), (4, 3));

    // Nothing changed: nothing read.
    let again = run("re", OnMissing::Remove).await;
    assert_eq!(
        (again.read, again.unchanged, again.items_written),
        (0, 4, 0)
    );

    // Add one, change one (different size), delete one band and one file.
    std::fs::copy(
        fixtures().join("raster.pmtiles"),
        root.join("raster.pmtiles"),
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("points_plain.parquet"),
        root.join("points.pmtiles"),
    )
    .unwrap();
    std::fs::remove_file(root.join("s2/T31UFU_20230615T104621_B03.tif")).unwrap();
    std::fs::remove_file(root.join("boxes.fgb")).unwrap();
    let third = run("re", OnMissing::Remove).await;
    assert_eq!(third.read, 1, "only the new file is read: {third:?}");
    // The changed file is no longer a PMTiles archive: an error entry, and
    // its item goes with the two deleted files (it no longer describes it).
    assert_eq!(third.failed, 1);
    assert_eq!(third.objects_removed, 3);
    let got = items(&db, "re").await;
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        ["T31UFU_20230615T104621", "raster"]
    );
    assert_eq!(
        got["T31UFU_20230615T104621"]["assets"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["B02"]
    );

    // Marking instead of removing keeps the item, flagged.
    std::fs::remove_file(root.join("raster.pmtiles")).unwrap();
    let fourth = run("re", OnMissing::Mark).await;
    assert_eq!(fourth.objects_marked_missing, 1);
    let got = items(&db, "re").await;
    assert!(got["raster"]["properties"]["arcolake:missing_since"].is_string());
}

/// The same fixtures crawled from each real server give the same items.
#[tokio::test]
async fn every_backend_registers_the_same_items() {
    let backends: Vec<(String, String, SourceSettings)> = [
        ("ARCOLAKE_TEST_S3_URL", "s3"),
        ("ARCOLAKE_TEST_WEBDAV_URL", "webdav"),
        ("ARCOLAKE_TEST_XRDHTTP_URL", "xrdhttp"),
    ]
    .into_iter()
    .filter_map(|(var, name)| {
        std::env::var(var)
            .ok()
            .map(|u| (name.to_owned(), u, SourceSettings::default().with_env()))
    })
    .collect();
    if backends.is_empty() && std::env::var("ARCOLAKE_TEST_REQUIRE_SERVERS").is_err() {
        eprintln!(
            "no test servers configured (scripts/test starts them); only the local source is checked"
        );
    }
    if std::env::var("ARCOLAKE_TEST_REQUIRE_SERVERS").is_ok() {
        assert_eq!(
            backends.len(),
            3,
            "scripts/test must start S3, WebDAV and XrdHttp servers"
        );
    }
    let db = TestDb::new().await;
    let local = fixtures().to_str().unwrap().to_owned();
    crawl(
        &db,
        &local,
        "local",
        &SourceSettings::default(),
        &[],
        OnMissing::Remove,
    )
    .await;
    let reference = items(&db, "local").await;
    for (name, url, settings) in backends {
        let report = crawl(&db, &url, &name, &settings, &[], OnMissing::Remove).await;
        assert!(report.complete, "{name}: {report:?}");
        assert_eq!(report.failed, 6, "{name}: {:?}", report.errors);
        let got = items(&db, &name).await;
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            reference.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (id, item) in &got {
            let want = &reference[id];
            assert_eq!(item["bbox"], want["bbox"], "{name} {id}");
            // Times from file modification differ between copies; all else must match.
            let strip = |v: &Value| {
                let mut p = v["properties"].clone();
                if p["arcolake:datetime_source"] == "file-modified" {
                    p.as_object_mut().unwrap().remove("datetime");
                }
                p
            };
            assert_eq!(strip(item), strip(want), "{name} {id}");
            let href = item["assets"]["data"]["href"].as_str().unwrap();
            assert!(!href.starts_with("file:"), "{name} {id}: {href}");
            assert!(
                !href.contains("authz=") && !href.contains('@'),
                "no credentials in hrefs: {href}"
            );
        }
        // Re-crawl: nothing read again.
        let again = crawl(&db, &url, &name, &settings, &[], OnMissing::Remove).await;
        assert_eq!(again.read, 0, "{name}: {again:?}");
        assert_eq!(again.unchanged, 15, "{name}");
    }
}

/// A crawl killed with SIGKILL part-way and run again leaves exactly what
/// one clean crawl leaves: nothing duplicated, nothing lost.
#[tokio::test]
async fn a_killed_crawl_run_again_equals_a_clean_crawl() {
    const FILES: i64 = 3000;
    let dir = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    for i in 0..FILES / 2 {
        std::fs::copy(
            fixtures().join("s2/T31UFU_20230615T104621_B02.tif"),
            dir.path().join(format!("a/cog_{i:04}.tif")),
        )
        .unwrap();
        std::fs::copy(
            fixtures().join("boxes.fgb"),
            dir.path().join(format!("b/box_{i:04}.fgb")),
        )
        .unwrap();
    }
    let root = dir.path().to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_arcolake");
    let crawl_cmd = |db: &TestDb| {
        let mut c = std::process::Command::new(bin);
        c.args([
            "crawl",
            root,
            "--collection",
            "k",
            "--concurrency",
            "1",
            "--no-progress",
        ])
        .env("DATABASE_URL", db.url())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        c
    };
    let count = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM items WHERE collection = 'k'")
                .fetch_one(&pool)
                .await
                .unwrap_or(0)
        }
    };

    let killed = TestDb::new().await;
    let mut child = crawl_cmd(&killed).spawn().unwrap();
    let partial = loop {
        let n = count(&killed).await;
        if n > 0 {
            child.kill().unwrap();
            child.wait().unwrap();
            break count(&killed).await;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the crawl ended before it could be killed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    };
    assert!(
        partial > 0 && partial < FILES,
        "killed with {partial} of {FILES} items in"
    );
    assert!(crawl_cmd(&killed).status().unwrap().success());

    let clean = TestDb::new().await;
    assert!(crawl_cmd(&clean).status().unwrap().success());

    let contents = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            let rows: Vec<(String, Value)> =
                sqlx::query_as("SELECT id, content FROM items WHERE collection = 'k' ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            rows
        }
    };
    let (a, b) = (contents(&killed).await, contents(&clean).await);
    assert_eq!(i64::try_from(a.len()).unwrap(), FILES);
    assert_eq!(a, b, "the resumed catalog differs from a clean one");
    let objects = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM crawl_objects")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(objects(&killed).await, FILES);
}

/// Credentials never show in reports, errors or items.
#[tokio::test]
async fn secrets_stay_out_of_reports_and_items() {
    let Ok(url) = std::env::var("ARCOLAKE_TEST_WEBDAV_URL") else {
        eprintln!("no WebDAV test server configured (scripts/test starts one)");
        return;
    };
    let db = TestDb::new().await;
    // A wrong password: the listing is refused, and the message names the URL without it.
    let mut wrong = url::Url::parse(&url).unwrap();
    wrong.set_password(Some("wrong-password-1234")).unwrap();
    let src = source::open(wrong.as_str(), &SourceSettings::default()).unwrap();
    let store = db.store();
    let cid = CollectionId::new("secret").unwrap();
    ensure_collection(&store, &cid, None, "x").await.unwrap();
    let job = CrawlJob {
        store,
        source: src,
        collection: cid,
        namer: Namer::default(),
        include: Vec::new(),
        exclude: Vec::new(),
        options: CrawlOptions {
            progress: false,
            ..CrawlOptions::default()
        },
        secrets: vec!["wrong-password-1234".into()],
    };
    let err = ingest::crawl(&job).await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("wrong-password-1234"), "{err}");
    // The right password: hrefs and the report carry no credentials.
    let report = crawl(
        &db,
        &url,
        "secret",
        &SourceSettings::default(),
        &[],
        OnMissing::Remove,
    )
    .await;
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains("crawler-secret"), "{text}");
    for item in items(&db, "secret").await.values() {
        assert!(!item.to_string().contains("crawler-secret"));
    }
}

/// A local walk lists a Zarr store as one entry and never walks its chunks.
#[tokio::test]
async fn local_zarr_stores_are_not_walked() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("big.zarr");
    copy_dir(&fixtures().join("era_v2.zarr"), &store);
    std::fs::create_dir_all(store.join("extra")).unwrap();
    for i in 0..2000 {
        std::fs::write(store.join(format!("extra/{i}.0.0")), b"x").unwrap();
    }
    let src = source::open(dir.path().to_str().unwrap(), &SourceSettings::default()).unwrap();
    let listed: Vec<_> = futures::StreamExt::collect::<Vec<_>>(src.list()).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let entry = listed[0].as_ref().unwrap();
    assert_eq!(
        (entry.path.as_str(), &entry.kind),
        ("big.zarr", &source::EntryKind::ZarrStore)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
