//! `arcolake export`: the catalog, or some collections, as files for the
//! ecosystem.
//!
//! - **stac-geoparquet** (`geoparquet/<collection>/part-NNNNN.parquet`):
//!   written by the `stac` crate's stac-geoparquet writer (the GeoParquet
//!   `geo` metadata, the `stac-geoparquet` metadata with the collection).
//!   A part holds items of one Arrow schema; when a page of items needs
//!   another schema (a property or asset the earlier ones lack), the part is
//!   closed and the next begins, so DuckDB reads them with
//!   `union_by_name`, and Dask or geopandas one part per task.
//! - **a static STAC catalog** (`catalog.json`, `<collection>/collection.json`,
//!   `<collection>/<item>/<item>.json`), every link relative (no `self`), as
//!   the STAC best practices lay out a self-contained catalog: ready to copy
//!   to object storage and to load again with `arcolake load`.
//!
//! Memory stays bounded: items are read a page at a time (keyset on the
//! primary key), written by one thread while the next page is read, and a
//! collection's `item` links go through a file on disk until its
//! `collection.json` is written after its items.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{Receiver, Sender, channel};

use serde_json::{Map, Value, json};
use sha2::Digest as _;
use tracing::info;

use crate::access::Visibility;
use crate::store::StoredCollection;
use crate::{Error, Result, Store};

/// What to export and how.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Only these collections; empty: every collection the export sees.
    pub collections: Vec<String>,
    /// Write stac-geoparquet.
    pub geoparquet: bool,
    /// Write a static catalog.
    pub static_catalog: bool,
    /// Also export restricted collections (left out by default: an export
    /// is for publishing).
    pub include_restricted: bool,
    /// Items read per page (and per Arrow record batch).
    pub page: usize,
    /// The static catalog's id.
    pub catalog_id: String,
    /// The static catalog's description.
    pub catalog_description: String,
    /// Jobs at once, each with its own reader and writer. A collection of
    /// at least `split_min` items that is more than a quarter of a job's
    /// share is split by id into ranges exported side by side; jobs take
    /// collections and ranges from one queue as they finish others.
    pub jobs: usize,
    /// The smallest collection split between jobs.
    pub split_min: usize,
    /// The parquet files' compression (see [`parse_compression`]).
    pub compression: Compression,
}

pub use stac::geoparquet::Compression;

/// The compression the parquet files get by default: zstd at level 3.
/// (The `stac` crate's own default, level 15, costs several times the CPU
/// for files a few per cent smaller.)
pub const DEFAULT_COMPRESSION: &str = "zstd:3";

