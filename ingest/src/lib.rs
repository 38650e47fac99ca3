//! arcolake ingest: storage sources, format readers, item builders and the
//! crawler that keeps the catalog in step with storage.
//!
//! - [`source`]: listing and range reads on S3, WebDAV / dCache / XrdHttp
//!   and local mounts;
//! - [`read`]: header readers for COG/GeoTIFF, Zarr, GeoParquet, PMTiles and
//!   FlatGeobuf;
//! - [`geo`]: footprints reprojected to WGS 84;
//! - [`build`]: STAC Items from what the readers found, one per file or
//!   grouped by templates;
//! - [`crawl`]: listing, change detection, batching into the catalog,
//!   progress and the report.

pub mod build;
pub mod config;
pub mod crawl;
pub mod geo;
pub mod read;
pub mod source;

pub use config::{CrawlOptions, SourceConfig, SourcesFile};
pub use crawl::{CrawlReport, crawl};

/// Install the TLS crypto provider once (rustls with ring).
pub(crate) fn init_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
