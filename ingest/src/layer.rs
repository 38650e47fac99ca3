//! Every feature of a vector file, for importing it into PostGIS as a tile
//! layer: GeoParquet (WKB encoding) and FlatGeobuf, read from bytes in memory.
//!
//! [`read_layer`] hands the features to its caller in batches, each as WKB
//! and JSON properties, and returns what the file says of itself
//! ([`LayerInfo`]). It reads synchronously: run it on a blocking thread.
//! The header readers in [`crate::read`] describe the same files for the
//! catalog without reading their features.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat};
use flatgeobuf::{ColumnType, GeometryType};
use parquet::basic::{ConvertedType, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::file::reader::{FileReader as _, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;
use serde_json::{Map, Value};

use crate::read::ReadError;
use crate::read::fgb::header_epsg;
use crate::read::geoparquet::{GeoMetadata, wkb_extend};

/// One feature: its geometry and its properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// The geometry as little- or big-endian ISO WKB: GeoParquet values as
    /// the file holds them (with Z or M if it has them), FlatGeobuf
    /// geometries as 2D little-endian WKB (Z and M are dropped).
    pub wkb: Vec<u8>,
    /// The non-null properties; the geometry and bbox covering columns are
    /// not among them.
    pub properties: Map<String, Value>,
}

/// What a file says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// EPSG code of the geometry CRS: `Some(4326)` for OGC:CRS84 and for a
    /// GeoParquet column without `crs` (the spec's default), `None` when the
    /// CRS is unknown or has no EPSG code.
    pub srid: Option<u32>,
    /// The geometry column (`geometry` for FlatGeobuf, which names none).
    pub geometry_column: String,
    /// The property columns, in file order, with the JSON type of their
    /// values: `Number`, `String`, `Boolean`, `Array` or `Object`.
    pub columns: Vec<(String, &'static str)>,
    /// The feature count the file declares (`None` for a streamed
    /// FlatGeobuf, whose header counts 0).
    pub features: Option<u64>,
    /// Features without a geometry: counted, not handed over.
    pub skipped: u64,
}

/// The vector formats [`read_layer`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerFormat {
    /// GeoParquet 1.0 or 1.1 with WKB geometries.
    GeoParquet,
    /// FlatGeobuf version 3.
    FlatGeobuf,
}

impl LayerFormat {
    /// The format of an asset by its media type, else (no media type, or
    /// a generic one) by its href's extension; `None` when it is neither
    /// format.
    pub fn from_media_type(media_type: &str, href: &str) -> Option<Self> {
        let media_type = media_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media_type.as_str() {
            "application/vnd.apache.parquet" | "application/x-parquet" => {
                return Some(Self::GeoParquet);
            }
            "application/vnd.flatgeobuf" | "application/flatgeobuf" => {
                return Some(Self::FlatGeobuf);
            }
            // An asset that says what else it is, is that.
            "" | "application/octet-stream" | "binary/octet-stream" => {}
            _ => return None,
        }
        let path = href.split(['?', '#']).next().unwrap_or_default();
        let name = path.rsplit('/').next().unwrap_or_default();
        match name.rsplit_once('.')?.1.to_ascii_lowercase().as_str() {
            "parquet" | "geoparquet" => Some(Self::GeoParquet),
            "fgb" => Some(Self::FlatGeobuf),
            _ => None,
        }
    }
}

/// Why the features of a file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The file is damaged, or is not what its media type says.
    #[error("{0}")]
    Invalid(String),
    /// A readable file holding what arcolake does not import (a GeoArrow
    /// encoding, curves, a newer format version).
    #[error("{0}")]
    Unsupported(String),
    /// One feature could not be read; `row` counts from 0 in file order.
    #[error("row {row}: {reason}")]
    Row { row: u64, reason: String },
    /// The caller's batch handler failed; reading stopped there.
    #[error("the features could not be stored")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<ReadError> for LayerError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Unsupported(m) => Self::Unsupported(m),
            e => Self::Invalid(e.to_string()),
        }
    }
}

/// Read every feature of a file, handing them to `each` in batches of
/// `batch` (at least 1; the last batch may be shorter, and `each` is not
/// called for an empty file). Stops at the first error, `each`'s included;
/// `each` reports its own failures as [`LayerError::Store`].
pub fn read_layer(
    format: LayerFormat,
    bytes: Bytes,
    each: impl FnMut(Vec<Feature>) -> Result<(), LayerError>,
    batch: usize,
) -> Result<LayerInfo, LayerError> {
    let mut out = Batches {
        each,
        size: batch.max(1),
        features: Vec::new(),
    };
    let info = match format {
        LayerFormat::GeoParquet => read_geoparquet(bytes, &mut out),
        LayerFormat::FlatGeobuf => read_flatgeobuf(&bytes, &mut out),
    }?;
    out.flush()?;
    Ok(info)
}

