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
use crate::store::items::OnConflict;
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
    Failure(String, String),
}

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
        for (n, line) in BufReader::with_capacity(1 << 20, file).lines().enumerate() {
            let place = format!("{}:{}", path.display(), n + 1);
            let line = match line {
                Ok(l) => l,
                Err(e) => return self.send(Doc::Failure(place, e.to_string())),
            };
            if line.trim().is_empty() {
                continue;
            }
            let ok = match serde_json::from_str::<Value>(&line) {
                Ok(v) => self.document_at(&place, path, v, parent_collection),
                Err(e) => self.send(Doc::Failure(place, e.to_string())),
            };
            if !ok {
                return false;
            }
        }
        true
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

/// Load every path (files or directories) into the store.
pub async fn load_paths(
    store: &Store,
    paths: Vec<PathBuf>,
    batch_size: usize,
) -> Result<LoadReport> {
    let started = Instant::now();
    let (tx, mut rx) = mpsc::channel::<Doc>(batch_size.max(1) * 2);
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

    let mut report = LoadReport::default();
    let mut known: HashSet<String> = store
        .list_collections()
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut batch: Vec<ItemRecord> = Vec::with_capacity(batch_size);
    let mut places: Vec<String> = Vec::with_capacity(batch_size);
    let mut last_log = Instant::now();

    // Validation happens here, on this task, while the database works on the
    // previous batch would be better still; batches are large enough that
    // the write dominates.
    while let Some(doc) = rx.recv().await {
        match doc {
            Doc::Failure(place, reason) => {
                warn!(place, reason, "skipped");
                report.failures.push((place, reason));
            }
            Doc::Collection(place, value) => {
                flush(store, &mut batch, &mut places, &mut report).await?;
                match CollectionRecord::from_value(value) {
                    Ok(record) => {
                        let mut conn = store.pool().acquire().await?;
                        Store::upsert_collection(&mut conn, &record).await?;
                        known.insert(record.id.as_str().to_owned());
                        report.collections += 1;
                    }
                    Err(e) => report.failures.push((place, e.to_string())),
                }
            }
            Doc::Item(place, value, context) => {
                let context = context.and_then(|c| CollectionId::new(c).ok());
                let record = if value.get("collection").is_some() {
                    ItemRecord::from_value(value, None)
                } else {
                    ItemRecord::from_value(value, context.as_ref())
                };
                match record {
                    Ok(r) if known.contains(r.collection.as_str()) => {
                        batch.push(r);
                        places.push(place);
                    }
                    Ok(r) => report.failures.push((
                        place,
                        format!("collection {} not found; load it first", r.collection),
                    )),
                    Err(e) => report.failures.push((place, e.to_string())),
                }
                if batch.len() >= batch_size {
                    flush(store, &mut batch, &mut places, &mut report).await?;
                    if last_log.elapsed() > Duration::from_secs(5) {
                        last_log = Instant::now();
                        info!(
                            items = report.items_inserted + report.items_updated,
                            "loading"
                        );
                    }
                }
            }
        }
    }
    flush(store, &mut batch, &mut places, &mut report).await?;
    walker
        .await
        .map_err(|e| crate::Error::embedded(format!("reader task failed: {e}")))?;
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn flush(
    store: &Store,
    batch: &mut Vec<ItemRecord>,
    places: &mut Vec<String>,
    report: &mut LoadReport,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut tx = store.pool().begin().await?;
    let counts = Store::write_items(&mut tx, batch, OnConflict::Replace).await;
    match counts {
        Ok(c) => {
            tx.commit().await?;
            report.items_inserted += c.inserted;
            report.items_updated += c.updated;
            debug!(inserted = c.inserted, updated = c.updated, "batch written");
        }
        Err(crate::Error::Database(e)) => return Err(e.into()),
        Err(e) => {
            tx.rollback().await?;
            let reason = e.to_string();
            report
                .failures
                .extend(places.iter().map(|p| (p.clone(), reason.clone())));
        }
    }
    batch.clear();
    places.clear();
    Ok(())
}
