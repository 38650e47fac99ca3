//! FlatGeobuf headers, through the `flatgeobuf` crate's generated reader.

use serde_json::{Value, json};

use super::{AssetInfo, RangeReader, ReadError, ext};

pub const MEDIA_TYPE: &str = "application/flatgeobuf";
/// Largest header read (the `flatgeobuf` crate's own limit).
const MAX_HEADER: u64 = 10 << 20;

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
    let mut info = AssetInfo {
        media_type: MEDIA_TYPE.into(),
        roles: vec!["data".into()],
        ..AssetInfo::default()
    };
    if head[3] != 3 {
        info.warnings
            .push(format!("FlatGeobuf version {}: read as v3", head[3]));
    }
    let epsg = header.crs().and_then(|c| {
        let code = c.code();
        let org = c.org().unwrap_or("EPSG");
        (code > 0 && org.eq_ignore_ascii_case("EPSG"))
            .then(|| u32::try_from(code).ok())
            .flatten()
    });
    let epsg = epsg.or_else(|| {
        header
            .crs()
            .and_then(|c| c.code_string())
            .and_then(crate::geo::crs_string_epsg)
    });
    let envelope = header
        .envelope()
        .filter(|e| e.len() >= 4)
        .map(|e| [e.get(0), e.get(1), e.get(2), e.get(3)]);
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
    info.properties
        .insert("table:row_count".into(), header.features_count().into());
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
