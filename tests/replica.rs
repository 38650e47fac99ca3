//! Read replicas and many API processes: a real streaming standby of the
//! catalog (`pg_basebackup` of the embedded cluster, started as a hot
//! standby), two `arcolake serve` processes on it with
//! `--read-database-url`, writes through one and reads through the other.

#![allow(clippy::unwrap_used, reason = "test code")]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use support::ids;

const BIN: &str = env!("CARGO_BIN_EXE_arcolake");
const TOKEN: &str = "replica-test-admin-token";
const ITEMS: u32 = 60;

/// The user PostgreSQL runs as: this one, or `postgres` under root.
fn run_as() -> Option<(u32, u32)> {
    if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0 {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let line = passwd.lines().find(|l| l.starts_with("postgres:")).unwrap();
        let f: Vec<&str> = line.split(':').collect();
        Some((f[2].parse().unwrap(), f[3].parse().unwrap()))
    } else {
        None
    }
}

/// A PostgreSQL program: from PATH, else the newest
/// `/usr/lib/postgresql/*/bin`.
fn pg_program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").map(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if let Some(Some(p)) = on_path {
        return p;
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|d| d.join(name).is_file())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    dirs.pop().unwrap().join(name)
}

fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new(program);
    if let Some((uid, gid)) = run_as() {
        c.uid(uid).gid(gid);
    }
    c
}

fn chown(path: &Path) {
    if let Some((uid, gid)) = run_as() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn encode(path: &Path) -> String {
    path.to_str()
        .unwrap()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An HTTP exchange through curl: status, headers (lower-case names) and body.
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Value,
}

fn http(method: &str, url: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Reply {
    let head = tempfile::NamedTempFile::new().unwrap();
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-X",
        method,
        "-D",
        head.path().to_str().unwrap(),
        "-o",
        "-",
        url,
    ]);
    for (k, v) in headers {
        c.args(["-H", &format!("{k}: {v}")]);
    }
    if let Some(b) = body {
        c.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &b.to_string(),
        ]);
    }
    let out = c.output().unwrap();
    let text = std::fs::read_to_string(head.path()).unwrap();
    let mut lines = text.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// A server process, stopped when dropped.
struct Server {
    child: Child,
    base: String,
}

/// Send `signal` to a child this test started and wait for it.
fn stop(child: &mut Child, signal: Signal) {
    let _ = kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), signal);
    let _ = child.wait();
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(&mut self.child, Signal::SIGTERM);
    }
}

fn serve(primary: &str, replica: &str, log: &Path) -> Server {
    let port = free_port();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--read-database-url",
            replica,
        ])
        .env("DATABASE_URL", primary)
        .env("ARCOLAKE_ADMIN_TOKEN", TOKEN)
        .env(
            "ARCOLAKE_SIGNING_KEYS",
            "k1:shared-signing-key-of-both-processes-0123456789",
        )
        .env("ARCOLAKE_LOG_FORMAT", "json")
        .env("ARCOLAKE_PUBLIC_URL", "http://arcolake.test")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    loop {
        if Command::new("curl")
            .args(["-sf", "-o", "/dev/null", &format!("{}/readyz", server.base)])
            .status()
            .unwrap()
            .success()
        {
            return server;
        }
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "serve exited: {}",
            std::fs::read_to_string(log).unwrap()
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "serve did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The embedded primary and a streaming standby of it, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    standby: Child,
    primary_url: String,
    standby_url: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A fast shutdown: a smart one waits for every client to leave.
        stop(&mut self.standby, Signal::SIGINT);
        let _ = Command::new(BIN)
            .args(["db", "stop", "--force"])
            .env("ARCOLAKE_DATA_DIR", self.dir.path().join("primary"))
            .env_remove("DATABASE_URL")
            .output();
    }
}

