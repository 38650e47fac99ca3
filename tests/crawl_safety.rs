#![allow(clippy::unwrap_used, reason = "test code")]
//! A crawl never loses the catalog: outages that look like empty listings,
//! deleted collections, stored state from another version, symbolic links
//! out of the root, odd names on HTTP doors, and a crawl killed at any point.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use catalog::CollectionId;
use ingest::config::{CrawlOptions, GroupTemplate};
use ingest::crawl::CrawlReport;
use serde_json::Value;
use storage::source::SourceSettings;
use support::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_arcolake");

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ingest")
}

const COG: &str = "s2/T31UFU_20230615T104621_B02.tif";

/// `n` copies of a small COG under `dir`.
fn cogs(dir: &Path, n: usize) {
    for i in 0..n {
        std::fs::copy(fixtures().join(COG), dir.join(format!("cog_{i:04}.tif"))).unwrap();
    }
}

async fn crawl_with(
    db: &TestDb,
    url: &str,
    collection: &str,
    settings: &SourceSettings,
    groups: &[GroupTemplate],
    options: CrawlOptions,
) -> CrawlReport {
    support::crawl(db, url, collection, settings, groups, options).await
}

async fn crawl(db: &TestDb, url: &str, collection: &str) -> CrawlReport {
    crawl_with(
        db,
        url,
        collection,
        &SourceSettings::default(),
        &[],
        CrawlOptions::default(),
    )
    .await
}

async fn items(db: &TestDb, collection: &str) -> BTreeMap<String, Value> {
    support::collection_items(db, collection).await
}

#[tokio::test]
async fn an_empty_listing_removes_nothing_until_mass_removal_is_allowed() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    cogs(dir.path(), 4);
    let url = dir.path().to_str().unwrap();
    assert_eq!(crawl(&db, url, "m").await.read, 4);

    // The mount point is there but empty (an unmounted FUSE/NFS mount).
    for e in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let refused = crawl(&db, url, "m").await;
    assert!(refused.complete);
    let why = refused.removal_refused.as_deref().unwrap();
    assert!(why.contains("none of the 4 objects"), "{why}");
    assert_eq!((refused.items_removed, refused.objects_removed), (0, 0));
    assert_eq!(items(&db, "m").await.len(), 4, "nothing was removed");

    let allowed = crawl_with(
        &db,
        url,
        "m",
        &SourceSettings::default(),
        &[],
        CrawlOptions {
            allow_mass_removal: true,
            ..CrawlOptions::default()
        },
    )
    .await;
    assert_eq!(allowed.removal_refused, None);
    assert_eq!(allowed.items_removed, 4);
    assert!(items(&db, "m").await.is_empty());
}

#[tokio::test]
async fn a_listing_that_lost_more_than_the_allowed_share_removes_nothing() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    cogs(dir.path(), 30);
    let url = dir.path().to_str().unwrap();
    crawl(&db, url, "s").await;
    for i in 0..18 {
        std::fs::remove_file(dir.path().join(format!("cog_{i:04}.tif"))).unwrap();
    }
    let refused = crawl(&db, url, "s").await;
    let why = refused.removal_refused.as_deref().unwrap();
    assert!(why.contains("18 of the 30 objects"), "{why}");
    assert_eq!(items(&db, "s").await.len(), 30);

    // A larger allowed share lets the same crawl remove them.
    let removed = crawl_with(
        &db,
        url,
        "s",
        &SourceSettings::default(),
        &[],
        CrawlOptions {
            max_removal_share: 0.75,
            ..CrawlOptions::default()
        },
    )
    .await;
    assert_eq!(removed.items_removed, 18);

    // A few files going is an ordinary removal, even when they are most of
    // a small source: 9 of the 12 left.
    for i in 18..27 {
        std::fs::remove_file(dir.path().join(format!("cog_{i:04}.tif"))).unwrap();
    }
    let small = crawl(&db, url, "s").await;
    assert_eq!((small.removal_refused, small.items_removed), (None, 9));
    assert_eq!(items(&db, "s").await.len(), 3);
}

#[test]
fn a_refused_removal_makes_the_crawl_command_exit_4() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    let dir = tempfile::tempdir().unwrap();
    cogs(dir.path(), 3);
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args([
                "crawl",
                dir.path().to_str().unwrap(),
                "--collection",
                "x",
                "--no-progress",
            ])
            .args(extra)
            .env("DATABASE_URL", db.url())
            .stderr(Stdio::null())
            .output()
            .unwrap()
    };
    assert!(run(&[]).status.success());
    for e in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(4));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["removal_refused"].as_str().is_some(), "{summary}");
    let out = run(&["--allow-mass-removal"]);
    assert!(out.status.success());
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["items_removed"], 3);
}

