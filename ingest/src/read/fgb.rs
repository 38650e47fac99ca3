//! FlatGeobuf headers, through the `flatgeobuf` crate's generated reader.

use serde_json::{Value, json};

use super::{AssetInfo, RangeReader, ReadError, ext};

pub const MEDIA_TYPE: &str = "application/flatgeobuf";
/// Largest header read (the `flatgeobuf` crate's own limit).
const MAX_HEADER: u64 = 10 << 20;
/// Largest feature section read to count features or compute the extent
/// when the header has neither.
const MAX_FEATURE_SCAN: u64 = 4 << 20;

/// Read a FlatGeobuf header.
pub async fn read(r: &mut RangeReader) -> Result<AssetInfo, ReadError> {
    if r.size() < 12 {
        return Err(ReadError::invalid(
            "truncated: shorter than a FlatGeobuf header",
        ));
    }
    let head = r.read(0..12).await?;
    if &head[0..3] != b"fgb" || &head[4..7] != b"fgb" {
        return Err(ReadError::invalid("not a FlatGeobuf file: wrong magic"));
    }
    let len = u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]]));
    if len == 0 || len > MAX_HEADER || 12 + len > r.size() {
        return Err(ReadError::invalid(format!(
            "bad FlatGeobuf header length {len}"
        )));
    }
    // With its size prefix, so that offsets keep the alignment the writer gave them.
    let buf = r.read(8..12 + len).await?;
    let header = flatgeobuf::size_prefixed_root_as_header(&buf)
        .map_err(|e| ReadError::invalid(format!("unreadable FlatGeobuf header: {e}")))?;
    if head[3] != 3 {
        return Err(ReadError::invalid(format!(
            "FlatGeobuf major version {} is not supported (only 3 is read)",
            head[3]
        )));
    }
    let mut info = AssetInfo {
        media_type: MEDIA_TYPE.into(),
        roles: vec!["data".into()],
        ..AssetInfo::default()
    };
    let epsg = header_epsg(&header);
    let mut envelope = header
        .envelope()
        .filter(|e| e.len() >= 4)
        .map(|e| [e.get(0), e.get(1), e.get(2), e.get(3)])
        .filter(|e| e.iter().all(|v| v.is_finite()) && e[0] <= e[2] && e[1] <= e[3]);
    // A feature count of 0 means "unknown" (streamed writers), not "empty".
    let mut rows = Some(header.features_count()).filter(|n| *n > 0);
    if envelope.is_none() || rows.is_none() {
        let start = 12 + len;
        let index = header.index_node_size() > 0 && header.features_count() > 0;
        match (index, r.size() - start) {
            (true, _) => {}
            (false, n) if n <= MAX_FEATURE_SCAN => {
                let bytes = r.read_once(start..r.size()).await?;
                match scan_features(&bytes) {
                    Ok((count, bbox)) => {
                        rows = rows.or(Some(count));
                        envelope = envelope.or(bbox);
                    }
                    Err(e) => info.warnings.push(format!("features not read: {e}")),
                }
            }
            (false, n) => info.warnings.push(format!(
                "no feature count or envelope in the header, and the {n}-byte feature \
                 section is over the {MAX_FEATURE_SCAN}-byte limit for reading them"
            )),
        }
    }
    if envelope.is_none() {
        info.warnings
            .push("no envelope in the header (written without an index?)".into());
    }
    info.locate(epsg, envelope, "no CRS in the header");
    let mut columns = vec![json!({"name": "geometry", "type": "geometry"})];
    if let Some(cols) = header.columns() {
        for c in cols {
            let ty = format!("{:?}", c.type_()).to_ascii_lowercase();
            let mut col = json!({"name": c.name(), "type": ty});
            if let Some(d) = c.description() {
                col["description"] = d.into();
            }
            columns.push(col);
        }
    }
    info.properties
        .insert("table:columns".into(), Value::Array(columns));
    if let Some(n) = rows {
        info.properties.insert("table:row_count".into(), n.into());
    }
    info.properties
        .insert("table:primary_geometry".into(), "geometry".into());
    info.extensions.insert(ext::TABLE.into());
    info.fields.insert(
        "arcolake:flatgeobuf".into(),
        json!({
            "geometry_type": format!("{:?}", header.geometry_type()),
            "indexed": header.index_node_size() > 0,
        }),
    );
    if let Some(t) = header.title().or(header.name()).filter(|t| !t.is_empty()) {
        info.title = Some(t.to_owned());
    }
    Ok(info)
}

/// The EPSG code of a header's CRS: its numeric code, else its code string.
pub(crate) fn header_epsg(header: &flatgeobuf::Header<'_>) -> Option<u32> {
    let crs = header.crs()?;
    let org = crs.org().unwrap_or("EPSG");
    let code = (crs.code() > 0 && org.eq_ignore_ascii_case("EPSG"))
        .then(|| u32::try_from(crs.code()).ok())
        .flatten();
    code.or_else(|| crs.code_string().and_then(crate::geo::crs_string_epsg))
}

/// Count the size-prefixed features of a feature section and the extent of
/// their coordinates.
fn scan_features(mut bytes: &[u8]) -> Result<(u64, Option<[f64; 4]>), String> {
    let mut count = 0u64;
    let mut bbox = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    while bytes.len() >= 4 {
        let n = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if n == 0 || n > bytes.len() - 4 {
            return Err(format!("feature {count} runs past the end of the file"));
        }
        let feature = flatgeobuf::size_prefixed_root_as_feature(&bytes[..4 + n])
            .map_err(|e| format!("feature {count}: {e}"))?;
        if let Some(g) = feature.geometry() {
            extend(&g, &mut bbox, 0);
        }
        count += 1;
        bytes = &bytes[4 + n..];
    }
    let found = bbox[0] <= bbox[2] && bbox[1] <= bbox[3];
    Ok((count, found.then_some(bbox)))
}

/// Widen `bbox` by the coordinates of a geometry and its parts.
fn extend(g: &flatgeobuf::Geometry<'_>, bbox: &mut [f64; 4], depth: usize) {
    if let Some(xy) = g.xy() {
        let mut it = xy.iter();
        while let (Some(x), Some(y)) = (it.next(), it.next()) {
            if x.is_finite() && y.is_finite() {
                *bbox = [
                    bbox[0].min(x),
                    bbox[1].min(y),
                    bbox[2].max(x),
                    bbox[3].max(y),
                ];
            }
        }
    }
    if depth < 8
        && let Some(parts) = g.parts()
    {
        for p in parts {
            extend(&p, bbox, depth + 1);
        }
    }
}
