//! Bulk loading of STAC JSON from disk: Collections, Items, ItemCollections,
//! NDJSON, and static catalogs (following `child` and `item` links).
//!
//! Files are read and validated on a blocking thread while the previous
//! batch is written, so parsing and PostgreSQL work overlap. Items are
//! upserted by `(collection, id)` in batches, each batch in one transaction.
//! A document that fails validation is reported with its file and reason and
//! the load goes on.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::model::{CollectionId, CollectionRecord, ItemRecord};
use crate::store::items::{ItemBatch, OnConflict};
use crate::{Result, Store};

/// How a load went.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadReport {
    /// Collections created or replaced.
    pub collections: u64,
    /// Items newly inserted.
    pub items_inserted: u64,
    /// Items that replaced an existing one.
    pub items_updated: u64,
    /// Documents that could not be loaded: `(where, why)`.
    pub failures: Vec<(String, String)>,
    /// Wall time.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Items written per second.
    pub fn items_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        #[expect(
            clippy::cast_precision_loss,
            reason = "a rate for people; item counts are far below 2^52"
        )]
        let items = (self.items_inserted + self.items_updated) as f64;
        if secs > 0.0 { items / secs } else { 0.0 }
    }
}

enum Doc {
    Collection(String, Value),
    Item(String, Value, Option<String>),
    /// Raw NDJSON lines, parsed and validated on a worker thread.
    Lines {
        path: String,
        first: usize,
        lines: Vec<String>,
        context: Option<String>,
    },
    Failure(String, String),
}

/// NDJSON lines handed to one validation task.
const LINES_PER_CHUNK: usize = 500;
/// Validation tasks running ahead of the writer.
const VALIDATION_AHEAD: usize = 4;

struct Walker {
    tx: mpsc::Sender<Doc>,
    seen: HashSet<PathBuf>,
}

impl Walker {
    fn send(&self, doc: Doc) -> bool {
        self.tx.blocking_send(doc).is_ok()
    }

    fn fail(&self, place: &Path, reason: impl Into<String>) -> bool {
        self.send(Doc::Failure(place.display().to_string(), reason.into()))
    }

    fn path(&mut self, path: &Path) -> bool {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
                Err(e) => return self.fail(path, e.to_string()),
            };
            entries.sort();
            // A directory holding a static catalog is loaded from its root.
            for root in ["catalog.json", "collection.json"] {
                if let Some(p) = entries
                    .iter()
                    .find(|p| p.file_name().is_some_and(|n| n == root))
                {
                    return self.file(&p.clone(), None);
                }
            }
            for p in entries {
                let json = p
                    .extension()
                    .is_some_and(|e| e == "json" || e == "ndjson" || e == "jsonl");
                if (p.is_dir() || json) && !self.path(&p) {
                    return false;
                }
            }
            return true;
        }
        self.file(path, None)
    }

    fn file(&mut self, path: &Path, parent_collection: Option<&str>) -> bool {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if !self.seen.insert(canonical) {
            return true;
        }
        let ndjson = path
            .extension()
            .is_some_and(|e| e == "ndjson" || e == "jsonl");
        if ndjson {
            return self.ndjson(path, parent_collection);
        }
        let value: Value = match File::open(path)
            .map_err(|e| e.to_string())
            .and_then(|f| serde_json::from_reader(BufReader::new(f)).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => return self.fail(path, e),
        };
        self.document(path, value, parent_collection)
    }

    fn ndjson(&mut self, path: &Path, parent_collection: Option<&str>) -> bool {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return self.fail(path, e.to_string()),
        };
        let place = path.display().to_string();
        let mut lines = Vec::with_capacity(LINES_PER_CHUNK);
        let mut first = 1;
        for (n, line) in BufReader::with_capacity(1 << 20, file).lines().enumerate() {
            match line {
                Ok(l) => lines.push(l),
                Err(e) => {
                    return self.send(Doc::Failure(format!("{place}:{}", n + 1), e.to_string()));
                }
            }
            if lines.len() == LINES_PER_CHUNK {
                let chunk = std::mem::replace(&mut lines, Vec::with_capacity(LINES_PER_CHUNK));
                let doc = Doc::Lines {
                    path: place.clone(),
                    first,
                    lines: chunk,
                    context: parent_collection.map(str::to_owned),
                };
                if !self.send(doc) {
                    return false;
                }
                first = n + 2;
            }
        }
        lines.is_empty()
            || self.send(Doc::Lines {
                path: place,
                first,
                lines,
                context: parent_collection.map(str::to_owned),
            })
    }

    fn document(&mut self, path: &Path, value: Value, parent_collection: Option<&str>) -> bool {
        let place = path.display().to_string();
        self.document_at(&place, path, value, parent_collection)
    }

    fn document_at(
        &mut self,
        place: &str,
        path: &Path,
        value: Value,
        parent_collection: Option<&str>,
    ) -> bool {
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match kind.as_str() {
            "Feature" => self.send(Doc::Item(
                place.to_owned(),
                value,
                parent_collection.map(str::to_owned),
            )),
            "FeatureCollection" => {
                let Some(Value::Array(features)) = value.get("features") else {
                    return self.send(Doc::Failure(
                        place.to_owned(),
                        "FeatureCollection without features".into(),
                    ));
                };
                for (i, f) in features.iter().enumerate() {
                    let at = format!("{place}#features[{i}]");
                    if !self.send(Doc::Item(
                        at,
                        f.clone(),
                        parent_collection.map(str::to_owned),
                    )) {
                        return false;
                    }
                }
                true
            }
            "Collection" | "Catalog" => {
                let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
                let links = value
                    .get("links")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if kind == "Collection" && !self.send(Doc::Collection(place.to_owned(), value)) {
                    return false;
                }
                let context = if kind == "Collection" {
                    id.as_deref()
                } else {
                    parent_collection
                };
                self.follow(path, &links, context)
            }
            other => self.send(Doc::Failure(
                place.to_owned(),
                format!("unknown STAC document type {other:?}"),
            )),
        }
    }

    fn follow(&mut self, path: &Path, links: &[Value], collection: Option<&str>) -> bool {
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        for link in links {
            let rel = link.get("rel").and_then(Value::as_str).unwrap_or_default();
            if rel != "child" && rel != "item" {
                continue;
            }
            let Some(href) = link.get("href").and_then(Value::as_str) else {
                continue;
            };
            if href.contains("://") && !href.starts_with("file://") {
                if !self.fail(
                    path,
                    format!("{rel} link {href} is remote; load reads local files only"),
                ) {
                    return false;
                }
                continue;
            }
            let target = base.join(href.trim_start_matches("file://"));
            if !self.file(&target, collection) {
                return false;
            }
        }
        true
    }
}

