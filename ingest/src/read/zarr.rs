//! Zarr v2 and v3 stores: metadata documents and CF coordinate arrays.
//!
//! A store is one asset. Its metadata comes from the consolidated document
//! (`.zmetadata`, or `consolidated_metadata` in `zarr.json`) when there is
//! one, else from the node documents that can be named: the root group,
//! the usual coordinate arrays, the arrays their CF attributes refer to,
//! and the same under the first level of a multiscale store (`GeoZarr`
//! `multiscales.layout`, or `multiscales[0].datasets`). Coordinate arrays
//! are decoded with `zarrs` through a small bridge store that fetches keys
//! on demand.
//!
//! Every object is sized (HEAD) before it is fetched: a metadata document
//! over [`MAX_DOCUMENT`] or a coordinate chunk over [`MAX_CHUNK`] makes the
//! store an error entry that names the limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use zarrs::array::Array;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    MaybeBytes, MaybeBytesIterator, ReadableStorageTraits, StorageError, StoreKey,
};

use super::{AssetInfo, ReadError, cf, ext};
use crate::geo::crs_string_epsg;
use storage::source::Source;

pub const MEDIA_TYPE: &str = "application/vnd+zarr";
/// Largest metadata document read (`zarr.json`, `.zmetadata`, `.zarray`, `.zattrs`).
pub const MAX_DOCUMENT: u64 = 32 << 20;
/// Largest coordinate chunk read.
pub const MAX_CHUNK: u64 = 64 << 20;
/// Longest coordinate array decoded.
const MAX_COORD_LEN: u64 = 10_000_000;
/// Most nodes read at one level of a store without consolidated metadata.
const MAX_NODES: usize = 1024;
/// Names of the coordinate arrays tried when a v3 store has no consolidated
/// metadata and the storage cannot list its nodes.
const GUESSED_COORDS: [&str; 8] = ["lat", "lon", "latitude", "longitude", "x", "y", "time", "t"];

/// One array's metadata.
#[derive(Debug, Clone)]
struct ArrayMeta {
    /// Path from the store root, when it differs from the array's name (an
    /// array of a multiscale store's first level).
    path: Option<String>,
    shape: Vec<u64>,
    chunks: Vec<u64>,
    dtype: String,
    dims: Vec<String>,
    attrs: Map<String, Value>,
}

/// Everything known about a store before coordinates are decoded.
#[derive(Debug, Default)]
struct StoreMeta {
    format: u8,
    consolidated: bool,
    /// Without consolidated metadata: the store's nodes were listed (else
    /// only arrays whose names are known were probed).
    listed: bool,
    attrs: Map<String, Value>,
    arrays: BTreeMap<String, ArrayMeta>,
    /// Documents already fetched, by key relative to the store root.
    docs: HashMap<String, Bytes>,
}

fn json_doc(bytes: &[u8], what: &str) -> Result<Value, ReadError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ReadError::invalid(format!("{what} is not JSON: {e}")))
}

/// A whole small object, its size checked first: `None` when it does not
/// exist, an error naming the limit when it is larger than `limit`.
async fn get_bounded(
    source: &dyn Source,
    path: &str,
    limit: u64,
) -> Result<Option<Bytes>, ReadError> {
    let Some(entry) = source.head(path).await? else {
        return Ok(None);
    };
    if entry.size > limit {
        return Err(ReadError::invalid(format!(
            "{path} is {} bytes, over the {limit}-byte limit for what a Zarr reader fetches",
            entry.size
        )));
    }
    if entry.size > 0 {
        return Ok(Some(source.read_range(path, 0..entry.size).await?));
    }
    // No length reported (some HTTP servers): read it and check afterwards.
    match source.read_small(path).await? {
        Some(b) if b.len() as u64 > limit => Err(ReadError::invalid(format!(
            "{path} is {} bytes, over the {limit}-byte limit for what a Zarr reader fetches",
            b.len()
        ))),
        other => Ok(other),
    }
}

async fn get(source: &dyn Source, root: &str, key: &str) -> Result<Option<Bytes>, ReadError> {
    get_bounded(source, &format!("{root}/{key}"), MAX_DOCUMENT).await
}

