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

use ingest::build::Namer;
use ingest::config::{CrawlOptions, GroupTemplate, OnMissing};
use ingest::crawl::CrawlReport;
use ingest::read::{self, Format};
use serde_json::Value;
use storage::source::{self, Source, SourceSettings};
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
    let options = CrawlOptions {
        on_missing,
        ..CrawlOptions::default()
    };
    support::crawl(db, url, collection, settings, groups, options).await
}

async fn items(db: &TestDb, collection: &str) -> BTreeMap<String, Value> {
    support::collection_items(db, collection).await
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
    assert_eq!(report.read, 26, "{report:?}");
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
    assert_eq!(report.failed, 8, "{:?}", report.errors);
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
        assert_eq!(
            asset["proj:code"],
            format!("EPSG:{}", want["epsg"]),
            "{file}"
        );
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
    // `era_v3_unconsolidated.zarr` is `era_v3.zarr` without consolidated
    // metadata: its data variables are found by listing the store's nodes.
    for (store, id) in [
        ("era_v2.zarr", "era_v2"),
        ("era_v3.zarr", "era_v3"),
        ("era_v3.zarr", "era_v3_unconsolidated"),
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
        assert_eq!(
            item["properties"]["proj:code"],
            format!("EPSG:{}", want["epsg"]),
            "{store}"
        );
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
        assert_eq!(
            item["properties"]["proj:code"],
            format!("EPSG:{}", want["epsg"]),
            "{file}"
        );
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

    // Projection v2.0.0 has no `proj:epsg`: nothing carries it.
    for (id, item) in &items {
        assert!(!item.to_string().contains("proj:epsg"), "{id}");
    }
    // Footprints across the antimeridian are MultiPolygons with west > east,
    // and a search on either side of 180° finds them.
    for id in ["pacific_utm60_cog", "noleap_pacific", "pacific_nobbox"] {
        let item = &items[id];
        assert_eq!(item["geometry"]["type"], "MultiPolygon", "{id}");
        let b = item["bbox"].as_array().unwrap();
        assert!(
            b[0].as_f64().unwrap() > b[2].as_f64().unwrap(),
            "{id}: {b:?}"
        );
    }
    for (w, s, e, n) in [(179.0, -30.0, 180.0, 70.0), (-180.0, -30.0, -179.5, 70.0)] {
        let found: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM items WHERE collection = 'fx' \
             AND ST_Intersects(geometry, ST_MakeEnvelope($1, $2, $3, $4, 4326)) ORDER BY id",
        )
        .bind(w)
        .bind(s)
        .bind(e)
        .bind(n)
        .fetch_all(&db.pool)
        .await
        .unwrap();
        for id in ["noleap_pacific", "pacific_nobbox", "pacific_utm60_cog"] {
            assert!(
                found.iter().any(|f| f == id),
                "{id} not found in {w}..{e}: {found:?}"
            );
        }
        assert!(!found.iter().any(|f| f == "utm_uint16_cog"), "{found:?}");
    }
    // A global 0..360 grid covers the whole world.
    assert_eq!(
        items["era5_global_0_360"]["bbox"],
        serde_json::json!([-180.0, -90.0, 180.0, 90.0])
    );
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
        Some("2020-02-28"),
        "the earliest fixture time (noleap_pacific.zarr)"
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
    let url = root.to_str().unwrap().to_owned();
    let groups = [support::s2_group()];
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
        assert_eq!(report.failed, 8, "{name}: {:?}", report.errors);
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
                if p["arcolake:datetime_source"] == "file-modified"
                    || p["arcolake:datetime_source"] == "crawl-time"
                {
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
        assert_eq!(again.unchanged, 26, "{name}");
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

/// On every backend, the listing of a shard that owns directories finds
/// what the whole listing finds: one level at a time (directories in name
/// order, Zarr stores as entries, hidden names left out), and the tree of
/// each directory alone.
#[tokio::test]
async fn levels_and_subtrees_list_what_the_whole_listing_lists() {
    use futures::StreamExt as _;
    type Listed = Vec<(String, source::EntryKind)>;
    async fn collect(
        s: futures::stream::BoxStream<'_, Result<source::Entry, storage::Error>>,
    ) -> Listed {
        let mut out: Listed = s
            .map(|e| e.map(|e| (e.path, e.kind)).unwrap())
            .collect()
            .await;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
    for (name, src) in support::backends::backends() {
        let whole = collect(src.list()).await;
        assert!(whole.len() > 20, "{name}: {whole:?}");
        // Level by level, from the root.
        let mut by_level: Listed = Vec::new();
        let mut dirs = vec![String::new()];
        while let Some(dir) = dirs.pop() {
            let level = src.list_level(&dir).await.unwrap().unwrap();
            let mut sorted = level.dirs.clone();
            sorted.sort();
            assert_eq!(
                level.dirs, sorted,
                "{name} {dir:?}: directories in name order"
            );
            by_level.extend(level.entries.into_iter().map(|e| (e.path, e.kind)));
            dirs.extend(level.dirs);
        }
        by_level.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(by_level, whole, "{name}: level by level");
        // The root's entries, and the tree of each of its directories.
        let root = src.list_level("").await.unwrap().unwrap();
        assert!(
            root.dirs.iter().any(|d| d == "s2"),
            "{name}: {:?}",
            root.dirs
        );
        assert!(
            root.entries
                .iter()
                .any(|e| e.path == "era_v2.zarr" && e.kind == source::EntryKind::ZarrStore),
            "{name}: a Zarr store at the root is an entry, not a directory"
        );
        let mut split: Listed = root.entries.into_iter().map(|e| (e.path, e.kind)).collect();
        for dir in &root.dirs {
            let under = collect(src.list_under(dir)).await;
            assert!(!under.is_empty(), "{name} {dir}");
            assert!(
                under.iter().all(|(p, _)| p.starts_with(&format!("{dir}/"))),
                "{name}: {under:?}"
            );
            split.extend(under);
        }
        split.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(split, whole, "{name}: the root and its directories' trees");
        // A path out of the root is refused.
        assert!(src.list_level("../etc").await.is_err(), "{name}");
        let out: Vec<_> = src.list_under("s2/../..").collect().await;
        assert!(out.iter().all(Result::is_err) && !out.is_empty(), "{name}");
    }
}

/// The paths a listing yields, sorted.
async fn paths(
    s: futures::stream::BoxStream<'_, Result<source::Entry, storage::Error>>,
) -> Vec<String> {
    use futures::StreamExt as _;
    let mut out: Vec<String> = s.map(|e| e.unwrap().path).collect().await;
    out.sort();
    out
}

/// A local walk from a directory skips a link back to a directory above
/// it, as the walk from the root does: listing by directory finds no
/// path the whole listing does not.
#[cfg(unix)]
#[tokio::test]
async fn links_to_an_ancestor_are_skipped_from_any_start() {
    let dir = tempfile::tempdir().unwrap();
    let cog = fixtures().join("s2/T31UFU_20230615T104621_B02.tif");
    for sub in ["a/deep", "b"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    std::fs::copy(&cog, dir.path().join("a/deep/x.tif")).unwrap();
    std::fs::copy(&cog, dir.path().join("b/y.tif")).unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("a/deep/up")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("a/deep/back")).unwrap();
    let src = source::open(dir.path().to_str().unwrap(), &SourceSettings::default()).unwrap();
    let whole = paths(src.list()).await;
    assert_eq!(whole, ["a/deep/x.tif", "b/y.tif"]);
    let mut split = paths(src.list_under("a")).await;
    split.extend(paths(src.list_under("a/deep")).await);
    split.extend(paths(src.list_under("b")).await);
    split.sort();
    assert_eq!(split, ["a/deep/x.tif", "a/deep/x.tif", "b/y.tif"]);
    let level = src.list_level("a/deep").await.unwrap().unwrap();
    assert!(level.dirs.is_empty(), "{:?}", level.dirs);
}

/// A storage that lists one level at its root only: below it, the crawl
/// of a shard owning directories falls back to listing whole subtrees. It
/// wraps the real local source (no storage server answers `None` there).
struct RootLevelOnly(Arc<dyn Source>);

#[async_trait::async_trait]
impl Source for RootLevelOnly {
    fn list(&self) -> futures::stream::BoxStream<'_, Result<source::Entry, storage::Error>> {
        self.0.list()
    }
    fn list_under(
        &self,
        dir: &str,
    ) -> futures::stream::BoxStream<'_, Result<source::Entry, storage::Error>> {
        self.0.list_under(dir)
    }
    async fn list_level(&self, dir: &str) -> Result<Option<storage::Level>, storage::Error> {
        if dir.is_empty() {
            self.0.list_level(dir).await
        } else {
            Ok(None)
        }
    }
    async fn read_range(
        &self,
        path: &str,
        range: std::ops::Range<u64>,
    ) -> Result<bytes::Bytes, storage::Error> {
        self.0.read_range(path, range).await
    }
    async fn read_small(&self, path: &str) -> Result<Option<bytes::Bytes>, storage::Error> {
        self.0.read_small(path).await
    }
    async fn head(&self, path: &str) -> Result<Option<source::Entry>, storage::Error> {
        self.0.head(path).await
    }
    fn href(&self, path: &str) -> String {
        self.0.href(path)
    }
    async fn stream(
        &self,
        path: &str,
        range: std::ops::Range<u64>,
    ) -> Result<storage::source::ByteStream, storage::Error> {
        self.0.stream(path, range).await
    }
    fn relative(&self, href: &str) -> Option<String> {
        self.0.relative(href)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn stats(&self) -> Arc<storage::source::IoStats> {
        self.0.stats()
    }
}

/// The shards of a crawl owning directories two levels down, on a storage
/// that cannot list one level below its root, read every file once and
/// register what one crawl registers.
#[tokio::test]
async fn shards_owning_directories_list_all_without_one_level_listings() {
    let dir = tempfile::tempdir().unwrap();
    let cog = fixtures().join("s2/T31UFU_20230615T104621_B02.tif");
    for (i, sub) in ["a/b", "a/c", "d/e", "d/f/g", "h"].iter().enumerate() {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for j in 0..3 {
            std::fs::copy(&cog, dir.path().join(format!("{sub}/f{i}{j}.tif"))).unwrap();
        }
    }
    let db = TestDb::new().await;
    let url = dir.path().to_str().unwrap();
    let whole = crawl(
        &db,
        url,
        "whole",
        &SourceSettings::default(),
        &[],
        OnMissing::Remove,
    )
    .await;
    assert_eq!(whole.read, 15);
    let store = db.store();
    let mut read = 0;
    for k in 0..3 {
        let cid = catalog::CollectionId::new("split").unwrap();
        ingest::crawl::ensure_collection(&store, &cid, None, url)
            .await
            .unwrap();
        let job = ingest::crawl::CrawlJob {
            store: store.clone(),
            source: Arc::new(RootLevelOnly(support::backends::local_source(dir.path()))),
            collection: cid,
            namer: Namer::new(&[]).unwrap(),
            include: Vec::new(),
            exclude: Vec::new(),
            options: CrawlOptions {
                progress: false,
                shard: Some(
                    catalog::store::crawl::Shard::new(k, 3)
                        .unwrap()
                        .with_depth(2),
                ),
                ..CrawlOptions::default()
            },
            secrets: Vec::new(),
        };
        let report = ingest::crawl(&job).await.unwrap();
        assert!(report.complete, "{report:?}");
        read += report.read;
    }
    assert_eq!(read, 15, "each file read by one shard");
    let ids = |c: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT id FROM items WHERE collection = $1 ORDER BY id",
            )
            .bind(c)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(ids("split").await, ids("whole").await);
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

/// Read one fixture (file or Zarr store) and build its item, without a catalog.
async fn fixture_item(path: &str) -> (read::AssetInfo, Value) {
    let src: Arc<dyn Source> =
        source::open(fixtures().to_str().unwrap(), &SourceSettings::default()).unwrap();
    let entry = if source::is_zarr_name(path) {
        source::Entry {
            path: path.into(),
            size: 0,
            modified: None,
            etag: None,
            kind: source::EntryKind::ZarrStore,
        }
    } else {
        src.head(path).await.unwrap().unwrap()
    };
    let format = Format::detect(&entry).unwrap();
    let info = read::read(&src, &entry, format).await.unwrap();
    let naming = Namer::default().name(&entry);
    let part = ingest::build::Part::new(
        &entry,
        &naming,
        info.clone(),
        src.href(path),
        None,
        chrono::Utc::now(),
    );
    let item = ingest::build::assemble("fx", &naming.item_id, &[part]);
    (info, item)
}

fn bbox_of(item: &Value) -> Vec<f64> {
    item["bbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn assert_bbox(file: &str, got: &[f64], want: &Value, tol: f64) {
    let want: Vec<f64> = serde_json::from_value(want.clone()).unwrap();
    assert!(
        got.iter().zip(&want).all(|(a, b)| close(*a, *b, tol)),
        "{file}: bbox {got:?}, want {want:?}"
    );
}

#[tokio::test]
async fn zarr_longitudes_0_to_360_make_a_whole_world_footprint() {
    let m = manifest();
    let (_, item) = fixture_item("era5_global_0_360.zarr").await;
    assert_bbox(
        "era5",
        &bbox_of(&item),
        &m["era5_global_0_360.zarr"]["bbox"],
        1e-9,
    );
    assert_eq!(item["geometry"]["type"], "Polygon");
    // The datacube keeps the store's own longitudes.
    let lon = &item["properties"]["cube:dimensions"]["longitude"];
    assert_eq!(lon["extent"], serde_json::json!([-5.0, 355.0]));
    assert_eq!(
        item["properties"]["start_datetime"],
        m["era5_global_0_360.zarr"]["start"]
    );
}

#[tokio::test]
async fn footprints_across_the_antimeridian_are_multipolygons_with_west_above_east() {
    let m = manifest();
    for (path, key) in [
        ("noleap_pacific.zarr", "bbox"),
        ("pacific_nobbox.parquet", "bbox_lonlat"),
    ] {
        let (_, item) = fixture_item(path).await;
        assert_eq!(item["geometry"]["type"], "MultiPolygon", "{path}");
        assert_bbox(path, &bbox_of(&item), &m[path][key], 1e-9);
    }
    // A UTM zone 60 tile: GDAL's own extent spans the globe; ours is split.
    let (_, item) = fixture_item("pacific_utm60_cog.tif").await;
    let b = bbox_of(&item);
    let gdal: Vec<f64> =
        serde_json::from_value(m["pacific_utm60_cog.tif"]["bbox_lonlat_gdal"].clone()).unwrap();
    assert!(b[0] > 179.0 && b[2] < -179.0, "{b:?}");
    // GDAL's extent comes from fewer edge points than our densified ring.
    assert!(close(b[2], gdal[0], 0.1), "east edge {b:?} vs {gdal:?}");
    assert!(
        close(b[1], gdal[1], 1e-3) && close(b[3], gdal[3], 1e-3),
        "{b:?}"
    );
    let polygons = item["geometry"]["coordinates"].as_array().unwrap();
    assert_eq!(polygons.len(), 2);
    assert_eq!(item["properties"]["proj:code"], "EPSG:32660");
}

#[tokio::test]
async fn cf_noleap_time_decodes_in_its_own_calendar() {
    let m = &manifest()["noleap_pacific.zarr"];
    let (info, item) = fixture_item("noleap_pacific.zarr").await;
    assert_eq!(item["properties"]["start_datetime"], m["start"]);
    assert_eq!(
        item["properties"]["end_datetime"], m["end"],
        "{:?}",
        info.warnings
    );
}

#[tokio::test]
async fn geoparquet_with_an_ogc_crs84_projjson_id_gets_its_footprint() {
    let m = &manifest()["points_crs84.parquet"];
    let (info, item) = fixture_item("points_crs84.parquet").await;
    assert!(info.footprint.is_some(), "{:?}", info.warnings);
    assert_bbox("points_crs84", &bbox_of(&item), &m["bbox_lonlat"], 1e-9);
    assert_eq!(item["properties"]["proj:code"], "EPSG:4326");
    assert_eq!(item["properties"]["table:row_count"], m["rows"]);
}

#[tokio::test]
async fn geoparquet_without_any_bbox_gets_one_from_its_geometries_in_few_reads() {
    let src: Arc<dyn Source> =
        source::open(fixtures().to_str().unwrap(), &SourceSettings::default()).unwrap();
    let entry = src.head("pacific_nobbox.parquet").await.unwrap().unwrap();
    let stats = src.stats();
    let before = stats.reads.load(Ordering::Relaxed);
    let info = read::read(&src, &entry, Format::GeoParquet).await.unwrap();
    let reads = stats.reads.load(Ordering::Relaxed) - before;
    // The footer, then the geometry column chunk (one row group).
    assert!(reads <= 2, "{reads} range reads");
    let fp = info.footprint.expect("a footprint from the geometries");
    let want = serde_json::json!([170.0, -20.0, -160.0, -10.0]);
    assert_bbox("pacific_nobbox", &fp.bbox, &want, 1e-12);
}

#[tokio::test]
async fn user_defined_projected_geotiffs_are_never_labelled_with_their_geographic_crs() {
    let m = manifest();
    // The UTM file's datum shift (TOWGS84) is not among the GeoKeys read:
    // its footprint may be off by the shift, about 100 m.
    for (file, tol) in [
        ("tmerc_userdefined.tif", 1e-4),
        ("utm_userdefined.tif", 2e-3),
    ] {
        let want = &m[file];
        let (info, item) = fixture_item(file).await;
        let asset = &item["assets"]["data"];
        assert_eq!(asset["proj:code"], Value::Null, "{file}");
        assert!(item["properties"].get("proj:code").is_none(), "{file}");
        // The footprint comes from the projection parameters, where GDAL puts it.
        assert!(info.footprint.is_some(), "{file}: {:?}", info.warnings);
        assert_bbox(file, &bbox_of(&item), &want["bbox_lonlat_gdal"], tol);
    }
    let (_, item) = fixture_item("tmerc_userdefined.tif").await;
    let want = &m["tmerc_userdefined.tif"];
    let bands = item["assets"]["data"]["raster:bands"].as_array().unwrap();
    for (i, band) in bands.iter().enumerate() {
        assert_eq!(band["description"], want["descriptions"][i]);
        let stats = &want["statistics"][i];
        assert_eq!(band["statistics"]["minimum"], stats["STATISTICS_MINIMUM"]);
        assert_eq!(band["statistics"]["maximum"], stats["STATISTICS_MAXIMUM"]);
        assert_eq!(band["statistics"]["mean"], stats["STATISTICS_MEAN"]);
        assert_eq!(band["statistics"]["stddev"], stats["STATISTICS_STDDEV"]);
    }
}

#[tokio::test]
async fn flatgeobuf_with_an_unknown_feature_count_is_counted_and_bounded() {
    let m = &manifest()["boxes_streamed.fgb"];
    let (info, item) = fixture_item("boxes_streamed.fgb").await;
    assert_eq!(
        item["properties"]["table:row_count"], m["rows"],
        "{:?}",
        info.warnings
    );
    assert_bbox("boxes_streamed", &bbox_of(&item), &m["bbox"], 1e-9);
}

#[tokio::test]
async fn unsupported_format_versions_are_errors_with_the_reason() {
    let src: Arc<dyn Source> =
        source::open(fixtures().to_str().unwrap(), &SourceSettings::default()).unwrap();
    for file in ["corrupt/spec_v4.pmtiles", "corrupt/major_v4.fgb"] {
        let entry = src.head(file).await.unwrap().unwrap();
        let err = read::read(&src, &entry, Format::detect(&entry).unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(err, read::ReadError::Invalid(_)),
            "{file}: {err:?}"
        );
        assert!(err.to_string().contains("not supported"), "{file}: {err}");
    }
}

#[tokio::test]
async fn empty_metadata_strings_are_left_out_of_items() {
    let (_, item) = fixture_item("empty_description.pmtiles").await;
    let asset = &item["assets"]["data"];
    assert!(asset.get("description").is_none(), "{asset}");
    assert!(asset.get("pmtiles:attribution").is_none(), "{asset}");
    assert!(!item.to_string().contains("\"\""), "{item}");
}

#[tokio::test]
async fn an_unconsolidated_multiscale_zarr_store_is_located_from_its_first_level() {
    let m = &manifest()["geozarr_multiscale.zarr"];
    let (info, item) = fixture_item("geozarr_multiscale.zarr").await;
    let dims = &item["properties"]["cube:dimensions"];
    assert_eq!(
        dims["x"]["extent"],
        serde_json::json!([600_000.0, 601_600.0]),
        "{:?}",
        info.warnings
    );
    assert_eq!(
        dims["y"]["extent"],
        serde_json::json!([5_198_400.0, 5_200_000.0])
    );
    assert_eq!(item["properties"]["proj:code"], "EPSG:32632");
    assert!(item["bbox"].is_array(), "{:?}", info.warnings);
    let z = &item["assets"]["data"]["arcolake:zarr"];
    assert_eq!(z["multiscales"]["levels"], m["levels"]);
    assert_eq!(z["consolidated"], false);
    // The store's nodes were listed, so nothing had to be guessed.
    assert!(
        !info
            .warnings
            .iter()
            .any(|w| w.contains("without consolidated metadata")),
        "{:?}",
        info.warnings
    );
    // No time in the store: the crawl time, and labelled as such.
    assert_eq!(item["properties"]["arcolake:datetime_source"], "crawl-time");
}

/// A little-endian classic TIFF IFD entry: (tag, type, values).
enum TagData {
    Short(Vec<u16>),
    Long(Vec<u32>),
    Double(Vec<f64>),
}

impl TagData {
    fn kind(&self) -> u16 {
        match self {
            Self::Short(_) => 3,
            Self::Long(_) => 4,
            Self::Double(_) => 12,
        }
    }

    fn count(&self) -> u32 {
        let n = match self {
            Self::Short(v) => v.len(),
            Self::Long(v) => v.len(),
            Self::Double(v) => v.len(),
        };
        u32::try_from(n).unwrap()
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Short(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::Long(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::Double(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// Write a tiled GeoTIFF laid out as GDAL writes COGs (all IFDs first, then
/// their arrays, then the tiles), with a full-resolution image of `size`
/// pixels and overviews halving down to `min_size`. Tile data are zeros
/// (a sparse file): readers read only the header. Returns (tiles, overviews).
fn write_cog(path: &Path, size: u32, min_size: u32, tile_bytes: u32) -> (usize, usize) {
    let mut levels = vec![size];
    while levels.last().unwrap() / 2 >= min_size {
        levels.push(levels.last().unwrap() / 2);
    }
    let tiles_of = |s: u32| s.div_ceil(256) * s.div_ceil(256);
    let total_tiles: u32 = levels.iter().map(|s| tiles_of(*s)).sum();
    // Entries per IFD, tile arrays filled in once the data area is placed.
    let mut ifds: Vec<Vec<(u16, TagData)>> = levels
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n = tiles_of(*s) as usize;
            let mut e = vec![
                (254, TagData::Long(vec![u32::from(i > 0)])),
                (256, TagData::Long(vec![*s])),
                (257, TagData::Long(vec![*s])),
                (258, TagData::Short(vec![8])),
                (259, TagData::Short(vec![1])),
                (262, TagData::Short(vec![1])),
                (277, TagData::Short(vec![1])),
                (284, TagData::Short(vec![1])),
                (322, TagData::Short(vec![256])),
                (323, TagData::Short(vec![256])),
                (324, TagData::Long(vec![0; n])),
                (325, TagData::Long(vec![tile_bytes; n])),
                (339, TagData::Short(vec![1])),
            ];
            if i == 0 {
                e.push((33550, TagData::Double(vec![10.0, 10.0, 0.0])));
                e.push((
                    33922,
                    TagData::Double(vec![0.0, 0.0, 0.0, 500_000.0, 5_000_000.0, 0.0]),
                ));
                e.push((
                    34735,
                    TagData::Short(vec![
                        1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32631,
                    ]),
                ));
            }
            e
        })
        .collect();
    let ifd_len = |e: &[(u16, TagData)]| 2 + 12 * u32::try_from(e.len()).unwrap() + 4;
    let mut at = 8 + ifds.iter().map(|e| ifd_len(e)).sum::<u32>();
    let arrays_start = at;
    for e in &ifds {
        for (_, d) in e {
            let n = u32::try_from(d.bytes().len()).unwrap();
            if n > 4 {
                at += n + (n & 1);
            }
        }
    }
    let data_start = at.div_ceil(4096) * 4096;
    let mut next_tile = data_start;
    for e in &mut ifds {
        for (tag, d) in e.iter_mut() {
            if let (324, TagData::Long(v)) = (*tag, d) {
                for o in v.iter_mut() {
                    *o = next_tile;
                    next_tile += tile_bytes;
                }
            }
        }
    }
    let mut out = b"II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    let mut arrays = Vec::new();
    let mut ifd_at = 8u32;
    for (i, e) in ifds.iter().enumerate() {
        out.extend_from_slice(&u16::try_from(e.len()).unwrap().to_le_bytes());
        for (tag, d) in e {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&d.kind().to_le_bytes());
            out.extend_from_slice(&d.count().to_le_bytes());
            let b = d.bytes();
            if b.len() <= 4 {
                let mut inline = b.clone();
                inline.resize(4, 0);
                out.extend_from_slice(&inline);
            } else {
                let offset = arrays_start + u32::try_from(arrays.len()).unwrap();
                out.extend_from_slice(&offset.to_le_bytes());
                arrays.extend_from_slice(&b);
                if b.len() % 2 == 1 {
                    arrays.push(0);
                }
            }
        }
        ifd_at += ifd_len(e);
        let next = if i + 1 < ifds.len() { ifd_at } else { 0 };
        out.extend_from_slice(&next.to_le_bytes());
    }
    out.extend_from_slice(&arrays);
    let file = std::fs::File::create(path).unwrap();
    std::io::Write::write_all(&mut &file, &out).unwrap();
    file.set_len(u64::from(next_tile)).unwrap();
    (total_tiles as usize, levels.len() - 1)
}

/// A COG with tens of thousands of tiles and several overviews, written at
/// test time: its header still costs at most 2 range requests.
#[tokio::test]
async fn a_large_cog_header_costs_at_most_two_range_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (tiles, overviews) = write_cog(&dir.path().join("large.tif"), 40_960, 2_560, 1024);
    assert!(
        tiles > 30_000 && overviews == 4,
        "{tiles} tiles, {overviews} overviews"
    );
    let src: Arc<dyn Source> =
        source::open(dir.path().to_str().unwrap(), &SourceSettings::default()).unwrap();
    let entry = src.head("large.tif").await.unwrap().unwrap();
    let stats = src.stats();
    let info = read::read(&src, &entry, Format::GeoTiff).await.unwrap();
    let reads = stats.reads.load(Ordering::Relaxed);
    assert!(reads <= 2, "{reads} range reads for the header");
    assert_eq!(stats.whole_reads.load(Ordering::Relaxed), 0);
    assert!(
        info.media_type.contains("cloud-optimized"),
        "{}",
        info.media_type
    );
    assert_eq!(info.fields["arcolake:tiff"]["overviews"], overviews);
    assert_eq!(info.fields["proj:code"], "EPSG:32631");
}

/// An IFD whose tile arrays claim gigabytes: an error entry naming the
/// limit, after reading no more than the header budget.
#[tokio::test]
async fn an_absurd_tiff_ifd_is_an_error_not_gigabytes_of_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absurd.tif");
    let count: u32 = 400_000_000; // 1.6 GB of tile offsets
    let mut b = b"II*\0".to_vec();
    b.extend_from_slice(&8u32.to_le_bytes());
    let entries: [(u16, u16, u32, u32); 8] = [
        (256, 4, 1, 5_000_000),
        (257, 4, 1, 5_000_000),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (322, 3, 1, 256),
        (323, 3, 1, 256),
        (324, 4, count, 4096),
        (325, 4, count, 4096),
    ];
    b.extend_from_slice(&u16::try_from(entries.len()).unwrap().to_le_bytes());
    for (tag, kind, n, value) in entries {
        for part in [tag.to_le_bytes().to_vec(), kind.to_le_bytes().to_vec()] {
            b.extend_from_slice(&part);
        }
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(&value.to_le_bytes());
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    let file = std::fs::File::create(&path).unwrap();
    std::io::Write::write_all(&mut &file, &b).unwrap();
    file.set_len(3 << 30).unwrap(); // sparse
    let src: Arc<dyn Source> =
        source::open(dir.path().to_str().unwrap(), &SourceSettings::default()).unwrap();
    let entry = src.head("absurd.tif").await.unwrap().unwrap();
    let err = read::read(&src, &entry, Format::GeoTiff).await.unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    let fetched = src.stats().bytes.load(Ordering::Relaxed);
    assert!(fetched <= read::RangeReader::BUDGET, "{fetched} bytes read");
}

/// Zarr documents and coordinate chunks over the size limits are error
/// entries; their size is checked before they are read.
#[tokio::test]
async fn oversized_zarr_documents_and_coordinate_chunks_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let big_doc = dir.path().join("big_doc.zarr");
    std::fs::create_dir(&big_doc).unwrap();
    std::fs::File::create(big_doc.join("zarr.json"))
        .unwrap()
        .set_len(read::zarr::MAX_DOCUMENT + 1)
        .unwrap();
    let big_chunk = dir.path().join("big_chunk.zarr");
    std::fs::create_dir_all(big_chunk.join("lat")).unwrap();
    std::fs::write(big_chunk.join(".zgroup"), br#"{"zarr_format": 2}"#).unwrap();
    std::fs::write(
        big_chunk.join("lat/.zarray"),
        br#"{"zarr_format": 2, "shape": [10], "chunks": [10], "dtype": "<f8", "compressor": null,
            "fill_value": null, "filters": null, "order": "C"}"#,
    )
    .unwrap();
    std::fs::write(
        big_chunk.join("lat/.zattrs"),
        br#"{"_ARRAY_DIMENSIONS": ["lat"], "standard_name": "latitude"}"#,
    )
    .unwrap();
    std::fs::File::create(big_chunk.join("lat/0"))
        .unwrap()
        .set_len(read::zarr::MAX_CHUNK + 1)
        .unwrap();
    let src: Arc<dyn Source> =
        source::open(dir.path().to_str().unwrap(), &SourceSettings::default()).unwrap();
    for store in ["big_doc.zarr", "big_chunk.zarr"] {
        let entry = source::Entry {
            path: store.into(),
            size: 0,
            modified: None,
            etag: None,
            kind: source::EntryKind::ZarrStore,
        };
        let err = read::read(&src, &entry, Format::Zarr).await.unwrap_err();
        assert!(err.to_string().contains("-byte limit"), "{store}: {err}");
    }
    let fetched = src.stats().bytes.load(Ordering::Relaxed);
    assert!(fetched < 1 << 20, "{fetched} bytes read");
}