/// What a validation task hands back: collections found on NDJSON lines (to
/// write first), the prepared item batch, and the failures.
struct Validated {
    collections: Vec<(String, Value)>,
    batch: ItemBatch,
    places: Vec<String>,
    failures: Vec<(String, String)>,
}

/// Validate items (parsed values or raw NDJSON lines) into a batch.
fn validate(work: Vec<Doc>) -> Validated {
    let mut out = Validated {
        collections: Vec::new(),
        batch: ItemBatch::new(),
        places: Vec::new(),
        failures: Vec::new(),
    };
    let accept = |place: String, value: Value, context: Option<&str>, out: &mut Validated| {
        let context = context.and_then(|c| CollectionId::new(c).ok());
        let record = if value.get("collection").is_some() || context.is_none() {
            ItemRecord::from_value(value, None)
        } else {
            ItemRecord::from_value(value, context.as_ref())
        };
        match record {
            Ok(r) => {
                out.batch.push(&r);
                out.places.push(place);
            }
            Err(e) => out.failures.push((place, e.to_string())),
        }
    };
    for doc in work {
        match doc {
            Doc::Item(place, value, context) => accept(place, value, context.as_deref(), &mut out),
            Doc::Lines {
                path,
                first,
                lines,
                context,
            } => {
                for (k, line) in lines.into_iter().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let place = format!("{path}:{}", first + k);
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) => match v.get("type").and_then(Value::as_str) {
                            Some("Feature") => accept(place, v, context.as_deref(), &mut out),
                            Some("Collection") => out.collections.push((place, v)),
                            other => out.failures.push((
                                place,
                                format!("expected an Item or a Collection on this NDJSON line, got type {other:?}"),
                            )),
                        },
                        Err(e) => out.failures.push((place, e.to_string())),
                    }
                }
            }
            Doc::Collection(..) | Doc::Failure(..) => {}
        }
    }
    out
}

/// The loading pipeline: validation tasks ahead, one writer behind.
struct Pipeline<'a> {
    store: &'a Store,
    batch_size: usize,
    known: HashSet<String>,
    pending: std::collections::VecDeque<tokio::task::JoinHandle<Validated>>,
    work: Vec<Doc>,
    work_items: usize,
    batch: ItemBatch,
    places: Vec<String>,
    report: LoadReport,
    last_log: Instant,
    wrote_items: bool,
}