/// Features gathered into batches for the caller.
struct Batches<F> {
    each: F,
    size: usize,
    features: Vec<Feature>,
}

impl<F: FnMut(Vec<Feature>) -> Result<(), LayerError>> Batches<F> {
    fn push(&mut self, feature: Feature) -> Result<(), LayerError> {
        if self.features.capacity() == 0 {
            self.features.reserve(self.size.min(1024));
        }
        self.features.push(feature);
        if self.features.len() >= self.size {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LayerError> {
        if self.features.is_empty() {
            return Ok(());
        }
        (self.each)(std::mem::take(&mut self.features))
    }
}

fn read_geoparquet<F>(bytes: Bytes, out: &mut Batches<F>) -> Result<LayerInfo, LayerError>
where
    F: FnMut(Vec<Feature>) -> Result<(), LayerError>,
{
    let reader = SerializedFileReader::new(bytes)
        .map_err(|e| LayerError::Invalid(format!("unreadable Parquet file: {e}")))?;
    let file = reader.metadata().file_metadata();
    let geo = GeoMetadata::from_footer(file)?;
    if !geo.encoding.eq_ignore_ascii_case("WKB") {
        return Err(LayerError::Unsupported(format!(
            "GeoParquet geometry encoding '{}' (GeoArrow) is not supported; write WKB",
            geo.encoding
        )));
    }
    let fields = file.schema_descr().root_schema().get_fields();
    let geometry = fields
        .iter()
        .find(|f| f.name() == geo.primary)
        .ok_or_else(|| {
            LayerError::Invalid(format!(
                "the GeoParquet primary column `{}` is not in the schema",
                geo.primary
            ))
        })?;
    if geometry.is_group() || geometry.get_physical_type() != Physical::BYTE_ARRAY {
        return Err(LayerError::Invalid(format!(
            "the GeoParquet primary column `{}` is not binary, so not WKB",
            geo.primary
        )));
    }
    let covering = geo.covering_column();
    let skip = |name: &str| geo.is_geometry(name) || covering == Some(name);
    let columns = fields
        .iter()
        .filter(|f| !skip(f.name()))
        .map(|f| (f.name().to_owned(), json_type(f)))
        .collect();
    // Nanosecond timestamps come out of the row reader as plain integers.
    let nanos: Vec<&str> = fields
        .iter()
        .filter(|f| {
            matches!(
                f.get_basic_info().logical_type_ref(),
                Some(LogicalType::Timestamp(t)) if t.unit == TimeUnit::NANOS
            )
        })
        .map(|f| f.name())
        .collect();
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| LayerError::Invalid(format!("unreadable Parquet file: {e}")))?;
    let mut skipped = 0;
    for (row, record) in (0u64..).zip(rows) {
        let at_row = |reason: String| LayerError::Row { row, reason };
        let record = record.map_err(|e| at_row(e.to_string()))?;
        let mut wkb = None;
        let mut properties = Map::new();
        for (name, field) in record.into_columns() {
            if name == geo.primary {
                wkb = match field {
                    Field::Bytes(b) => Some(b.data().to_vec()),
                    Field::Null => None,
                    _ => return Err(at_row("the geometry is not WKB (not binary)".into())),
                };
            } else if !skip(&name) {
                let value = match field {
                    Field::Long(n) if nanos.contains(&name.as_str()) => timestamp_nanos(n),
                    field => json(field),
                };
                if !value.is_null() {
                    properties.insert(name, value);
                }
            }
        }
        let Some(wkb) = wkb else {
            skipped += 1;
            continue;
        };
        check_wkb(&wkb).map_err(|e| at_row(format!("the geometry is not WKB: {e}")))?;
        out.push(Feature { wkb, properties })?;
    }
    Ok(LayerInfo {
        srid: geo.epsg,
        geometry_column: geo.primary.clone(),
        columns,
        features: u64::try_from(file.num_rows()).ok(),
        skipped,
    })
}

/// Check that `wkb` holds one whole WKB geometry.
fn check_wkb(wkb: &[u8]) -> Result<(), String> {
    let mut at = 0;
    let mut bbox = [0.0; 4];
    wkb_extend(wkb, &mut at, &mut bbox, 0)?;
    if at == wkb.len() {
        Ok(())
    } else {
        Err(format!("{} bytes after the geometry", wkb.len() - at))
    }
}

/// The JSON type of the values [`json`] makes of a column.
fn json_type(t: &Type) -> &'static str {
    let info = t.get_basic_info();
    if info.has_repetition() && info.repetition() == Repetition::REPEATED {
        return "Array";
    }
    if t.is_group() {
        return match (info.converted_type(), info.logical_type_ref()) {
            (ConvertedType::LIST, _) | (_, Some(LogicalType::List)) => "Array",
            _ => "Object",
        };
    }
    if let Some(LogicalType::Timestamp(_)) = info.logical_type_ref() {
        return "String";
    }
    if let Some(LogicalType::Float16) = info.logical_type_ref() {
        return "Number";
    }
    match info.converted_type() {
        ConvertedType::UTF8
        | ConvertedType::ENUM
        | ConvertedType::JSON
        | ConvertedType::DATE
        | ConvertedType::TIME_MILLIS
        | ConvertedType::TIME_MICROS
        | ConvertedType::TIMESTAMP_MILLIS
        | ConvertedType::TIMESTAMP_MICROS => "String",
        _ => match t.get_physical_type() {
            Physical::BOOLEAN => "Boolean",
            Physical::INT32 | Physical::INT64 | Physical::FLOAT | Physical::DOUBLE => "Number",
            Physical::INT96 | Physical::BYTE_ARRAY | Physical::FIXED_LEN_BYTE_ARRAY => {
                if info.converted_type() == ConvertedType::DECIMAL {
                    "Number"
                } else {
                    "String"
                }
            }
        },
    }
}

