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
