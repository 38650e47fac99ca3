//! Tiles kept in memory, compressed, and the gzip handling of tile answers.
//!
//! Footprint tiles are made by PostGIS and cached gzip-compressed under
//! their ETag, which holds the change stamp: a write is seen by the very
//! next request. A client that accepts gzip gets the cached bytes as they
//! are; one that does not gets them inflated. `PMTiles` tiles are cached
//! the same way, as the archive stores them, under the archive's ETag.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::sync::Mutex;

use axum::http::{HeaderMap, header};
use bytes::Bytes;

/// One tile as kept: its bytes (in the `Content-Encoding` `encoding`
/// names) and whether the feature cap cut it.
#[derive(Debug, Clone)]
pub struct CachedTile {
    /// The tile's bytes; empty for an empty tile.
    pub bytes: Bytes,
    /// How the bytes are compressed (`gzip`, `br`, `zstd`), if they are.
    pub encoding: Option<&'static str>,
    /// More features meet the tile than it holds.
    pub limited: bool,
}

/// Tiles made or read a moment ago, keyed by their ETag. Bounded by bytes;
/// when full it starts afresh (a tile costs one query to make again).
#[derive(Debug)]
pub struct TileCache {
    capacity: usize,
    entries: Mutex<(usize, HashMap<String, CachedTile>)>,
}

impl Default for TileCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

/// What an entry costs besides its tile and key bytes.
const ENTRY_OVERHEAD: usize = 64;

/// Bytes of (compressed) tiles kept in memory unless configured.
pub const DEFAULT_CAPACITY: usize = 256 << 20;

impl TileCache {
    /// A cache holding at most `capacity` bytes of tiles; 0 keeps none.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::default(),
        }
    }

    /// The tile cached under `key`.
    pub fn get(&self, key: &str) -> Option<CachedTile> {
        self.entries.lock().ok()?.1.get(key).cloned()
    }

    /// Keep `tile` under `key`.
    pub fn put(&self, key: String, tile: &CachedTile) {
        // Keys and the map's own bookkeeping count too, so empty tiles
        // cannot fill memory for free.
        let cost = tile.bytes.len() + key.len() + ENTRY_OVERHEAD;
        if self.capacity == 0 || cost > self.capacity {
            return;
        }
        let Ok(mut guard) = self.entries.lock() else {
            return;
        };
        let (size, map) = &mut *guard;
        if let Some(old) = map.remove(&key) {
            *size -= old.bytes.len() + key.len() + ENTRY_OVERHEAD;
        }
        if *size + cost > self.capacity {
            map.clear();
            *size = 0;
        }
        *size += cost;
        map.insert(key, tile.clone());
    }
}

/// `bytes` gzip-compressed (level 5: tiles shrink to a fifth to a tenth,
/// at a few milliseconds for the largest).
pub fn gzip(bytes: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4 + 64),
        flate2::Compression::new(5),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// `bytes` inflated from gzip, or `None` when they are not gzip.
pub fn gunzip(bytes: &[u8]) -> Option<Bytes> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .ok()?;
    Some(Bytes::from(out))
}

/// The client named `gzip` (or `*`) in `Accept-Encoding` without `q=0`.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, accept.parse().expect("header"));
        h
    }

    #[test]
    fn gzip_round_trips() {
        let tile = b"a tile, a tile, a tile, a tile".repeat(40);
        let packed = gzip(&tile);
        assert!(packed.len() < tile.len() / 4);
        assert_eq!(gunzip(&packed).as_deref(), Some(&tile[..]));
        assert_eq!(gunzip(b"not gzip"), None);
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        assert!(accepts_gzip(&headers("gzip, deflate, br")));
        assert!(accepts_gzip(&headers("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0, br")));
        assert!(!accepts_gzip(&headers("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn a_full_cache_starts_afresh_and_a_tile_larger_than_it_is_not_kept() {
        // Room for one 100-byte tile with its key and overhead, not two.
        let cache = TileCache::new(2 * (100 + 1 + ENTRY_OVERHEAD) - 1);
        let tile = |n: usize| CachedTile {
            bytes: Bytes::from(vec![0; n]),
            encoding: None,
            limited: false,
        };
        cache.put("a".into(), &tile(100));
        assert!(cache.get("a").is_some());
        // Putting the same key again replaces it, it is not counted twice.
        cache.put("a".into(), &tile(100));
        assert!(cache.get("a").is_some());
        cache.put("b".into(), &tile(100));
        assert!(cache.get("a").is_none());
        assert!(cache.get("b").is_some());
        cache.put("c".into(), &tile(400));
        assert!(cache.get("c").is_none());
        assert!(cache.get("b").is_some());
        // Empty tiles cost their key and overhead: they too fill the cache.
        let empties = TileCache::new(10 * (2 + ENTRY_OVERHEAD));
        for i in 0..100 {
            empties.put(format!("{i:02}"), &tile(0));
        }
        assert!(empties.entries.lock().unwrap().1.len() <= 10);
        // A cache of 0 bytes keeps nothing.
        let none = TileCache::new(0);
        none.put("e".into(), &tile(0));
        assert!(none.get("e").is_none());
    }
}
