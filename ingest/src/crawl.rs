//! The crawler: list, detect changes, read headers, register items, remove
//! what is gone, report.
//!
//! Listing runs in its own task and hands entries over in chunks through a
//! bounded channel, so memory stays bounded however many objects there are.
//! Each chunk is one transaction: object rows and the items built from them
//! are written together, so a crawl killed at any point and run again ends
//! with the catalog one clean crawl leaves. Removal of vanished objects
//! happens only after a listing that ran to its end.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog::store::crawl::{CrawlChange, CrawlObject, ItemKey, Rebuilt, StoredPart};
use catalog::{CollectionId, CollectionRecord, ItemRecord, Store};
use chrono::Utc;
use futures::StreamExt as _;
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize as _, Serialize};
use serde_json::{Value, json};

use crate::build::{Namer, Part, assemble};
use crate::config::{CollectionMetadata, CrawlOptions, OnMissing};
use crate::read::{self, Format, ReadError};
use storage::{Entry, EntryKind, Error as SourceError, Source};

/// A read file's part, item id and warnings, or why it was not read.
type ReadOutcome = Result<(Part, String, Vec<String>), ReadError>;

/// Entries handed from the listing to the readers at a time.
const CHUNK: usize = 500;
/// At most this many vanished objects are removed whatever their share of
/// the source (an empty listing is still refused).
const SMALL_REMOVAL: u64 = 10;
/// Vanished objects removed (with their items) per transaction.
const REMOVAL_BATCH: i64 = 500;
/// Most error and warning entries kept in the report.
const MAX_REPORTED: usize = 100_000;

/// Why a crawl could not run.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    #[error("storage: {0}")]
    Source(#[from] SourceError),
    #[error("catalog: {0}")]
    Catalog(#[from] catalog::Error),
    #[error("{0}")]
    Config(String),
}

/// One file's problem, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct FileProblem {
    pub href: String,
    pub reason: String,
}

/// Request counters, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Requests {
    pub list: u64,
    pub read: u64,
    pub whole_object_read: u64,
    pub head: u64,
    pub bytes: u64,
}

/// What a crawl did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrawlReport {
    pub source: String,
    pub collection: String,
    pub dry_run: bool,
    /// The shard crawled (`K/N`), when the crawl was sharded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The depth of the directories shards own (`--shard-depth`), when not 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_depth: Option<u32>,
    /// Whether the listing ran to its end (removals happen only then).
    pub complete: bool,
    /// Whether this run worked out the collection's extent (an unsharded
    /// complete crawl, or the last shard of a round to complete).
    pub finalized: bool,
    pub listed: u64,
    /// Listed objects that belong to other shards.
    pub other_shards: u64,
    /// Items whose files lie in directories of different shards
    /// (`--shard-depth`), rebuilt when this run finalized the collection.
    pub items_across_shards: u64,
    pub skipped: u64,
    pub unchanged: u64,
    pub read: u64,
    pub failed: u64,
    pub items_written: u64,
    pub items_removed: u64,
    pub objects_removed: u64,
    pub objects_marked_missing: u64,
    pub elapsed_seconds: f64,
    pub files_per_second: f64,
    pub requests: Requests,
    pub requests_per_read_file: f64,
    pub bytes_per_read_file: f64,
    pub errors: Vec<FileProblem>,
    pub warnings: Vec<FileProblem>,
    /// Why the crawl stopped early, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Why the items of objects this crawl did not see were kept, when the
    /// removal guard refused to remove them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removal_refused: Option<String>,
}

/// Everything one crawl needs.
pub struct CrawlJob {
    pub store: Store,
    pub source: Arc<dyn Source>,
    pub collection: CollectionId,
    pub namer: Namer,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub options: CrawlOptions,
    /// Secret values scrubbed from every message.
    pub secrets: Vec<String>,
}

fn globs(patterns: &[String]) -> Result<Option<GlobSet>, CrawlError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| CrawlError::Config(format!("bad glob {p:?}: {e}")))?);
    }
    b.build()
        .map(Some)
        .map_err(|e| CrawlError::Config(e.to_string()))
}

