//! GeoParquet footers: `geo` metadata, schema and row count, through `parquet`.

use parquet::basic::{LogicalType, Type as Physical};
use parquet::file::metadata::{FileMetaData, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;
use parquet::schema::types::Type;
use serde_json::{Map, Value, json};

use super::{AssetInfo, RangeReader, ReadError, ext};
use crate::geo::projjson_epsg;

pub const MEDIA_TYPE: &str = "application/vnd.apache.parquet";
/// Footer bytes fetched up front (one request covers most footers).
const TAIL: u64 = 64 * 1024;
/// Largest footer read.
const MAX_FOOTER: u64 = 64 << 20;
/// Largest geometry column (compressed, all row groups) read to compute a
/// bbox when the file has none in its metadata, covering column or statistics.
pub const MAX_GEOMETRY_SCAN: u64 = 4 << 20;

/// Read a GeoParquet footer.
pub async fn read(r: &mut RangeReader) -> Result<AssetInfo, ReadError> {
    let size = r.size();
    if size < 12 {
        return Err(ReadError::invalid("truncated: shorter than a Parquet file"));
    }
    let tail = r.read_tail(TAIL).await?;
    let n = tail.len();
    if &tail[n - 4..] != b"PAR1" {
        return Err(ReadError::invalid(
            "not a Parquet file: no PAR1 magic at the end",
        ));
    }
    let len = u64::from(u32::from_le_bytes([
        tail[n - 8],
        tail[n - 7],
        tail[n - 6],
        tail[n - 5],
    ]));
    if len + 8 > size - 4 || len > MAX_FOOTER {
        return Err(ReadError::invalid(format!(
            "bad Parquet footer length {len} in a {size}-byte file"
        )));
    }
    let footer = r.read(size - 8 - len..size - 8).await?;
    let meta = ParquetMetaDataReader::decode_metadata(&footer)
        .map_err(|e| ReadError::invalid(format!("unreadable Parquet footer: {e}")))?;
    let mut info = describe(&meta)?;
    if let Some(scan) = info.scan.take() {
        match geometry_bbox(r, &meta, &scan.column).await {
            Ok(Some(bbox)) => info
                .info
                .locate(scan.epsg, Some(bbox), "geometry CRS unknown"),
            Ok(None) => info
                .info
                .warnings
                .push("the geometry column holds no coordinates: no footprint".into()),
            Err(e) => info.info.warnings.push(format!("no footprint: {e}")),
        }
    }
    Ok(info.info)
}

/// A bbox still to compute from the geometry column.
struct Scan {
    column: String,
    epsg: Option<u32>,
}

/// What the footer says, and whether the geometry column must be scanned.
struct Described {
    info: AssetInfo,
    /// Set when no bbox was found and the geometries are WKB.
    scan: Option<Scan>,
}

/// The `geo` key of a GeoParquet footer: what every reader of the file needs.
pub(crate) struct GeoMetadata {
    /// The whole document.
    pub(crate) geo: Value,
    /// `version`, empty when absent.
    pub(crate) version: String,
    /// `primary_column`.
    pub(crate) primary: String,
    /// The primary column's metadata (`Null` when not described).
    pub(crate) column: Value,
    /// `WKB` (the default) or a native GeoArrow encoding name.
    pub(crate) encoding: String,
    /// EPSG code of the geometry CRS: 4326 when `crs` is absent (the
    /// spec's OGC:CRS84 default), `None` when it is null or not EPSG.
    pub(crate) epsg: Option<u32>,
}

impl GeoMetadata {
    /// Parse the `geo` key of a footer.
    pub(crate) fn from_footer(file: &FileMetaData) -> Result<Self, ReadError> {
        let geo = file
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == "geo"))
            .and_then(|k| k.value.as_deref())
            .ok_or_else(|| {
                ReadError::Unsupported("Parquet without GeoParquet `geo` metadata".into())
            })?;
        let geo: Value = serde_json::from_str(geo).map_err(|e| {
            ReadError::invalid(format!("GeoParquet `geo` metadata is not JSON: {e}"))
        })?;
        let version = geo
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let primary = geo
            .get("primary_column")
            .and_then(Value::as_str)
            .ok_or_else(|| ReadError::invalid("GeoParquet metadata without primary_column"))?
            .to_owned();
        let column = geo
            .pointer(&format!(
                "/columns/{}",
                primary.replace('~', "~0").replace('/', "~1")
            ))
            .cloned()
            .unwrap_or(Value::Null);
        let encoding = column
            .get("encoding")
            .and_then(Value::as_str)
            .unwrap_or("WKB")
            .to_owned();
        let epsg = match column.get("crs") {
            None => Some(4326),
            Some(Value::Null) => None,
            Some(crs) => projjson_epsg(crs),
        };
        Ok(Self {
            geo,
            version,
            primary,
            column,
            encoding,
            epsg,
        })
    }

    /// Whether `name` is one of the file's geometry columns.
    pub(crate) fn is_geometry(&self, name: &str) -> bool {
        self.geo
            .get("columns")
            .and_then(Value::as_object)
            .is_some_and(|c| c.contains_key(name))
    }

    /// The top-level column holding the primary column's bbox covering
    /// (GeoParquet 1.1), if it has one.
    pub(crate) fn covering_column(&self) -> Option<&str> {
        self.column.pointer("/covering/bbox/xmin/0")?.as_str()
    }
}

