//! Format readers: from a file's header to the metadata of a STAC asset.
//!
//! Every reader works on a [`RangeReader`], which fetches byte ranges with a
//! small read-ahead and keeps what it fetched, so a header costs one or two
//! requests and never a whole-object GET.

mod cf;
pub mod fgb;
mod geokeys;
pub mod geoparquet;
pub mod pmtiles;
pub mod tiff;
pub mod zarr;

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::geo::Footprint;
use storage::{Entry, EntryKind, Error as SourceError, Source};

/// Extension schema URLs the readers use.
pub mod ext {
    pub const PROJECTION: &str = "https://stac-extensions.github.io/projection/v2.0.0/schema.json";
    pub const RASTER: &str = "https://stac-extensions.github.io/raster/v1.1.0/schema.json";
    pub const FILE: &str = "https://stac-extensions.github.io/file/v2.1.0/schema.json";
    pub const DATACUBE: &str = "https://stac-extensions.github.io/datacube/v2.3.0/schema.json";
    pub const TABLE: &str = "https://stac-extensions.github.io/table/v1.2.0/schema.json";
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The storage failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The file is not what its name says, or is damaged.
    #[error("{0}")]
    Invalid(String),
    /// A readable file of a kind arcolake does not register (counted as skipped).
    #[error("{0}")]
    Unsupported(String),
}

impl ReadError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}

/// The formats arcolake registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    GeoTiff,
    Zarr,
    GeoParquet,
    PmTiles,
    FlatGeobuf,
}

impl Format {
    /// The format a listed entry has, by its name; `None` to skip it.
    pub fn detect(entry: &Entry) -> Option<Self> {
        if entry.kind == EntryKind::ZarrStore {
            return Some(Self::Zarr);
        }
        let name = entry
            .path
            .rsplit('/')
            .next()
            .unwrap_or(&entry.path)
            .to_ascii_lowercase();
        let ext = name.rsplit_once('.').map(|(_, e)| e)?;
        match ext {
            "tif" | "tiff" | "gtiff" | "cog" => Some(Self::GeoTiff),
            "parquet" | "geoparquet" | "pq" => Some(Self::GeoParquet),
            "pmtiles" => Some(Self::PmTiles),
            "fgb" => Some(Self::FlatGeobuf),
            _ => None,
        }
    }
}

/// What a reader learned about one file: the asset and what it says about the item.
#[derive(Debug, Clone, Default)]
pub struct AssetInfo {
    /// Media type of the asset.
    pub media_type: String,
    /// Asset roles.
    pub roles: Vec<String>,
    /// Asset title, when the file names one.
    pub title: Option<String>,
    /// Extension fields on the asset (`proj:*`, `raster:bands`, `table:*`, …).
    pub fields: Map<String, Value>,
    /// Item properties the file suggests (`cube:*`, `table:*`, …).
    pub properties: Map<String, Value>,
    /// Footprint in WGS 84.
    pub footprint: Option<Footprint>,
    /// Time range the file covers (or its acquisition instant).
    pub start: Option<DateTime<Utc>>,
    /// End of the time range.
    pub end: Option<DateTime<Utc>>,
    /// Extension schema URLs used.
    pub extensions: BTreeSet<String>,
    /// Problems worth reporting that did not stop the read.
    pub warnings: Vec<String>,
}

impl AssetInfo {
    /// Set the footprint from a bbox in the CRS `epsg`, or say why there is
    /// none (`no_crs` when the file names no CRS); record the CRS in the
    /// projection fields.
    pub(crate) fn locate(&mut self, epsg: Option<u32>, bbox: Option<[f64; 4]>, no_crs: &str) {
        match (bbox, epsg) {
            (Some(b), Some(code)) => match Footprint::from_projected_bbox(code, b) {
                Ok(fp) => self.footprint = Some(fp),
                Err(e) => self.warnings.push(format!("no footprint: {e}")),
            },
            (Some(_), None) => self.warnings.push(format!("{no_crs}: no footprint")),
            (None, _) => {}
        }
        if let Some(code) = epsg {
            // Projection v2.0.0: `proj:code` only; its schema forbids `proj:epsg`.
            self.fields
                .insert("proj:code".into(), format!("EPSG:{code}").into());
            self.extensions.insert(ext::PROJECTION.into());
        }
    }
}

/// Read one listed entry, in its own task: a reader that panics on a
/// malformed file (third-party parsers sometimes do) costs that file, with
/// an error entry, and never the crawl.
pub async fn read_guarded(
    source: &Arc<dyn Source>,
    entry: &Entry,
    format: Format,
) -> Result<AssetInfo, ReadError> {
    let (source, owned) = (Arc::clone(source), entry.clone());
    match tokio::spawn(async move { read(&source, &owned, format).await }).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(ReadError::invalid(
            "malformed file: the format reader gave up on it",
        )),
        Err(e) => Err(ReadError::invalid(format!("read cancelled: {e}"))),
    }
}

/// Read one listed entry.
pub async fn read(
    source: &Arc<dyn Source>,
    entry: &Entry,
    format: Format,
) -> Result<AssetInfo, ReadError> {
    if entry.kind == EntryKind::File && entry.size == 0 {
        return Err(ReadError::invalid("zero-length file"));
    }
    let mut info = match format {
        Format::Zarr => zarr::read(source, &entry.path).await?,
        other => {
            let mut r = RangeReader::new(Arc::clone(source), &entry.path, entry.size);
            match other {
                Format::GeoTiff => tiff::read(r).await?,
                Format::GeoParquet => geoparquet::read(&mut r).await?,
                Format::PmTiles => pmtiles::read(&mut r).await?,
                Format::FlatGeobuf => fgb::read(&mut r).await?,
                Format::Zarr => unreachable!("handled above"),
            }
        }
    };
    if entry.kind == EntryKind::File {
        info.fields.insert("file:size".into(), entry.size.into());
        if let Some(d) = source.digests(&entry.path)
            && let Some(md5) = d.md5
        {
            // Multihash: 0xd5 (md5), 0x10 (16 bytes), digest.
            info.fields
                .insert("file:checksum".into(), format!("d510{md5}").into());
        }
        info.extensions.insert(ext::FILE.into());
    }
    Ok(info)
}