#[tokio::test]
async fn a_deleted_and_recreated_collection_is_filled_again_by_the_next_crawl() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    cogs(dir.path(), 3);
    let url = dir.path().to_str().unwrap();
    crawl(&db, url, "gone").await;
    let store = db.store();
    store
        .delete_collection(&CollectionId::new("gone").unwrap())
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM crawl_objects) + (SELECT count(*) FROM crawl_runs)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "crawl state went with its collection");
    let again = crawl(&db, url, "gone").await;
    assert_eq!((again.read, again.unchanged), (3, 0));
    assert_eq!(items(&db, "gone").await.len(), 3);
}

#[tokio::test]
async fn a_stored_part_that_no_longer_decodes_keeps_its_item_and_is_read_again() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    for band in ["B02", "B03"] {
        let name = format!("T31UFU_20230615T104621_{band}.tif");
        std::fs::copy(fixtures().join("s2").join(&name), dir.path().join(&name)).unwrap();
    }
    let groups = [support::s2_group()];
    let url = dir.path().to_str().unwrap();
    let settings = SourceSettings::default();
    let run =
        async || crawl_with(&db, url, "up", &settings, &groups, CrawlOptions::default()).await;
    run().await;
    let before = items(&db, "up").await;
    assert_eq!(before.len(), 1);
    // What an older or newer arcolake might have stored for B03.
    sqlx::query("UPDATE crawl_objects SET part = '{\"written_by\": \"another version\"}' WHERE path LIKE '%B03%'")
        .execute(&db.pool)
        .await
        .unwrap();
    // B02 changes, so its item is rebuilt from both parts.
    let b02 = dir.path().join("T31UFU_20230615T104621_B02.tif");
    let f = std::fs::File::options().append(true).open(&b02).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    drop(f);
    let second = run().await;
    assert_eq!(second.items_removed, 0, "{second:?}");
    let after = items(&db, "up").await;
    assert_eq!(after.len(), 1, "the item was kept");
    assert!(
        after.values().next().unwrap()["assets"]
            .get("B03")
            .is_some()
    );
    let token: String =
        sqlx::query_scalar("SELECT token FROM crawl_objects WHERE path LIKE '%B03%'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        token, "",
        "the undecodable object is marked to be read again"
    );
    // The next crawl reads it again and rebuilds the item from both parts.
    let third = run().await;
    assert_eq!(third.read, 1, "{third:?}");
    let part_ok: bool =
        sqlx::query_scalar("SELECT part ? 'asset_key' FROM crawl_objects WHERE path LIKE '%B03%'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(part_ok);
    let rebuilt = items(&db, "up").await;
    let item = rebuilt.values().next().unwrap();
    assert!(item["assets"].get("B02").is_some() && item["assets"].get("B03").is_some());
}