fn describe(meta: &ParquetMetaData) -> Result<Described, ReadError> {
    let file = meta.file_metadata();
    let GeoMetadata {
        geo,
        version,
        primary,
        column,
        encoding,
        epsg,
    } = GeoMetadata::from_footer(file)?;
    let mut info = AssetInfo {
        media_type: MEDIA_TYPE.into(),
        roles: vec!["data".into()],
        ..AssetInfo::default()
    };
    if !matches!(
        version.as_str(),
        "1.0.0" | "1.1.0" | "1.0.0-beta.1" | "1.1.0-dev"
    ) {
        info.warnings.push(format!(
            "GeoParquet version {version:?} is not one arcolake knows; read as 1.1"
        ));
    }
    let bbox = column
        .get("bbox")
        .and_then(Value::as_array)
        .and_then(|b| bbox_of(b))
        .or_else(|| covering_bbox(meta, &column))
        .or_else(|| native_bbox(meta, &primary));
    let scan = (bbox.is_none() && encoding.eq_ignore_ascii_case("WKB")).then(|| Scan {
        column: primary.clone(),
        epsg,
    });
    if bbox.is_none() && scan.is_none() {
        info.warnings
            .push("no bbox in metadata, covering column or statistics".into());
    }
    info.locate(epsg, bbox, "geometry CRS unknown");
    let root = meta.file_metadata().schema_descr().root_schema();
    let columns: Vec<Value> = root
        .get_fields()
        .iter()
        .map(|f| {
            let ty = if geo.pointer(&format!("/columns/{}", f.name())).is_some() {
                "geometry".to_owned()
            } else {
                type_name(f)
            };
            json!({"name": f.name(), "type": ty})
        })
        .collect();
    info.properties
        .insert("table:columns".into(), Value::Array(columns));
    info.properties
        .insert("table:row_count".into(), file.num_rows().into());
    info.properties
        .insert("table:primary_geometry".into(), primary.clone().into());
    info.extensions.insert(ext::TABLE.into());
    let mut gp = Map::new();
    gp.insert("version".into(), version.into());
    gp.insert("encoding".into(), encoding.into());
    if let Some(t) = column.get("geometry_types") {
        gp.insert("geometry_types".into(), t.clone());
    }
    gp.insert("row_groups".into(), meta.num_row_groups().into());
    info.fields
        .insert("arcolake:geoparquet".into(), Value::Object(gp));
    Ok(Described { info, scan })
}

/// A column chunk fetched from the file, seen at its offsets in the file.
struct Chunk {
    offset: u64,
    bytes: bytes::Bytes,
}

impl parquet::file::reader::Length for Chunk {
    fn len(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }
}