impl Pipeline<'_> {
    fn queue(&mut self, doc: Doc) {
        self.work_items += match &doc {
            Doc::Lines { lines, .. } => lines.len(),
            _ => 1,
        };
        self.work.push(doc);
    }

    /// Hand the queued work to a validation task once there is enough of it.
    async fn dispatch(&mut self, force: bool) -> Result<()> {
        if self.work.is_empty() || (!force && self.work_items < LINES_PER_CHUNK) {
            return Ok(());
        }
        let work = std::mem::take(&mut self.work);
        self.work_items = 0;
        self.pending
            .push_back(tokio::task::spawn_blocking(move || validate(work)));
        while self.pending.len() > VALIDATION_AHEAD {
            self.collect_one().await?;
        }
        Ok(())
    }

    async fn collect_one(&mut self) -> Result<()> {
        let Some(task) = self.pending.pop_front() else {
            return Ok(());
        };
        let mut v = task
            .await
            .map_err(|e| crate::Error::embedded(format!("validation task failed: {e}")))?;
        self.report.failures.extend(v.failures);
        if !v.collections.is_empty() {
            self.flush().await?;
            for (place, value) in v.collections {
                self.collection(place, value).await?;
            }
        }
        for (collection, id) in v.batch.retain_collections(&self.known) {
            self.report.failures.push((
                format!("item {id}"),
                format!("collection {collection} not found; load it first"),
            ));
        }
        self.batch.append(v.batch);
        self.places.extend(v.places);
        if self.batch.len() >= self.batch_size {
            self.flush().await?;
        }
        Ok(())
    }

    /// Validate everything queued and write it.
    async fn drain(&mut self) -> Result<()> {
        self.dispatch(true).await?;
        while !self.pending.is_empty() {
            self.collect_one().await?;
        }
        self.flush().await
    }

    async fn collection(&mut self, place: String, value: Value) -> Result<()> {
        match CollectionRecord::from_value(value) {
            Ok(record) => {
                let mut conn = self.store.pool().acquire().await?;
                Store::upsert_collection(&mut conn, &record).await?;
                self.known.insert(record.id.as_str().to_owned());
                self.report.collections += 1;
            }
            Err(e) => self.report.failures.push((place, e.to_string())),
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.pool().begin().await?;
        // A crash loses at most the last batches of a re-runnable load; no
        // need to wait for each commit's flush to disk.
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        match Store::write_batch(&mut tx, &self.batch, OnConflict::Replace).await {
            Ok(c) => {
                tx.commit().await?;
                self.report.items_inserted += c.inserted;
                self.report.items_updated += c.updated;
                self.wrote_items = true;
                debug!(inserted = c.inserted, updated = c.updated, "batch written");
            }
            Err(crate::Error::Database(e)) => return Err(e.into()),
            Err(e) => {
                tx.rollback().await?;
                let reason = e.to_string();
                self.report
                    .failures
                    .extend(self.places.iter().map(|p| (p.clone(), reason.clone())));
            }
        }
        self.batch.clear();
        self.places.clear();
        if self.last_log.elapsed() > Duration::from_secs(5) {
            self.last_log = Instant::now();
            info!(
                items = self.report.items_inserted + self.report.items_updated,
                "loading"
            );
        }
        Ok(())
    }
}

/// Load every path (files or directories) into the store.
pub async fn load_paths(
    store: &Store,
    paths: Vec<PathBuf>,
    batch_size: usize,
) -> Result<LoadReport> {
    let started = Instant::now();
    let (tx, mut rx) = mpsc::channel::<Doc>(64);
    let walker = tokio::task::spawn_blocking(move || {
        let mut w = Walker {
            tx,
            seen: HashSet::new(),
        };
        for p in paths {
            if !w.path(&p) {
                break;
            }
        }
    });
    let known: HashSet<String> = store
        .list_collections()
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut p = Pipeline {
        store,
        batch_size: batch_size.max(1),
        known,
        pending: std::collections::VecDeque::new(),
        work: Vec::new(),
        work_items: 0,
        batch: ItemBatch::new(),
        places: Vec::new(),
        report: LoadReport::default(),
        last_log: Instant::now(),
        wrote_items: false,
    };
    while let Some(doc) = rx.recv().await {
        match doc {
            Doc::Failure(place, reason) => {
                warn!(place, reason, "skipped");
                p.report.failures.push((place, reason));
            }
            Doc::Collection(place, value) => {
                // Keep document order: what came before is written first.
                p.drain().await?;
                p.collection(place, value).await?;
            }
            item => {
                p.queue(item);
                p.dispatch(false).await?;
            }
        }
    }
    p.drain().await?;
    walker
        .await
        .map_err(|e| crate::Error::embedded(format!("reader task failed: {e}")))?;
    if p.wrote_items {
        // Fresh statistics, so that the planner picks the indexes at once,
        // and a visibility map, so that counts are index-only scans; both
        // now rather than whenever autovacuum gets round to it.
        sqlx::query("VACUUM (ANALYZE) items")
            .execute(store.pool())
            .await?;
    }
    let mut report = p.report;
    report.elapsed = started.elapsed();
    Ok(report)
}