/// Read a Zarr store rooted at `root`.
pub async fn read(source: &Arc<dyn Source>, root: &str) -> Result<AssetInfo, ReadError> {
    let meta = load_meta(source.as_ref(), root).await?;
    let mut info = AssetInfo {
        media_type: MEDIA_TYPE.into(),
        roles: vec!["data".into()],
        ..AssetInfo::default()
    };
    if meta.arrays.is_empty() {
        info.warnings
            .push("no arrays found in the store's metadata".into());
    }
    if meta.format == 3 && !meta.consolidated && !meta.listed {
        // The store's keys are not listed: only arrays whose names are known
        // (coordinates, and those attributes refer to) were read.
        info.warnings.push(
            "Zarr v3 store without consolidated metadata: only the coordinate arrays and the arrays \
             their attributes name were probed, so data variables may be missing from cube:variables \
             (consolidate the store's metadata to list them)"
                .into(),
        );
    }
    let coords = decode_coords(source, root, &meta).await?;
    describe(&meta, &coords, &mut info);
    Ok(info)
}

async fn load_meta(source: &dyn Source, root: &str) -> Result<StoreMeta, ReadError> {
    let mut meta = StoreMeta::default();
    if let Some(doc) = get(source, root, "zarr.json").await? {
        meta.format = 3;
        let v = json_doc(&doc, "zarr.json")?;
        meta.docs.insert("zarr.json".into(), doc);
        if v.get("zarr_format").and_then(Value::as_u64) != Some(3) {
            return Err(ReadError::invalid("zarr.json without zarr_format 3"));
        }
        meta.attrs = v
            .get("attributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if v.get("node_type").and_then(Value::as_str) == Some("array") {
            meta.arrays.insert(String::new(), v3_array(&v));
            return Ok(meta);
        }
        if let Some(nodes) = v
            .pointer("/consolidated_metadata/metadata")
            .and_then(Value::as_object)
        {
            meta.consolidated = true;
            for (name, node) in nodes {
                if node.get("node_type").and_then(Value::as_str) == Some("array") {
                    meta.arrays.insert(name.clone(), v3_array(node));
                    meta.docs
                        .insert(format!("{name}/zarr.json"), Bytes::from(node.to_string()));
                }
            }
            if let Some(node) = first_level(&meta.attrs).and_then(|l| nodes.get(&l)) {
                merge_level_attrs(&mut meta, node);
            }
        } else {
            // No consolidated metadata: read the node documents that can be
            // named (coordinates, the arrays attributes name, and the same
            // under a multiscale store's first level).
            let mut groups = vec![String::new()];
            if let Some(level) = first_level(&meta.attrs) {
                let key = format!("{level}/zarr.json");
                if let Some(doc) = get(source, root, &key).await? {
                    merge_level_attrs(&mut meta, &json_doc(&doc, "zarr.json")?);
                    meta.docs.insert(key, doc);
                }
                groups.push(format!("{level}/"));
            }
            for group in groups {
                // The nodes the storage lists at this level; where it
                // cannot list one, the usual coordinate names.
                let at = format!("{root}/{group}");
                let mut names: Vec<String> = match source
                    .child_dirs(at.trim_end_matches('/'), MAX_NODES)
                    .await
                {
                    Ok(Some(children)) => {
                        meta.listed = true;
                        children
                    }
                    Ok(None) | Err(_) => GUESSED_COORDS.iter().map(|n| (*n).to_owned()).collect(),
                };
                let mut i = 0;
                while i < names.len() && i < MAX_NODES {
                    let key = format!("{group}{}/zarr.json", names[i]);
                    i += 1;
                    if meta.docs.contains_key(&key) {
                        continue;
                    }
                    let Some(doc) = get(source, root, &key).await? else {
                        continue;
                    };
                    let node = json_doc(&doc, "zarr.json")?;
                    meta.docs.insert(key.clone(), doc);
                    if node.get("node_type").and_then(Value::as_str) != Some("array") {
                        continue;
                    }
                    let array = v3_array(&node);
                    for named in referenced_names(&array.attrs) {
                        if !names.contains(&named) {
                            names.push(named);
                        }
                    }
                    let name = names[i - 1].clone();
                    meta.arrays.insert(format!("{group}{name}"), array);
                }
            }
        }
        promote_first_level(&mut meta);
        return Ok(meta);
    }
    meta.format = 2;
    if let Some(doc) = get(source, root, ".zmetadata").await? {
        meta.consolidated = true;
        let v = json_doc(&doc, ".zmetadata")?;
        let docs = v
            .get("metadata")
            .and_then(Value::as_object)
            .ok_or_else(|| ReadError::invalid(".zmetadata without `metadata`"))?;
        meta.attrs = docs
            .get(".zattrs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (key, doc) in docs {
            meta.docs.insert(key.clone(), Bytes::from(doc.to_string()));
            if let Some(name) = key.strip_suffix("/.zarray") {
                let attrs = docs
                    .get(&format!("{name}/.zattrs"))
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                meta.arrays.insert(name.to_owned(), v2_array(doc, attrs));
            }
        }
        return Ok(meta);
    }
    let Some(group) = get(source, root, ".zgroup").await? else {
        if let Some(doc) = get(source, root, ".zarray").await? {
            let v = json_doc(&doc, ".zarray")?;
            meta.arrays.insert(String::new(), v2_array(&v, Map::new()));
            return Ok(meta);
        }
        return Err(ReadError::invalid(
            "no zarr.json, .zmetadata, .zgroup or .zarray at the store root",
        ));
    };
    json_doc(&group, ".zgroup")?;
    if let Some(attrs) = get(source, root, ".zattrs").await? {
        meta.attrs = json_doc(&attrs, ".zattrs")?
            .as_object()
            .cloned()
            .unwrap_or_default();
    }
    for name in GUESSED_COORDS {
        if let Some(doc) = get(source, root, &format!("{name}/.zarray")).await? {
            let v = json_doc(&doc, ".zarray")?;
            let attrs = match get(source, root, &format!("{name}/.zattrs")).await? {
                Some(a) => json_doc(&a, ".zattrs")?
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                None => Map::new(),
            };
            meta.docs.insert(format!("{name}/.zarray"), doc);
            meta.docs.insert(
                format!("{name}/.zattrs"),
                Bytes::from(Value::Object(attrs.clone()).to_string()),
            );
            meta.arrays.insert(name.into(), v2_array(&v, attrs));
        }
    }
    Ok(meta)
}

