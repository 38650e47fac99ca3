//! `arcolake crawl`: one-off crawls and the configured sources of a platform.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use catalog::{CollectionId, Database, DbConfig, Store};
use ingest::SourceConfig;
use ingest::build::Namer;
use ingest::config::SourcesFile;
use ingest::crawl::{CrawlJob, CrawlReport, ensure_collection};
use tracing::info;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct CrawlRequest {
    pub url: Option<String>,
    pub collection: Option<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub config: Option<PathBuf>,
    pub source: Option<String>,
    pub kind: Option<String>,
    pub options: ingest::CrawlOptions,
    pub fail_on_error: bool,
    pub follow_links_outside: bool,
}

/// The sources to crawl, from the sources file or the command line.
fn sources(req: &CrawlRequest) -> anyhow::Result<(Vec<SourceConfig>, bool)> {
    if let Some(path) = &req.config {
        let file = SourcesFile::load(path).map_err(anyhow::Error::msg)?;
        let chosen: Vec<SourceConfig> = file
            .source
            .into_iter()
            .filter(|s| req.source.as_ref().is_none_or(|n| *n == s.name))
            .collect();
        if chosen.is_empty() {
            bail!(
                "{}: no source named {:?}",
                path.display(),
                req.source.as_deref().unwrap_or("")
            );
        }
        return Ok((chosen, true));
    }
    let url = req
        .url
        .clone()
        .context("a storage URL or --config is needed")?;
    let collection = req.collection.clone().context("--collection is needed")?;
    let cfg = SourceConfig {
        name: "command-line".into(),
        url,
        collection,
        include: req.include.clone(),
        exclude: req.exclude.clone(),
        metadata: ingest::config::CollectionMetadata::default(),
        group: Vec::new(),
        concurrency: None,
        on_missing: None,
        kind: req.kind.clone(),
        endpoint: None,
        region: None,
        path_style: None,
        allow_http: None,
        access_key_id: None,
        access_key_id_env: None,
        secret_access_key: None,
        secret_access_key_env: None,
        bearer_token: None,
        bearer_token_env: None,
        authz_token: None,
        authz_token_env: None,
        username: None,
        password: None,
        password_env: None,
    };
    Ok((vec![cfg], false))
}

/// Run the crawl command.
pub async fn run(db: &DbConfig, req: &CrawlRequest) -> anyhow::Result<ExitCode> {
    let (sources, configured) = sources(req)?;
    let database = Database::open(db)
        .await
        .context("could not open the catalog")?;
    let store = Store::new(database.pool.clone(), 0);
    let mut reports = Vec::new();
    let mut result = Ok(());
    for cfg in &sources {
        match crawl_one(&store, cfg, configured, req).await {
            Ok(r) => reports.push(r),
            Err(e) => {
                result = Err(e.context(format!("source {}", cfg.name)));
                break;
            }
        }
    }
    database.close().await.context("closing the catalog")?;
    if let Some(path) = &req.options.report {
        let body = if reports.len() == 1 && !configured {
            serde_json::to_string_pretty(&reports[0])?
        } else {
            serde_json::to_string_pretty(&serde_json::json!({ "sources": reports }))?
        };
        std::fs::write(path, body)
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    for r in &reports {
        let mut summary = serde_json::to_value(r)?;
        if let Some(o) = summary.as_object_mut() {
            o.insert("errors".into(), r.errors.len().into());
            o.insert("warnings".into(), r.warnings.len().into());
            o.insert(
                "first_errors".into(),
                serde_json::to_value(r.errors.iter().take(20).collect::<Vec<_>>())?,
            );
        }
        #[expect(clippy::print_stdout, reason = "the summary is the command's output")]
        {
            println!("{summary}");
        }
    }
    result?;
    if reports.iter().any(|r| !r.complete) {
        return Ok(ExitCode::FAILURE);
    }
    if reports.iter().any(|r| r.removal_refused.is_some()) {
        return Ok(ExitCode::from(4));
    }
    if req.fail_on_error && reports.iter().any(|r| r.failed > 0) {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

async fn crawl_one(
    store: &Store,
    cfg: &SourceConfig,
    configured: bool,
    req: &CrawlRequest,
) -> anyhow::Result<CrawlReport> {
    let mut settings = cfg.settings().map_err(anyhow::Error::msg)?;
    settings.concurrency = req.options.concurrency;
    settings.follow_links_outside = req.follow_links_outside;
    if settings.kind.is_none() {
        settings.kind.clone_from(&req.kind);
    }
    let source = ingest::source::open(&cfg.url, &settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    let collection = CollectionId::new(cfg.collection.clone()).map_err(anyhow::Error::msg)?;
    if !req.options.dry_run {
        let metadata = configured.then_some(&cfg.metadata);
        ensure_collection(store, &collection, metadata, &source.describe())
            .await
            .context("creating or updating the collection")?;
    }
    let mut options = req.options.clone();
    if let Some(c) = cfg.concurrency {
        options.concurrency = c.max(1);
    }
    if let Some(m) = cfg.on_missing {
        options.on_missing = m;
    }
    let job = CrawlJob {
        store: store.clone(),
        source,
        collection,
        namer: Namer::new(&cfg.group).map_err(anyhow::Error::msg)?,
        include: cfg.include.clone(),
        exclude: cfg.exclude.clone(),
        options,
        secrets: settings.secrets(),
    };
    let report = ingest::crawl(&job)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    info!(
        source = %report.source,
        listed = report.listed,
        read = report.read,
        unchanged = report.unchanged,
        failed = report.failed,
        skipped = report.skipped,
        items = report.items_written,
        removed = report.items_removed,
        seconds = format!("{:.2}", report.elapsed_seconds),
        files_per_second = format!("{:.0}", report.files_per_second),
        "crawl finished"
    );
    Ok(report)
}