#[tokio::test]
async fn symbolic_links_out_of_the_root_are_reported_not_followed() {
    let db = TestDb::new().await;
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    cogs(root.path(), 1);
    cogs(outside.path(), 2);
    std::os::unix::fs::symlink(outside.path(), root.path().join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("cog_0001.tif"),
        root.path().join("linked.tif"),
    )
    .unwrap();
    // A link that stays inside the root is followed.
    std::fs::create_dir(root.path().join("inner")).unwrap();
    cogs(&root.path().join("inner"), 1);
    std::os::unix::fs::symlink(root.path().join("inner"), root.path().join("alias")).unwrap();
    let url = root.path().to_str().unwrap();
    let report = crawl(&db, url, "links").await;
    let ids: Vec<String> = items(&db, "links").await.into_keys().collect();
    assert_eq!(
        ids,
        ["alias_cog_0000", "cog_0000", "inner_cog_0000"],
        "{report:?}"
    );
    let warned: Vec<&str> = report
        .warnings
        .iter()
        .filter(|w| w.reason.contains("leads out of the crawled directory"))
        .map(|w| w.href.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(warned, ["elsewhere", "linked.tif"]);

    let db2 = TestDb::new().await;
    let followed = crawl_with(
        &db2,
        url,
        "links",
        &SourceSettings {
            follow_links_outside: true,
            ..SourceSettings::default()
        },
        &[],
        CrawlOptions::default(),
    )
    .await;
    assert_eq!(followed.read, 6, "{followed:?}");
}

/// The HTTP doors of the test harness (WebDAV, XrdHttp): crawled at the
/// server root and at a directory whose name needs percent-encoding, holding
/// files with spaces, `%` and non-ASCII letters in their names
/// (`scripts/test` puts them under `odd names/`).
#[tokio::test]
async fn http_doors_are_crawled_at_their_root_and_under_encoded_names() {
    let mut servers = Vec::new();
    for var in ["ARCOLAKE_TEST_WEBDAV_URL", "ARCOLAKE_TEST_XRDHTTP_URL"] {
        match std::env::var(var) {
            Ok(url) => servers.push(url),
            Err(std::env::VarError::NotPresent)
                if std::env::var("ARCOLAKE_TEST_REQUIRE_SERVERS").is_ok() =>
            {
                panic!("{var} is not set, but the test servers are required")
            }
            Err(_) => {}
        }
    }
    if servers.is_empty() {
        eprintln!("no HTTP test servers configured (scripts/test starts them)");
        return;
    }
    // Ids replace what is not a letter, digit, `-`, `_`, `.` or `:` by `_`.
    let want = ["a_b", "per_cent", "zoë"];
    for data_url in servers {
        let db = TestDb::new().await;
        let mut root = url::Url::parse(&data_url).unwrap();
        root.set_path("/");
        // A sub-path with and without a trailing slash.
        for (i, dir) in ["odd%20names", "odd%20names/"].iter().enumerate() {
            let mut u = root.clone();
            u.set_path(&format!("/{dir}"));
            let collection = format!("odd{i}");
            let report = crawl(&db, u.as_str(), &collection).await;
            assert!(report.complete, "{data_url}: {report:?}");
            assert!(report.errors.is_empty(), "{data_url}: {:?}", report.errors);
            assert!(
                !report
                    .warnings
                    .iter()
                    .any(|w| w.reason.contains("not one of its children")),
                "{data_url}: {:?}",
                report.warnings
            );
            let ids: Vec<String> = items(&db, &collection).await.into_keys().collect();
            assert_eq!(ids, want, "{data_url} {dir}");
        }
        // The server root: no doubled slashes, every directory reached.
        let report = crawl(&db, root.as_str(), "root").await;
        assert!(report.complete, "{data_url}: {:?}", report.stopped);
        assert!(
            !report.errors.iter().any(|e| e.reason.contains("400")),
            "{data_url}: {:?}",
            report.errors
        );
        let ids: Vec<String> = items(&db, "root").await.into_keys().collect();
        for name in want {
            assert!(
                ids.contains(&format!("odd_names_{name}")),
                "{data_url}: {ids:?}"
            );
        }
        assert!(
            ids.iter().any(|i| i.starts_with("data_")),
            "{data_url}: {ids:?}"
        );
    }
}

/// A crawl killed with SIGKILL at any point — while listing, between chunk
/// commits, while removing what is gone — and run again leaves exactly what
/// one clean crawl leaves.
#[tokio::test]
async fn a_crawl_killed_at_any_point_and_run_again_equals_a_clean_crawl() {
    const FILES: usize = 3000;
    const ITEMS: &str = "SELECT count(*) FROM items WHERE collection = 'k'";
    const RUNS: &str = "SELECT count(*) FROM crawl_runs";
    /// Kill the crawl as soon as `ready` holds; returns what `ready` saw.
    async fn kill_when<F, Fut>(mut child: std::process::Child, ready: F) -> i64
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Option<i64>>,
    {
        loop {
            if let Some(at) = ready().await {
                child.kill().unwrap();
                child.wait().unwrap();
                return at;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the crawl ended before it could be killed"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    let dir = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    for i in 0..FILES / 2 {
        for (sub, from, ext) in [("a", COG, "tif"), ("b", "boxes.fgb", "fgb")] {
            std::fs::copy(
                fixtures().join(from),
                dir.path().join(format!("{sub}/f_{i:04}.{ext}")),
            )
            .unwrap();
        }
    }
    let root = dir.path().to_str().unwrap().to_owned();
    let crawl_cmd = |db: &TestDb| {
        let mut c = Command::new(BIN);
        c.args([
            "crawl",
            &root,
            "--collection",
            "k",
            "--concurrency",
            "1",
            "--no-progress",
        ])
        .env("DATABASE_URL", db.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        c
    };
    let scalar = |db: &TestDb, sql: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap_or(0)
        }
    };
    let contents = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            let items: Vec<(String, Value)> =
                sqlx::query_as("SELECT id, content FROM items WHERE collection = 'k' ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            let objects: Vec<(String, String)> =
                sqlx::query_as("SELECT path, item_id FROM crawl_objects ORDER BY path")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            (items, objects)
        }
    };
    let clean = TestDb::new().await;
    assert!(crawl_cmd(&clean).status().unwrap().success());
    let want = contents(&clean).await;
    assert_eq!(want.0.len(), FILES);

    // While listing: the run has begun, no chunk is committed yet.
    let listing = TestDb::new().await;
    kill_when(crawl_cmd(&listing).spawn().unwrap(), || async {
        (scalar(&listing, RUNS).await > 0).then_some(scalar(&listing, ITEMS).await)
    })
    .await;
    assert!(crawl_cmd(&listing).status().unwrap().success());
    assert_eq!(contents(&listing).await, want, "killed while listing");

    // Between chunk commits.
    let chunks = TestDb::new().await;
    let at = kill_when(crawl_cmd(&chunks).spawn().unwrap(), || async {
        let n = scalar(&chunks, ITEMS).await;
        (n > 0).then_some(n)
    })
    .await;
    assert!(
        at < i64::try_from(FILES).unwrap(),
        "killed with {at} items in"
    );
    assert!(crawl_cmd(&chunks).status().unwrap().success());
    assert_eq!(contents(&chunks).await, want, "killed between chunks");

    // While removing: 40 % of the files are gone (removed in several
    // transactions).
    for i in 0..FILES / 2 {
        if i % 5 < 2 {
            std::fs::remove_file(dir.path().join(format!("a/f_{i:04}.tif"))).unwrap();
            std::fs::remove_file(dir.path().join(format!("b/f_{i:04}.fgb"))).unwrap();
        }
    }
    let full = i64::try_from(FILES).unwrap();
    let at = kill_when(crawl_cmd(&chunks).spawn().unwrap(), || async {
        let n = scalar(&chunks, ITEMS).await;
        (n < full).then_some(n)
    })
    .await;
    assert!(at > full * 3 / 5, "killed with {at} items left");
    assert!(crawl_cmd(&chunks).status().unwrap().success());
    let fresh = TestDb::new().await;
    assert!(crawl_cmd(&fresh).status().unwrap().success());
    let reduced = contents(&fresh).await;
    assert_eq!(reduced.0.len(), FILES * 3 / 5);
    assert_eq!(contents(&chunks).await, reduced, "killed while removing");
}

/// Credentials never reach the command's output, its log lines, its report
/// or the items, whatever their length and wherever they came from: a URL's
/// user info, a malformed line of the sources file, an unparsable URL, a
/// password the server refuses.
#[test]
fn credentials_never_reach_output_logs_reports_or_items() {
    let run = |args: &[&str], db: Option<&TestDb>| {
        let mut c = Command::new(BIN);
        c.args(args).env("RUST_LOG", "debug");
        match db {
            Some(db) => c.env("DATABASE_URL", db.url()),
            None => c.env("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none"),
        };
        let out = c.output().unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, text)
    };
    // A malformed line of the sources file holding a literal secret.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sources.toml");
    std::fs::write(
        &config,
        "[[source]]\nname = \"s\"\nurl = \"s3://b/p\"\ncollection = \"c\"\nsecret_access_key = \"Zq7x\n",
    )
    .unwrap();
    let (status, text) = run(&["crawl", "--config", config.to_str().unwrap()], None);
    assert!(!status.success());
    assert!(text.contains("line 5"), "{text}");
    assert!(!text.contains("Zq7x"), "{text}");
    // An unparsable URL with a password in it.
    let (status, text) = run(
        &[
            "crawl",
            "http://crawler:Zq7x@[::1/data",
            "--collection",
            "c",
        ],
        None,
    );
    assert!(!status.success());
    assert!(!text.contains("Zq7x"), "{text}");

    let Ok(url) = std::env::var("ARCOLAKE_TEST_WEBDAV_URL") else {
        assert!(
            std::env::var("ARCOLAKE_TEST_REQUIRE_SERVERS").is_err(),
            "ARCOLAKE_TEST_WEBDAV_URL is not set, but the test servers are required"
        );
        eprintln!("no WebDAV test server configured (scripts/test starts one)");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    // A short wrong password: the server refuses it, and it shows nowhere.
    let mut wrong = url::Url::parse(&url).unwrap();
    wrong.set_password(Some("pw9")).unwrap();
    let (status, text) = run(
        &[
            "crawl",
            wrong.as_str(),
            "--collection",
            "sec",
            "--no-progress",
        ],
        Some(&db),
    );
    assert!(!status.success(), "{text}");
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("pw9"), "{text}");
    // The right password: output, logs, report and items are clean.
    let report = dir.path().join("report.json");
    let secret = url::Url::parse(&url)
        .unwrap()
        .password()
        .unwrap()
        .to_owned();
    let (status, text) = run(
        &[
            "crawl",
            &url,
            "--collection",
            "sec",
            "--no-progress",
            "--report",
            report.to_str().unwrap(),
        ],
        Some(&db),
    );
    assert!(status.success(), "{text}");
    assert!(!text.contains(&secret), "{text}");
    assert!(!std::fs::read_to_string(&report).unwrap().contains(&secret));
    let items = rt.block_on(items(&db, "sec"));
    assert!(!items.is_empty());
    for item in items.values() {
        assert!(!item.to_string().contains(&secret));
    }
}