/// Range reads of one object with read-ahead; keeps what it fetched.
#[derive(Clone)]
pub struct RangeReader {
    source: Arc<dyn Source>,
    path: String,
    size: u64,
    read_ahead: u64,
    /// Bytes fetched so far, and the most this reader may fetch.
    fetched: u64,
    budget: u64,
    blocks: Vec<(u64, Bytes)>,
}

impl std::fmt::Debug for RangeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeReader")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl RangeReader {
    /// Default read-ahead: one request covers a typical COG header.
    pub const READ_AHEAD: u64 = 64 * 1024;
    /// Largest read-ahead (it grows eightfold after each miss).
    pub const MAX_READ_AHEAD: u64 = 8 << 20;
    /// The most one reader fetches: a header that needs more (an absurd
    /// TIFF IFD, say) is an error, never gigabytes in memory.
    pub const BUDGET: u64 = 96 << 20;

    pub fn new(source: Arc<dyn Source>, path: &str, size: u64) -> Self {
        Self {
            source,
            path: path.to_owned(),
            size,
            read_ahead: Self::READ_AHEAD,
            fetched: 0,
            budget: Self::BUDGET,
            blocks: Vec::new(),
        }
    }

    /// Object size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The object's path in its source.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Grow the read-ahead for the next miss (header spread over the file).
    pub fn grow_read_ahead(&mut self) {
        self.read_ahead = self.read_ahead.saturating_mul(8).min(Self::MAX_READ_AHEAD);
    }

    /// Count `n` more bytes against the budget; an error once it is spent.
    fn spend(&mut self, n: u64) -> Result<(), ReadError> {
        if self.fetched.saturating_add(n) > self.budget {
            return Err(ReadError::invalid(format!(
                "reading its metadata needs more than {} MiB, the limit for one file",
                self.budget >> 20
            )));
        }
        self.fetched += n;
        Ok(())
    }

    fn cached(&self, range: &Range<u64>) -> Option<Bytes> {
        self.blocks.iter().find_map(|(start, b)| {
            let end = start + b.len() as u64;
            (range.start >= *start && range.end <= end).then(|| {
                let from = usize::try_from(range.start - start).unwrap_or(usize::MAX);
                let to = usize::try_from(range.end - start).unwrap_or(usize::MAX);
                b.slice(from..to)
            })
        })
    }

    /// Bytes `range`; an error if it lies beyond the end of the object.
    pub async fn read(&mut self, range: Range<u64>) -> Result<Bytes, ReadError> {
        if range.end > self.size || range.start > range.end {
            return Err(ReadError::invalid(format!(
                "truncated: needs bytes {}..{} of a {}-byte file",
                range.start, range.end, self.size
            )));
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        if let Some(b) = self.cached(&range) {
            return Ok(b);
        }
        // Read ahead only as far as the budget allows; the range itself must fit.
        let room = self.budget.saturating_sub(self.fetched);
        let fetch_end = range
            .end
            .max(range.start.saturating_add(self.read_ahead.min(room)))
            .min(self.size);
        self.spend(fetch_end - range.start)?;
        let bytes = self
            .source
            .read_range(&self.path, range.start..fetch_end)
            .await?;
        self.grow_read_ahead();
        if (bytes.len() as u64) < range.end - range.start {
            return Err(ReadError::invalid("short read from storage"));
        }
        let out = bytes.slice(0..usize::try_from(range.end - range.start).unwrap_or(usize::MAX));
        self.insert(range.start, bytes);
        Ok(out)
    }

    /// Bytes `range` in one request of exactly that range, not cached: for
    /// data sections read once (a GeoParquet column chunk, FlatGeobuf
    /// features). Counts against the budget.
    pub async fn read_once(&mut self, range: Range<u64>) -> Result<Bytes, ReadError> {
        if range.end > self.size || range.start > range.end {
            return Err(ReadError::invalid(format!(
                "truncated: needs bytes {}..{} of a {}-byte file",
                range.start, range.end, self.size
            )));
        }
        if let Some(b) = self.cached(&range) {
            return Ok(b);
        }
        self.spend(range.end - range.start)?;
        let bytes = self.source.read_range(&self.path, range.clone()).await?;
        if (bytes.len() as u64) < range.end - range.start {
            return Err(ReadError::invalid("short read from storage"));
        }
        Ok(bytes)
    }

    /// The last `n` bytes (fewer when the object is smaller).
    pub async fn read_tail(&mut self, n: u64) -> Result<Bytes, ReadError> {
        let start = self.size.saturating_sub(n);
        self.read(start..self.size).await
    }

    fn insert(&mut self, start: u64, bytes: Bytes) {
        if let Some((s, b)) = self
            .blocks
            .iter_mut()
            .find(|(s, b)| *s + b.len() as u64 == start)
        {
            let mut joined = BytesMut::with_capacity(b.len() + bytes.len());
            joined.extend_from_slice(b);
            joined.extend_from_slice(&bytes);
            *b = joined.freeze();
            let _ = s;
        } else {
            self.blocks.push((start, bytes));
        }
    }
}
