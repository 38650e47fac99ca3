//! arcolake ingest: storage sources, format readers, item builders and the
//! crawler that keeps the catalog in step with storage.
//!
//! - [`read`]: header readers for COG/GeoTIFF, Zarr, GeoParquet, PMTiles and
//!   FlatGeobuf;
//! - [`geo`]: footprints reprojected to WGS 84;
//! - [`layer`]: every feature of a GeoParquet or FlatGeobuf file, as WKB
//!   and JSON properties, for importing it as a tile layer;
//! - [`build`]: STAC Items from what the readers found, one per file or
//!   grouped by templates;
//! - [`crawl`]: listing, change detection, batching into the catalog,
//!   progress and the report;
//! - [`run`]: the `crawl` command: its sources, its catalog, its outcome;
//! - [`shard`]: which shard of a sharded crawl this process is (`--shard`).

#![allow(
    clippy::cast_precision_loss,
    reason = "counts, coordinates and rates are reported as f64; exactness beyond 2^52 is not needed"
)]
#![allow(
    clippy::many_single_char_names,
    reason = "affine transforms and bboxes read best with their usual one-letter names"
)]
#![allow(
    clippy::float_cmp,
    reason = "bbox identity checks compare values copied, not computed"
)]
#![allow(
    clippy::case_sensitive_file_extension_comparisons,
    reason = "names are lower-cased before extension checks"
)]

pub mod build;
pub mod config;
pub mod crawl;
pub mod geo;
pub mod layer;
pub mod publish;
pub mod read;
pub mod run;
pub mod shard;

pub use config::{CrawlOptions, SourceConfig, SourcesFile};
pub use crawl::{CrawlReport, crawl};