/// A Parquet value as JSON: numbers (decimals as the nearest `f64`;
/// non-finite floats as null), strings, booleans, dates, times and
/// timestamps as RFC 3339 strings, binary as lower-case hex, groups and
/// maps as objects, lists as arrays.
fn json(field: Field) -> Value {
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => b.into(),
        Field::Byte(n) => n.into(),
        Field::Short(n) => n.into(),
        Field::Int(n) => n.into(),
        Field::Long(n) => n.into(),
        Field::UByte(n) => n.into(),
        Field::UShort(n) => n.into(),
        Field::UInt(n) => n.into(),
        Field::ULong(n) => n.into(),
        Field::Float16(v) => float32(v.to_f32()),
        Field::Float(v) => float32(v),
        Field::Double(v) => float(v),
        field @ Field::Decimal(_) => {
            let text = field.to_string();
            text.parse().map_or(Value::String(text), float)
        }
        Field::Str(s) => s.into(),
        Field::Bytes(b) => hex(b.data()).into(),
        Field::Date(days) => NaiveDate::from_num_days_from_ce_opt(days.saturating_add(719_163))
            .map_or(Value::Null, |d| d.format("%Y-%m-%d").to_string().into()),
        Field::TimeMillis(ms) => time(i64::from(ms) * 1_000_000),
        Field::TimeMicros(us) => time(us.saturating_mul(1000)),
        Field::TimestampMillis(ms) => DateTime::from_timestamp_millis(ms)
            .map_or(Value::Null, |t| {
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true).into()
            }),
        Field::TimestampMicros(us) => DateTime::from_timestamp_micros(us)
            .map_or(Value::Null, |t| {
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true).into()
            }),
        Field::Group(row) => Value::Object(
            row.into_columns()
                .into_iter()
                .map(|(k, v)| (k, json(v)))
                .collect(),
        ),
        Field::ListInternal(list) => {
            Value::Array(list.elements().iter().cloned().map(json).collect())
        }
        Field::MapInternal(map) => Value::Object(
            map.entries()
                .iter()
                .cloned()
                .map(|(k, v)| {
                    let key = match k {
                        Field::Str(s) => s,
                        k => json(k).to_string(),
                    };
                    (key, json(v))
                })
                .collect(),
        ),
    }
}

fn timestamp_nanos(ns: i64) -> Value {
    DateTime::from_timestamp_nanos(ns)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
        .into()
}

fn time(ns: i64) -> Value {
    let (secs, nano) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    u32::try_from(secs)
        .ok()
        .zip(u32::try_from(nano).ok())
        .and_then(|(s, n)| NaiveTime::from_num_seconds_from_midnight_opt(s, n))
        .map_or(Value::Null, |t| t.format("%H:%M:%S%.f").to_string().into())
}

fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// An `f32` as the `f64` with its shortest decimal form (0.1, not 0.100000001).
fn float32(v: f32) -> Value {
    float(v.to_string().parse().unwrap_or(f64::NAN))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Size of one packed R-tree node in a FlatGeobuf index.
const FGB_NODE: usize = 40;

fn read_flatgeobuf<F>(bytes: &[u8], out: &mut Batches<F>) -> Result<LayerInfo, LayerError>
where
    F: FnMut(Vec<Feature>) -> Result<(), LayerError>,
{
    if bytes.len() < 12 || &bytes[0..3] != b"fgb" || &bytes[4..7] != b"fgb" {
        return Err(LayerError::Invalid(
            "not a FlatGeobuf file: wrong magic".into(),
        ));
    }
    if bytes[3] != 3 {
        return Err(LayerError::Unsupported(format!(
            "FlatGeobuf major version {} is not supported (only 3 is read)",
            bytes[3]
        )));
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let mut at = 12usize.saturating_add(len);
    if len < 8 || at > bytes.len() {
        return Err(LayerError::Invalid(format!(
            "bad FlatGeobuf header length {len}"
        )));
    }
    // With its size prefix, so that offsets keep the alignment the writer gave them.
    let header = flatgeobuf::size_prefixed_root_as_header(&bytes[8..at])
        .map_err(|e| LayerError::Invalid(format!("unreadable FlatGeobuf header: {e}")))?;
    let count = header.features_count();
    let node_size = header.index_node_size();
    if node_size > 0 && count > 0 {
        // Every feature has a leaf node, which bounds the count by the file size.
        let n = usize::try_from(count)
            .ok()
            .filter(|n| node_size >= 2 && n.saturating_mul(FGB_NODE) <= bytes.len() - at)
            .ok_or_else(|| {
                LayerError::Invalid(format!(
                    "the FlatGeobuf index (node size {node_size}, {count} features) does \
                     not fit in the file"
                ))
            })?;
        at = at.saturating_add(flatgeobuf::packed_r_tree::PackedRTree::index_size(
            n, node_size,
        ));
        if at > bytes.len() {
            return Err(LayerError::Invalid(
                "the FlatGeobuf index runs past the end of the file".into(),
            ));
        }
    }
    let columns: Vec<(String, ColumnType)> = header
        .columns()
        .map(|cs| {
            cs.iter()
                .map(|c| (c.name().to_owned(), c.type_()))
                .collect()
        })
        .unwrap_or_default();
    let geometry_type = header.geometry_type();
    let mut row = 0u64;
    let mut skipped = 0;
    while at < bytes.len() && (count == 0 || row < count) {
        let index = row;
        row += 1;
        let at_row = |reason: String| LayerError::Row { row: index, reason };
        let size = bytes
            .get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize);
        let end = size
            .and_then(|n| at.checked_add(4 + n))
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| at_row("the feature runs past the end of the file".into()))?;
        let feature = flatgeobuf::size_prefixed_root_as_feature(&bytes[at..end])
            .map_err(|e| at_row(format!("unreadable feature: {e}")))?;
        at = end;
        // A feature may carry its own columns instead of the header's.
        let own: Option<Vec<(String, ColumnType)>> =
            feature.columns().filter(|cs| !cs.is_empty()).map(|cs| {
                cs.iter()
                    .map(|c| (c.name().to_owned(), c.type_()))
                    .collect()
            });
        let properties = match feature.properties() {
            Some(p) => {
                fgb_properties(p.bytes(), own.as_deref().unwrap_or(&columns)).map_err(at_row)?
            }
            None => Map::new(),
        };
        let Some(geometry) = feature.geometry() else {
            skipped += 1;
            continue;
        };
        let mut wkb = Vec::new();
        fgb_wkb(&geometry, geometry_type, &mut wkb, 0).map_err(at_row)?;
        out.push(Feature { wkb, properties })?;
    }
    if count > 0 && row < count {
        return Err(LayerError::Invalid(format!(
            "truncated: the FlatGeobuf header counts {count} features, the file holds {row}"
        )));
    }
    Ok(LayerInfo {
        srid: header_epsg(&header),
        geometry_column: "geometry".into(),
        columns: columns
            .iter()
            .map(|(name, ty)| (name.clone(), fgb_json_type(*ty)))
            .collect(),
        features: Some(count).filter(|n| *n > 0),
        skipped,
    })
}

/// The JSON type of the values [`fgb_properties`] makes of a column.
fn fgb_json_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Bool => "Boolean",
        ColumnType::String | ColumnType::DateTime | ColumnType::Binary => "String",
        ColumnType::Json => "Object",
        _ => "Number",
    }
}