/// A parquet compression: `zstd` (level 3), `zstd:LEVEL` (1 to 22),
/// `snappy`, `lz4`, `gzip` or `none`.
pub fn parse_compression(text: &str) -> std::result::Result<Compression, String> {
    use stac::geoparquet::{GzipLevel, ZstdLevel};
    let (name, level) = match text.split_once(':') {
        Some((name, level)) => (name.trim(), Some(level)),
        None => (text.trim(), None),
    };
    let level = level
        .map(|l| {
            l.trim()
                .parse::<i32>()
                .map_err(|_| format!("{text:?}: the level is a whole number"))
        })
        .transpose()?;
    match (name.to_ascii_lowercase().as_str(), level) {
        ("zstd", level) => ZstdLevel::try_new(level.unwrap_or(3))
            .map(Compression::ZSTD)
            .map_err(|e| format!("{text:?}: {e}")),
        ("gzip", level) => {
            GzipLevel::try_new(u32::try_from(level.unwrap_or(6)).unwrap_or(u32::MAX))
                .map(Compression::GZIP)
                .map_err(|e| format!("{text:?}: {e}"))
        }
        ("snappy", None) => Ok(Compression::SNAPPY),
        ("lz4", None) => Ok(Compression::LZ4_RAW),
        ("none" | "uncompressed", None) => Ok(Compression::UNCOMPRESSED),
        _ => Err(format!(
            "{text:?} is not a compression: write zstd, zstd:LEVEL, snappy, lz4, gzip or none"
        )),
    }
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            collections: Vec::new(),
            geoparquet: true,
            static_catalog: true,
            include_restricted: false,
            page: 2_000,
            catalog_id: "arcolake".into(),
            catalog_description: "A catalog exported by arcolake".into(),
            jobs: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            split_min: 10_000,
            compression: parse_compression(DEFAULT_COMPRESSION).unwrap_or(Compression::SNAPPY),
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExportReport {
    /// Collections exported.
    pub collections: u64,
    /// Items exported.
    pub items: u64,
    /// stac-geoparquet files written.
    pub parquet_files: u64,
    /// Seconds from start to end.
    pub seconds: f64,
    /// Items per second.
    pub items_per_second: f64,
}

/// What the reader hands the writer thread.
enum Message {
    /// A collection, or a range of its items, begins.
    Collection(Task),
    /// A page of its items: (content, links) as stored.
    Items(Vec<(String, Option<String>)>),
    /// The collection is complete.
    End,
}

/// A collection, or one range of its ids, for one job.
#[derive(Debug, Clone)]
struct Task {
    collection: StoredCollection,
    /// Ids after this one (exclusive), up to `upto` (inclusive).
    after: String,
    upto: Option<String>,
    /// This range's place among the collection's, and their number.
    index: usize,
    ranges: usize,
    /// Shared by the ranges of a collection.
    shared: Arc<Shared>,
    /// Items in the range (about).
    size: i64,
}

/// What the ranges of one collection share.
#[derive(Debug, Default)]
struct Shared {
    /// The next parquet part number.
    next_part: AtomicU64,
    /// Ranges not finished yet: the last one writes `collection.json`.
    unfinished: AtomicU64,
}

/// Ranges per job's share of the items (see [`plan`]).
const RANGES_PER_JOB: i64 = 4;

/// Cut each collection into ranges of ids of about a quarter of a job's
/// share (no smaller than `split_min` items), the ids at the cuts read
/// from the primary key: jobs take ranges as they finish others, so none
/// is left alone with a long last one. Makes the directories, and clears
/// earlier parts, once.
async fn plan(
    store: &Store,
    out: &Path,
    options: &ExportOptions,
    collections: &[StoredCollection],
    counts: &HashMap<String, i64>,
    total: i64,
) -> Result<Vec<Task>> {
    let jobs = i64::try_from(options.jobs.max(1)).unwrap_or(1);
    let split_min = i64::try_from(options.split_min.max(1)).unwrap_or(i64::MAX);
    let mut tasks = Vec::new();
    for c in collections {
        let name = file_name(&c.id);
        if options.static_catalog {
            let dir = out.join(&name);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        if options.geoparquet {
            let dir = out.join("geoparquet").join(&name);
            // Parts of an earlier export would mix with this one's.
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let count = counts.get(&c.id).copied().unwrap_or(0);
        let share = ((total + jobs - 1) / jobs).max(1);
        let range = (share / RANGES_PER_JOB).max(1);
        let ranges = ((count + range - 1) / range)
            .min(count / split_min)
            .clamp(1, jobs * RANGES_PER_JOB);
        let mut cuts: Vec<String> = Vec::new();
        for i in 1..ranges {
            // Each cut is read on from the last one, so the primary key is
            // walked once for all of them. (Items deleted since the count
            // may leave fewer cuts.)
            let step = if i == 1 {
                count / ranges
            } else {
                count * i / ranges - count * (i - 1) / ranges - 1
            };
            let cut: Option<String> = sqlx::query_scalar(
                "SELECT id FROM items WHERE collection = $1 AND id > $2 \
                 ORDER BY id OFFSET $3 LIMIT 1",
            )
            .bind(&c.id)
            .bind(cuts.last().map_or("", String::as_str))
            .bind(step.max(0))
            .fetch_optional(store.reader())
            .await?;
            if let Some(cut) = cut
                && cuts.last() != Some(&cut)
            {
                cuts.push(cut);
            }
        }
        let ranges = cuts.len() + 1;
        let shared = Arc::new(Shared {
            next_part: AtomicU64::new(0),
            unfinished: AtomicU64::new(ranges as u64),
        });
        for index in 0..ranges {
            tasks.push(Task {
                collection: c.clone(),
                after: if index == 0 {
                    String::new()
                } else {
                    cuts[index - 1].clone()
                },
                upto: cuts.get(index).cloned(),
                index,
                ranges,
                shared: Arc::clone(&shared),
                size: count / i64::try_from(ranges).unwrap_or(1),
            });
        }
    }
    Ok(tasks)
}

/// Export into `out` (created if missing; files of an earlier export are
/// replaced).
pub async fn export(store: &Store, out: &Path, options: &ExportOptions) -> Result<ExportReport> {
    let started = Instant::now();
    let visibility = if options.include_restricted {
        Visibility::all()
    } else {
        Visibility::public()
    };
    let mut collections = store.list_collections(&visibility).await?;
    if !options.collections.is_empty() {
        let wanted: BTreeSet<&str> = options.collections.iter().map(String::as_str).collect();
        let found: BTreeSet<&str> = collections.iter().map(|c| c.id.as_str()).collect();
        if let Some(missing) = wanted.difference(&found).next() {
            return Err(Error::InvalidInput {
                reason: format!(
                    "collection {missing:?} is not in the catalog{}",
                    if options.include_restricted {
                        ""
                    } else {
                        " (or is restricted: add --include-restricted)"
                    }
                ),
            });
        }
        collections.retain(|c| wanted.contains(c.id.as_str()));
    }
    let ids: Vec<&str> = collections.iter().map(|c| c.id.as_str()).collect();
    let counts: HashMap<String, i64> = sqlx::query_as(
        "SELECT collection, count(*) FROM items WHERE collection = ANY($1) GROUP BY collection",
    )
    .bind(&ids)
    .fetch_all(store.reader())
    .await?
    .into_iter()
    .collect();
    let total: i64 = counts.values().sum();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut tasks = plan(store, out, options, &collections, &counts, total).await?;
    // Jobs take tasks from one queue, the largest first, as they finish
    // others.
    let jobs = options.jobs.clamp(1, tasks.len().max(1));
    tasks.sort_by_key(|t| std::cmp::Reverse(t.size));
    let queue = Mutex::new(VecDeque::from(tasks));
    let progress = Progress {
        started,
        total,
        items: AtomicU64::new(0),
        last_log: Mutex::new(Instant::now()),
    };
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..jobs {
        let (tx, mut rx) = channel::<Message>(2);
        let writer = {
            let out = out.to_owned();
            let options = options.clone();
            std::thread::spawn(move || write_collections(&out, &options, &mut rx))
        };
        writers.push(writer);
        let (progress, queue) = (&progress, &queue);
        readers.push(async move {
            let read = read_all(store, queue, options, &tx, progress).await;
            drop(tx);
            read
        });
    }
    // The first job to fail stops the others (their senders go, so their
    // writers end too).
    let read = futures::future::try_join_all(readers).await;
    let mut parquet_files = 0;
    for writer in writers {
        // A write error explains a send that failed; report it first.
        parquet_files += writer
            .join()
            .map_err(|_| Error::export("the export writer panicked"))??;
    }
    let items: u64 = read?.into_iter().sum();
    if options.static_catalog {
        write_root(out, options, &collections)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let items_per_second = items as f64 / seconds.max(1e-6);
    Ok(ExportReport {
        collections: collections.len() as u64,
        items,
        parquet_files,
        seconds,
        items_per_second,
    })
}

/// Items exported so far, of all jobs, for the progress line.
struct Progress {
    started: Instant,
    total: i64,
    items: AtomicU64,
    last_log: Mutex<Instant>,
}

impl Progress {
    fn add(&self, n: u64, collection: &str) {
        let items = self.items.fetch_add(n, Ordering::Relaxed) + n;
        let Ok(mut last) = self.last_log.lock() else {
            return;
        };
        if last.elapsed() < Duration::from_secs(5) {
            return;
        }
        *last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64();
        #[expect(clippy::cast_precision_loss, reason = "a rate and a share")]
        let (rate, share) = (items as f64 / secs, items as f64 / self.total.max(1) as f64);
        let eta = (share > 0.0).then(|| secs * (1.0 - share) / share);
        info!(
            items,
            items_per_second = format!("{rate:.0}"),
            done = format!("{:.1} %", share * 100.0),
            eta_seconds = eta.map(|s| format!("{s:.0}")),
            collection,
            "exporting"
        );
    }
}

/// Take tasks from the queue until it is empty; read each one's items
/// page by page and hand them over.
async fn read_all(
    store: &Store,
    queue: &Mutex<VecDeque<Task>>,
    options: &ExportOptions,
    tx: &Sender<Message>,
    progress: &Progress,
) -> Result<u64> {
    let stopped = || Error::export("the export writer stopped");
    let page = i64::try_from(options.page.max(1)).unwrap_or(10_000);
    let mut items = 0u64;
    loop {
        let next = queue
            .lock()
            .map_err(|_| Error::export("an export job panicked"))?
            .pop_front();
        let Some(task) = next else {
            break;
        };
        let c = &task.collection;
        tx.send(Message::Collection(task.clone()))
            .await
            .map_err(|_| stopped())?;
        let mut after = task.after.clone();
        loop {
            let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
                "SELECT id, content::text, links::text FROM items \
                 WHERE collection = $1 AND id > $2 AND ($4::text IS NULL OR id <= $4) \
                 ORDER BY id LIMIT $3",
            )
            .bind(&c.id)
            .bind(&after)
            .bind(page)
            .bind(&task.upto)
            .fetch_all(store.reader())
            .await?;
            let Some((last, ..)) = rows.last() else {
                break;
            };
            after.clone_from(last);
            let full = i64::try_from(rows.len()).is_ok_and(|n| n == page);
            items += rows.len() as u64;
            progress.add(rows.len() as u64, &c.id);
            let rows = rows.into_iter().map(|(_, c, l)| (c, l)).collect();
            tx.send(Message::Items(rows)).await.map_err(|_| stopped())?;
            if !full {
                break;
            }
        }
        tx.send(Message::End).await.map_err(|_| stopped())?;
    }
    Ok(items)
}

/// The item links of one range of a collection, until `collection.json`.
fn links_file(dir: &Path, range: usize) -> PathBuf {
    dir.join(format!(".item-links-{range}"))
}

/// Names the export writes itself, which no collection or item may take.
const RESERVED: &[&str] = &["catalog.json", "collection.json", "geoparquet"];

/// A file or directory name for an id: the id itself when it is made of
/// letters, digits, `-`, `_` and `.` (and is not `.` or `..`, nor a name
/// the export writes), else its safe characters, `~` and a hash of the
/// whole id. An id used as it is never holds `~`, so two ids never share a
/// name (on a case-sensitive file system), and no name needs
/// percent-encoding in a link.
fn file_name(id: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if id.chars().all(safe) && !id.starts_with('.') && id.len() <= 200 && !RESERVED.contains(&id) {
        return id.to_owned();
    }
    let kept: String = id.chars().filter(|c| safe(*c)).take(120).collect();
    let digest = sha2::Sha256::digest(id.as_bytes());
    let hash: String = digest[..6].iter().fold(String::new(), |mut s, b| {
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{b:02x}"));
        s
    });
    format!("{}~{hash}", kept.trim_start_matches('.'))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// A JSON document written to `path`.
fn write_json(path: &Path, value: &Value) -> Result<()> {
    let mut w = BufWriter::new(File::create(path).map_err(io(path))?);
    serde_json::to_writer(&mut w, value).map_err(|e| Error::export(e.to_string()))?;
    w.flush().map_err(io(path))
}

/// The links stored with a document (foreign ones), as an array.
fn stored_links(text: Option<&str>) -> Vec<Value> {
    text.and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| match v {
            Value::Array(a) => Some(a),
            _ => None,
        })
        .unwrap_or_default()
}

fn link(rel: &str, href: &str, title: Option<&str>) -> Value {
    let mut l = json!({"rel": rel, "href": href, "type": "application/json"});
    if let Some(t) = title {
        l["title"] = t.into();
    }
    l
}

/// The writer thread: every collection in turn, then `catalog.json`.
/// Returns how many parquet files it wrote.
/// Write the collections a reader hands over; returns the parquet files.
fn write_collections(
    out: &Path,
    options: &ExportOptions,
    rx: &mut Receiver<Message>,
) -> Result<u64> {
    let mut parquet_files = 0;
    let mut current: Option<CollectionWriter> = None;
    while let Some(message) = rx.blocking_recv() {
        match message {
            Message::Collection(task) => {
                current = Some(CollectionWriter::new(out, options, task)?);
            }
            Message::Items(rows) => {
                if let Some(w) = current.as_mut() {
                    w.items(rows)?;
                }
            }
            Message::End => {
                if let Some(w) = current.take() {
                    parquet_files += w.finish()?;
                }
            }
        }
    }
    Ok(parquet_files)
}

/// The static catalog's root, linking every collection.
fn write_root(out: &Path, options: &ExportOptions, collections: &[StoredCollection]) -> Result<()> {
    let mut links = vec![link("root", "./catalog.json", None)];
    links.extend(collections.iter().map(|c| {
        link(
            "child",
            &format!("./{}/collection.json", file_name(&c.id)),
            Some(&c.id),
        )
    }));
    write_json(
        &out.join("catalog.json"),
        &json!({
            "type": "Catalog",
            "stac_version": "1.1.0",
            "id": options.catalog_id,
            "description": options.catalog_description,
            "links": links,
        }),
    )
}

/// One collection being written.
struct CollectionWriter {
    task: Task,
    collection: StoredCollection,
    /// The static catalog's directory of the collection, and its `item`
    /// links so far (one JSON object per line).
    static_dir: Option<(PathBuf, BufWriter<File>)>,
    parquet: Option<Parquet>,
}

/// A collection's stac-geoparquet parts.
struct Parquet {
    dir: PathBuf,
    /// Part numbers, shared by the ranges of the collection.
    next: Arc<Shared>,
    /// Parts this writer wrote.
    written: u64,
    writer: Option<stac::geoparquet::Writer<BufWriter<File>>>,
    /// What the open part's items hold (its Arrow schema).
    shape: Shape,
    collection: stac::Collection,
    compression: Compression,
}

/// The JSON kinds met at one place of the items of a part, and the places
/// under it: what decides the part's Arrow schema. Integers and decimals
/// are told apart (a column inferred from integers would cut later
/// decimals to integers); nulls add nothing.
#[derive(Debug, Default)]
struct Shape {
    kinds: u8,
    members: HashMap<String, Shape>,
    elements: Option<Box<Shape>>,
}

impl Shape {
    /// The shape of a page of items. At the top, the geometry and bbox are
    /// left out: they become WKB and a fixed struct.
    fn of(values: &[Value]) -> Self {
        let mut shape = Self::default();
        for item in values.iter().filter_map(Value::as_object) {
            for (key, v) in Self::top(item) {
                shape.add_member(key, v);
            }
        }
        shape
    }

    /// Whether every item of `values` fits this shape: no place or kind
    /// that it lacks.
    fn covers(&self, values: &[Value]) -> bool {
        values.iter().all(|item| {
            item.as_object()
                .is_some_and(|item| Self::top(item).all(|(key, v)| self.holds_member(key, v)))
        })
    }

    /// Whether member `key` holding `v` fits (a null always does).
    fn holds_member(&self, key: &str, v: &Value) -> bool {
        v.is_null() || self.members.get(key).is_some_and(|m| m.holds(v))
    }

    fn top(item: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
        item.iter()
            .filter(|(key, _)| *key != "geometry" && *key != "bbox")
    }

    fn kind(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(n) if n.is_f64() => 2,
            Value::Number(_) => 4,
            Value::String(_) => 8,
            Value::Array(_) => 16,
            Value::Object(_) => 32,
        }
    }

    fn add(&mut self, v: &Value) {
        self.kinds |= Self::kind(v);
        match v {
            Value::Object(map) => {
                for (key, v) in map {
                    self.add_member(key, v);
                }
            }
            Value::Array(items) => {
                let elements = self.elements.get_or_insert_default();
                for v in items {
                    elements.add(v);
                }
            }
            _ => {}
        }
    }

    /// Add member `key` holding `v` (a null adds nothing).
    fn add_member(&mut self, key: &str, v: &Value) {
        if v.is_null() {
            return;
        }
        match self.members.get_mut(key) {
            Some(m) => m.add(v),
            None => {
                let mut m = Self::default();
                m.add(v);
                self.members.insert(key.to_owned(), m);
            }
        }
    }

    fn holds(&self, v: &Value) -> bool {
        let kind = Self::kind(v);
        if self.kinds & kind != kind {
            return false;
        }
        match v {
            Value::Object(map) => map.iter().all(|(key, v)| self.holds_member(key, v)),
            Value::Array(items) => {
                items.is_empty()
                    || self
                        .elements
                        .as_ref()
                        .is_some_and(|e| items.iter().all(|v| e.holds(v)))
            }
            _ => true,
        }
    }
}

impl CollectionWriter {
    /// The writer of one task; its directories exist (see [`plan`]).
    fn new(out: &Path, options: &ExportOptions, task: Task) -> Result<Self> {
        let collection = task.collection.clone();
        let name = file_name(&collection.id);
        let static_dir = if options.static_catalog {
            let dir = out.join(&name);
            let links = links_file(&dir, task.index);
            let file = File::create(&links).map_err(io(&links))?;
            Some((dir, BufWriter::new(file)))
        } else {
            None
        };
        let parquet = if options.geoparquet {
            let dir = out.join("geoparquet").join(&name);
            let value: Value = serde_json::from_str(&collection.content)
                .map_err(|e| Error::export(format!("stored collection {}: {e}", collection.id)))?;
            let collection = serde_json::from_value(value).map_err(|e| {
                Error::export(format!(
                    "collection {} is not a STAC Collection: {e}",
                    collection.id
                ))
            })?;
            Some(Parquet {
                dir,
                next: Arc::clone(&task.shared),
                written: 0,
                writer: None,
                shape: Shape::default(),
                collection,
                compression: options.compression,
            })
        } else {
            None
        };
        Ok(Self {
            task,
            collection,
            static_dir,
            parquet,
        })
    }

    fn items(&mut self, rows: Vec<(String, Option<String>)>) -> Result<()> {
        let mut items = Vec::with_capacity(rows.len());
        for (content, links) in rows {
            let mut item: Value = serde_json::from_str(&content)
                .map_err(|e| Error::export(format!("a stored item is not JSON: {e}")))?;
            item["links"] = Value::Array(stored_links(links.as_deref()));
            items.push(item);
        }
        if let Some((dir, links)) = &mut self.static_dir {
            for item in &mut items {
                let name = file_name(item.get("id").and_then(Value::as_str).unwrap_or_default());
                let item_dir = dir.join(&name);
                std::fs::create_dir_all(&item_dir).map_err(io(&item_dir))?;
                // The catalog's links go first in the file, then come off
                // again: stac-geoparquet keeps the stored links only.
                let generated = [
                    link("root", "../../catalog.json", None),
                    link("parent", "../collection.json", None),
                    link("collection", "../collection.json", None),
                ];
                if let Some(Value::Array(l)) = item.get_mut("links") {
                    l.splice(0..0, generated.iter().cloned());
                }
                let written = write_json(&item_dir.join(format!("{name}.json")), item);
                if let Some(Value::Array(l)) = item.get_mut("links") {
                    l.drain(..generated.len());
                }
                written?;
                let item_link = json!({"rel": "item", "href": format!("./{name}/{name}.json"), "type": "application/geo+json"});
                serde_json::to_writer(&mut *links, &item_link)
                    .map_err(|e| Error::export(e.to_string()))?;
                links.write_all(b"\n").map_err(io(dir))?;
            }
        }
        if let Some(p) = &mut self.parquet {
            p.write(items)?;
        }
        Ok(())
    }

    /// Close the parts; the last range of the collection to finish writes
    /// `collection.json` with the item links of every range, in order.
    /// Returns the parquet files written.
    fn finish(self) -> Result<u64> {
        let mut files = 0;
        if let Some(p) = self.parquet {
            files = p.finish()?;
        }
        if let Some((dir, links)) = self.static_dir {
            let own = links_file(&dir, self.task.index);
            links
                .into_inner()
                .map_err(|e| Error::io(&own, e.into_error()))?;
            if self.task.shared.unfinished.fetch_sub(1, Ordering::AcqRel) != 1 {
                return Ok(files);
            }
            let mut doc: Map<String, Value> = serde_json::from_str(&self.collection.content)
                .map_err(|e| Error::export(format!("stored collection: {e}")))?;
            let mut fixed = vec![
                link("root", "../catalog.json", None),
                link("parent", "../catalog.json", None),
            ];
            fixed.extend(stored_links(self.collection.links.as_deref()));
            doc.insert("links".into(), Value::Array(fixed));
            // The document up to its links array, then the item links
            // streamed from disk: a million of them never sit in memory.
            let text = serde_json::to_string(&doc).map_err(|e| Error::export(e.to_string()))?;
            let open = text
                .rfind(']')
                .ok_or_else(|| Error::export("a collection without its links"))?;
            let path = dir.join("collection.json");
            let mut w = BufWriter::new(File::create(&path).map_err(io(&path))?);
            w.write_all(&text.as_bytes()[..open]).map_err(io(&path))?;
            for range in 0..self.task.ranges {
                let links_path = links_file(&dir, range);
                let mut reader =
                    std::io::BufReader::new(File::open(&links_path).map_err(io(&links_path))?);
                let mut line = String::new();
                loop {
                    line.clear();
                    let n = std::io::BufRead::read_line(&mut reader, &mut line)
                        .map_err(io(&links_path))?;
                    if n == 0 {
                        break;
                    }
                    w.write_all(b",").map_err(io(&path))?;
                    w.write_all(line.trim_end().as_bytes()).map_err(io(&path))?;
                }
                std::fs::remove_file(&links_path).map_err(io(&links_path))?;
            }
            w.write_all(&text.as_bytes()[open..]).map_err(io(&path))?;
            w.flush().map_err(io(&path))?;
        }
        Ok(files)
    }
}

impl Parquet {
    /// Rows per row group: small enough that the writer's buffers stay in
    /// the tens of megabytes for items of a few KB.
    const ROW_GROUP: usize = 20_000;

    fn items(values: &[Value]) -> Result<Vec<stac::Item>> {
        values
            .iter()
            .map(|v| {
                <stac::Item as serde::Deserialize>::deserialize(v)
                    .map_err(|e| Error::export(format!("a stored item is not a STAC Item: {e}")))
            })
            .collect()
    }

    /// Start the next part with `values`; nothing is left of the part
    /// when its first page cannot be encoded.
    fn open(&mut self, values: &[Value]) -> Result<()> {
        let items = Self::items(values)?;
        let part = self.next.next_part.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("part-{part:05}.parquet"));
        let file = BufWriter::new(File::create(&path).map_err(io(&path))?);
        let built = stac::geoparquet::WriterBuilder::new(file)
            .writer_options(
                stac::geoparquet::WriterOptions::new()
                    .with_compression(self.compression)
                    .with_max_row_group_row_count(Self::ROW_GROUP),
            )
            .build(items)
            .and_then(|w| w.add_collection(self.collection.clone()));
        match built {
            Ok(writer) => {
                self.written += 1;
                self.shape = Shape::of(values);
                self.writer = Some(writer);
                Ok(())
            }
            Err(e) => {
                std::fs::remove_file(&path).map_err(io(&path))?;
                Err(Error::export(format!("stac-geoparquet: {e}")))
            }
        }
    }

    /// Write a page: into the open part when it fits the part's schema,
    /// else into a new part. A page whose own items do not share one
    /// schema (a field that is a number in one item and a string in
    /// another) is written in halves, down to single items.
    fn write(&mut self, values: Vec<Value>) -> Result<()> {
        // The writer decodes later pages with the part's first schema and
        // drops what it does not name: a page with a path the part lacks
        // goes to a new part instead.
        let fits = self.writer.is_some() && self.shape.covers(&values);
        if fits
            && let Some(writer) = self.writer.as_mut()
            && writer.write(Self::items(&values)?).is_ok()
        {
            return Ok(());
        }
        self.close()?;
        match self.open(&values) {
            Ok(()) => Ok(()),
            Err(e) if values.len() == 1 => Err(e),
            Err(e) => {
                tracing::debug!(error = %e, items = values.len(), "a page of mixed schemas; writing it in halves");
                let mut first = values;
                let second = first.split_off(first.len() / 2);
                self.write(first)?;
                self.write(second)
            }
        }
    }

    fn close(&mut self) -> Result<()> {
        if let Some(w) = self.writer.take() {
            w.finish()
                .map_err(|e| Error::export(format!("stac-geoparquet: {e}")))?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        self.close()?;
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::{Compression, DEFAULT_COMPRESSION, file_name, parse_compression};

    #[test]
    fn compressions_by_name_and_level() {
        use stac::geoparquet::{GzipLevel, ZstdLevel};
        let zstd = |l| Compression::ZSTD(ZstdLevel::try_new(l).unwrap());
        assert_eq!(parse_compression("zstd"), Ok(zstd(3)));
        assert_eq!(parse_compression(DEFAULT_COMPRESSION), Ok(zstd(3)));
        assert_eq!(parse_compression("ZSTD:19"), Ok(zstd(19)));
        assert_eq!(parse_compression(" zstd : 5 "), Ok(zstd(5)));
        assert_eq!(
            parse_compression("gzip:9"),
            Ok(Compression::GZIP(GzipLevel::try_new(9).unwrap()))
        );
        assert_eq!(parse_compression("snappy"), Ok(Compression::SNAPPY));
        assert_eq!(parse_compression("none"), Ok(Compression::UNCOMPRESSED));
        for bad in ["zstd:99", "zstd:x", "snappy:2", "brotli", ""] {
            assert!(parse_compression(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_become_names_that_need_no_encoding_and_never_collide() {
        assert_eq!(
            file_name("S2B_01CAA_20170101T100000_L2A"),
            "S2B_01CAA_20170101T100000_L2A"
        );
        assert_eq!(file_name("a.b-c"), "a.b-c");
        let odd = [
            "a/b",
            "a b",
            "a%2Fb",
            "..",
            ".hidden",
            "é",
            "geoparquet",
            "catalog.json",
            "collection.json",
        ];
        let names: std::collections::BTreeSet<String> = odd.iter().map(|i| file_name(i)).collect();
        assert_eq!(names.len(), odd.len());
        for n in &names {
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c)),
                "{n}"
            );
            assert!(!n.starts_with('.'), "{n}");
        }
        assert!(file_name(&"x".repeat(1000)).len() < 200);
    }
}