/// The path of the first (full-resolution) level of a multiscale store:
/// `GeoZarr` `multiscales.layout[0].asset`, or the older
/// `multiscales[0].datasets[0].path`.
fn first_level(attrs: &Map<String, Value>) -> Option<String> {
    let ms = attrs.get("multiscales")?;
    ms.pointer("/layout/0/asset")
        .or_else(|| ms.pointer("/0/datasets/0/path"))
        .and_then(Value::as_str)
        .map(|p| p.trim_matches('/').to_owned())
        .filter(|p| !p.is_empty() && !p.contains(".."))
}

/// Levels named in a `multiscales` attribute.
fn level_count(ms: &Value) -> usize {
    ms.pointer("/layout")
        .or_else(|| ms.pointer("/0/datasets"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// Array names a CF array's attributes refer to (`grid_mapping`,
/// `coordinates`, `bounds`, `ancillary_variables`).
fn referenced_names(attrs: &Map<String, Value>) -> Vec<String> {
    [
        "grid_mapping",
        "coordinates",
        "bounds",
        "ancillary_variables",
    ]
    .iter()
    .filter_map(|k| attrs.get(*k).and_then(Value::as_str))
    .flat_map(str::split_whitespace)
    .map(|n| n.trim_end_matches(':').to_owned())
    .filter(|n| !n.is_empty() && !n.contains(['/', '.']) && n.len() < 128)
    .collect()
}

/// Attributes of a multiscale store's first level group (a CRS, say) that
/// the root does not have.
fn merge_level_attrs(meta: &mut StoreMeta, level: &Value) {
    if let Some(attrs) = level.get("attributes").and_then(Value::as_object) {
        for (k, v) in attrs {
            meta.attrs.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// A multiscale store's first level describes the store: its arrays are
/// known by their names (`x`, not `0/x`) unless the root has arrays of the
/// same name; arrays of the other levels are left out.
fn promote_first_level(meta: &mut StoreMeta) {
    let Some(level) = first_level(&meta.attrs) else {
        return;
    };
    let prefix = format!("{level}/");
    let nested: Vec<String> = meta
        .arrays
        .keys()
        .filter(|k| k.contains('/'))
        .cloned()
        .collect();
    for key in nested {
        let Some(mut array) = meta.arrays.remove(&key) else {
            continue;
        };
        if let Some(name) = key.strip_prefix(&prefix).filter(|n| !n.contains('/')) {
            array.path = Some(key.clone());
            meta.arrays.entry(name.to_owned()).or_insert(array);
        }
    }
}

fn u64s(v: Option<&Value>) -> Vec<u64> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn v3_array(v: &Value) -> ArrayMeta {
    ArrayMeta {
        path: None,
        shape: u64s(v.get("shape")),
        chunks: u64s(v.pointer("/chunk_grid/configuration/chunk_shape")),
        dtype: v
            .get("data_type")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
        dims: strings(v.get("dimension_names")),
        attrs: v
            .get("attributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    }
}

fn v2_array(v: &Value, attrs: Map<String, Value>) -> ArrayMeta {
    let dtype = v.get("dtype").and_then(Value::as_str).unwrap_or("unknown");
    ArrayMeta {
        path: None,
        shape: u64s(v.get("shape")),
        chunks: u64s(v.get("chunks")),
        dtype: v2_dtype(dtype).to_owned(),
        dims: strings(attrs.get("_ARRAY_DIMENSIONS")),
        attrs,
    }
}

/// numpy type strings (`<f8`) as v3 names.
fn v2_dtype(d: &str) -> &str {
    match d.trim_start_matches(['<', '>', '|', '=']) {
        "f2" => "float16",
        "f4" => "float32",
        "f8" => "float64",
        "i1" => "int8",
        "i2" => "int16",
        "i4" => "int32",
        "i8" => "int64",
        "u1" => "uint8",
        "u2" => "uint16",
        "u4" => "uint32",
        "u8" => "uint64",
        "b1" => "bool",
        other if other.starts_with("M8") => "datetime64",
        other if other.starts_with('U') || other.starts_with('S') || other == "O" => "string",
        _ => d,
    }
}

/// A zarrs store that fetches keys from a [`Source`] on demand, from inside
/// a blocking task.
struct Bridge {
    source: Arc<dyn Source>,
    root: String,
    docs: HashMap<String, Bytes>,
    handle: tokio::runtime::Handle,
    /// The first key that was over [`MAX_CHUNK`]: the read fails with it.
    over_limit: std::sync::Mutex<Option<String>>,
}

impl Bridge {
    fn fetch(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        if let Some(b) = self.docs.get(key.as_str()) {
            return Ok(Some(b.clone()));
        }
        let path = format!("{}/{}", self.root, key.as_str());
        let limit = if key.as_str().ends_with("zarr.json") || key.as_str().contains("/.z") {
            MAX_DOCUMENT
        } else {
            MAX_CHUNK
        };
        match self
            .handle
            .block_on(get_bounded(self.source.as_ref(), &path, limit))
        {
            Ok(b) => Ok(b),
            Err(e) => {
                let msg = e.to_string();
                if msg.contains("-byte limit")
                    && let Ok(mut slot) = self.over_limit.lock()
                {
                    slot.get_or_insert(msg.clone());
                }
                Err(StorageError::Other(msg))
            }
        }
    }
}

impl ReadableStorageTraits for Bridge {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let Some(bytes) = self.fetch(key)? else {
            return Ok(None);
        };
        let len = bytes.len() as u64;
        let parts: Vec<Result<Bytes, StorageError>> = byte_ranges
            .map(|r| {
                let start = usize::try_from(r.start(len)).unwrap_or(usize::MAX);
                let end = usize::try_from(r.end(len)).unwrap_or(usize::MAX);
                if start > end || end > bytes.len() {
                    return Err(StorageError::Other(format!(
                        "byte range beyond {}",
                        key.as_str()
                    )));
                }
                Ok(bytes.slice(start..end))
            })
            .collect();
        Ok(Some(Box::new(parts.into_iter())))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        Ok(self.fetch(key)?.map(|b| b.len() as u64))
    }

    fn supports_get_partial(&self) -> bool {
        false
    }
}

/// Decoded 1-D coordinate values, by array name.
type Coords = HashMap<String, Vec<f64>>;

/// Decode the 1-D coordinate arrays. A coordinate whose chunks are over
/// [`MAX_CHUNK`] makes the whole read an error naming the limit.
async fn decode_coords(
    source: &Arc<dyn Source>,
    root: &str,
    meta: &StoreMeta,
) -> Result<Coords, ReadError> {
    let wanted: Vec<(String, String, String)> = meta
        .arrays
        .iter()
        .filter(|(name, a)| {
            a.shape.len() == 1
                && a.shape[0] > 0
                && a.shape[0] <= MAX_COORD_LEN
                && (a.dims.first() == Some(*name) || role(name, a).is_some())
        })
        .map(|(name, a)| {
            let path = a.path.clone().unwrap_or_else(|| name.clone());
            (name.clone(), path, a.dtype.clone())
        })
        .collect();
    if wanted.is_empty() {
        return Ok(Coords::new());
    }
    let bridge = Arc::new(Bridge {
        source: Arc::clone(source),
        root: root.to_owned(),
        docs: meta.docs.clone(),
        handle: tokio::runtime::Handle::current(),
        over_limit: std::sync::Mutex::new(None),
    });
    let decoding = Arc::clone(&bridge);
    let coords = tokio::task::spawn_blocking(move || {
        let bridge = decoding;
        let mut out = Coords::new();
        for (name, path, dtype) in wanted {
            let store: Arc<dyn ReadableStorageTraits> = bridge.clone();
            let Ok(array) = Array::open(store, &format!("/{path}")) else {
                continue;
            };
            let subset = array.subset_all();
            let values: Option<Vec<f64>> = match dtype.as_str() {
                "float64" => array.retrieve_array_subset::<Vec<f64>>(&subset).ok(),
                "float32" => array
                    .retrieve_array_subset::<Vec<f32>>(&subset)
                    .ok()
                    .map(|v| v.into_iter().map(f64::from).collect()),
                "int64" => array
                    .retrieve_array_subset::<Vec<i64>>(&subset)
                    .ok()
                    .map(|v| v.into_iter().map(|x| x as f64).collect()),
                "int32" => array
                    .retrieve_array_subset::<Vec<i32>>(&subset)
                    .ok()
                    .map(|v| v.into_iter().map(f64::from).collect()),
                "uint32" => array
                    .retrieve_array_subset::<Vec<u32>>(&subset)
                    .ok()
                    .map(|v| v.into_iter().map(f64::from).collect()),
                _ => None,
            };
            if let Some(v) = values {
                out.insert(name, v);
            }
        }
        out
    })
    .await
    .unwrap_or_default();
    if let Some(why) = bridge.over_limit.lock().ok().and_then(|mut s| s.take()) {
        return Err(ReadError::invalid(why));
    }
    Ok(coords)
}

/// What a 1-D coordinate array is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    X,
    Y,
    Time,
}

fn role(name: &str, a: &ArrayMeta) -> Option<Role> {
    let attr = |k: &str| {
        a.attrs
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let (std, axis) = (attr("standard_name"), attr("axis"));
    let n = name.to_ascii_lowercase();
    if std == "time" || axis == "t" || n == "time" || n == "t" {
        return Some(Role::Time);
    }
    if matches!(
        std.as_str(),
        "longitude" | "projection_x_coordinate" | "grid_longitude"
    ) || axis == "x"
        || matches!(n.as_str(), "lon" | "longitude" | "x")
    {
        return Some(Role::X);
    }
    if matches!(
        std.as_str(),
        "latitude" | "projection_y_coordinate" | "grid_latitude"
    ) || axis == "y"
        || matches!(n.as_str(), "lat" | "latitude" | "y")
    {
        return Some(Role::Y);
    }
    None
}

/// Extent of coordinate values: min and max, widened by half a cell when
/// the spacing is regular. Returns (lo, hi, step).
fn extent(values: &[f64]) -> Option<(f64, f64, Option<f64>)> {
    let first = *values.first()?;
    let last = *values.last()?;
    if !first.is_finite() || !last.is_finite() {
        return None;
    }
    let (lo, hi) = (first.min(last), first.max(last));
    if values.len() < 2 {
        return Some((lo, hi, None));
    }
    let step = (last - first) / (values.len() - 1) as f64;
    let regular = values
        .windows(2)
        .all(|w| ((w[1] - w[0]) - step).abs() <= step.abs() * 1e-3 + 1e-12);
    if regular && step != 0.0 {
        let half = step.abs() / 2.0;
        Some((lo - half, hi + half, Some(step)))
    } else {
        Some((lo, hi, None))
    }
}

/// The EPSG code of a grid mapping variable's attributes.
fn grid_mapping_epsg(attrs: &Map<String, Value>) -> Option<u32> {
    for key in ["proj:code", "epsg_code", "crs"] {
        if let Some(code) = attrs
            .get(key)
            .and_then(Value::as_str)
            .and_then(crs_string_epsg)
        {
            return Some(code);
        }
    }
    if let Some(code) = attrs.get("proj:epsg").and_then(Value::as_u64) {
        return u32::try_from(code).ok();
    }
    for key in ["crs_wkt", "spatial_ref"] {
        if let Some(wkt) = attrs.get(key).and_then(Value::as_str) {
            // The last AUTHORITY / ID in a WKT names the whole CRS.
            let upper = wkt.to_ascii_uppercase();
            let at = upper
                .rfind("AUTHORITY[\"EPSG\",")
                .map(|i| i + 17)
                .or_else(|| upper.rfind("ID[\"EPSG\",").map(|i| i + 10))?;
            let digits: String = upper[at..]
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            return digits.parse().ok();
        }
    }
    None
}

fn describe(meta: &StoreMeta, coords: &Coords, info: &mut AssetInfo) {
    let coord_names: Vec<&String> = meta
        .arrays
        .iter()
        .filter(|(n, a)| a.shape.len() == 1 && a.dims.first() == Some(*n))
        .map(|(n, _)| n)
        .collect();
    let mut x: Option<(&str, f64, f64, Option<f64>)> = None;
    let mut y: Option<(&str, f64, f64, Option<f64>)> = None;
    let mut time: Option<(&str, DateTime<Utc>, DateTime<Utc>)> = None;
    for (name, a) in &meta.arrays {
        let Some(values) = coords.get(name) else {
            continue;
        };
        match role(name, a) {
            Some(Role::X) if x.is_none() => {
                if let Some((lo, hi, step)) = extent(values) {
                    x = Some((name, lo, hi, step));
                }
            }
            Some(Role::Y) if y.is_none() => {
                if let Some((lo, hi, step)) = extent(values) {
                    y = Some((name, lo, hi, step));
                }
            }
            Some(Role::Time) if time.is_none() => {
                let units = a.attrs.get("units").and_then(Value::as_str).unwrap_or("");
                let calendar = a.attrs.get("calendar").and_then(Value::as_str);
                let first = values.iter().copied().fold(f64::INFINITY, f64::min);
                let last = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                match cf::decode(first, units, calendar)
                    .and_then(|s| Ok((s, cf::decode(last, units, calendar)?)))
                {
                    Ok((s, e)) => time = Some((name, s, e)),
                    Err(why) => info.warnings.push(format!(
                        "time coordinate `{name}` (units {units:?}, calendar {}) not read: {why}",
                        calendar.unwrap_or("standard")
                    )),
                }
            }
            _ => {}
        }
    }
    // CRS: geographic names mean WGS 84; otherwise a grid mapping.
    let geographic = x.is_some_and(|(n, ..)| n.to_ascii_lowercase().starts_with("lon"));
    let epsg = if geographic {
        Some(4326)
    } else {
        meta.arrays
            .values()
            .filter_map(|a| a.attrs.get("grid_mapping").and_then(Value::as_str))
            .find_map(|gm| {
                let gm = gm
                    .split_whitespace()
                    .next()
                    .unwrap_or(gm)
                    .trim_end_matches(':');
                meta.arrays
                    .get(gm)
                    .and_then(|a| grid_mapping_epsg(&a.attrs))
            })
            .or_else(|| grid_mapping_epsg(&meta.attrs))
            .or_else(|| {
                meta.arrays
                    .values()
                    .find_map(|a| grid_mapping_epsg(&a.attrs))
            })
    };
    let bbox = match (x, y) {
        (Some((_, x0, x1, _)), Some((_, y0, y1, _))) => Some([x0, y0, x1, y1]),
        _ => {
            info.warnings
                .push("no x/y or lon/lat coordinate arrays: no footprint".into());
            None
        }
    };
    info.locate(epsg, bbox, "x/y coordinates without a grid mapping CRS");
    if let Some((_, s, e)) = time {
        info.start = Some(s);
        info.end = Some(e);
    }

    // Datacube.
    let mut dims = Map::new();
    for name in &coord_names {
        let a = &meta.arrays[*name];
        let mut d = Map::new();
        match (role(name, a), coords.get(*name)) {
            (Some(r @ (Role::X | Role::Y)), Some(values)) => {
                d.insert("type".into(), "spatial".into());
                d.insert("axis".into(), if r == Role::X { "x" } else { "y" }.into());
                let (lo, hi, step) = extent(values).unwrap_or((f64::NAN, f64::NAN, None));
                if lo.is_finite() {
                    d.insert("extent".into(), json!([lo, hi]));
                }
                if let Some(s) = step {
                    d.insert("step".into(), json!(s));
                }
                if let Some(code) = epsg {
                    d.insert("reference_system".into(), code.into());
                }
            }
            (Some(Role::Time), _) => {
                d.insert("type".into(), "temporal".into());
                let ext = time
                    .filter(|(n, ..)| n == name)
                    .map(|(_, s, e)| json!([s.to_rfc3339(), e.to_rfc3339()]))
                    .unwrap_or(json!([null, null]));
                d.insert("extent".into(), ext);
            }
            (_, values) => {
                d.insert("type".into(), "other".into());
                match values.and_then(|v| extent(v)) {
                    Some((lo, hi, _)) => d.insert("extent".into(), json!([lo, hi])),
                    None => d.insert("extent".into(), json!([null, null])),
                };
            }
        }
        dims.insert((*name).clone(), Value::Object(d));
    }
    let mut vars = Map::new();
    for (name, a) in &meta.arrays {
        if coord_names.contains(&name) || name.is_empty() {
            continue;
        }
        let mut v = Map::new();
        v.insert("dimensions".into(), json!(a.dims));
        let is_aux = a.shape.len() <= 1 && a.dims.iter().all(|d| !dims.contains_key(d))
            || a.attrs.contains_key("grid_mapping_name");
        v.insert(
            "type".into(),
            if is_aux { "auxiliary" } else { "data" }.into(),
        );
        if let Some(u) = a.attrs.get("units").and_then(Value::as_str) {
            v.insert("unit".into(), u.into());
        }
        if let Some(d) = a.attrs.get("long_name").and_then(Value::as_str) {
            v.insert("description".into(), d.into());
        }
        v.insert("shape".into(), json!(a.shape));
        v.insert("chunks".into(), json!(a.chunks));
        v.insert("data_type".into(), a.dtype.clone().into());
        vars.insert(name.clone(), Value::Object(v));
    }
    if !dims.is_empty() {
        info.properties
            .insert("cube:dimensions".into(), Value::Object(dims));
        info.properties
            .insert("cube:variables".into(), Value::Object(vars));
        info.extensions.insert(ext::DATACUBE.into());
    }
    let mut z = Map::new();
    z.insert("zarr_format".into(), meta.format.into());
    z.insert("consolidated".into(), meta.consolidated.into());
    if let Some(ms) = meta.attrs.get("multiscales") {
        z.insert(
            "multiscales".into(),
            json!({"levels": level_count(ms), "first_level": first_level(&meta.attrs)}),
        );
    }
    info.fields.insert("arcolake:zarr".into(), Value::Object(z));
    if let Some(t) = meta.attrs.get("title").and_then(Value::as_str) {
        info.title = Some(t.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_coordinates_extend_to_cell_edges() {
        let (lo, hi, step) = extent(&[0.5, 1.5, 2.5]).unwrap();
        assert_eq!((lo, hi, step), (0.0, 3.0, Some(1.0)));
        let (lo, hi, step) = extent(&[0.0, 1.0, 5.0]).unwrap();
        assert_eq!((lo, hi, step), (0.0, 5.0, None));
    }

    #[test]
    fn wkt_epsg() {
        let mut a = Map::new();
        a.insert("crs_wkt".into(), r#"PROJCS["WGS 84 / UTM zone 31N",GEOGCS["WGS 84",AUTHORITY["EPSG","4326"]],AUTHORITY["EPSG","32631"]]"#.into());
        assert_eq!(grid_mapping_epsg(&a), Some(32631));
    }
}