/// Decode a FlatGeobuf property buffer: pairs of a little-endian `u16`
/// column index and a value, with every length checked (the `flatgeobuf`
/// crate's own decoder slices unchecked, so a damaged file would panic).
fn fgb_properties(
    mut bytes: &[u8],
    columns: &[(String, ColumnType)],
) -> Result<Map<String, Value>, String> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize, name: &str) -> Result<&'a [u8], String> {
        if bytes.len() < n {
            return Err(format!(
                "property `{name}` runs past the end of the feature"
            ));
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    fn array<const N: usize>(bytes: &mut &[u8], name: &str) -> Result<[u8; N], String> {
        take(bytes, N, name).map(|s| {
            let mut a = [0; N];
            a.copy_from_slice(s);
            a
        })
    }
    let mut properties = Map::new();
    // Some writers leave a trailing byte after the last value.
    while bytes.len() >= 2 {
        let index = usize::from(u16::from_le_bytes(array(&mut bytes, "")?));
        let (name, ty) = columns
            .get(index)
            .ok_or_else(|| format!("property of column {index}, which the file does not have"))?;
        let value: Value = match *ty {
            ColumnType::Byte => i8::from_le_bytes(array(&mut bytes, name)?).into(),
            ColumnType::UByte => u8::from_le_bytes(array(&mut bytes, name)?).into(),
            ColumnType::Bool => (array::<1>(&mut bytes, name)?[0] != 0).into(),
            ColumnType::Short => i16::from_le_bytes(array(&mut bytes, name)?).into(),
            ColumnType::UShort => u16::from_le_bytes(array(&mut bytes, name)?).into(),
            ColumnType::Int => i32::from_le_bytes(array(&mut bytes, name)?).into(),
            ColumnType::UInt => u32::from_le_bytes(array(&mut bytes, name)?).into(),
            ColumnType::Long => i64::from_le_bytes(array(&mut bytes, name)?).into(),
            ColumnType::ULong => u64::from_le_bytes(array(&mut bytes, name)?).into(),
            ColumnType::Float => float32(f32::from_le_bytes(array(&mut bytes, name)?)),
            ColumnType::Double => float(f64::from_le_bytes(array(&mut bytes, name)?)),
            ColumnType::String | ColumnType::DateTime | ColumnType::Json | ColumnType::Binary => {
                let n = u32::from_le_bytes(array(&mut bytes, name)?) as usize;
                let raw = take(&mut bytes, n, name)?;
                if *ty == ColumnType::Binary {
                    hex(raw).into()
                } else {
                    let text = std::str::from_utf8(raw)
                        .map_err(|_| format!("property `{name}` is not UTF-8"))?;
                    match *ty {
                        ColumnType::Json => serde_json::from_str(text)
                            .unwrap_or_else(|_| Value::String(text.to_owned())),
                        _ => text.into(),
                    }
                }
            }
            other => return Err(format!("property `{name}` has an unknown type {other:?}")),
        };
        if !value.is_null() {
            properties.insert(name.clone(), value);
        }
    }
    Ok(properties)
}

/// Deepest nesting of FlatGeobuf geometry parts followed.
const MAX_DEPTH: usize = 16;

/// Append a FlatGeobuf geometry to `out` as 2D little-endian ISO WKB.
/// `ty` is the header's geometry type; `Unknown` means each geometry says.
fn fgb_wkb(
    g: &flatgeobuf::Geometry<'_>,
    ty: GeometryType,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("geometry nested too deeply".into());
    }
    let ty = if ty == GeometryType::Unknown {
        g.type_()
    } else {
        ty
    };
    let xy: Vec<f64> = g.xy().map(|v| v.iter().collect()).unwrap_or_default();
    if !xy.len().is_multiple_of(2) {
        return Err("odd number of coordinates".into());
    }
    let ends: Vec<u32> = g.ends().map(|v| v.iter().collect()).unwrap_or_default();
    let head = |out: &mut Vec<u8>, kind: u32| {
        out.push(1);
        out.extend_from_slice(&kind.to_le_bytes());
    };
    match ty {
        GeometryType::Point => {
            head(out, 1);
            let p = if xy.is_empty() {
                &[f64::NAN; 2][..]
            } else {
                &xy[..2]
            };
            coords(out, p);
        }
        GeometryType::LineString => {
            head(out, 2);
            count(out, xy.len() / 2)?;
            coords(out, &xy);
        }
        GeometryType::Polygon => polygon(out, &xy, &ends)?,
        GeometryType::MultiPoint => {
            head(out, 4);
            count(out, xy.len() / 2)?;
            for p in xy.chunks_exact(2) {
                head(out, 1);
                coords(out, p);
            }
        }
        GeometryType::MultiLineString => {
            let lines = split(&xy, &ends)?;
            head(out, 5);
            count(out, lines.len())?;
            for line in lines {
                head(out, 2);
                count(out, line.len() / 2)?;
                coords(out, line);
            }
        }
        GeometryType::MultiPolygon => {
            head(out, 6);
            match g.parts() {
                Some(parts) => {
                    count(out, parts.len())?;
                    for part in parts {
                        fgb_wkb(&part, GeometryType::Polygon, out, depth + 1)?;
                    }
                }
                None if xy.is_empty() => count(out, 0)?,
                None => {
                    count(out, 1)?;
                    polygon(out, &xy, &ends)?;
                }
            }
        }
        GeometryType::GeometryCollection => {
            head(out, 7);
            let parts = g.parts();
            count(out, parts.map_or(0, |p| p.len()))?;
            for part in parts.into_iter().flatten() {
                fgb_wkb(&part, GeometryType::Unknown, out, depth + 1)?;
            }
        }
        other => return Err(format!("geometry type {other:?} is not supported")),
    }
    Ok(())
}