fn cluster() -> Cluster {
    let dir = tempfile::Builder::new()
        .prefix("arcolake-replica-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let primary_dir = dir.path().join("primary");
    let out = Command::new(BIN)
        .args(["db", "start"])
        .env("ARCOLAKE_DATA_DIR", &primary_dir)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let socket = primary_dir.canonicalize().unwrap().join("run");
    let primary_url = format!("postgresql://arcolake@{}:5432/arcolake", encode(&socket));
    // The schema first: the standby gets it by replication, like the rest.
    let out = Command::new(BIN)
        .args(["migrate"])
        .env("DATABASE_URL", &primary_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let replica = dir.path().join("replica");
    std::fs::create_dir(&replica).unwrap();
    chown(&replica);
    let data = replica.join("data");
    let out = as_postgres(&pg_program("pg_basebackup"))
        .args([
            "-D",
            data.to_str().unwrap(),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-d",
            &primary_url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = replica.join("run");
    std::fs::create_dir(&run).unwrap();
    chown(&run);
    let log = replica.join("standby.log");
    std::fs::write(&log, "").unwrap();
    chown(&log);
    let standby = as_postgres(&pg_program("postgres"))
        .args([
            "-D",
            data.to_str().unwrap(),
            "-c",
            "listen_addresses=",
            "-c",
        ])
        .arg(format!("unix_socket_directories={}", run.display()))
        .args(["-c", "port=5432", "-c", "hot_standby=on"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let standby_url = format!("postgresql://arcolake@{}:5432/arcolake", encode(&run));
    Cluster {
        dir,
        standby,
        primary_url,
        standby_url,
    }
}

async fn connect(url: &str) -> sqlx::PgPool {
    let start = Instant::now();
    loop {
        match sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
        {
            Ok(p) => return p,
            Err(e) => {
                assert!(start.elapsed() < Duration::from_secs(60), "{url}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn item(i: u32) -> Value {
    let x = f64::from(i) * 0.5;
    json!({
        "type": "Feature", "stac_version": "1.1.0", "id": format!("it-{i:03}"),
        "geometry": {"type": "Point", "coordinates": [x, 10.0]},
        "bbox": [x, 10.0, x, 10.0],
        "properties": {"datetime": format!("2024-01-01T00:{:02}:{:02}Z", i / 60, i % 60)},
        "links": [], "assets": {},
    })
}

/// A link of `body` on `server` instead of the public URL.
fn on(server: &Server, href: &str) -> String {
    href.replace("http://arcolake.test", &server.base)
}

#[tokio::test]
async fn two_processes_on_a_streaming_replica_read_their_writes_and_page_without_gaps() {
    let c = cluster();
    let standby = connect(&c.standby_url).await;
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&standby)
        .await
        .unwrap();
    assert!(in_recovery, "the replica is a streaming standby");
    let a = serve(&c.primary_url, &c.standby_url, &c.dir.path().join("a.log"));
    let b = serve(&c.primary_url, &c.standby_url, &c.dir.path().join("b.log"));
    let admin = format!("Bearer {TOKEN}");
    let auth = [("Authorization", admin.as_str())];

    // Writes through A.
    let col = json!({"type": "Collection", "stac_version": "1.1.0", "id": "r", "description": "replica",
        "license": "CC0-1.0", "links": [],
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[null, null]]}}});
    let r = http(
        "POST",
        &format!("{}/collections", a.base),
        Some(&col),
        &auth,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let marker = r
        .headers
        .get("arcolake-read-after")
        .cloned()
        .expect("a write answers with its WAL position");
    // Read through B with the marker: the collection is there at once.
    let r = http(
        "GET",
        &format!("{}/collections/r", b.base),
        None,
        &[("Arcolake-Read-After", &marker)],
    );
    assert_eq!(r.status, 200);
    let features: Vec<Value> = (0..ITEMS).map(item).collect();
    let r = http(
        "POST",
        &format!("{}/collections/r/items", a.base),
        Some(&json!({"type": "FeatureCollection", "features": features})),
        &auth,
    );
    assert!(
        r.status == 201 || r.status == 200,
        "{}: {}",
        r.status,
        r.body
    );
    let marker = r.headers["arcolake-read-after"].clone();
    let r = http(
        "GET",
        &format!("{}/collections/r/items?limit=1000", b.base),
        None,
        &[("Arcolake-Read-After", &marker)],
    );
    assert_eq!(
        ids(&r.body).len(),
        ITEMS as usize,
        "B reads A's writes with the marker"
    );
    let r = http(
        "GET",
        &format!("{}/collections/r/items?limit=1000", a.base),
        None,
        &[],
    );
    assert_eq!(ids(&r.body).len(), ITEMS as usize, "A reads its own writes");
    assert_eq!(
        http(
            "GET",
            &format!("{}/search", a.base),
            None,
            &[("Arcolake-Read-After", "yesterday")]
        )
        .status,
        400,
        "a bad marker is a client error"
    );

    // A page walk alternating between the servers: no gap, no repeat, the
    // order one server gives.
    let whole = ids(&http(
        "GET",
        &format!("{}/search?collections=r&limit=1000", a.base),
        None,
        &[],
    )
    .body);
    let mut walked = Vec::new();
    let mut url = format!("{}/search?collections=r&limit=7", b.base);
    for page in 0.. {
        let r = http("GET", &url, None, &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        walked.extend(ids(&r.body));
        let Some(next) = r.body["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "next")
        else {
            break;
        };
        url = on(
            if page % 2 == 0 { &a } else { &b },
            next["href"].as_str().unwrap(),
        );
    }
    assert_eq!(walked, whole, "pages alternating between A and B");
    assert_eq!(walked.iter().collect::<HashSet<_>>().len(), ITEMS as usize);

    behind_replica(&a, &b, &standby, &auth).await;

    // Both processes served reads from the replica, and some from the
    // primary.
    for server in [&a, &b] {
        let text = Command::new("curl")
            .args(["-s", &format!("{}/metrics", server.base)])
            .output()
            .unwrap()
            .stdout;
        let text = String::from_utf8(text).unwrap();
        let count = |target: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(&format!("arcolake_db_reads_total{{target=\"{target}\"}}")))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        assert!(count("replica") > 0.0 && count("primary") > 0.0, "{text}");
    }
}

/// With the replica paused (behind from then on): who reads a new write.
async fn behind_replica(a: &Server, b: &Server, standby: &sqlx::PgPool, auth: &[(&str, &str)]) {
    // The replica stops replaying: it is behind from now on.
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(standby)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = http(
        "POST",
        &format!("{}/collections/r/items", a.base),
        Some(&item(ITEMS)),
        auth,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let marker = r.headers["arcolake-read-after"].clone();
    let newest = format!("it-{ITEMS:03}");
    // A replacement answers with the item as written, though the replica
    // still has the old one: reads after a write of the same request go to
    // the primary.
    let mut changed = item(0);
    changed["properties"]["eo:cloud_cover"] = json!(77.5);
    let r = http(
        "PUT",
        &format!("{}/collections/r/items/it-000", a.base),
        Some(&changed),
        auth,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["properties"]["eo:cloud_cover"], 77.5, "{}", r.body);
    let listed = |server: &Server, headers: &[(&str, &str)]| {
        ids(&http(
            "GET",
            &format!("{}/search?collections=r&limit=1000", server.base),
            None,
            headers,
        )
        .body)
        .contains(&newest)
    };
    assert!(
        listed(a, &[]),
        "the writing process reads its write (from the primary)"
    );
    assert!(
        listed(b, &[("Arcolake-Read-After", &marker)]),
        "B with the marker reads it (from the primary)"
    );
    assert!(
        !listed(b, &[]),
        "B without the marker reads the paused replica, which lacks it"
    );
    // A lookup by id is asked of the primary when the replica lacks it.
    let r = http(
        "GET",
        &format!("{}/collections/r/items/{newest}", b.base),
        None,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // So is a registered search.
    let r = http(
        "POST",
        &format!("{}/searches", a.base),
        Some(&json!({"collections": ["r"]})),
        &[],
    );
    assert!(
        r.status == 201 || r.status == 200,
        "{}: {}",
        r.status,
        r.body
    );
    let tilejson = r.body["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["href"].as_str().unwrap().ends_with("tilejson.json"))
        .map(|l| l["href"].as_str().unwrap().to_owned())
        .unwrap();
    assert_eq!(
        http("GET", &on(b, &tilejson), None, &[]).status,
        200,
        "B finds A's registered search"
    );

    // Replay resumes: B without the marker sees the write.
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(standby)
        .await
        .unwrap();
    let start = Instant::now();
    while !listed(b, &[]) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the replica never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
