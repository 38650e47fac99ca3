//! A private PostgreSQL + PostGIS cluster in arcolake's data directory.
//!
//! Used when no `DATABASE_URL` is given. The cluster listens on a Unix socket
//! inside the data directory only (no TCP port), is initialised on first use
//! with the system's `initdb`, and is shared by every arcolake process that
//! points at the same data directory:
//!
//! ```text
//! DATA_DIR/
//!   postgres/        the cluster (PGDATA)
//!   run/             the socket directory
//!   leases/<pid>     one file per arcolake process using the cluster
//!   owner            who started it: a pid, or "manual" after `arcolake db start`
//!   cluster.lock     serialises start/attach/stop decisions between processes
//!   postgres.log     the server log
//! ```
//!
//! A process that finds the cluster running attaches to it. When a process
//! leaves, the cluster is stopped only if no other live process still holds a
//! lease and the process that started it is this one or has gone; so the
//! starter stops it, unless others still use it, in which case the last of
//! them does. A cluster started with `arcolake db start` keeps running until
//! `arcolake db stop`. As root, PostgreSQL runs as the `postgres` user.

use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tracing::{debug, info, warn};

use crate::{Error, Result};

/// The database and role the embedded cluster serves.
const DATABASE: &str = "arcolake";
/// Port number used only to name the socket file.
const PORT: u16 = 5432;
const OWNER_MANUAL: &str = "manual";
const PACKAGES_HINT: &str = "install PostgreSQL and PostGIS, e.g. `apt-get install postgresql postgis` \
     (Debian/Ubuntu: packages postgresql and postgresql-<version>-postgis-3), \
     or set DATABASE_URL to a PostgreSQL server with PostGIS";

/// Whether the embedded cluster is running, and who uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The cluster has been initialised in this data directory.
    pub initialised: bool,
    /// A postmaster answers on the socket.
    pub running: bool,
    /// The pid of the postmaster, when running.
    pub pid: Option<u32>,
    /// Who started it: a process id, or `manual`.
    pub owner: Option<String>,
    /// Live arcolake processes holding a lease.
    pub leases: Vec<u32>,
    /// A libpq connection URL for the cluster.
    pub url: String,
}

/// A handle on the embedded cluster held by this process.
///
/// Call [`Cluster::release`] when done; dropping the handle releases it too
/// (blocking the calling thread while the cluster stops).
#[derive(Debug)]
pub struct Cluster {
    layout: Layout,
    lease: Option<PathBuf>,
}

#[derive(Debug, Clone)]
struct Layout {
    root: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    leases: PathBuf,
    owner: PathBuf,
    lock: PathBuf,
    log: PathBuf,
}

impl Layout {
    fn new(data_dir: &Path) -> Result<Self> {
        fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        let root = data_dir
            .canonicalize()
            .map_err(|e| Error::io(data_dir, e))?;
        Ok(Self {
            pgdata: root.join("postgres"),
            socket_dir: root.join("run"),
            leases: root.join("leases"),
            owner: root.join("owner"),
            lock: root.join("cluster.lock"),
            log: root.join("postgres.log"),
            root,
        })
    }

    fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(PORT)
            .username(DATABASE)
            .database(database)
            .application_name("arcolake")
    }

    /// A URL both libpq and sqlx accept: the socket directory as the
    /// percent-encoded host.
    fn url(&self) -> String {
        let dir: String = percent_encoding::utf8_percent_encode(
            &self.socket_dir.to_string_lossy(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .collect();
        format!("postgresql://{DATABASE}@{dir}:{PORT}/{DATABASE}")
    }
}

/// The PostgreSQL server binaries to use.
#[derive(Debug, Clone)]
struct Binaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

impl Binaries {
    /// `initdb`/`pg_ctl` from PATH, else the newest `/usr/lib/postgresql/*/bin`.
    fn find() -> Result<Self> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, e.path().join("bin")))
            })
            .collect();
        versioned.sort();
        dirs.extend(versioned.into_iter().rev().map(|(_, dir)| dir));
        dirs.into_iter()
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
            .map(|d| Self {
                initdb: d.join("initdb"),
                pg_ctl: d.join("pg_ctl"),
            })
            .ok_or_else(|| Error::embedded(format!("initdb and pg_ctl not found; {PACKAGES_HINT}")))
    }
}

