//! Options of one crawl run. The sources file itself is read by
//! [`storage::sources`], which the server reads too.

use std::path::PathBuf;

pub use storage::sources::{
    CollectionMetadata, GroupTemplate, OnMissing, SourceConfig, SourcesFile,
};

/// Options of one crawl run.
#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches, each a plain yes or no"
)]
pub struct CrawlOptions {
    /// Concurrent header reads.
    pub concurrency: usize,
    /// List and read, but write nothing.
    pub dry_run: bool,
    /// Where to write the JSON report.
    pub report: Option<PathBuf>,
    /// What to do with items whose files are gone.
    pub on_missing: OnMissing,
    /// Show a progress bar (when stderr is a terminal).
    pub progress: bool,
    /// Read every file again, changed or not (after an upgrade of arcolake).
    pub force: bool,
    /// Remove the items of vanished objects even when the listing is empty or
    /// lost more than `max_removal_share` of the known objects.
    pub allow_mass_removal: bool,
    /// The largest share (0–1) of known objects a complete listing may lose
    /// before removal is refused as a likely outage (an unmounted mount point).
    pub max_removal_share: f64,
    /// Crawl only this shard's objects (`--shard K/N`).
    pub shard: Option<catalog::store::crawl::Shard>,
}

impl Default for CrawlOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            dry_run: false,
            report: None,
            on_missing: OnMissing::Remove,
            progress: true,
            force: false,
            allow_mass_removal: false,
            max_removal_share: 0.5,
            shard: None,
        }
    }
}
