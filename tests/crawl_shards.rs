#![allow(clippy::unwrap_used, reason = "test code")]
//! Sharded crawls, run the way the templates in `deploy/` run them: four
//! shard processes at once, each started with the environment its
//! scheduler sets (a SLURM job array, HTCondor's submit file, a Kubernetes
//! indexed Job), over a local tree and the S3 test server, give exactly the
//! catalog one unsharded crawl gives; a shard killed mid-way and run again
//! changes nothing else; a shard removes only its own vanished items.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_arcolake");
const COG: &str = "s2/T31UFU_20230615T104621_B02.tif";
const SHARDS: u32 = 4;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tree of `cogs` single-file items under two directories, and 40
/// Sentinel-2 scenes of three band files each, grouped into one item per
/// scene by the sources file's template.
fn tree(dir: &Path, cogs: usize) {
    let src = root().join("fixtures/ingest").join(COG);
    for sub in ["a", "b/c", "s2"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for i in 0..cogs {
        let sub = if i % 2 == 0 { "a" } else { "b/c" };
        std::fs::copy(&src, dir.join(format!("{sub}/f_{i:04}.tif"))).unwrap();
    }
    for scene in 0..40 {
        for band in ["B02", "B03", "B04"] {
            let name = format!(
                "T31UF{}_202306{:02}T104621_{band}.tif",
                ["U", "V"][scene % 2],
                scene / 2 + 1
            );
            std::fs::copy(&src, dir.join("s2").join(name)).unwrap();
        }
    }
}

/// A sources file: the local tree (grouped), and the S3 test server's copy
/// of `fixtures/ingest` when it runs.
fn sources(dir: &Path, local: &Path) -> PathBuf {
    let mut text = format!(
        r#"
[[source]]
name = "tree"
url = "{}"
collection = "tree"
[[source.group]]
pattern = '(?P<tile>T\d{{2}}[A-Z]{{3}})_(?P<date>\d{{8}}T\d{{6}})_(?P<band>B\d{{2}})\.tif$'
id = "{{tile}}_{{date}}"
asset = "{{band}}"
datetime = "{{date}}"
datetime_format = "%Y%m%dT%H%M%S"
"#,
        local.display()
    );
    if let Ok(url) = std::env::var("ARCOLAKE_TEST_S3_URL") {
        text += &[
            "\n[[source]]\nname = \"s3\"\nurl = \"",
            &url,
            "\"\ncollection = \"on-s3\"\n",
        ]
        .concat();
    } else {
        assert!(
            !support::backends::servers_required(),
            "ARCOLAKE_TEST_S3_URL is not set"
        );
    }
    let path = dir.join("sources.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What a crawl leaves: every item, every crawl object, and each
/// collection's extent. An item's datetime taken from the crawl's own
/// clock (a Zarr store on S3 has no modification time) differs from one
/// crawl to the next: it is left out, and so is the end of the extent.
type Catalog = (
    Vec<(String, String, Value)>,
    Vec<(String, String, String)>,
    Vec<(String, Value)>,
);

async fn catalog(db: &TestDb) -> Catalog {
    let items: Vec<(String, String, Value)> =
        sqlx::query_as("SELECT collection, id, content FROM items ORDER BY collection, id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let objects = sqlx::query_as(
        "SELECT split_part(source, ' -> ', 2), path, item_id FROM crawl_objects ORDER BY 1, 2",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let items = items
        .into_iter()
        .map(|(c, id, mut item)| {
            if item["properties"]["arcolake:datetime_source"] == "crawl-time" {
                item["properties"]["datetime"] = Value::Null;
            }
            (c, id, item)
        })
        .collect();
    let extents = sqlx::query_as(
        "SELECT id, jsonb_build_object('bbox', content->'extent'->'spatial', \
         'start', content->'extent'->'temporal'->'interval'->0->0) FROM collections ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    (items, objects, extents)
}

/// The assets (bands) of the first Sentinel-2 scene of the tree.
fn bands(catalog: &Catalog) -> usize {
    let (.., scene) = catalog
        .0
        .iter()
        .find(|(_, id, _)| id == "T31UFU_20230601T104621")
        .unwrap();
    scene["assets"].as_object().unwrap().len()
}

/// `program args…` with the catalog's URL and the scheduler's variables;
/// reports go to `reports`.
fn command(
    program: &Path,
    args: &[&str],
    db: &TestDb,
    env: &[(&str, String)],
    reports: &Path,
) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .env("DATABASE_URL", db.url())
        .env("ARCOLAKE_BIN", BIN)
        .env("ARCOLAKE_REPORT_DIR", reports)
        .env("ARCOLAKE_CRAWL_CONCURRENCY", "2")
        .env_remove("ARCOLAKE_SHARD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Start every command at once and wait for them all (see [`wait_all`]).
fn run_all(commands: impl IntoIterator<Item = Command>) -> Vec<Value> {
    let children = commands
        .into_iter()
        .map(|mut c| c.spawn().unwrap())
        .collect();
    wait_all(children)
}

/// Wait for every process; each must succeed. Returns their reports (one
/// JSON line per source on stdout).
fn wait_all(children: Vec<Child>) -> Vec<Value> {
    let mut reports = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a shard failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            reports.push(serde_json::from_str(line).unwrap());
        }
    }
    reports
}

/// One unsharded crawl of the sources into a fresh catalog: what it
/// leaves, and its reports.
async fn reference_run(sources: &Path, reports: &Path) -> (Catalog, Vec<Value>) {
    let db = TestDb::new().await;
    let crawl = command(
        Path::new(BIN),
        &[
            "crawl",
            "--config",
            sources.to_str().unwrap(),
            "--no-progress",
        ],
        &db,
        &[],
        reports,
    );
    let reports = run_all([crawl]);
    (catalog(&db).await, reports)
}

/// One unsharded crawl of the sources into a fresh catalog.
async fn reference(sources: &Path, reports: &Path) -> Catalog {
    reference_run(sources, reports).await.0
}

/// The SLURM template, as `sbatch --array=0-3` runs it: task `i` of the
/// array, with the variables SLURM sets.
fn slurm(i: u32, sources: &Path, db: &TestDb, reports: &Path) -> Command {
    command(
        &root().join("deploy/slurm/crawl.sbatch"),
        &[],
        db,
        &[
            ("ARCOLAKE_SOURCES", sources.display().to_string()),
            ("SLURM_ARRAY_JOB_ID", "77".into()),
            ("SLURM_ARRAY_TASK_ID", i.to_string()),
            ("SLURM_ARRAY_TASK_MIN", "0".into()),
            ("SLURM_ARRAY_TASK_MAX", (SHARDS - 1).to_string()),
            ("SLURM_ARRAY_TASK_COUNT", SHARDS.to_string()),
            ("SLURM_ARRAY_TASK_STEP", "1".into()),
        ],
        reports,
    )
}

/// The HTCondor template: `crawl-shard.sh` with the environment the
/// submit file gives process `i` (checked against the submit file).
fn htcondor(i: u32, sources: &Path, db: &TestDb, reports: &Path) -> Command {
    let submit = std::fs::read_to_string(root().join("deploy/htcondor/crawl.sub")).unwrap();
    assert!(submit.contains("executable  = crawl-shard.sh"));
    assert!(submit.contains(&format!(
        "ARCOLAKE_SHARD_INDEX=$(Process) ARCOLAKE_SHARD_COUNT={SHARDS}"
    )));
    assert!(submit.contains(&format!("\nqueue {SHARDS}\n")));
    command(
        &root().join("deploy/htcondor/crawl-shard.sh"),
        &[],
        db,
        &[
            ("ARCOLAKE_SOURCES", sources.display().to_string()),
            ("ARCOLAKE_SHARD_INDEX", i.to_string()),
            ("ARCOLAKE_SHARD_COUNT", SHARDS.to_string()),
        ],
        reports,
    )
}

/// The Kubernetes template: the Job's container command (its sources file
/// replaced by the test's), with the pod's `JOB_COMPLETION_INDEX` and the
/// manifest's `ARCOLAKE_SHARD_COUNT`.
fn kubernetes(i: u32, sources: &Path, db: &TestDb, reports: &Path) -> Command {
    let job = std::fs::read_to_string(root().join("deploy/kubernetes/crawl-job.yaml")).unwrap();
    assert!(job.contains(&format!("completions: {SHARDS}")));
    assert!(job.contains(&format!(
        "{{name: ARCOLAKE_SHARD_COUNT, value: \"{SHARDS}\"}}"
    )));
    let line = job
        .lines()
        .find_map(|l| l.trim().strip_prefix("command: "))
        .unwrap();
    let command_line: Vec<String> = serde_json::from_str(line).unwrap();
    assert_eq!(command_line[0], "arcolake");
    let owned: Vec<String> = command_line[1..]
        .iter()
        .map(|a| {
            if a == "/etc/arcolake/sources.toml" {
                sources.display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
    command(
        Path::new(BIN),
        &args,
        db,
        &[
            ("JOB_COMPLETION_INDEX", i.to_string()),
            ("ARCOLAKE_SHARD_COUNT", SHARDS.to_string()),
        ],
        reports,
    )
}

/// Per collection, how many of the shards' reports finalized it.
fn finalized(reports: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in reports {
        assert!(
            r["shard"].is_string(),
            "a sharded report names its shard: {r}"
        );
        *out.entry(r["collection"].as_str().unwrap().to_owned())
            .or_default() += usize::from(r["finalized"] == true);
    }
    out
}

#[tokio::test]
async fn four_shards_at_once_give_the_catalog_of_one_crawl() {
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("lake");
    tree(&local, 400);
    let sources = sources(work.path(), &local);
    let reports = work.path();
    let want = reference(&sources, reports).await;
    assert_eq!(want.0.iter().filter(|(c, ..)| c == "tree").count(), 440);
    assert_eq!(bands(&want), 3, "a scene's bands are one item");

    // SLURM: four array tasks at once.
    let db = TestDb::new().await;
    let shard_reports = run_all((0..SHARDS).map(|i| slurm(i, &sources, &db, reports)));
    assert_eq!(catalog(&db).await, want, "four SLURM shards");
    for (collection, n) in finalized(&shard_reports) {
        assert_eq!(n, 1, "{collection} is finalized by exactly one shard");
    }
    // Each shard read only its own files: together, each file once.
    let tree_reports: Vec<&Value> = shard_reports
        .iter()
        .filter(|r| r["collection"] == "tree")
        .collect();
    let read: u64 = tree_reports
        .iter()
        .map(|r| r["read"].as_u64().unwrap())
        .sum();
    assert_eq!(read, 400 + 120);
    for r in &tree_reports {
        assert_eq!(
            r["other_shards"].as_u64().unwrap() + r["read"].as_u64().unwrap(),
            520
        );
        assert!(
            r["read"].as_u64().unwrap() > 60,
            "the split is even enough: {r}"
        );
    }
    assert!(
        reports.join("crawl-77-3.json").exists(),
        "the template writes each task's report"
    );

    // Kubernetes: the same round again reads nothing and changes nothing.
    let again = run_all((0..SHARDS).map(|i| kubernetes(i, &sources, &db, reports)));
    assert!(again.iter().all(|r| r["read"] == 0), "{again:?}");
    assert_eq!(catalog(&db).await, want, "an unchanged round");
    assert!(finalized(&again).values().all(|n| *n == 1));

    // An explicit --finalize works out the same extents.
    let out = command(
        Path::new(BIN),
        &["crawl", "--config", sources.to_str().unwrap(), "--finalize"],
        &db,
        &[],
        reports,
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        done["finalized"]
            .as_array()
            .unwrap()
            .contains(&"tree".into())
    );
    assert_eq!(catalog(&db).await, want, "after --finalize");
}

#[tokio::test]
async fn a_shard_killed_mid_way_and_run_again_changes_nothing_else() {
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("lake");
    tree(&local, 2400);
    let sources = sources(work.path(), &local);
    let reports = work.path();
    let want = reference(&sources, reports).await;

    let db = TestDb::new().await;
    let mut children: Vec<Child> = (0..SHARDS)
        .map(|i| htcondor(i, &sources, &db, reports).spawn().unwrap())
        .collect();
    // Shard 2 is killed as soon as it has committed some of its items.
    let mut victim = children.remove(2);
    let owned = "SELECT count(*) FROM crawl_objects WHERE shard_hash % 4 = 2";
    let at = loop {
        let n: i64 = sqlx::query_scalar(owned).fetch_one(&db.pool).await.unwrap();
        if n > 0 {
            victim.kill().unwrap();
            victim.wait().unwrap();
            break n;
        }
        assert!(
            victim.try_wait().unwrap().is_none(),
            "shard 2 ended before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let others = wait_all(children);
    let total: i64 = sqlx::query_scalar(owned).fetch_one(&db.pool).await.unwrap();
    assert!(
        at < 600 && total < 600,
        "killed mid-way: {at} of shard 2's ~600 objects in"
    );
    // The other shards' work is whole; no collection is finalized without
    // shard 2.
    assert!(
        others
            .iter()
            .all(|r| r["complete"] == true && r["finalized"] == false),
        "{others:?}"
    );
    let rows: Vec<(String, bool)> =
        sqlx::query_as("SELECT source, complete FROM crawl_shards WHERE shard = 2")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert!(rows.iter().any(|(_, complete)| !complete), "{rows:?}");

    let rerun = run_all([htcondor(2, &sources, &db, reports)]);
    assert!(
        rerun.iter().all(|r| r["finalized"] == true),
        "the rerun is the round's last shard"
    );
    assert_eq!(
        catalog(&db).await,
        want,
        "after the rerun of the killed shard"
    );
}

#[tokio::test]
async fn a_shard_removes_only_its_own_vanished_items() {
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("lake");
    tree(&local, 200);
    let sources = sources(work.path(), &local);
    let reports = work.path();
    let db = TestDb::new().await;
    run_all((0..SHARDS).map(|i| slurm(i, &sources, &db, reports)));

    // A tenth of the single-file items and one band of a scene go.
    let mut gone = Vec::new();
    for i in (0..200).step_by(10) {
        let sub = if i % 2 == 0 { "a" } else { "b/c" };
        std::fs::remove_file(local.join(format!("{sub}/f_{i:04}.tif"))).unwrap();
        gone.push(format!("{}_f_{i:04}", sub.replace('/', "_")));
    }
    std::fs::remove_file(local.join("s2/T31UFU_20230601T104621_B03.tif")).unwrap();
    let shard1 = catalog::store::crawl::Shard::new(1, SHARDS).unwrap();
    let ids = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT id FROM items WHERE collection = 'tree' ORDER BY id",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let before = ids(&db).await;
    let r = run_all([kubernetes(1, &sources, &db, reports)]);
    let after = ids(&db).await;
    let removed: Vec<&String> = before.iter().filter(|id| !after.contains(id)).collect();
    let mut mine: Vec<&String> = gone.iter().filter(|id| shard1.owns(id)).collect();
    mine.sort();
    assert!(!mine.is_empty() && mine.len() < gone.len(), "{mine:?}");
    assert_eq!(
        removed, mine,
        "shard 1 removed exactly its own vanished items"
    );
    let tree = r.iter().find(|r| r["collection"] == "tree").unwrap();
    assert_eq!(tree["items_removed"].as_u64().unwrap(), mine.len() as u64);

    // The other shards finish the round: the catalog one crawl of the
    // changed tree gives.
    run_all(
        [0, 2, 3]
            .into_iter()
            .map(|i| kubernetes(i, &sources, &db, reports)),
    );
    let want = reference(&sources, reports).await;
    assert_eq!(catalog(&db).await, want);
    assert_eq!(bands(&want), 2, "the scene lost one band");
}

/// Twelve directories of single-file items, the 40 grouped scenes in
/// `s2/`, and two files at the root.
fn dir_tree(dir: &Path) -> usize {
    let src = root().join("fixtures/ingest").join(COG);
    let mut files = 0;
    for d in 0..12 {
        let sub = dir.join(format!("d{d:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..25 {
            std::fs::copy(&src, sub.join(format!("f_{i:04}.tif"))).unwrap();
            files += 1;
        }
    }
    tree(dir, 0);
    for i in 0..2 {
        std::fs::copy(&src, dir.join(format!("r_{i}.tif"))).unwrap();
    }
    files + 120 + 2
}

/// `--shard-depth 1` through the SLURM template: each shard lists only
/// the directories it owns, and the round gives the catalog of one crawl.
fn slurm_dirs(i: u32, sources: &Path, db: &TestDb, reports: &Path) -> Command {
    let mut c = slurm(i, sources, db, reports);
    c.env("ARCOLAKE_SHARD_DEPTH", "1");
    c
}

#[tokio::test]
async fn shards_owning_directories_list_only_their_own() {
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("lake");
    let files = dir_tree(&local);
    let sources = sources(work.path(), &local);
    let reports = work.path();
    let (want, unsharded) = reference_run(&sources, reports).await;
    assert_eq!(bands(&want), 3);

    let db = TestDb::new().await;
    let shard_reports = run_all((0..SHARDS).map(|i| slurm_dirs(i, &sources, &db, reports)));
    assert_eq!(catalog(&db).await, want, "four shards owning directories");
    for (collection, n) in finalized(&shard_reports) {
        assert_eq!(n, 1, "{collection} is finalized by exactly one shard");
    }
    let tree: Vec<&Value> = shard_reports
        .iter()
        .filter(|r| r["collection"] == "tree")
        .collect();
    let sum = |key: &str| -> u64 { tree.iter().map(|r| r[key].as_u64().unwrap()).sum() };
    // Each file is read once; each is listed by one shard only, but for
    // the two at the root, which every shard lists (and three pass over).
    assert_eq!(sum("read"), files as u64);
    assert_eq!(sum("listed"), files as u64 + 3 * 2, "{tree:?}");
    assert_eq!(sum("other_shards"), 3 * 2, "{tree:?}");
    for r in &tree {
        let listed = r["listed"].as_u64().unwrap();
        assert!(listed < files as u64 / 2, "a shard lists its own part: {r}");
    }
    // The S3 copy of fixtures/ingest (directories, files and Zarr stores at
    // its root) is split the same way: no object is listed by two shards
    // but those at the root.
    if std::env::var("ARCOLAKE_TEST_S3_URL").is_ok() {
        let s3: Vec<&Value> = shard_reports
            .iter()
            .filter(|r| r["collection"] == "on-s3")
            .collect();
        let listed: u64 = s3.iter().map(|r| r["listed"].as_u64().unwrap()).sum();
        let passed: u64 = s3.iter().map(|r| r["other_shards"].as_u64().unwrap()).sum();
        let one = unsharded
            .iter()
            .find(|r| r["collection"] == "on-s3")
            .and_then(|r| r["listed"].as_u64())
            .unwrap();
        let at_root = support::backends::local_source(&root().join("fixtures/ingest"))
            .list_level("")
            .await
            .unwrap()
            .unwrap()
            .entries
            .len() as u64;
        assert!(at_root > 5);
        assert_eq!(listed, one + 3 * at_root, "{s3:?}");
        assert_eq!(passed, 3 * at_root, "{s3:?}");
        assert!(
            s3.iter().any(|r| r["listed"].as_u64().unwrap() < one),
            "{s3:?}"
        );
    }

    // A shard of the next round at another depth is refused, and changes
    // nothing; the round then completes at depth 1.
    run_all([slurm_dirs(0, &sources, &db, reports)]);
    let out = slurm(1, &sources, &db, reports).output().unwrap();
    assert!(!out.status.success(), "a shard at another depth ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shard depth of 1"), "{stderr}");
    let again = run_all((1..SHARDS).map(|i| slurm_dirs(i, &sources, &db, reports)));
    assert!(again.iter().all(|r| r["read"] == 0), "{again:?}");
    assert_eq!(catalog(&db).await, want, "an unchanged round");

    // Files vanish from two directories and the root: a shard removes the
    // items of its own directories (and of the root files it owns) only.
    let owner = |dir: &str| {
        (0..SHARDS)
            .find(|k| {
                catalog::store::crawl::Shard::new(*k, SHARDS)
                    .unwrap()
                    .owns(dir)
            })
            .unwrap()
    };
    let k = owner("d03");
    let other = (0..12)
        .map(|d| format!("d{d:02}"))
        .find(|d| owner(d) != k)
        .unwrap();
    for (dir, i) in [("d03", 1), ("d03", 2), (other.as_str(), 3)] {
        std::fs::remove_file(local.join(format!("{dir}/f_{i:04}.tif"))).unwrap();
    }
    std::fs::remove_file(local.join("r_0.tif")).unwrap();
    let shard = catalog::store::crawl::Shard::new(k, SHARDS)
        .unwrap()
        .with_depth(1);
    let mut mine = vec!["d03_f_0001".to_owned(), "d03_f_0002".to_owned()];
    if shard.owns("r_0") {
        mine.push("r_0".into());
    }
    let ids = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT id FROM items WHERE collection = 'tree' ORDER BY id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap()
    };
    let before = ids().await;
    let r = run_all([slurm_dirs(k, &sources, &db, reports)]);
    let after = ids().await;
    let removed: Vec<&String> = before.iter().filter(|id| !after.contains(id)).collect();
    assert_eq!(
        removed,
        mine.iter().collect::<Vec<_>>(),
        "shard {k} removed its own"
    );
    let tree = r.iter().find(|r| r["collection"] == "tree").unwrap();
    assert_eq!(tree["items_removed"].as_u64().unwrap(), mine.len() as u64);
    run_all(
        (0..SHARDS)
            .filter(|i| *i != k)
            .map(|i| slurm_dirs(i, &sources, &db, reports)),
    );
    assert_eq!(catalog(&db).await, reference(&sources, reports).await);
}

#[tokio::test]
async fn groups_across_directories_are_whole_after_the_round() {
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("lake");
    // Each scene's three bands in three directories: at depth 1 a scene's
    // files belong to up to three shards.
    let src = root().join("fixtures/ingest").join(COG);
    for band in ["B02", "B03", "B04"] {
        let dir = local.join(band.to_lowercase());
        std::fs::create_dir_all(&dir).unwrap();
        for scene in 0..20 {
            let name = format!("T31UFU_202306{:02}T104621_{band}.tif", scene + 1);
            std::fs::copy(&src, dir.join(name)).unwrap();
        }
    }
    let sources = sources(work.path(), &local);
    let reports = work.path();
    let want = reference(&sources, reports).await;
    assert_eq!(bands(&want), 3);

    let db = TestDb::new().await;
    let shard_reports = run_all((0..SHARDS).map(|i| slurm_dirs(i, &sources, &db, reports)));
    assert_eq!(catalog(&db).await, want, "every scene has its three bands");
    let last = shard_reports
        .iter()
        .find(|r| r["collection"] == "tree" && r["finalized"] == true)
        .unwrap();
    assert_eq!(last["items_across_shards"], 20, "{last}");

    // The next round changes nothing: the whole items are not written
    // again (same revisions).
    let revisions = || async {
        sqlx::query_as::<_, (String, i32)>(
            "SELECT id, revision FROM items WHERE collection = 'tree' ORDER BY id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap()
    };
    let before = revisions().await;
    let again = run_all((0..SHARDS).map(|i| slurm_dirs(i, &sources, &db, reports)));
    assert!(again.iter().all(|r| r["read"] == 0), "{again:?}");
    assert_eq!(
        revisions().await,
        before,
        "whole items are left as they are"
    );
    assert_eq!(catalog(&db).await, want);
}

/// The crawler and the catalog cut paths into shard keys the same way.
#[tokio::test]
async fn the_crawler_and_the_catalog_agree_on_shard_keys() {
    use catalog::store::crawl::Shard;
    let db = TestDb::new().await;
    let paths = [
        "f.tif",
        "a/f.tif",
        "a/b/f.tif",
        "a/b/c/f.tif",
        "a//f.tif",
        "a/b//c.tif",
        "/a/f.tif",
        "a/",
        "a/b/",
        "x.zarr",
        "a/x.zarr",
        "d\\e/f.tif",
        "zoë/å/f.tif",
        "",
    ];
    for depth in 0..4u32 {
        for path in paths {
            let sql: String = sqlx::query_scalar("SELECT crawl_shard_key($1, 'item', $2)")
                .bind(path)
                .bind(i32::try_from(depth).unwrap())
                .fetch_one(&db.pool)
                .await
                .unwrap();
            let rust = Shard::dir_of(path, depth).unwrap_or("item");
            assert_eq!(sql, rust, "{path:?} at depth {depth}");
        }
    }
}

#[tokio::test]
async fn a_source_names_its_own_shard_depth() {
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("lake");
    let files = dir_tree(&local) as u64;
    let path = sources(work.path(), &local);
    // The tree's shards own its directories; the S3 source keeps owning by
    // item (every shard lists all of it).
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "collection = \"tree\"\n",
        "collection = \"tree\"\nshard_depth = 1\n",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let reports = work.path();
    let want = reference(&path, reports).await;
    let db = TestDb::new().await;
    let shard_reports = run_all((0..SHARDS).map(|i| slurm(i, &path, &db, reports)));
    assert_eq!(catalog(&db).await, want);
    let listed = |collection: &str| -> Vec<(u64, Value)> {
        shard_reports
            .iter()
            .filter(|r| r["collection"] == collection)
            .map(|r| (r["listed"].as_u64().unwrap(), r["shard_depth"].clone()))
            .collect()
    };
    let tree = listed("tree");
    assert!(tree.iter().all(|(_, d)| *d == 1), "{tree:?}");
    assert_eq!(tree.iter().map(|(n, _)| n).sum::<u64>(), files + 3 * 2);
    let s3 = listed("on-s3");
    assert!(s3.iter().all(|(_, d)| d.is_null()), "{s3:?}");
    assert!(
        s3.windows(2).all(|w| w[0].0 == w[1].0),
        "each lists all: {s3:?}"
    );
}