/// The user PostgreSQL runs as: ourselves, or `postgres` when we are root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
    switch: bool,
}

impl RunAs {
    fn detect() -> Result<Self> {
        let me = fs::metadata("/proc/self").map_err(|e| Error::io("/proc/self", e))?;
        if me.uid() != 0 {
            return Ok(Self {
                uid: me.uid(),
                gid: me.gid(),
                switch: false,
            });
        }
        let passwd = fs::read_to_string("/etc/passwd").map_err(|e| Error::io("/etc/passwd", e))?;
        let entry = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
            .ok_or_else(|| {
                Error::embedded(format!(
                    "running as root, PostgreSQL must run as the `postgres` user, which does not exist; {PACKAGES_HINT}"
                ))
            })?;
        let parse = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| Error::embedded("malformed /etc/passwd entry for postgres"))
        };
        Ok(Self {
            uid: parse(entry[2])?,
            gid: parse(entry[3])?,
            switch: true,
        })
    }

    fn command(self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if self.switch {
            cmd.uid(self.uid).gid(self.gid);
        }
        // Our own process group: a Ctrl-C meant for arcolake must not reach
        // a server that other processes may still be using.
        cmd.process_group(0);
        cmd.env_remove("PGDATA").env("LC_ALL", "C.UTF-8");
        cmd
    }

    /// Create `dir` owned by the server user, mode 0700.
    fn own_dir(self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        if self.switch {
            std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid))
                .map_err(|e| Error::io(dir, e))?;
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(dir, e))
    }

    /// Create an empty file the server user may write to.
    fn own_file(self, file: &Path) -> Result<()> {
        if !file.exists() {
            File::create(file).map_err(|e| Error::io(file, e))?;
        }
        if self.switch {
            std::os::unix::fs::chown(file, Some(self.uid), Some(self.gid))
                .map_err(|e| Error::io(file, e))?;
        }
        Ok(())
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<Output> {
    debug!(command = ?cmd, "running");
    let out = cmd
        .output()
        .map_err(|e| Error::embedded(format!("could not run {what}: {e}")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::embedded(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Whether a process lives: it exists and is not a zombie (a killed
/// postmaster whose parent is gone stays a zombie where nothing reaps it, and
/// still answers `kill(pid, 0)`).
fn pid_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)`.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x"))
}

/// Live processes whose working directory is this cluster's data directory:
/// the postmaster and its backends, including backends orphaned by a killed
/// postmaster (they keep the old shared memory attached, and a new
/// postmaster refuses to start while they live).
fn cluster_processes(layout: &Layout) -> Vec<u32> {
    let Ok(pgdata) = layout.pgdata.canonicalize() else {
        return Vec::new();
    };
    let me = std::process::id();
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == pgdata))
        .filter(|&pid| pid_alive(pid))
        .collect()
}

/// After a crash of the postmaster: wait a little for its orphaned backends
/// to notice and exit, then end the rest. They belong to this data directory
/// and would keep the new server from starting.
fn clear_orphans(layout: &Layout) {
    let wait_until = |deadline: std::time::Instant| loop {
        let left = cluster_processes(layout);
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let now = std::time::Instant::now();
    let left = wait_until(now + std::time::Duration::from_secs(10));
    if left.is_empty() {
        return;
    }
    warn!(pids = ?left, "ending processes of the crashed cluster");
    for pid in &left {
        if let Ok(raw) = i32::try_from(*pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(raw),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let left = wait_until(std::time::Instant::now() + std::time::Duration::from_secs(5));
    if !left.is_empty() {
        warn!(pids = ?left, "processes of the crashed cluster are still alive");
    }
}

/// An exclusive lock on `cluster.lock`, held while deciding to start or stop.
struct DirLock(File);

impl DirLock {
    fn acquire(layout: &Layout) -> Result<Self> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&layout.lock)
            .map_err(|e| Error::io(&layout.lock, e))?;
        file.lock().map_err(|e| Error::io(&layout.lock, e))?;
        Ok(Self(file))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn live_leases(layout: &Layout) -> Vec<u32> {
    let mut live = Vec::new();
    for entry in fs::read_dir(&layout.leases).into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid_alive(pid) {
            live.push(pid);
        } else {
            debug!(pid, "removing stale lease");
            let _ = fs::remove_file(entry.path());
        }
    }
    live.sort_unstable();
    live
}

fn read_owner(layout: &Layout) -> Option<String> {
    fs::read_to_string(&layout.owner)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The pid in `postmaster.pid`, when that process is alive.
fn postmaster_pid(layout: &Layout) -> Option<u32> {
    let text = fs::read_to_string(layout.pgdata.join("postmaster.pid")).ok()?;
    let pid = text.lines().next()?.trim().parse::<u32>().ok()?;
    pid_alive(pid).then_some(pid)
}

async fn answers(layout: &Layout) -> bool {
    PgConnection::connect_with(&layout.connect_options("postgres"))
        .await
        .is_ok()
}

fn initialise(layout: &Layout, bins: &Binaries, run_as: RunAs) -> Result<()> {
    info!(pgdata = %layout.pgdata.display(), "initialising embedded PostgreSQL cluster");
    // initdb wants an empty directory; a half-initialised one is moved aside.
    if layout.pgdata.exists() {
        let aside = layout
            .root
            .join(format!("postgres.incomplete.{}", std::process::id()));
        fs::rename(&layout.pgdata, &aside).map_err(|e| Error::io(&layout.pgdata, e))?;
        warn!(moved_to = %aside.display(), "found an incomplete cluster directory; moved it aside");
    }
    run_as.own_dir(&layout.pgdata)?;
    run(
        run_as
            .command(&bins.initdb)
            .arg("-D")
            .arg(&layout.pgdata)
            .args([
                "--username",
                DATABASE,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-instructions",
            ])
            .arg("--locale=C.UTF-8"),
        "initdb",
    )?;
    let conf = layout.pgdata.join("postgresql.conf");
    let mut text = fs::read_to_string(&conf).map_err(|e| Error::io(&conf, e))?;
    text.push_str(
        "\n# arcolake embedded defaults\n\
         listen_addresses = ''\n\
         unix_socket_permissions = 0700\n\
         shared_buffers = '256MB'\n\
         work_mem = '16MB'\n\
         maintenance_work_mem = '256MB'\n\
         max_wal_size = '4GB'\n\
         checkpoint_completion_target = 0.9\n\
         random_page_cost = 1.1\n\
         effective_cache_size = '4GB'\n\
         max_connections = 200\n\
         jit = off\n\
         max_parallel_workers_per_gather = 0\n",
    );
    fs::write(&conf, text).map_err(|e| Error::io(&conf, e))?;
    Ok(())
}

fn start_server(layout: &Layout, bins: &Binaries, run_as: RunAs) -> Result<()> {
    run_as.own_dir(&layout.socket_dir)?;
    run_as.own_file(&layout.log)?;
    // A postmaster.pid whose process is gone is what a crash leaves; the
    // server would refuse to start on some of those, so it goes.
    let pidfile = layout.pgdata.join("postmaster.pid");
    if pidfile.exists() && postmaster_pid(layout).is_none() {
        clear_orphans(layout);
        warn!(path = %pidfile.display(), "removing stale postmaster.pid left by a crash");
        fs::remove_file(&pidfile).map_err(|e| Error::io(&pidfile, e))?;
    }
    let options = format!(
        "-c listen_addresses='' -c unix_socket_directories='{}' -c port={PORT}",
        layout.socket_dir.display()
    );
    info!(socket = %layout.socket_dir.display(), "starting embedded PostgreSQL");
    run(
        run_as
            .command(&bins.pg_ctl)
            .arg("start")
            .arg("-D")
            .arg(&layout.pgdata)
            .arg("-l")
            .arg(&layout.log)
            .args(["-w", "-t", "120", "-o", &options]),
        "pg_ctl start",
    )
    .map_err(|e| {
        let tail = fs::read_to_string(&layout.log)
            .map(|l| {
                l.lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        Error::embedded(format!(
            "{e}\nserver log ({}):\n{tail}",
            layout.log.display()
        ))
    })?;
    Ok(())
}

fn stop_server(layout: &Layout, bins: &Binaries, run_as: RunAs) -> Result<()> {
    info!(pgdata = %layout.pgdata.display(), "stopping embedded PostgreSQL");
    run(
        run_as
            .command(&bins.pg_ctl)
            .arg("stop")
            .arg("-D")
            .arg(&layout.pgdata)
            .args(["-m", "fast", "-w", "-t", "60"]),
        "pg_ctl stop",
    )?;
    Ok(())
}

async fn ensure_database(layout: &Layout) -> Result<()> {
    let mut conn = PgConnection::connect_with(&layout.connect_options("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(DATABASE)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // A constant identifier: no user input reaches this statement.
        sqlx::query("CREATE DATABASE arcolake")
            .execute(&mut conn)
            .await?;
    }
    conn.close().await?;
    Ok(())
}

/// Start (or attach to) the cluster in `layout`, under the directory lock.
async fn bring_up(layout: &Layout, owner_tag: &str) -> Result<bool> {
    let bins = Binaries::find()?;
    let run_as = RunAs::detect()?;
    if !layout.pgdata.join("PG_VERSION").exists() || !layout.pgdata.join("postgresql.conf").exists()
    {
        initialise(layout, &bins, run_as)?;
    }
    let started = if answers(layout).await {
        debug!("attaching to the running embedded cluster");
        false
    } else {
        start_server(layout, &bins, run_as)?;
        fs::write(&layout.owner, owner_tag).map_err(|e| Error::io(&layout.owner, e))?;
        true
    };
    ensure_database(layout).await?;
    Ok(started)
}

impl Cluster {
    /// Initialise if needed, start if not running, and take a lease.
    pub async fn start(data_dir: &Path) -> Result<Self> {
        let layout = Layout::new(data_dir)?;
        check_traversable(&layout.root)?;
        let _lock = DirLock::acquire(&layout)?;
        live_leases(&layout);
        bring_up(&layout, &std::process::id().to_string()).await?;
        fs::create_dir_all(&layout.leases).map_err(|e| Error::io(&layout.leases, e))?;
        let lease = layout.leases.join(std::process::id().to_string());
        fs::write(&lease, b"").map_err(|e| Error::io(&lease, e))?;
        Ok(Self {
            layout,
            lease: Some(lease),
        })
    }

    /// Connection options for the `arcolake` database of this cluster.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.layout.connect_options(DATABASE)
    }

    /// Connection options for another database of this cluster.
    pub fn connect_options_for(&self, database: &str) -> PgConnectOptions {
        self.layout.connect_options(database)
    }

    /// A libpq URL for this cluster, for `psql` and `DATABASE_URL`.
    pub fn url(&self) -> String {
        self.layout.url()
    }

    /// Give up this process's lease; stop the cluster when this process
    /// started it (or its starter is gone) and no other process uses it.
    pub fn release(mut self) -> Result<()> {
        self.release_lease()
    }

    fn release_lease(&mut self) -> Result<()> {
        let Some(lease) = self.lease.take() else {
            return Ok(());
        };
        let _lock = DirLock::acquire(&self.layout)?;
        let _ = fs::remove_file(&lease);
        let others = live_leases(&self.layout);
        let owner = read_owner(&self.layout);
        let me = std::process::id().to_string();
        let starter_gone = match owner.as_deref() {
            Some(OWNER_MANUAL) => false,
            Some(pid) if pid == me => true,
            Some(pid) => pid.parse::<u32>().map_or(true, |p| !pid_alive(p)),
            None => false,
        };
        if !starter_gone {
            debug!(?owner, "leaving the embedded cluster running for its owner");
            return Ok(());
        }
        if !others.is_empty() {
            info!(
                ?others,
                "other arcolake processes still use the embedded cluster; leaving it running"
            );
            return Ok(());
        }
        if postmaster_pid(&self.layout).is_some() {
            stop_server(&self.layout, &Binaries::find()?, RunAs::detect()?)?;
        }
        let _ = fs::remove_file(&self.layout.owner);
        Ok(())
    }
}

/// A handle dropped without [`Cluster::release`] (a command interrupted by
/// Ctrl-C or SIGTERM, an error path) still gives up its lease and stops the
/// cluster it started, so no stale lease or orphaned server stays behind.
impl Drop for Cluster {
    fn drop(&mut self) {
        if self.lease.is_some()
            && let Err(e) = self.release_lease()
        {
            warn!(error = %e, "could not release the embedded cluster");
        }
    }
}

/// As root, the `postgres` user must be able to reach the data directory.
fn check_traversable(root: &Path) -> Result<()> {
    let run_as = RunAs::detect()?;
    if !run_as.switch {
        return Ok(());
    }
    for dir in root.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(dir) else {
            continue;
        };
        let others_x = meta.mode() & 0o001 != 0;
        let owner_ok = meta.uid() == run_as.uid && meta.mode() & 0o100 != 0;
        if !others_x && !owner_ok {
            return Err(Error::embedded(format!(
                "PostgreSQL runs as the `postgres` user, which cannot enter {}; \
                 choose a data directory it can reach (--data-dir or ARCOLAKE_DATA_DIR), e.g. /var/lib/arcolake",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Start the cluster for an operator (`arcolake db start`); it keeps running
/// until [`stop`]. Returns whether this call started it.
pub async fn start_manual(data_dir: &Path) -> Result<bool> {
    let layout = Layout::new(data_dir)?;
    check_traversable(&layout.root)?;
    let _lock = DirLock::acquire(&layout)?;
    let started = bring_up(&layout, OWNER_MANUAL).await?;
    if !started {
        // Already running: from now on it stays up until `db stop`.
        fs::write(&layout.owner, OWNER_MANUAL).map_err(|e| Error::io(&layout.owner, e))?;
    }
    Ok(started)
}

/// Stop the cluster (`arcolake db stop`). Refuses while other arcolake
/// processes hold leases, unless `force`. Returns whether it was running.
pub fn stop(data_dir: &Path, force: bool) -> Result<bool> {
    let layout = Layout::new(data_dir)?;
    let _lock = DirLock::acquire(&layout)?;
    let leases = live_leases(&layout);
    if !leases.is_empty() && !force {
        return Err(Error::embedded(format!(
            "arcolake processes {leases:?} are using the cluster; stop them first or pass --force"
        )));
    }
    if postmaster_pid(&layout).is_none() {
        return Ok(false);
    }
    stop_server(&layout, &Binaries::find()?, RunAs::detect()?)?;
    let _ = fs::remove_file(&layout.owner);
    Ok(true)
}

/// Report on the cluster in `data_dir` without changing anything.
pub async fn status(data_dir: &Path) -> Result<Status> {
    let layout = Layout::new(data_dir)?;
    let pid = postmaster_pid(&layout);
    let running = pid.is_some() && answers(&layout).await;
    Ok(Status {
        initialised: layout.pgdata.join("PG_VERSION").exists(),
        running,
        pid: if running { pid } else { None },
        owner: read_owner(&layout),
        leases: live_leases(&layout),
        url: layout.url(),
    })
}

/// Hint shown when PostGIS is missing from a server.
pub(crate) fn postgis_hint() -> &'static str {
    PACKAGES_HINT
}
