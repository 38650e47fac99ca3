//! End to end: the real binary, its embedded PostgreSQL, shared between
//! processes, and recovery after a crash.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_arcolake");

/// A data directory the `postgres` user can reach when tests run as root.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("arcolake-cli-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

fn arcolake(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("ARCOLAKE_DATA_DIR", dir)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

/// Send a signal from the test itself (a minimal system has no `kill` command).
fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), sig).unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            &format!("http://127.0.0.1:{port}{path}"),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.trim().parse().ok()?, body.to_owned()))
}

fn wait_ready(port: u16, child: &mut Child) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if let Some((200, _)) = get(port, "/readyz") {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("arcolake serve exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("arcolake serve did not become ready");
}

fn terminate(child: &mut Child) {
    signal(child.id(), Signal::SIGTERM);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("arcolake serve did not stop on SIGTERM");
}

fn status(dir: &Path) -> serde_json::Value {
    let out = arcolake(dir, &["db", "status"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn serve_and_load_share_one_embedded_cluster_which_the_starter_stops() {
    let dir = data_dir();
    let port = free_port();
    let mut serve = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("ARCOLAKE_DATA_DIR", dir.path())
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(port, &mut serve);
    let s = status(dir.path());
    assert_eq!(s["running"], true);
    assert_eq!(s["owner"], serve.id().to_string());

    // A load while serve is up attaches to the same cluster.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/stac");
    let out = arcolake(dir.path(), &["load", fixtures.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["collections"], 2);
    assert_eq!(report["items_inserted"], 40);
    assert_eq!(
        status(dir.path())["running"],
        true,
        "the loader left the server's cluster running"
    );

    // The server sees the new items at once.
    let (code, body) = get(port, "/collections/sentinel-2-l2a/items?limit=1").unwrap();
    assert_eq!(code, 200);
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["numberMatched"], 20);

    // Loading again updates instead of duplicating.
    let out = arcolake(dir.path(), &["load", fixtures.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            report["items_inserted"].as_u64(),
            report["items_updated"].as_u64()
        ),
        (Some(0), Some(40))
    );

    terminate(&mut serve);
    assert_eq!(
        status(dir.path())["running"],
        false,
        "the starter stops the cluster when it leaves last"
    );
}

#[test]
fn a_crashed_cluster_is_recovered_by_the_next_run() {
    let dir = data_dir();
    let out = arcolake(dir.path(), &["db", "start"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = status(dir.path())["pid"].as_u64().unwrap();
    // Kill the postmaster without letting it clean up.
    signal(u32::try_from(pid).unwrap(), Signal::SIGKILL);
    let start = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        dir.path().join("postgres/postmaster.pid").exists(),
        "a crash leaves postmaster.pid behind"
    );
    let out = arcolake(dir.path(), &["migrate"]);
    assert!(
        out.status.success(),
        "migrate after a crash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The crash ended the operator's cluster, so migrate started its own and,
    // being its starter and last user, stopped it again.
    assert_eq!(status(dir.path())["running"], false);
    let out = arcolake(dir.path(), &["db", "start"]);
    assert!(out.status.success());
    assert_eq!(status(dir.path())["running"], true);
    let out = arcolake(dir.path(), &["db", "stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(dir.path())["running"], false);
}

#[test]
fn missing_or_bad_input_is_reported_not_crashed_on() {
    let dir = data_dir();
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"type\":\"Feature\",\"id\":\"x\"}\nnot json\n").unwrap();
    let out = arcolake(dir.path(), &["load", bad.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "failures make load exit 2: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failed"], 2);
    assert!(
        report["failures"][1]["place"]
            .as_str()
            .unwrap()
            .ends_with("bad.ndjson:2")
    );
    let out = Command::new(BIN)
        .args(["serve", "--listen", "nonsense"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(status(dir.path())["running"], false);
}

#[test]
fn openapi_subcommand_prints_the_committed_document() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let committed =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json")).unwrap();
    assert!(
        out.stdout == committed,
        "openapi/openapi.json drifted: run `arcolake openapi > openapi/openapi.json`"
    );
}

/// A POST of `n` new items to the demo's `sentinel-2-l2a` collection.
fn post_items(port: u16, token: &str, body_file: &Path, round: usize, n: usize) -> Option<u16> {
    let features: Vec<serde_json::Value> = (0..u32::try_from(n).unwrap())
        .map(|i| {
            let (lon, lat) = (-170.0 + f64::from(i % 340), -60.0 + f64::from(i % 120));
            serde_json::json!({
                "type": "Feature", "stac_version": "1.0.0", "id": format!("load-{round}-{i}"),
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "bbox": [lon, lat, lon, lat],
                "properties": {"datetime": "2024-01-01T00:00:00Z", "eo:cloud_cover": i % 100},
                "links": [], "assets": {}
            })
        })
        .collect();
    let body = serde_json::json!({"type": "FeatureCollection", "features": features});
    std::fs::write(body_file, body.to_string()).unwrap();
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json"])
        .arg("--data-binary")
        .arg(format!("@{}", body_file.display()))
        .arg(format!(
            "http://127.0.0.1:{port}/collections/sentinel-2-l2a/items"
        ))
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn spawn_serve(dir: &Path, port: u16, token: &str) -> Child {
    Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("ARCOLAKE_DATA_DIR", dir)
        .env("ARCOLAKE_ADMIN_TOKEN", token)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// What the OOM killer or a power cut does: the server and its embedded
/// postmaster both die by SIGKILL in the middle of bulk writes. A restart a
/// few seconds later recovers (orphaned backends ended, the stale lock
/// removed) and serves every committed write.
#[test]
fn a_server_and_its_postmaster_killed_during_bulk_writes_restart_cleanly() {
    let dir = data_dir();
    let port = free_port();
    let token = "crash-test-token";
    let mut serve = spawn_serve(dir.path(), port, token);
    wait_ready(port, &mut serve);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/stac");
    assert!(
        arcolake(dir.path(), &["load", fixtures.to_str().unwrap()])
            .status
            .success()
    );
    let postmaster = u32::try_from(status(dir.path())["pid"].as_u64().unwrap()).unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let committed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (stop, committed) = (stop.clone(), committed.clone());
        let body = dir.path().join("body.json");
        std::thread::spawn(move || {
            let mut round = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if post_items(port, token, &body, round, 2000) == Some(201) {
                    committed.fetch_add(2000, std::sync::atomic::Ordering::Relaxed);
                }
                round += 1;
            }
        })
    };
    let start = Instant::now();
    while committed.load(std::sync::atomic::Ordering::Relaxed) < 4000 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no bulk write committed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // In the middle of the next writes.
    std::thread::sleep(Duration::from_millis(150));
    signal(serve.id(), Signal::SIGKILL);
    signal(postmaster, Signal::SIGKILL);
    serve.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let before = committed.load(std::sync::atomic::Ordering::Relaxed);

    std::thread::sleep(Duration::from_secs(2));
    let mut again = spawn_serve(dir.path(), port, token);
    wait_ready(port, &mut again);
    let (code, body) = get(port, "/collections/sentinel-2-l2a/items?limit=1&context=on").unwrap();
    assert_eq!(code, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let matched = usize::try_from(page["numberMatched"].as_u64().unwrap()).unwrap();
    assert!(
        matched >= 20 + before,
        "{matched} items after the restart, {before} were acknowledged"
    );
    assert_eq!((matched - 20) % 2000, 0, "a bulk write is all or nothing");
    terminate(&mut again);
    assert_eq!(status(dir.path())["running"], false);
}

/// `crawl` stopped with SIGTERM (or Ctrl-C) gives up its lease and stops
/// the embedded cluster it started.
#[test]
fn a_crawl_stopped_by_a_signal_releases_the_cluster_it_started() {
    let dir = data_dir();
    let files = tempfile::tempdir().unwrap();
    let cog = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/ingest/s2/T31UFU_20230615T104621_B02.tif");
    for i in 0..3000 {
        std::fs::copy(&cog, files.path().join(format!("c_{i:04}.tif"))).unwrap();
    }
    let mut crawl = Command::new(BIN)
        .args(["crawl", files.path().to_str().unwrap(), "--collection", "c"])
        .args(["--concurrency", "1", "--no-progress"])
        .env("ARCOLAKE_DATA_DIR", dir.path())
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let s = status(dir.path());
        if s["running"] == true && s["leases"].as_array().is_some_and(|l| !l.is_empty()) {
            break;
        }
        assert!(
            crawl.try_wait().unwrap().is_none(),
            "the crawl ended too soon"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the crawl never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    signal(crawl.id(), Signal::SIGTERM);
    let start = Instant::now();
    let code = loop {
        if let Some(s) = crawl.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the crawl ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(130));
    let s = status(dir.path());
    assert_eq!(s["running"], false, "{s}");
    assert_eq!(s["leases"], serde_json::json!([]), "{s}");
}