/// A polygon from its coordinates and ring ends.
fn polygon(out: &mut Vec<u8>, xy: &[f64], ends: &[u32]) -> Result<(), String> {
    let rings = split(xy, ends)?;
    out.push(1);
    out.extend_from_slice(&3u32.to_le_bytes());
    count(out, rings.len())?;
    for ring in rings {
        count(out, ring.len() / 2)?;
        coords(out, ring);
    }
    Ok(())
}

/// Coordinates cut into parts at `ends` (point indices, exclusive); one
/// part without ends, none without coordinates.
fn split<'a>(xy: &'a [f64], ends: &[u32]) -> Result<Vec<&'a [f64]>, String> {
    if ends.len() <= 1 {
        return Ok(if xy.is_empty() { vec![] } else { vec![xy] });
    }
    let mut parts = Vec::with_capacity(ends.len());
    let mut start = 0;
    for end in ends {
        let end = (*end as usize).saturating_mul(2);
        if end < start || end > xy.len() {
            return Err("part ends outside the coordinates".into());
        }
        parts.push(&xy[start..end]);
        start = end;
    }
    Ok(parts)
}

fn count(out: &mut Vec<u8>, n: usize) -> Result<(), String> {
    let n = u32::try_from(n).map_err(|_| "too many parts or points for WKB")?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn coords(out: &mut Vec<u8>, xy: &[f64]) {
    for v in xy {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Bytes {
        let path = format!("{}/../fixtures/ingest/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .into()
    }

    fn manifest(name: &str) -> Value {
        let m: Value = serde_json::from_slice(&fixture("manifest.json")).unwrap();
        m[name].clone()
    }

    /// Read a whole fixture in batches of `batch`, keeping the batch sizes.
    fn read(
        format: LayerFormat,
        name: &str,
        batch: usize,
    ) -> Result<(LayerInfo, Vec<Feature>, Vec<usize>), LayerError> {
        let mut features = Vec::new();
        let mut sizes = Vec::new();
        let info = read_layer(
            format,
            fixture(name),
            |b| {
                sizes.push(b.len());
                features.extend(b);
                Ok(())
            },
            batch,
        )?;
        Ok((info, features, sizes))
    }

    /// The byte order and ISO type code of a WKB geometry, and its
    /// coordinates (parsed by the bbox reader, which checks the structure).
    fn wkb_head(wkb: &[u8]) -> (u8, u32, [f64; 4]) {
        let mut bbox = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut at = 0;
        wkb_extend(wkb, &mut at, &mut bbox, 0).unwrap();
        assert_eq!(at, wkb.len(), "trailing bytes after the geometry");
        let code: [u8; 4] = wkb[1..5].try_into().unwrap();
        let code = if wkb[0] == 1 {
            u32::from_le_bytes(code)
        } else {
            u32::from_be_bytes(code)
        };
        (wkb[0], code, bbox)
    }

    fn within(b: [f64; 4], outer: &Value) -> bool {
        let o: Vec<f64> = outer
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let lon = |x: f64| if o[0] > o[2] && x < 0.0 { x + 360.0 } else { x };
        let east = if o[0] > o[2] { o[2] + 360.0 } else { o[2] };
        lon(b[0]) >= o[0] - 1e-9
            && lon(b[2]) <= east + 1e-9
            && b[1] >= o[1] - 1e-9
            && b[3] <= o[3] + 1e-9
    }

    #[test]
    fn geoparquet_points_are_read_with_their_srid_and_properties() {
        for name in [
            "points_plain.parquet",
            "points_crs84.parquet",
            "points_utm.parquet",
            "points_covering.parquet",
            "pacific_nobbox.parquet",
        ] {
            let m = manifest(name);
            let (info, features, sizes) = read(LayerFormat::GeoParquet, name, 7).unwrap();
            let rows = m["rows"].as_u64().unwrap();
            assert_eq!(features.len() as u64, rows, "{name}");
            assert_eq!(info.features, Some(rows), "{name}");
            assert_eq!(info.skipped, 0, "{name}");
            let epsg = m["epsg"].as_u64().and_then(|e| u32::try_from(e).ok());
            assert_eq!(info.srid, epsg, "{name}");
            assert_eq!(info.geometry_column, "geometry", "{name}");
            // Batches of 7, the last one shorter.
            assert!(sizes.iter().all(|s| *s <= 7) && sizes.len() as u64 == rows.div_ceil(7));
            for f in &features {
                let (order, code, bbox) = wkb_head(&f.wkb);
                assert!(order <= 1, "{name}");
                assert_eq!(code, 1, "{name}: a WKB point");
                if info.srid == Some(4326) {
                    assert!(within(bbox, &m["bbox_lonlat"]), "{name}: {bbox:?}");
                }
                assert!(!f.properties.contains_key("geometry"), "{name}");
                assert!(!f.properties.contains_key("bbox"), "{name}");
            }
        }
    }

    #[test]
    fn geoparquet_properties_become_json_by_column_type() {
        let (info, features, _) =
            read(LayerFormat::GeoParquet, "points_covering.parquet", 100).unwrap();
        let names: Vec<&str> = info.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            !names.contains(&"bbox"),
            "the covering column is no property"
        );
        assert!(!names.contains(&"geometry"));
        assert!(info.columns.contains(&("name".into(), "String")));
        assert!(info.columns.contains(&("value".into(), "Number")));
        let first = &features[0].properties;
        assert_eq!(first.len(), 2, "{first:?}");
        assert_eq!(first["name"], "p0");
        assert_eq!(first["value"], 0);
        assert_eq!(features[29].properties["value"], 29);
        assert_eq!(wkb_head(&features[0].wkb).2, [8.0, 47.0, 8.0, 47.0]);
        // Every row has its own values.
        let values: std::collections::BTreeSet<String> = features
            .iter()
            .map(|f| f.properties["name"].to_string())
            .collect();
        assert_eq!(values.len(), features.len());
    }

    #[test]
    fn utm_points_keep_projected_coordinates() {
        let (info, features, _) = read(LayerFormat::GeoParquet, "points_utm.parquet", 64).unwrap();
        assert_eq!(info.srid, Some(32632));
        let (_, _, bbox) = wkb_head(&features[0].wkb);
        // Metres in UTM zone 32N, not degrees.
        assert!(bbox[0] > 100_000.0 && bbox[1] > 5_000_000.0, "{bbox:?}");
    }

    #[test]
    fn geoarrow_encodings_are_refused_by_name() {
        let err = read(LayerFormat::GeoParquet, "points_native.parquet", 10).unwrap_err();
        assert!(matches!(err, LayerError::Unsupported(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "GeoParquet geometry encoding 'point' (GeoArrow) is not supported; write WKB"
        );
    }

    #[test]
    fn flatgeobuf_boxes_are_read_as_polygons_with_properties() {
        for name in ["boxes.fgb", "boxes_streamed.fgb"] {
            let m = manifest(name);
            let (info, features, sizes) = read(LayerFormat::FlatGeobuf, name, 2).unwrap();
            let rows = m["rows"].as_u64().unwrap();
            assert_eq!(features.len() as u64, rows, "{name}");
            let batches: Vec<usize> = (0..features.len())
                .step_by(2)
                .map(|i| (features.len() - i).min(2))
                .collect();
            assert_eq!(sizes, batches, "{name}");
            assert_eq!(
                info.srid,
                m["epsg"].as_u64().and_then(|e| u32::try_from(e).ok())
            );
            for f in &features {
                let (order, code, bbox) = wkb_head(&f.wkb);
                assert_eq!(order, 1, "{name}: little-endian");
                assert!(matches!(code, 3 | 6), "{name}: (multi)polygon, got {code}");
                assert!(within(bbox, &m["bbox"]), "{name}: {bbox:?}");
            }
        }
        let (info, _, _) = read(LayerFormat::FlatGeobuf, "boxes_streamed.fgb", 10).unwrap();
        assert_eq!(info.features, None, "a streamed file counts 0: unknown");
        let (info, features, _) = read(LayerFormat::FlatGeobuf, "boxes.fgb", 10).unwrap();
        assert_eq!(info.features, Some(3));
        assert_eq!(
            info.columns,
            [("kind".to_owned(), "String"), ("area".to_owned(), "Number")]
        );
        assert_eq!(features[0].properties["kind"], "c");
        assert_eq!(features[0].properties["area"], 3.0);
        assert_eq!(features[1].properties["kind"], "b");
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        let err = read(LayerFormat::GeoParquet, "corrupt/bad_footer.parquet", 10).unwrap_err();
        assert!(matches!(err, LayerError::Invalid(_)), "{err:?}");
        let err = read(LayerFormat::FlatGeobuf, "corrupt/major_v4.fgb", 10).unwrap_err();
        assert!(err.to_string().contains("major version 4"), "{err}");
        // The wrong reader for a file.
        assert!(read(LayerFormat::FlatGeobuf, "points_plain.parquet", 10).is_err());
        assert!(read(LayerFormat::GeoParquet, "boxes.fgb", 10).is_err());
        // Cut short anywhere: an error, never a panic. A streamed file
        // (no count in its header) cut between features just holds fewer.
        for name in ["boxes.fgb", "boxes_streamed.fgb"] {
            let whole = fixture(name);
            let rows = manifest(name)["rows"].as_u64().unwrap();
            for n in (0..whole.len()).step_by(7) {
                let mut read = 0;
                let cut = whole.slice(..n);
                let done = read_layer(
                    LayerFormat::FlatGeobuf,
                    cut,
                    |b| {
                        read += b.len() as u64;
                        Ok(())
                    },
                    10,
                );
                match done {
                    Ok(info) => assert!(info.features.is_none() && read < rows, "{name} at {n}"),
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
        }
        let whole = fixture("points_plain.parquet");
        for n in (0..whole.len()).step_by(97) {
            let cut = whole.slice(..n);
            assert!(read_layer(LayerFormat::GeoParquet, cut, |_| Ok(()), 10).is_err());
        }
    }

    #[test]
    fn a_damaged_property_length_is_a_row_error() {
        let mut bytes = fixture("boxes.fgb").to_vec();
        // The first string property (`kind`, column 0): its u32 length
        // follows the column index; make it run past the feature.
        let (info, features, _) = read(LayerFormat::FlatGeobuf, "boxes.fgb", 10).unwrap();
        assert_eq!(info.columns[0].0, "kind");
        let kind = features[0].properties["kind"].as_str().unwrap().as_bytes();
        let mut prefix = vec![0, 0];
        prefix.extend_from_slice(&u32::try_from(kind.len()).unwrap().to_le_bytes());
        prefix.extend_from_slice(kind);
        let at = bytes
            .windows(prefix.len())
            .position(|w| w == prefix)
            .expect("the first feature's kind property");
        bytes[at + 2..at + 6].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = read_layer(LayerFormat::FlatGeobuf, bytes.into(), |_| Ok(()), 10).unwrap_err();
        assert!(
            matches!(&err, LayerError::Row { row: 0, reason } if reason.contains("`kind`")),
            "{err:?}"
        );
    }

    #[test]
    fn the_handlers_error_stops_the_read() {
        let mut calls = 0;
        let err = read_layer(
            LayerFormat::GeoParquet,
            fixture("points_plain.parquet"),
            |_| {
                calls += 1;
                Err(LayerError::Store("database gone".into()))
            },
            5,
        )
        .unwrap_err();
        assert!(matches!(err, LayerError::Store(_)));
        assert_eq!(calls, 1);
    }

    #[test]
    fn flatgeobuf_geometries_become_wkb() {
        // A polygon with a hole, written as FlatGeobuf coordinates and ends.
        let xy = [
            0.0, 0.0, 4.0, 0.0, 4.0, 4.0, 0.0, 0.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0,
        ];
        let mut out = Vec::new();
        polygon(&mut out, &xy, &[4, 7]).unwrap();
        let (order, code, bbox) = wkb_head(&out);
        assert_eq!((order, code, bbox), (1, 3, [0.0, 0.0, 4.0, 4.0]));
        assert_eq!(
            u32::from_le_bytes(out[5..9].try_into().unwrap()),
            2,
            "two rings"
        );
        assert!(
            polygon(&mut Vec::new(), &xy, &[4, 9]).is_err(),
            "ends past the coordinates"
        );
        assert!(
            polygon(&mut Vec::new(), &xy, &[5, 4]).is_err(),
            "ends going back"
        );
    }

    #[test]
    fn parquet_values_become_json() {
        assert_eq!(json(Field::Date(19_723)), "2024-01-01");
        assert_eq!(
            json(Field::TimestampMillis(1_704_067_200_123)),
            "2024-01-01T00:00:00.123Z"
        );
        assert_eq!(
            json(Field::TimestampMicros(1_704_067_200_000_000)),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(
            timestamp_nanos(1_704_067_200_000_000_001),
            "2024-01-01T00:00:00.000000001Z"
        );
        assert_eq!(json(Field::TimeMillis(3_723_500)), "01:02:03.500");
        assert_eq!(json(Field::Float(0.1)), serde_json::json!(0.1));
        assert_eq!(json(Field::Double(f64::NAN)), Value::Null);
        assert_eq!(json(Field::Bytes(vec![0, 0xab].into())), "00ab");
        assert_eq!(json(Field::ULong(u64::MAX)), serde_json::json!(u64::MAX));
    }

    #[test]
    fn formats_by_media_type_then_extension() {
        use LayerFormat::{FlatGeobuf, GeoParquet};
        let f = LayerFormat::from_media_type;
        assert_eq!(f("application/vnd.apache.parquet", "x"), Some(GeoParquet));
        assert_eq!(
            f("application/x-parquet; charset=binary", "x"),
            Some(GeoParquet)
        );
        assert_eq!(
            f("application/vnd.flatgeobuf", "x.parquet"),
            Some(FlatGeobuf)
        );
        assert_eq!(f("application/flatgeobuf", "x"), Some(FlatGeobuf));
        assert_eq!(f("image/tiff; application=geotiff", "a.fgb"), None);
        assert_eq!(f("", "s3://b/roads.GeoParquet?v=1"), Some(GeoParquet));
        assert_eq!(
            f("application/octet-stream", "/a/b.fgb#x"),
            Some(FlatGeobuf)
        );
        assert_eq!(f("image/tiff", "a.tif"), None);
        assert_eq!(f("", "fgb"), None);
    }
}
