//! `PMTiles` archives in the lake, read through the storage crate.
//!
//! The `pmtiles` crate parses the header and the directories; its backend
//! here is a [`storage::Source`], so an archive on S3, behind a WebDAV or
//! HTTP door, or on a local mount is read with range requests the same
//! way. Each archive's reader (header and root directory) is kept under the
//! archive's change token (its ETag, else size and modification time), and
//! its leaf directories in a bounded cache, so a tile costs one range read
//! of its bytes once the archive is warm.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pmtiles::{
    AsyncBackend, AsyncPmTilesReader, BackendResponse, DirEntry, Directory, DirectoryCache,
    PmtError, PmtResult, TileCoord, TileId,
};
use serde_json::Value;
use storage::Source;

/// The byte of the v3 header that holds the tile type.
const TILE_TYPE_BYTE: usize = 99;
/// The highest tile type the `pmtiles` crate knows (6: `MapLibre` tiles).
const KNOWN_TILE_TYPES: u8 = 6;
/// Leaf directories kept per archive.
const LEAVES_PER_ARCHIVE: usize = 256;
/// Archives whose readers are kept.
const ARCHIVES: usize = 128;

/// Reads of one archive through its source.
struct SourceBackend {
    source: Arc<dyn Source>,
    path: String,
    size: u64,
    /// The tile type byte as stored, seen when the header is read.
    stored_type: Arc<AtomicU8>,
}

impl AsyncBackend for SourceBackend {
    async fn read(&self, offset: usize, length: usize) -> PmtResult<BackendResponse> {
        let start = offset as u64;
        let end = (start + length as u64).min(self.size);
        if start >= end {
            return Ok(BackendResponse::new(Bytes::new()));
        }
        let mut bytes = self
            .source
            .read_range(&self.path, start..end)
            .await
            .map_err(|e| PmtError::Reading(std::io::Error::other(e)))?;
        // A tile type this crate does not know is read as "unknown"
        // (served as application/octet-stream) instead of refused.
        if start == 0 && bytes.len() > TILE_TYPE_BYTE {
            self.stored_type
                .store(bytes[TILE_TYPE_BYTE], Ordering::Relaxed);
        }
        if start == 0 && bytes.len() > TILE_TYPE_BYTE && bytes[TILE_TYPE_BYTE] > KNOWN_TILE_TYPES {
            let mut owned = bytes.to_vec();
            owned[TILE_TYPE_BYTE] = 0;
            bytes = Bytes::from(owned);
        }
        Ok(BackendResponse::new(bytes))
    }
}

/// Leaf directories of one archive, at most [`LEAVES_PER_ARCHIVE`]; when
/// full it starts afresh.
#[derive(Default)]
struct Leaves {
    dirs: Mutex<HashMap<usize, Arc<Directory>>>,
}

impl DirectoryCache for Leaves {
    async fn get_dir_entry_or_insert(
        &self,
        offset: usize,
        tile_id: TileId,
        fetcher: impl Future<Output = PmtResult<Directory>> + Send,
    ) -> PmtResult<Option<DirEntry>> {
        let cached = self
            .dirs
            .lock()
            .ok()
            .and_then(|dirs| dirs.get(&offset).cloned());
        let dir = match cached {
            Some(dir) => dir,
            None => {
                let dir = Arc::new(fetcher.await?);
                if let Ok(mut dirs) = self.dirs.lock() {
                    if dirs.len() >= LEAVES_PER_ARCHIVE {
                        dirs.clear();
                    }
                    dirs.insert(offset, dir.clone());
                }
                dir
            }
        };
        Ok(dir.find_tile_id(tile_id).cloned())
    }
}

/// One opened archive.
pub struct Archive {
    reader: AsyncPmTilesReader<SourceBackend, Leaves>,
    /// The tile type byte as stored (a value above 6 is unknown here).
    stored_type: u8,
    /// The archive's change token.
    pub token: String,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// What a tile of an archive is.
#[derive(Debug, Clone, Copy)]
pub struct TileKind {
    /// Its media type.
    pub media_type: &'static str,
    /// Its `Content-Encoding`, if compressed.
    pub encoding: Option<&'static str>,
    /// Vector tiles (MVT or `MapLibre` tiles) rather than images.
    pub vector: bool,
    /// The archive names a tile type this server does not know.
    pub unknown: bool,
}

impl Archive {
    /// The archive's header.
    pub fn header(&self) -> &pmtiles::Header {
        self.reader.get_header()
    }

    /// What its tiles are.
    pub fn kind(&self) -> TileKind {
        let header = self.header();
        TileKind {
            media_type: header.tile_type.content_type(),
            encoding: header.tile_compression.content_encoding(),
            vector: matches!(
                header.tile_type,
                pmtiles::TileType::Mvt | pmtiles::TileType::Mlt
            ),
            unknown: header.tile_type == pmtiles::TileType::Unknown,
        }
    }

    /// The tile type as stored (for messages about unknown types).
    pub fn stored_type(&self) -> u8 {
        self.stored_type
    }

    /// The stored bytes of tile z/x/y, `None` when the archive has none.
    pub async fn tile(&self, z: u8, x: u32, y: u32) -> Result<Option<Bytes>, PmtError> {
        let coord = TileCoord::new(z, x, y)?;
        self.reader.get_tile(coord).await
    }

    /// The archive's JSON metadata (an empty object when it has none or
    /// it is not an object).
    pub async fn metadata(&self) -> Value {
        match self.reader.get_metadata().await {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(v @ Value::Object(_)) => v,
                _ => Value::Object(serde_json::Map::new()),
            },
            Err(e) => {
                tracing::warn!(archive = %self.token, error = %e, "PMTiles metadata unreadable");
                Value::Object(serde_json::Map::new())
            }
        }
    }
}

/// The archives opened a moment ago, keyed by source, path and change
/// token: a rewritten archive is opened afresh.
#[derive(Default)]
pub struct Archives {
    open: Mutex<HashMap<(String, String, String), Arc<Archive>>>,
}

impl std::fmt::Debug for Archives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archives").finish_non_exhaustive()
    }
}

impl Archives {
    /// The archive at `path` of `source` (named `name`), whose metadata
    /// `entry` is fresh.
    pub async fn open(
        &self,
        name: &str,
        source: Arc<dyn Source>,
        path: &str,
        entry: &storage::Entry,
    ) -> Result<Arc<Archive>, PmtError> {
        let key = (name.to_owned(), path.to_owned(), entry.token());
        if let Some(archive) = self.open.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(archive);
        }
        let stored_type = Arc::new(AtomicU8::new(0));
        let backend = SourceBackend {
            source,
            path: path.to_owned(),
            size: entry.size,
            stored_type: stored_type.clone(),
        };
        let reader = AsyncPmTilesReader::try_from_cached_source(backend, Leaves::default()).await?;
        let archive = Arc::new(Archive {
            reader,
            stored_type: stored_type.load(Ordering::Relaxed),
            token: key.2.clone(),
        });
        if let Ok(mut open) = self.open.lock() {
            // Older versions of the same archive go first.
            open.retain(|(n, p, _), _| !(n == name && p == path));
            if open.len() >= ARCHIVES {
                open.clear();
            }
            open.insert(key, archive.clone());
        }
        Ok(archive)
    }
}