/// Create the collection if missing; apply configured metadata when given.
pub async fn ensure_collection(
    store: &Store,
    id: &CollectionId,
    metadata: Option<&CollectionMetadata>,
    source_url: &str,
) -> Result<(), CrawlError> {
    let existing = match store.collection_value(id).await {
        Ok(v) => Some(v),
        Err(catalog::Error::CollectionNotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if existing.is_some() && metadata.is_none() {
        return Ok(());
    }
    let mut value = existing.clone().unwrap_or_else(|| {
        json!({
            "type": "Collection",
            "stac_version": crate::build::STAC_VERSION,
            "id": id.as_str(),
            "description": format!("Files crawled from {source_url}"),
            "license": "other",
            "extent": {"spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]}, "temporal": {"interval": [[null, null]]}},
            "links": [],
        })
    });
    if let Some(m) = metadata {
        let set = |v: &mut Value, k: &str, x: Value| {
            v[k] = x;
        };
        if let Some(t) = &m.title {
            set(&mut value, "title", t.clone().into());
        }
        if let Some(d) = &m.description {
            set(&mut value, "description", d.clone().into());
        }
        if let Some(l) = &m.license {
            set(&mut value, "license", l.clone().into());
        }
        if !m.providers.is_empty() {
            set(&mut value, "providers", Value::Array(m.providers.clone()));
        }
        if !m.keywords.is_empty() {
            set(&mut value, "keywords", json!(m.keywords));
        }
        match m.access {
            Some(storage::sources::Access::Restricted) => {
                set(&mut value, "arcolake:access", "restricted".into());
            }
            Some(storage::sources::Access::Public) => {
                if let Some(map) = value.as_object_mut() {
                    map.remove("arcolake:access");
                }
            }
            None => {}
        }
    }
    if let Some(links) = value.get_mut("links").and_then(Value::as_array_mut) {
        links.retain(|l| {
            !matches!(
                l.get("rel").and_then(Value::as_str),
                Some("self" | "root" | "parent" | "items")
            )
        });
    }
    let record = CollectionRecord::from_value(value)?;
    if existing.is_some() {
        store.replace_collection(&record).await?;
    } else {
        match store.create_collection(&record).await {
            Ok(()) | Err(catalog::Error::CollectionExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

struct Run<'a> {
    job: &'a CrawlJob,
    key: String,
    generation: i64,
    report: CrawlReport,
    started: Instant,
    last_log: Instant,
    bar: Option<indicatif::ProgressBar>,
    /// Items committed so far by the writer (for progress).
    committed: Arc<std::sync::atomic::AtomicU64>,
}

impl Run<'_> {
    fn scrub(&self, text: &str) -> String {
        storage::redact::text(text, &self.job.secrets)
    }

    fn error(&mut self, href: &str, reason: &str) {
        self.report.failed += 1;
        if self.report.errors.len() < MAX_REPORTED {
            let reason = self.scrub(reason);
            tracing::warn!(href = %self.scrub(href), %reason, "file not registered");
            self.report.errors.push(FileProblem {
                href: self.scrub(href),
                reason,
            });
        }
    }

    fn warn(&mut self, href: &str, warning: &str) {
        if self.report.warnings.len() < MAX_REPORTED {
            self.report.warnings.push(FileProblem {
                href: self.scrub(href),
                reason: self.scrub(warning),
            });
        }
    }

    /// Listing entries the source could not place, as warnings.
    fn report_unplaced(&mut self) {
        for (href, reason) in self.job.source.stats().take_unplaced() {
            self.warn(&href, &reason);
        }
    }

    fn progress(&mut self) {
        let r = &self.report;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let msg = format!(
            "listed {} · read {} ({:.0}/s) · unchanged {} · items {} · failed {} · skipped {}",
            r.listed,
            r.read,
            r.read as f64 / secs,
            r.unchanged,
            self.committed.load(std::sync::atomic::Ordering::Relaxed),
            r.failed,
            r.skipped
        );
        if let Some(bar) = &self.bar {
            bar.set_message(msg);
        } else if self.last_log.elapsed() >= Duration::from_secs(5) {
            self.last_log = Instant::now();
            tracing::info!("{msg}");
        }
    }
}

/// Run one crawl.
pub async fn crawl(job: &CrawlJob) -> Result<CrawlReport, CrawlError> {
    let include = globs(&job.include)?;
    let exclude = globs(&job.exclude)?;
    // Crawl state is per source and target collection: the same storage
    // crawled into two collections is tracked twice.
    let key = format!("{} -> {}", job.source.describe(), job.collection.as_str());
    // A shard that owns directories, not items (`--shard-depth`).
    let dir_shard = job.options.shard.filter(|s| s.depth > 0);
    let generation = if job.options.dry_run {
        0
    } else {
        job.store
            .begin_crawl(&key, job.collection.as_str(), job.options.shard)
            .await?
    };
    let bar = (job.options.progress && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mut run = Run {
        job,
        key: key.clone(),
        generation,
        report: CrawlReport {
            source: job.source.describe(),
            collection: job.collection.as_str().to_owned(),
            dry_run: job.options.dry_run,
            shard: job.options.shard.map(|s| s.to_string()),
            shard_depth: dir_shard.map(|s| s.depth),
            ..CrawlReport::default()
        },
        started: Instant::now(),
        last_log: Instant::now(),
        bar,
        committed: Arc::default(),
    };

    // Listing in its own task, chunks through a bounded channel.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<Entry>, SourceError>>(4);
    let lister = {
        let source = Arc::clone(&job.source);
        tokio::spawn(async move {
            let mut out = Chunks {
                tx,
                chunk: Vec::with_capacity(CHUNK),
            };
            let listed = match dir_shard {
                None => out.pump(source.list()).await,
                Some(shard) => list_own_dirs(source.as_ref(), shard, &mut out).await,
            };
            if listed.is_ok() && !out.chunk.is_empty() {
                let _ = out.tx.send(Ok(out.chunk)).await;
            }
        })
    };
    let (writes, writer_task) = spawn_writer(
        job.store.clone(),
        run.key.clone(),
        generation,
        Arc::clone(&run.committed),
    );
    let mut listing_error = None;
    let mut chunk_error = None;
    while let Some(msg) = rx.recv().await {
        let entries = match msg {
            Ok(e) => e,
            Err(e) => {
                listing_error = Some(e);
                break;
            }
        };
        run.report.listed += entries.len() as u64;
        let mut wanted = Vec::with_capacity(entries.len());
        for e in entries {
            if let Some(shard) = job.options.shard
                && !shard.owns_object(&e.path, || job.namer.name(&e).item_id)
            {
                run.report.other_shards += 1;
                continue;
            }
            let name_ok = include.as_ref().is_none_or(|g| g.is_match(&e.path))
                && !exclude.as_ref().is_some_and(|g| g.is_match(&e.path));
            match Format::detect(&e).filter(|_| name_ok) {
                Some(f) => wanted.push((e, f)),
                None => run.report.skipped += 1,
            }
        }
        run.report_unplaced();
        if let Err(e) = process_chunk(&mut run, wanted, &writes).await {
            chunk_error = Some(e);
            break;
        }
        run.progress();
    }
    drop(rx);
    // A lister that panicked closed its channel as a finished one does:
    // its listing is not complete, and nothing may be removed after it.
    if let Err(e) = lister.await
        && listing_error.is_none()
        && chunk_error.is_none()
    {
        listing_error = Some(SourceError::request(
            job.source.describe(),
            format!("the listing stopped: {e}"),
        ));
    }
    run.report_unplaced();
    drop(writes);
    let totals = writer_task
        .await
        .map_err(|e| CrawlError::Config(format!("the catalog writer failed: {e}")))?;
    if let Some(e) = chunk_error {
        totals?;
        return Err(e);
    }
    let (items_written, items_removed) = totals?;
    run.report.items_written += items_written;
    run.report.items_removed += items_removed;

    if let Some(e) = listing_error {
        let msg = run.scrub(&e.to_string());
        run.report.stopped = Some(format!("listing failed: {msg}"));
        if !job.options.dry_run {
            job.store
                .finish_crawl(&run.key, generation, false, job.options.shard)
                .await?;
        }
        finish(&mut run);
        if run.report.listed == 0 {
            return Err(CrawlError::Source(SourceError::config(msg)));
        }
        return Ok(run.report);
    }
    run.report.complete = true;
    if !job.options.dry_run {
        if let Some(why) = removal_refused(&run).await? {
            tracing::error!(reason = %why, "removal refused");
            run.report.removal_refused = Some(why);
        } else {
            remove_missing(&mut run).await?;
        }
        // A run with refused removals still finalizes: the extent then
        // covers the items kept, which are still in the catalog.
        run.report.finalized = job
            .store
            .finish_crawl(&run.key, generation, true, job.options.shard)
            .await?;
        if run.report.finalized {
            if dir_shard.is_some() {
                run.report.items_across_shards =
                    rebuild_items_across_shard_dirs(&job.store, job.collection.as_str()).await?;
            }
            job.store
                .refresh_collection_extent(job.collection.as_str())
                .await?;
        }
    }
    finish(&mut run);
    Ok(run.report)
}

fn finish(run: &mut Run<'_>) {
    if let Some(bar) = run.bar.take() {
        bar.finish_and_clear();
    }
    let stats = run.job.source.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let r = &mut run.report;
    r.requests = Requests {
        list: load(&stats.lists),
        read: load(&stats.reads),
        whole_object_read: load(&stats.whole_reads),
        head: load(&stats.heads),
        bytes: load(&stats.bytes),
    };
    r.elapsed_seconds = run.started.elapsed().as_secs_f64();
    let files = (r.read + r.failed) as f64;
    r.files_per_second = files / r.elapsed_seconds.max(1e-6);
    if files > 0.0 {
        r.requests_per_read_file = (r.requests.read + r.requests.head) as f64 / files;
        r.bytes_per_read_file = r.requests.bytes as f64 / files;
    }
}

/// The change token of a Zarr store: its root metadata document's.
async fn zarr_token(source: &dyn Source, root: &str) -> Result<Option<String>, SourceError> {
    for doc in ["zarr.json", ".zmetadata", ".zgroup", ".zarray"] {
        if let Some(e) = source.head(&format!("{root}/{doc}")).await? {
            return Ok(Some(format!("{doc}:{}", e.token())));
        }
    }
    Ok(None)
}

async fn process_chunk(
    run: &mut Run<'_>,
    mut wanted: Vec<(Entry, Format)>,
    writes: &WriteQueue,
) -> Result<(), CrawlError> {
    let job = run.job;
    let source = &job.source;
    // Zarr stores: the token comes from the root metadata document.
    let mut zarr_failed = HashSet::new();
    for (e, _) in wanted
        .iter_mut()
        .filter(|(e, _)| e.kind == EntryKind::ZarrStore)
    {
        match zarr_token(source.as_ref(), &e.path).await {
            Ok(Some(t)) => e.etag = Some(t),
            Ok(None) => {
                zarr_failed.insert(e.path.clone());
                let href = source.href(&e.path);
                run.error(
                    &href,
                    "no zarr.json, .zmetadata, .zgroup or .zarray at the store root",
                );
            }
            Err(err) => {
                zarr_failed.insert(e.path.clone());
                let href = source.href(&e.path);
                run.error(&href, &err.to_string());
            }
        }
    }
    wanted.retain(|(e, _)| !zarr_failed.contains(&e.path));
    let paths: Vec<String> = wanted.iter().map(|(e, _)| e.path.clone()).collect();
    let known = if job.options.dry_run {
        HashMap::new()
    } else {
        job.store.crawl_tokens(&run.key, &paths).await?
    };
    let (unchanged, changed): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|(e, _)| {
        !job.options.force && known.get(&e.path).is_some_and(|t| *t == e.token())
    });
    run.report.unchanged += unchanged.len() as u64;
    if !job.options.dry_run {
        let paths: Vec<String> = unchanged.iter().map(|(e, _)| e.path.clone()).collect();
        job.store
            .touch_crawl_objects(&run.key, &paths, run.generation)
            .await?;
    }
    if changed.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let concurrency = job.options.concurrency.max(1);
    let results: Vec<(Entry, ReadOutcome)> = futures::stream::iter(changed)
        .map(|(entry, format)| {
            let source = Arc::clone(source);
            let namer = &job.namer;
            async move {
                let res = read::read_guarded(&source, &entry, format)
                    .await
                    .map(|mut info| {
                        let warnings = std::mem::take(&mut info.warnings);
                        let href = source.href(&entry.path);
                        let alt = source.alternate_href(&entry.path);
                        let naming = namer.name(&entry);
                        let part = Part::new(&entry, &naming, info, href, alt, now);
                        (part, naming.item_id, warnings)
                    });
                (entry, res)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut objects = Vec::new();
    for (entry, res) in results {
        match res {
            Ok((part, item_id, warnings)) => {
                run.report.read += 1;
                for w in warnings {
                    run.warn(&source.href(&entry.path), &w);
                }
                let part_value = serde_json::to_value(&part).unwrap_or(Value::Null);
                objects.push(CrawlObject {
                    token: entry.token(),
                    path: entry.path,
                    collection: job.collection.as_str().to_owned(),
                    item_id,
                    part: part_value,
                });
            }
            Err(ReadError::Unsupported(why)) => {
                run.report.skipped += 1;
                let href = source.href(&entry.path);
                run.warn(&href, &format!("skipped: {why}"));
            }
            Err(e) => {
                let href = source.href(&entry.path);
                run.error(&href, &e.to_string());
            }
        }
    }
    if job.options.dry_run || objects.is_empty() {
        return Ok(());
    }
    // The writer commits while the next chunk is read.
    if writes.send(objects).await.is_err() {
        return Err(CrawlError::Config("the catalog writer stopped".into()));
    }
    Ok(())
}

/// Listed entries on their way to the crawl, in chunks.
struct Chunks {
    tx: tokio::sync::mpsc::Sender<Result<Vec<Entry>, SourceError>>,
    chunk: Vec<Entry>,
}

impl Chunks {
    /// Pass on every entry of `listing`. `Err` when the listing failed (the
    /// error is passed on) or the crawl stopped taking entries.
    async fn pump(
        &mut self,
        mut listing: futures::stream::BoxStream<'_, Result<Entry, SourceError>>,
    ) -> Result<(), ()> {
        while let Some(next) = listing.next().await {
            match next {
                Ok(e) => self.push(e).await?,
                Err(e) => return self.fail(e).await,
            }
        }
        Ok(())
    }

    async fn push(&mut self, e: Entry) -> Result<(), ()> {
        self.chunk.push(e);
        if self.chunk.len() >= CHUNK {
            let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
            self.tx.send(Ok(chunk)).await.map_err(|_| ())?;
        }
        Ok(())
    }

    async fn fail(&mut self, e: SourceError) -> Result<(), ()> {
        let _ = self.tx.send(Err(e)).await;
        Err(())
    }
}

/// The listing of a shard that owns directories `shard.depth` levels down:
/// the levels above that depth, one request each, and then the trees of
/// the shard's own directories only. Files and Zarr stores above the depth
/// are passed on to be filtered by their item's id, as at depth 0.
async fn list_own_dirs(
    source: &dyn Source,
    shard: catalog::store::crawl::Shard,
    out: &mut Chunks,
) -> Result<(), ()> {
    let mut dirs = vec![(String::new(), 0u32)];
    while let Some((dir, depth)) = dirs.pop() {
        let level = match source.list_level(&dir).await {
            Ok(Some(level)) => level,
            // A storage that cannot list one level: all of it, filtered.
            Ok(None) if dir.is_empty() => return out.pump(source.list()).await,
            Ok(None) => {
                out.pump(source.list_under(&dir)).await?;
                continue;
            }
            Err(e) => return out.fail(e).await,
        };
        for e in level.entries {
            out.push(e).await?;
        }
        let mut deeper = Vec::new();
        for sub in level.dirs {
            if depth + 1 < shard.depth {
                deeper.push((sub, depth + 1));
            } else if shard.owns(&sub) {
                out.pump(source.list_under(&sub)).await?;
            }
        }
        dirs.extend(deeper.into_iter().rev());
    }
    Ok(())
}

/// Write one chunk's objects and the items built from them in one
/// transaction. Returns (items written, items removed).
async fn write_chunk(
    store: &Store,
    source_key: &str,
    generation: i64,
    objects: &[CrawlObject],
) -> Result<(u64, u64), CrawlError> {
    let commit = store
        .commit_crawl_change(
            source_key,
            CrawlChange::Put {
                generation,
                objects,
            },
            rebuild,
        )
        .await?;
    Ok((commit.written, commit.removed))
}

/// Chunks of objects on their way to the writer.
type WriteQueue = tokio::sync::mpsc::Sender<Vec<CrawlObject>>;

/// The writer's task: its totals (items written, items removed) at the end.
type WriterTask = tokio::task::JoinHandle<Result<(u64, u64), CrawlError>>;

/// The single writer: chunks are committed one at a time, in order.
fn spawn_writer(
    store: Store,
    source_key: String,
    generation: i64,
    committed: Arc<std::sync::atomic::AtomicU64>,
) -> (WriteQueue, WriterTask) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<CrawlObject>>(2);
    let handle = tokio::spawn(async move {
        let mut totals = (0, 0);
        while let Some(objects) = rx.recv().await {
            let (w, r) = write_chunk(&store, &source_key, generation, &objects).await?;
            totals.0 += w;
            committed.fetch_add(w, std::sync::atomic::Ordering::Relaxed);
            totals.1 += r;
        }
        Ok(totals)
    });
    (tx, handle)
}

/// Rebuild the items of `collection` whose files lie in directories of
/// different shards (see `Store::crawl_items_across_shard_dirs`) from all
/// their stored parts, once every shard has written its own. Returns how
/// many there were.
pub async fn rebuild_items_across_shard_dirs(
    store: &Store,
    collection: &str,
) -> Result<u64, CrawlError> {
    let found = store.crawl_items_across_shard_dirs(collection).await?;
    if found.is_empty() {
        return Ok(0);
    }
    tracing::warn!(
        collection,
        items = found.len(),
        first = %found[0].0.1,
        "items whose files lie in directories of different shards (--shard-depth): \
         rebuilt from all their files; keep each group within one directory at that depth"
    );
    // Items already whole are left as they are (no new revision, no
    // change stamp) when a round ends with nothing changed.
    let stored: HashMap<ItemKey, Value> = found
        .iter()
        .filter_map(|(key, content)| {
            let value = serde_json::from_str(content.as_deref()?).ok()?;
            Some((key.clone(), value))
        })
        .collect();
    let keys: Vec<ItemKey> = found.into_iter().map(|(key, _)| key).collect();
    let unless_unchanged = |key: &ItemKey, parts: &[StoredPart]| match rebuild(key, parts) {
        Rebuilt::Item(record) if stored.get(key) == Some(&record.content) => Rebuilt::Unchanged,
        other => other,
    };
    for chunk in keys.chunks(CHUNK) {
        store
            .commit_crawl_change("", CrawlChange::Rebuild { keys: chunk }, unless_unchanged)
            .await?;
    }
    Ok(keys.len() as u64)
}

/// An item rebuilt from all its stored parts. A part that no longer decodes
/// (stored by another version of arcolake) never costs the item: it stays
/// as it was, and the part's object is read again by the next crawl.
fn rebuild(key: &ItemKey, stored: &[StoredPart]) -> Rebuilt {
    let (collection, id) = key;
    let mut parts = Vec::with_capacity(stored.len());
    let mut undecodable = Vec::new();
    for s in stored {
        match Part::deserialize(&s.part) {
            Ok(p) => parts.push(p),
            Err(e) => {
                tracing::warn!(item = %id, path = %s.path, error = %e, "stored crawl part does not decode; it will be read again");
                undecodable.push((s.source.clone(), s.path.clone()));
            }
        }
    }
    if !undecodable.is_empty() {
        return Rebuilt::Keep {
            reread: undecodable,
        };
    }
    let value = assemble(collection, id, &parts);
    let cid = match CollectionId::new(collection.clone()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(item = %id, error = %e, "crawled item has an invalid collection id");
            return Rebuilt::Unchanged;
        }
    };
    match ItemRecord::from_value(value, Some(&cid)) {
        Ok(record) => Rebuilt::Item(Box::new(record)),
        Err(e) => {
            tracing::warn!(item = %id, error = %e, "crawled item failed validation");
            Rebuilt::Unchanged
        }
    }
}

/// After a complete listing: objects not seen are removed (or marked).
async fn remove_missing(run: &mut Run<'_>) -> Result<(), CrawlError> {
    let job = run.job;
    // Each batch goes on after the last one's paths, so a marked object is
    // never met again.
    let mut after = String::new();
    loop {
        let stale = job
            .store
            .stale_crawl_objects(
                &run.key,
                run.generation,
                job.options.shard,
                &after,
                REMOVAL_BATCH,
            )
            .await?;
        if let Some(last) = stale.last() {
            after.clone_from(&last.path);
        }
        if stale.is_empty() {
            return Ok(());
        }
        let commit = match job.options.on_missing {
            OnMissing::Remove => {
                let commit = job
                    .store
                    .commit_crawl_change(&run.key, CrawlChange::Remove { objects: &stale }, rebuild)
                    .await?;
                run.report.objects_removed += stale.len() as u64;
                commit
            }
            OnMissing::Mark => {
                let now = Utc::now();
                let marked: Vec<CrawlObject> = stale
                    .into_iter()
                    .map(|mut o| {
                        if o.part.get("missing_since").is_none_or(Value::is_null) {
                            o.part["missing_since"] = json!(now);
                        }
                        o
                    })
                    .collect();
                run.report.objects_marked_missing += marked.len() as u64;
                job.store
                    .commit_crawl_change(
                        &run.key,
                        CrawlChange::Put {
                            generation: run.generation,
                            objects: &marked,
                        },
                        rebuild,
                    )
                    .await?
            }
        };
        run.report.items_written += commit.written;
        run.report.items_removed += commit.removed;
    }
}

/// Whether removing what this complete listing did not see is safe: an
/// empty listing, or one that lost more than the allowed share of what
/// earlier crawls registered, is what an unmounted FUSE/NFS mount point or
/// a wrong prefix looks like, not a mass deletion of data. Returns why not.
async fn removal_refused(run: &Run<'_>) -> Result<Option<String>, CrawlError> {
    let options = &run.job.options;
    if options.allow_mass_removal {
        return Ok(None);
    }
    let size = run
        .job
        .store
        .crawl_state_size(&run.key, run.generation, options.shard)
        .await?;
    if size.unseen == 0 {
        return Ok(None);
    }
    let seen = size.known - size.unseen;
    #[expect(clippy::cast_precision_loss, reason = "a share of object counts")]
    let share = size.unseen as f64 / size.known as f64;
    if seen == 0 {
        return Ok(Some(format!(
            "the listing found none of the {} objects earlier crawls registered (an unmounted or empty \
             mount point, a wrong prefix or missing permissions look like this); nothing was removed. \
             Pass --allow-mass-removal to remove their items",
            size.known
        )));
    }
    // A handful of files going is ordinary housekeeping, whatever share of
    // a small source it is; the share guards against losing many at once.
    if share > options.max_removal_share && size.unseen > SMALL_REMOVAL {
        return Ok(Some(format!(
            "{} of the {} objects earlier crawls registered ({:.0} %) are gone, more than the allowed \
             {:.0} %; nothing was removed. Pass --allow-mass-removal (or a larger --max-removal-share) \
             to remove their items",
            size.unseen,
            size.known,
            share * 100.0,
            options.max_removal_share * 100.0
        )));
    }
    Ok(None)
}
