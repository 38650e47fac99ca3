//! GeoParquet footers: `geo` metadata, schema and row count, through `parquet`.

use parquet::basic::{LogicalType, Type as Physical};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
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
    describe(&meta)
}

fn describe(meta: &ParquetMetaData) -> Result<AssetInfo, ReadError> {
    let file = meta.file_metadata();
    let geo = file
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == "geo"))
        .and_then(|k| k.value.as_deref())
        .ok_or_else(|| {
            ReadError::Unsupported("Parquet without GeoParquet `geo` metadata".into())
        })?;
    let geo: Value = serde_json::from_str(geo)
        .map_err(|e| ReadError::invalid(format!("GeoParquet `geo` metadata is not JSON: {e}")))?;
    let mut info = AssetInfo {
        media_type: MEDIA_TYPE.into(),
        roles: vec!["data".into()],
        ..AssetInfo::default()
    };
    let version = geo.get("version").and_then(Value::as_str).unwrap_or("");
    if !matches!(version, "1.0.0" | "1.1.0" | "1.0.0-beta.1" | "1.1.0-dev") {
        info.warnings.push(format!(
            "GeoParquet version {version:?} is not one arcolake knows; read as 1.1"
        ));
    }
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
        .unwrap_or("WKB");
    let epsg = match column.get("crs") {
        None => Some(4326),
        Some(Value::Null) => None,
        Some(crs) => projjson_epsg(crs),
    };
    let bbox = column
        .get("bbox")
        .and_then(Value::as_array)
        .and_then(|b| bbox_of(b))
        .or_else(|| covering_bbox(meta, &column))
        .or_else(|| native_bbox(meta, &primary));
    if bbox.is_none() {
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
    Ok(info)
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
