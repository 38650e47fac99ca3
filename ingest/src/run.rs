//! `arcolake crawl` as a whole: the sources to crawl (one URL from the
//! command line, or a platform's sources file), the catalog to write to, one
//! crawl per source, the JSON report, and the outcome the command exits with.
//!
//! The binary only parses the command line into a [`CrawlRequest`] and
//! prints what [`run`] returns.

use std::fmt::Write as _;
use std::path::PathBuf;

use catalog::{CollectionId, Database, DbConfig, Store};
use tracing::info;

use crate::build::Namer;
use crate::config::{CrawlOptions, SourceConfig, SourcesFile};
use crate::crawl::{CrawlError, CrawlJob, CrawlReport, ensure_collection};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct CrawlRequest {
    /// Storage URL of a one-off crawl (without a sources file).
    pub url: Option<String>,
    /// Target collection of a one-off crawl.
    pub collection: Option<String>,
    /// Only paths matching these globs.
    pub include: Vec<String>,
    /// Leave out paths matching these globs.
    pub exclude: Vec<String>,
    /// The platform's sources file.
    pub config: Option<PathBuf>,
    /// Crawl only this source of the sources file.
    pub source: Option<String>,
    /// Force an HTTP source behaviour: `webdav`, `dcache` or `xrdhttp`.
    pub kind: Option<String>,
    /// Options of each crawl run.
    pub options: CrawlOptions,
    /// A file error fails the command.
    pub fail_on_error: bool,
    /// Local sources follow symbolic links out of their root.
    pub follow_links_outside: bool,
}

/// How a crawl command ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every source was listed to its end (file errors are in the report).
    Done,
    /// A listing broke off: nothing was removed for that source.
    Incomplete,
    /// A file failed and `fail_on_error` was asked for.
    FileErrors,
    /// The removal guard kept items whose objects the listing did not see.
    RemovalRefused,
}

impl Outcome {
    /// The command's exit status.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Done => 0,
            Self::Incomplete => 1,
            Self::FileErrors => 3,
            Self::RemovalRefused => 4,
        }
    }
}

/// The reports of a crawl command and how it ends.
#[derive(Debug)]
pub struct CrawlRun {
    /// One report per source crawled (those that ran before an error).
    pub reports: Vec<CrawlReport>,
    /// How the command ends.
    pub outcome: Outcome,
}

/// The sources to crawl, from the sources file or the command line; and
/// whether they came from the file.
fn sources(req: &CrawlRequest) -> Result<(Vec<SourceConfig>, bool), CrawlError> {
    if let Some(path) = &req.config {
        let file = SourcesFile::load(path).map_err(CrawlError::Config)?;
        let chosen: Vec<SourceConfig> = file
            .source
            .into_iter()
            .filter(|s| req.source.as_ref().is_none_or(|n| *n == s.name))
            .collect();
        if chosen.is_empty() {
            return Err(CrawlError::Config(format!(
                "{}: no source named {:?}",
                path.display(),
                req.source.as_deref().unwrap_or("")
            )));
        }
        return Ok((chosen, true));
    }
    let url = req
        .url
        .clone()
        .ok_or_else(|| CrawlError::Config("a storage URL or --config is needed".into()))?;
    let collection = req
        .collection
        .clone()
        .ok_or_else(|| CrawlError::Config("--collection is needed".into()))?;
    let cfg = SourceConfig {
        name: "command-line".into(),
        url,
        collection,
        include: req.include.clone(),
        exclude: req.exclude.clone(),
        kind: req.kind.clone(),
        ..SourceConfig::default()
    };
    Ok((vec![cfg], false))
}

/// Run the crawl command: every chosen source in turn, into the catalog of
/// `db`, writing the report file when asked for.
pub async fn run(db: &DbConfig, req: &CrawlRequest) -> Result<CrawlRun, CrawlError> {
    let (sources, configured) = sources(req)?;
    let database = Database::open(db).await?;
    let store = Store::new(database.pool.clone(), 0);
    let mut reports = Vec::new();
    let mut result = Ok(());
    for cfg in &sources {
        match crawl_one(&store, cfg, configured, req).await {
            Ok(r) => reports.push(r),
            Err(e) => {
                result = Err(CrawlError::Config(format!("source {}: {e}", cfg.name)));
                break;
            }
        }
    }
    database.close().await?;
    if let Some(path) = &req.options.report {
        let body = if reports.len() == 1 && !configured {
            serde_json::to_string_pretty(&reports[0])
        } else {
            serde_json::to_string_pretty(&serde_json::json!({ "sources": reports }))
        }
        .map_err(|e| CrawlError::Config(format!("the report: {e}")))?;
        std::fs::write(path, body).map_err(|e| {
            CrawlError::Config(format!("writing the report to {}: {e}", path.display()))
        })?;
    }
    result?;
    let outcome = if reports.iter().any(|r| !r.complete) {
        Outcome::Incomplete
    } else if reports.iter().any(|r| r.removal_refused.is_some()) {
        Outcome::RemovalRefused
    } else if req.fail_on_error && reports.iter().any(|r| r.failed > 0) {
        Outcome::FileErrors
    } else {
        Outcome::Done
    };
    Ok(CrawlRun { reports, outcome })
}