impl parquet::file::reader::ChunkReader for Chunk {
    type T = bytes::buf::Reader<bytes::Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf as _;
        self.get_bytes(start, 0).map(|_| {
            let from = self.local(start, 0).unwrap_or(0);
            self.bytes.slice(from..).reader()
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let from = self.local(start, length).ok_or_else(|| {
            parquet::errors::ParquetError::EOF(format!(
                "bytes {start}+{length} lie outside the fetched column chunk"
            ))
        })?;
        Ok(self.bytes.slice(from..from + length))
    }
}

impl Chunk {
    /// Where file offset `start` lies in the fetched bytes, if `length`
    /// bytes from there were fetched.
    fn local(&self, start: u64, length: usize) -> Option<usize> {
        let from = usize::try_from(start.checked_sub(self.offset)?).ok()?;
        (from.checked_add(length)? <= self.bytes.len()).then_some(from)
    }
}

/// The bbox of a WKB geometry column, computed from its values: read
/// through ranged reads of its column chunks when they total at most
/// [`MAX_GEOMETRY_SCAN`] bytes, else an error saying so.
async fn geometry_bbox(
    r: &mut RangeReader,
    meta: &ParquetMetaData,
    column: &str,
) -> Result<Option<[f64; 4]>, String> {
    use parquet::column::reader::{ColumnReader, get_column_reader};
    use parquet::file::serialized_reader::SerializedPageReader;
    let schema = meta.file_metadata().schema_descr();
    let index = (0..schema.num_columns())
        .find(|i| schema.column(*i).path().parts() == [column.to_owned()])
        .ok_or_else(|| format!("no leaf column `{column}` holds the geometries"))?;
    let (compressed, uncompressed) = meta.row_groups().iter().fold((0u64, 0u64), |(c, u), rg| {
        let col = rg.column(index);
        (
            c.saturating_add(u64::try_from(col.compressed_size()).unwrap_or(u64::MAX)),
            u.saturating_add(u64::try_from(col.uncompressed_size()).unwrap_or(u64::MAX)),
        )
    });
    if compressed > MAX_GEOMETRY_SCAN || uncompressed > 4 * MAX_GEOMETRY_SCAN {
        return Err(format!(
            "no bbox in the metadata, and the geometry column ({compressed} bytes) is over \
             the {MAX_GEOMETRY_SCAN}-byte limit for computing one"
        ));
    }
    let mut bbox = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    // One request for all the chunks when they lie close together (a
    // small file's row groups), else one per row group.
    let ranges: Vec<(u64, u64)> = meta
        .row_groups()
        .iter()
        .map(|rg| {
            let (start, len) = rg.column(index).byte_range();
            (start, start.saturating_add(len))
        })
        .collect();
    let span = ranges
        .iter()
        .map(|r| r.0)
        .min()
        .zip(ranges.iter().map(|r| r.1).max())
        .filter(|(lo, hi)| hi - lo <= MAX_GEOMETRY_SCAN);
    let whole = match span {
        Some((lo, hi)) if ranges.len() > 1 => Some(Chunk {
            offset: lo,
            bytes: r.read_once(lo..hi).await.map_err(|e| e.to_string())?,
        }),
        _ => None,
    };
    for (rg, (start, end)) in meta.row_groups().iter().zip(ranges) {
        let col = rg.column(index);
        let bytes = match &whole {
            Some(w) => {
                let from = w
                    .local(start, usize::try_from(end - start).unwrap_or(usize::MAX))
                    .ok_or("geometry column chunk outside the range read")?;
                w.bytes
                    .slice(from..from + usize::try_from(end - start).unwrap_or(0))
            }
            None => r.read_once(start..end).await.map_err(|e| e.to_string())?,
        };
        let chunk = std::sync::Arc::new(Chunk {
            offset: start,
            bytes,
        });
        let rows = usize::try_from(rg.num_rows()).unwrap_or(0);
        let pages = SerializedPageReader::new(chunk, col, rows, None)
            .map_err(|e| format!("geometry column: {e}"))?;
        let ColumnReader::ByteArrayColumnReader(mut values) =
            get_column_reader(schema.column(index), Box::new(pages))
        else {
            return Err("the geometry column is not binary (WKB)".into());
        };
        let mut defs = Vec::new();
        let mut buf = Vec::new();
        loop {
            defs.clear();
            buf.clear();
            let (records, _, _) = values
                .read_records(4096, Some(&mut defs), None, &mut buf)
                .map_err(|e| format!("geometry column: {e}"))?;
            if records == 0 {
                break;
            }
            for wkb in &buf {
                let mut at = 0;
                wkb_extend(wkb.data(), &mut at, &mut bbox, 0)?;
            }
        }
    }
    Ok((bbox[0] <= bbox[2] && bbox[1] <= bbox[3]).then_some(bbox))
}

/// Widen `bbox` by the coordinates of one WKB geometry (ISO WKB, with the
/// EWKB Z/M/SRID flags too) at `at`; an error when it is not WKB. Written
/// here because reading a bbox (or checking one geometry) is all that is
/// needed, and the WKB crates parse into full geometries.
pub(crate) fn wkb_extend(
    b: &[u8],
    at: &mut usize,
    bbox: &mut [f64; 4],
    depth: usize,
) -> Result<(), String> {
    const BAD: &str = "malformed WKB geometry";
    if depth > 16 {
        return Err(BAD.into());
    }
    let little = match b.get(*at) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(BAD.into()),
    };
    *at += 1;
    let u32_at = |at: &mut usize| -> Result<u32, String> {
        let s: [u8; 4] = b
            .get(*at..*at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or(BAD)?;
        *at += 4;
        Ok(if little {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    };
    let f64_at = |at: &mut usize| -> Result<f64, String> {
        let s: [u8; 8] = b
            .get(*at..*at + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or(BAD)?;
        *at += 8;
        Ok(if little {
            f64::from_le_bytes(s)
        } else {
            f64::from_be_bytes(s)
        })
    };
    let raw = u32_at(at)?;
    let (ez, em, srid) = (
        raw & 0x8000_0000 != 0,
        raw & 0x4000_0000 != 0,
        raw & 0x2000_0000 != 0,
    );
    let iso = raw & 0x0fff_ffff;
    let (kind, iso_dims) = (iso % 1000, iso / 1000);
    let extra = match iso_dims {
        0 => usize::from(ez) + usize::from(em),
        1 | 2 => 1,
        3 => 2,
        _ => return Err(BAD.into()),
    };
    if srid {
        u32_at(at)?;
    }
    let point = |at: &mut usize, bbox: &mut [f64; 4]| -> Result<(), String> {
        let (x, y) = (f64_at(at)?, f64_at(at)?);
        *at += 8 * extra;
        if x.is_finite() && y.is_finite() {
            *bbox = [
                bbox[0].min(x),
                bbox[1].min(y),
                bbox[2].max(x),
                bbox[3].max(y),
            ];
        }
        Ok(())
    };
    // A count can never exceed what the remaining bytes could hold.
    let count = |at: &mut usize| -> Result<usize, String> {
        let n = u32_at(at)? as usize;
        (n <= b.len().saturating_sub(*at))
            .then_some(n)
            .ok_or_else(|| BAD.to_owned())
    };
    match kind {
        1 => point(at, bbox),
        2 => (0..count(at)?).try_for_each(|_| point(at, bbox)),
        3 => (0..count(at)?).try_for_each(|_| (0..count(at)?).try_for_each(|_| point(at, bbox))),
        4..=7 => (0..count(at)?).try_for_each(|_| wkb_extend(b, at, bbox, depth + 1)),
        _ => Err(format!("WKB geometry type {kind} is not read")),
    }
}

fn bbox_of(b: &[Value]) -> Option<[f64; 4]> {
    let v: Vec<f64> = b.iter().filter_map(Value::as_f64).collect();
    match v.len() {
        4 => Some([v[0], v[1], v[2], v[3]]),
        6 => Some([v[0], v[1], v[3], v[4]]),
        _ => None,
    }
}

/// Min and max of a numeric column over all row groups, from statistics.
fn column_range(meta: &ParquetMetaData, path: &[&str]) -> Option<(f64, f64)> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    let mut found = false;
    for rg in meta.row_groups() {
        let col = rg.columns().iter().find(|c| {
            let parts = c.column_path().parts();
            parts.len() == path.len() && parts.iter().zip(path).all(|(a, b)| a == b)
        })?;
        let (mn, mx) = match col.statistics()? {
            Statistics::Double(s) => (*s.min_opt()?, *s.max_opt()?),
            Statistics::Float(s) => (f64::from(*s.min_opt()?), f64::from(*s.max_opt()?)),
            _ => return None,
        };
        lo = lo.min(mn);
        hi = hi.max(mx);
        found = true;
    }
    found.then_some((lo, hi))
}

/// GeoParquet 1.1 bbox covering column: `{"bbox": {"xmin": ["bbox", "xmin"], …}}`.
fn covering_bbox(meta: &ParquetMetaData, column: &Value) -> Option<[f64; 4]> {
    let cov = column.pointer("/covering/bbox")?;
    let path = |k: &str| -> Option<Vec<String>> {
        cov.get(k)?
            .as_array()?
            .iter()
            .map(|p| p.as_str().map(str::to_owned))
            .collect()
    };
    let get = |k: &str| -> Option<(f64, f64)> {
        let p = path(k)?;
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        column_range(meta, &p)
    };
    let (xmin, _) = get("xmin")?;
    let (ymin, _) = get("ymin")?;
    let (_, xmax) = get("xmax")?;
    let (_, ymax) = get("ymax")?;
    Some([xmin, ymin, xmax, ymax])
}

/// Native (GeoArrow) encodings: the statistics of the `x` and `y` leaves.
fn native_bbox(meta: &ParquetMetaData, primary: &str) -> Option<[f64; 4]> {
    let schema = meta.file_metadata().schema_descr();
    let leaf = |axis: &str| -> Option<Vec<String>> {
        (0..schema.num_columns()).find_map(|i| {
            let parts = schema.column(i).path().parts().to_vec();
            (parts.first().map(String::as_str) == Some(primary)
                && parts.last().map(String::as_str) == Some(axis))
            .then_some(parts)
        })
    };
    let x = leaf("x")?;
    let y = leaf("y")?;
    let (xmin, xmax) = column_range(meta, &x.iter().map(String::as_str).collect::<Vec<_>>())?;
    let (ymin, ymax) = column_range(meta, &y.iter().map(String::as_str).collect::<Vec<_>>())?;
    Some([xmin, ymin, xmax, ymax])
}

/// A Parquet field type as a table-extension type name.
fn type_name(t: &Type) -> String {
    if t.is_group() {
        return match t.get_basic_info().logical_type_ref() {
            Some(LogicalType::List) => "list".into(),
            Some(LogicalType::Map) => "map".into(),
            _ => "struct".into(),
        };
    }
    match (t.get_basic_info().logical_type_ref(), t.get_physical_type()) {
        (Some(LogicalType::String), _) => "string".into(),
        (Some(LogicalType::Timestamp { .. }), _) => "timestamp".into(),
        (Some(LogicalType::Date), _) => "date".into(),
        (Some(LogicalType::Decimal { .. }), _) => "decimal".into(),
        (Some(LogicalType::Integer(i)), _) => {
            format!("{}int{}", if i.is_signed { "" } else { "u" }, i.bit_width)
        }
        (_, Physical::BOOLEAN) => "boolean".into(),
        (_, Physical::INT32) => "int32".into(),
        (_, Physical::INT64) => "int64".into(),
        (_, Physical::FLOAT) => "float32".into(),
        (_, Physical::DOUBLE) => "float64".into(),
        (_, Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY) => "binary".into(),
        (_, Physical::INT96) => "timestamp".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbox(wkb: &[u8]) -> Result<[f64; 4], String> {
        let mut b = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        wkb_extend(wkb, &mut 0, &mut b, 0)?;
        Ok(b)
    }

    fn point_le(x: f64, y: f64) -> Vec<u8> {
        let mut v = vec![1, 1, 0, 0, 0];
        v.extend_from_slice(&x.to_le_bytes());
        v.extend_from_slice(&y.to_le_bytes());
        v
    }

    #[test]
    fn wkb_bboxes_of_points_polygons_and_collections() {
        assert_eq!(bbox(&point_le(3.0, 4.0)).unwrap(), [3.0, 4.0, 3.0, 4.0]);
        // Big-endian polygon, one ring of 4 points.
        let mut poly = vec![0, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 4];
        for (x, y) in [(0.0f64, 0.0f64), (2.0, 0.0), (2.0, 5.0), (0.0, 0.0)] {
            poly.extend_from_slice(&x.to_be_bytes());
            poly.extend_from_slice(&y.to_be_bytes());
        }
        assert_eq!(bbox(&poly).unwrap(), [0.0, 0.0, 2.0, 5.0]);
        // MultiPoint of two points, ISO Z (type 1004) with Z values skipped.
        let mut multi = vec![1, 0xec, 0x03, 0, 0, 2, 0, 0, 0];
        for (x, y) in [(-1.0f64, 7.0f64), (9.0, -2.0)] {
            multi.extend_from_slice(&[1, 0xe9, 0x03, 0, 0]);
            for v in [x, y, 100.0] {
                multi.extend_from_slice(&v.to_le_bytes());
            }
        }
        assert_eq!(bbox(&multi).unwrap(), [-1.0, -2.0, 9.0, 7.0]);
        // EWKB point with an SRID.
        let mut ewkb = vec![1, 1, 0, 0, 0x20, 0xe6, 0x10, 0, 0];
        ewkb.extend_from_slice(&5.0f64.to_le_bytes());
        ewkb.extend_from_slice(&6.0f64.to_le_bytes());
        assert_eq!(bbox(&ewkb).unwrap(), [5.0, 6.0, 5.0, 6.0]);
    }

    #[test]
    fn malformed_wkb_is_an_error_not_a_panic() {
        assert!(bbox(&[]).is_err());
        assert!(bbox(&[1, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(bbox(&point_le(1.0, 2.0)[..12]).is_err());
        assert!(bbox(&[1, 99, 0, 0, 0]).is_err());
    }
}
