//! arcolake ingest: storage sources, format readers, item builders and the
//! crawler that keeps the catalog in step with storage.
//!
//! This crate is a skeleton so far: it defines the crawl settings the CLI
//! fills in and reports plainly that crawling is not available yet. Readers
//! and sources (COG, Zarr, GeoParquet, PMTiles, FlatGeobuf over S3, WebDAV,
//! EOS and local mounts) come with the ingest work.

use std::path::PathBuf;

/// Errors of the ingest crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The requested capability is not built yet.
    #[error("{what} is not available in this version of arcolake")]
    Unsupported { what: String },
}

/// The ingest result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings of one crawl.
#[derive(Debug, Clone, Default)]
pub struct CrawlConfig {
    /// The storage URL or path to crawl.
    pub url: Option<String>,
    /// The collection to register items in.
    pub collection: Option<String>,
    /// A sources file describing several crawls.
    pub config: Option<PathBuf>,
}

/// Run a crawl. Not available yet: it says so instead of pretending.
pub fn crawl(config: &CrawlConfig) -> Result<()> {
    let what = config
        .url
        .as_deref()
        .map_or_else(|| "crawling".to_owned(), |u| format!("crawling {u}"));
    Err(Error::Unsupported { what })
}