async fn crawl_one(
    store: &Store,
    cfg: &SourceConfig,
    configured: bool,
    req: &CrawlRequest,
) -> Result<CrawlReport, CrawlError> {
    let mut settings = cfg.settings().map_err(CrawlError::Config)?;
    settings.concurrency = req.options.concurrency;
    settings.follow_links_outside = req.follow_links_outside;
    if settings.kind.is_none() {
        settings.kind.clone_from(&req.kind);
    }
    let source = storage::source::open(&cfg.url, &settings)?;
    let collection = CollectionId::new(cfg.collection.clone()).map_err(CrawlError::Config)?;
    if !req.options.dry_run {
        let metadata = configured.then_some(&cfg.metadata);
        ensure_collection(store, &collection, metadata, &source.describe()).await?;
    }
    let mut options = req.options.clone();
    if let Some(c) = cfg.concurrency {
        options.concurrency = c.max(1);
    }
    if let (Some(depth), Some(shard)) = (cfg.shard_depth, options.shard) {
        options.shard = Some(shard.with_depth(depth));
    }
    if let Some(m) = cfg.on_missing {
        options.on_missing = m;
    }
    let job = CrawlJob {
        store: store.clone(),
        source,
        collection,
        namer: Namer::new(&cfg.group).map_err(CrawlError::Config)?,
        include: cfg.include.clone(),
        exclude: cfg.exclude.clone(),
        options,
        secrets: settings.secrets(),
    };
    let report = crate::crawl(&job).await?;
    // A shard publishes only when it finalized the collection: the layers
    // are read from the items every shard wrote.
    if cfg.publish && !req.options.dry_run && (report.shard.is_none() || report.finalized) {
        let (published, unchanged, failed) =
            crate::publish::publish_collection(store, job.source.as_ref(), job.collection.as_str())
                .await
                .map_err(|e| {
                    let mut text = format!("publishing layers: {e}");
                    let mut cause = std::error::Error::source(&e);
                    while let Some(c) = cause {
                        let _ = write!(text, ": {c}");
                        cause = c.source();
                    }
                    CrawlError::Config(text)
                })?;
        info!(
            source = %report.source,
            published,
            unchanged,
            failed,
            "vector layers published"
        );
    }
    info!(
        source = %report.source,
        listed = report.listed,
        read = report.read,
        unchanged = report.unchanged,
        failed = report.failed,
        skipped = report.skipped,
        shard = report.shard.as_deref().unwrap_or("-"),
        other_shards = report.other_shards,
        finalized = report.finalized,
        items = report.items_written,
        removed = report.items_removed,
        seconds = format!("{:.2}", report.elapsed_seconds),
        files_per_second = format!("{:.0}", report.files_per_second),
        "crawl finished"
    );
    Ok(report)
}

/// `arcolake crawl --finalize`: after the shards of a sharded crawl, work
/// out each target collection's extent (and publish its vector layers where
/// the sources file asks for it), whatever shards did it already. Returns
/// the collections finalized.
pub async fn finalize(db: &DbConfig, req: &CrawlRequest) -> Result<Vec<String>, CrawlError> {
    let (sources, _) = sources_to_finalize(req)?;
    let database = Database::open(db).await?;
    let store = Store::new(database.pool.clone(), 0);
    let mut done = Vec::new();
    let result = async {
        for cfg in &sources {
            crate::crawl::rebuild_items_across_shard_dirs(&store, &cfg.collection).await?;
            store.refresh_collection_extent(&cfg.collection).await?;
            store.mark_crawls_finalized(&cfg.collection).await?;
            if cfg.publish {
                let settings = cfg.settings().map_err(CrawlError::Config)?;
                let source = storage::source::open(&cfg.url, &settings)?;
                crate::publish::publish_collection(&store, source.as_ref(), &cfg.collection)
                    .await
                    .map_err(|e| CrawlError::Config(format!("publishing layers: {e}")))?;
            }
            info!(collection = %cfg.collection, source = %cfg.name, "collection finalized");
            done.push(cfg.collection.clone());
        }
        Ok::<_, CrawlError>(())
    }
    .await;
    database.close().await?;
    result?;
    Ok(done)
}

/// The sources `--finalize` works on: those of the sources file (or the
/// one named), else the collection named on the command line.
fn sources_to_finalize(req: &CrawlRequest) -> Result<(Vec<SourceConfig>, bool), CrawlError> {
    if req.config.is_some() || req.url.is_some() {
        return sources(req);
    }
    let collection = req
        .collection
        .clone()
        .ok_or_else(|| CrawlError::Config("--finalize needs --config or --collection".into()))?;
    CollectionId::new(collection.clone()).map_err(CrawlError::Config)?;
    Ok((
        vec![SourceConfig {
            name: "command-line".into(),
            collection,
            ..SourceConfig::default()
        }],
        false,
    ))
}
