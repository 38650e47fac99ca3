//! PMTiles v3 archives: the fixed 127-byte header and the JSON metadata.
//!
//! The header is read by hand, from the spec's fixed layout: the `pmtiles`
//! crate's parser refuses tile types and spec versions it does not know,
//! which a crawl must report and still register, and it keeps the metadata
//! offsets private.

use std::io::Read as _;

use serde_json::{Map, Value, json};

use super::{AssetInfo, RangeReader, ReadError};
use crate::geo::Footprint;

pub const MEDIA_TYPE: &str = "application/vnd.pmtiles";
const HEADER_LEN: u64 = 127;
/// Largest metadata document read.
const MAX_METADATA: u64 = 16 << 20;

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn coord_at(b: &[u8], at: usize) -> f64 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    f64::from(i32::from_le_bytes(a)) / 10_000_000.0
}

fn compression_name(c: u8) -> &'static str {
    match c {
        1 => "none",
        2 => "gzip",
        3 => "brotli",
        4 => "zstd",
        _ => "unknown",
    }
}

fn tile_type_name(t: u8) -> &'static str {
    match t {
        1 => "mvt",
        2 => "png",
        3 => "jpeg",
        4 => "webp",
        5 => "avif",
        6 => "mlt",
        _ => "unknown",
    }
}

/// Read a PMTiles header and metadata.
pub async fn read(r: &mut RangeReader) -> Result<AssetInfo, ReadError> {
    if r.size() < 7 {
        return Err(ReadError::invalid(
            "truncated: shorter than a PMTiles header",
        ));
    }
    let head = r.read(0..HEADER_LEN.min(r.size())).await?;
    if &head[..7] != b"PMTiles" {
        if head.starts_with(b"PM") {
            return Err(ReadError::invalid(
                "PMTiles v1/v2 archive: unsupported spec version (only v3 is read)",
            ));
        }
        return Err(ReadError::invalid("not a PMTiles archive: wrong magic"));
    }
    if (head.len() as u64) < HEADER_LEN {
        return Err(ReadError::invalid("truncated PMTiles header"));
    }
    let version = head[7];
    if version != 3 {
        // Another layout may sit behind the same magic: reading it as v3
        // would register made-up bounds and zooms.
        return Err(ReadError::invalid(format!(
            "PMTiles spec version {version} is not supported (only v3 is read)"
        )));
    }
    let mut info = AssetInfo {
        media_type: MEDIA_TYPE.into(),
        roles: vec!["data".into(), "tiles".into()],
        ..AssetInfo::default()
    };
    let (meta_offset, meta_len) = (u64_at(&head, 24), u64_at(&head, 32));
    let (internal, tile_comp, tile_type) = (head[97], head[98], head[99]);
    let (min_zoom, max_zoom) = (head[100], head[101]);
    let bounds = [
        coord_at(&head, 102),
        coord_at(&head, 106),
        coord_at(&head, 110),
        coord_at(&head, 114),
    ];
    if tile_type_name(tile_type) == "unknown" {
        info.warnings
            .push(format!("unknown PMTiles tile type {tile_type}"));
    }
    if min_zoom > max_zoom {
        return Err(ReadError::invalid(format!(
            "PMTiles min zoom {min_zoom} above max zoom {max_zoom}"
        )));
    }
    match Footprint::from_lonlat_bbox(bounds) {
        Ok(fp) => info.footprint = Some(fp),
        Err(e) => info.warnings.push(format!("no footprint: {e}")),
    }
    info.fields
        .insert("pmtiles:tile_type".into(), tile_type_name(tile_type).into());
    info.fields.insert(
        "pmtiles:tile_compression".into(),
        compression_name(tile_comp).into(),
    );
    info.fields
        .insert("pmtiles:min_zoom".into(), min_zoom.into());
    info.fields
        .insert("pmtiles:max_zoom".into(), max_zoom.into());
    info.fields.insert(
        "pmtiles:center".into(),
        json!([coord_at(&head, 119), coord_at(&head, 123), head[118]]),
    );
    if meta_len > 0 {
        if meta_len > MAX_METADATA || meta_offset.saturating_add(meta_len) > r.size() {
            return Err(ReadError::invalid(format!(
                "PMTiles metadata at {meta_offset}+{meta_len} lies outside the {}-byte file",
                r.size()
            )));
        }
        let raw = r.read(meta_offset..meta_offset + meta_len).await?;
        match decompress(&raw, internal).and_then(|b| {
            serde_json::from_slice::<Value>(&b).map_err(|e| format!("metadata is not JSON: {e}"))
        }) {
            Ok(meta) => apply_metadata(&mut info, &meta),
            Err(e) => info
                .warnings
                .push(format!("PMTiles metadata unreadable: {e}")),
        }
    }
    Ok(info)
}

fn decompress(raw: &[u8], compression: u8) -> Result<Vec<u8>, String> {
    let limit = MAX_METADATA * 4;
    let mut out = Vec::new();
    match compression {
        0 | 1 => return Ok(raw.to_vec()),
        2 => flate2::read::GzDecoder::new(raw)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip: {e}"))?,
        4 => zstd::stream::read::Decoder::new(raw)
            .map_err(|e| format!("zstd: {e}"))?
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| format!("zstd: {e}"))?,
        other => {
            return Err(format!(
                "{} internal compression is not read",
                compression_name(other)
            ));
        }
    };
    Ok(out)
}

/// A non-empty string of the metadata (empty strings make items invalid).
fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn apply_metadata(info: &mut AssetInfo, meta: &Value) {
    if let Some(name) = text(meta, "name") {
        info.title = Some(name.to_owned());
    }
    if let Some(layers) = meta.get("vector_layers").and_then(Value::as_array) {
        let layers: Vec<Value> = layers
            .iter()
            .filter_map(|l| {
                let mut out = Map::new();
                out.insert("id".into(), text(l, "id")?.into());
                for k in ["minzoom", "maxzoom", "fields"] {
                    if let Some(v) = l.get(k) {
                        out.insert(k.into(), v.clone());
                    }
                }
                if let Some(d) = text(l, "description") {
                    out.insert("description".into(), d.into());
                }
                Some(Value::Object(out))
            })
            .collect();
        info.fields
            .insert("pmtiles:vector_layers".into(), Value::Array(layers));
    }
    if let Some(a) = text(meta, "attribution") {
        info.fields.insert("pmtiles:attribution".into(), a.into());
    }
    if let Some(d) = text(meta, "description") {
        info.fields.insert("description".into(), d.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_metadata_strings_are_dropped() {
        let mut info = AssetInfo::default();
        let meta = serde_json::json!({
            "name": "", "description": "", "attribution": " ",
            "vector_layers": [{"id": "roads", "description": ""}, {"id": ""}]
        });
        apply_metadata(&mut info, &meta);
        assert_eq!(info.title, None);
        assert!(!info.fields.contains_key("description"));
        assert!(!info.fields.contains_key("pmtiles:attribution"));
        assert_eq!(
            info.fields["pmtiles:vector_layers"],
            serde_json::json!([{"id": "roads"}])
        );
    }
}
