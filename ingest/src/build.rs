//! STAC Items from what the readers found: naming, grouping, assembly.
//!
//! Each crawled object becomes a [`Part`]: its asset and what it says about
//! the item. An item is assembled from all the parts that share its id, so
//! several files (Sentinel-2 band files, say) can make one item, and the
//! item can be rebuilt whenever one of its files changes or goes away.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::GroupTemplate;
use crate::geo::Footprint;
use crate::read::AssetInfo;
use storage::source::Entry;

/// STAC version of the items written.
pub const STAC_VERSION: &str = "1.1.0";
const ALTERNATE_ASSETS: &str =
    "https://stac-extensions.github.io/alternate-assets/v1.2.0/schema.json";

/// Where an item's id, asset key, datetime and extra properties come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Naming {
    pub item_id: String,
    pub asset_key: String,
    pub datetime: Option<DateTime<Utc>>,
    pub properties: Map<String, Value>,
}

/// Compiled grouping templates.
#[derive(Debug, Clone, Default)]
pub struct Namer {
    templates: Vec<(Regex, GroupTemplate)>,
}

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{([A-Za-z_][A-Za-z0-9_]*)\}").expect("valid regex"));
static PATH_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^0-9])((?:19|20)\d{2})-?([01]\d)-?([0-3]\d)(?:T([0-2]\d)([0-5]\d)([0-5]\d))?(?:[^0-9]|$)")
        .expect("valid regex")
});

impl Namer {
    /// Compile templates; a bad pattern is an error naming it.
    pub fn new(templates: &[GroupTemplate]) -> Result<Self, String> {
        let templates = templates
            .iter()
            .map(|t| {
                Regex::new(&t.pattern)
                    .map(|r| (r, t.clone()))
                    .map_err(|e| format!("group pattern {:?}: {e}", t.pattern))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { templates })
    }

    /// Name one listed object.
    pub fn name(&self, entry: &Entry) -> Naming {
        for (re, t) in &self.templates {
            let Some(caps) = re.captures(&entry.path) else {
                continue;
            };
            let fill = |template: &str| -> String {
                PLACEHOLDER
                    .replace_all(template, |c: &regex::Captures<'_>| {
                        caps.name(&c[1]).map_or("", |m| m.as_str()).to_owned()
                    })
                    .into_owned()
            };
            let item_id = sanitize_id(&fill(&t.id));
            if item_id.is_empty() {
                continue;
            }
            let datetime = t
                .datetime
                .as_deref()
                .and_then(|d| parse_datetime(&fill(d), t.datetime_format.as_deref()));
            let properties = t
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(fill(v))))
                .collect();
            return Naming {
                item_id,
                asset_key: t
                    .asset
                    .as_deref()
                    .map_or_else(|| "data".to_owned(), |a| sanitize_id(&fill(a))),
                datetime,
                properties,
            };
        }
        Naming {
            item_id: default_id(&entry.path),
            asset_key: "data".into(),
            datetime: None,
            properties: Map::new(),
        }
    }
}

/// The default item id: the relative path without its extension, `/` → `_`.
fn default_id(path: &str) -> String {
    let stem = match path.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') => stem,
        _ => path,
    };
    sanitize_id(&stem.replace('/', "_"))
}

fn sanitize_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_matches('_')
        .to_owned()
}

/// Datetime text: with `format`, else RFC 3339, `%Y%m%dT%H%M%S`, `%Y%m%d`, `%Y-%m-%d`.
pub fn parse_datetime(s: &str, format: Option<&str>) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some(f) = format {
        return NaiveDateTime::parse_from_str(s, f)
            .ok()
            .or_else(|| NaiveDate::parse_from_str(s, f).ok()?.and_hms_opt(0, 0, 0))
            .map(|n| Utc.from_utc_datetime(&n));
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for f in ["%Y%m%dT%H%M%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    for f in ["%Y%m%d", "%Y-%m-%d"] {
        if let Some(n) = NaiveDate::parse_from_str(s, f)
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
        {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    None
}

/// A date written in a path (`…_20230615T104621_…`, `…/2023-06-15/…`).
pub fn date_in_path(path: &str) -> Option<DateTime<Utc>> {
    let c = PATH_DATE.captures(path)?;
    let num = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<u32>().ok());
    let date = NaiveDate::from_ymd_opt(i32::try_from(num(1)?).ok()?, num(2)?, num(3)?)?;
    let time = date.and_hms_opt(
        num(4).unwrap_or(0),
        num(5).unwrap_or(0),
        num(6).unwrap_or(0),
    )?;
    Some(Utc.from_utc_datetime(&time))
}

/// One object's contribution to an item, as stored between crawls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Part {
    pub asset_key: String,
    pub asset: Map<String, Value>,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub bbox: Option<[f64; 4]>,
    /// Outer ring of the footprint's (first) polygon.
    #[serde(default)]
    pub ring: Option<Vec<[f64; 2]>>,
    /// Outer rings of further polygons, when the footprint is split at the
    /// antimeridian.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split_rings: Vec<Vec<[f64; 2]>>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Where the time came from: `template`, `file`, `path`, `modified`
    /// (the object's modification time) or `crawled` (the time of the
    /// crawl, for objects without one, such as Zarr stores).
    pub time_source: String,
    #[serde(default)]
    pub extensions: BTreeSet<String>,
    #[serde(default)]
    pub missing_since: Option<DateTime<Utc>>,
}

impl Part {
    /// The part of one read object.
    pub fn new(
        entry: &Entry,
        naming: &Naming,
        info: AssetInfo,
        href: String,
        alternate: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut asset = Map::new();
        asset.insert("href".into(), href.into());
        asset.insert("type".into(), info.media_type.into());
        if let Some(t) = info.title {
            asset.insert("title".into(), t.into());
        }
        asset.insert("roles".into(), json!(info.roles));
        let mut extensions = info.extensions;
        for (k, v) in info.fields {
            asset.insert(k, v);
        }
        if let Some(alt) = alternate {
            asset.insert("alternate".into(), json!({"https": {"href": alt}}));
            extensions.insert(ALTERNATE_ASSETS.into());
        }
        let mut properties = info.properties;
        for (k, v) in &naming.properties {
            properties.insert(k.clone(), v.clone());
        }
        drop_empty_strings(&mut asset);
        drop_empty_strings(&mut properties);
        let (start, end, time_source) = if let Some(t) = naming.datetime {
            (t, t, "template")
        } else if let Some(s) = info.start {
            (s, info.end.unwrap_or(s).max(s), "file")
        } else if let Some(t) = date_in_path(&entry.path) {
            (t, t, "path")
        } else if let Some(t) = entry.modified {
            (t, t, "modified")
        } else {
            (now, now, "crawled")
        };
        let (ring, split_rings) = match info.footprint.as_ref().map(|f| f.rings.clone()) {
            Some(mut rings) if !rings.is_empty() => {
                let first = rings.remove(0);
                (Some(first), rings)
            }
            _ => (None, Vec::new()),
        };
        Self {
            asset_key: naming.asset_key.clone(),
            asset,
            properties,
            bbox: info.footprint.as_ref().map(|f| f.bbox),
            ring,
            split_rings,
            start,
            end,
            time_source: time_source.into(),
            extensions,
            missing_since: None,
        }
    }
}

/// Remove fields whose value is an empty string, in nested objects too:
/// STAC and its extensions give every text field a minimum length of 1, so
/// an empty `description` (as some PMTiles metadata has) would make the
/// item invalid.
fn drop_empty_strings(map: &mut Map<String, Value>) {
    map.retain(|_, v| !matches!(v, Value::String(s) if s.trim().is_empty()));
    for v in map.values_mut() {
        match v {
            Value::Object(inner) => drop_empty_strings(inner),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(inner) = item {
                        drop_empty_strings(inner);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Assemble an item from its parts (in any order; sorted by asset key).
pub fn assemble(collection: &str, id: &str, parts: &[Part]) -> Value {
    let mut parts: Vec<&Part> = parts.iter().collect();
    parts.sort_by(|a, b| a.asset_key.cmp(&b.asset_key));
    let mut footprint: Option<Footprint> = None;
    for p in &parts {
        let fp = match (&p.ring, p.bbox) {
            (Some(ring), Some(bbox)) => Footprint {
                bbox,
                rings: std::iter::once(ring.clone())
                    .chain(p.split_rings.iter().cloned())
                    .collect(),
            },
            _ => continue,
        };
        footprint = Some(match footprint {
            None => fp,
            Some(f) => f.union(&fp),
        });
    }
    let start = parts.iter().map(|p| p.start).min().unwrap_or_else(Utc::now);
    let end = parts.iter().map(|p| p.end).max().unwrap_or(start);
    let mut properties = Map::new();
    if start == end {
        properties.insert("datetime".into(), iso(start).into());
    } else {
        properties.insert("datetime".into(), Value::Null);
        properties.insert("start_datetime".into(), iso(start).into());
        properties.insert("end_datetime".into(), iso(end).into());
    }
    let mut extensions = BTreeSet::new();
    let mut assets = Map::new();
    let mut sources = BTreeSet::new();
    for p in &parts {
        for (k, v) in &p.properties {
            if k != "proj:epsg" && !matches!(v, Value::String(s) if s.trim().is_empty()) {
                properties.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        extensions.extend(p.extensions.iter().cloned());
        // Parts stored by earlier versions may still carry `proj:epsg` or
        // empty strings; the item gets neither.
        let mut asset = p.asset.clone();
        asset.remove("proj:epsg");
        drop_empty_strings(&mut asset);
        assets.insert(p.asset_key.clone(), Value::Object(asset));
        sources.insert(p.time_source.as_str());
        if let Some(m) = p.missing_since {
            properties.insert("arcolake:missing_since".into(), iso(m).into());
        }
    }
    // Projection on the item when every asset that has one agrees.
    let codes: BTreeSet<String> = parts
        .iter()
        .filter_map(|p| {
            p.asset
                .get("proj:code")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    // Projection v2.0.0 has `proj:code` only (its schema forbids `proj:epsg`).
    if codes.len() == 1 {
        let code = codes.into_iter().next().unwrap_or_default();
        properties.insert("proj:code".into(), code.into());
    }
    if sources.len() == 1 && sources.contains("modified") {
        properties.insert("arcolake:datetime_source".into(), "file-modified".into());
    } else if sources.iter().all(|s| matches!(*s, "modified" | "crawled"))
        && sources.contains("crawled")
    {
        properties.insert("arcolake:datetime_source".into(), "crawl-time".into());
    }
    let (geometry, bbox) = match &footprint {
        Some(f) => (f.geometry(), Some(f.bbox_value())),
        None => (Value::Null, None),
    };
    let mut item = json!({
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": extensions.into_iter().collect::<Vec<_>>(),
        "id": id,
        "collection": collection,
        "geometry": geometry,
        "properties": properties,
        "links": [],
        "assets": assets,
    });
    if let Some(b) = bbox {
        item["bbox"] = b;
    }
    item
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::source::EntryKind;

    fn entry(path: &str) -> Entry {
        Entry {
            path: path.into(),
            size: 10,
            modified: None,
            etag: None,
            kind: EntryKind::File,
        }
    }

    #[test]
    fn sentinel2_band_files_group_into_one_item() {
        let t = GroupTemplate {
            pattern: r"(?P<tile>T\d{2}[A-Z]{3})_(?P<date>\d{8}T\d{6})_(?P<band>B\d{2})\.tif$"
                .into(),
            id: "{tile}_{date}".into(),
            asset: Some("{band}".into()),
            datetime: Some("{date}".into()),
            datetime_format: Some("%Y%m%dT%H%M%S".into()),
            properties: [("s2:mgrs_tile".to_owned(), "{tile}".to_owned())].into(),
        };
        let namer = Namer::new(&[t]).unwrap();
        let a = namer.name(&entry("2023/T31UFU_20230615T104621_B02.tif"));
        let b = namer.name(&entry("2023/T31UFU_20230615T104621_B03.tif"));
        assert_eq!(a.item_id, "T31UFU_20230615T104621");
        assert_eq!(a.item_id, b.item_id);
        assert_eq!((a.asset_key.as_str(), b.asset_key.as_str()), ("B02", "B03"));
        assert_eq!(
            a.datetime.unwrap().to_rfc3339(),
            "2023-06-15T10:46:21+00:00"
        );
        assert_eq!(a.properties["s2:mgrs_tile"], "T31UFU");
        let other = namer.name(&entry("misc/readme.tif"));
        assert_eq!(other.item_id, "misc_readme");
        assert_eq!(other.asset_key, "data");
    }

    #[test]
    fn dates_in_paths() {
        assert_eq!(
            date_in_path("a/S2_20230615T104621_x.tif")
                .unwrap()
                .to_rfc3339(),
            "2023-06-15T10:46:21+00:00"
        );
        assert_eq!(
            date_in_path("a/2021-03-04/b.tif").unwrap().to_rfc3339(),
            "2021-03-04T00:00:00+00:00"
        );
        assert!(date_in_path("a/b123456789.tif").is_none());
    }

    fn part(info: AssetInfo, modified: Option<DateTime<Utc>>) -> Part {
        let mut e = entry("a/store.zarr");
        e.modified = modified;
        let naming = Namer::default().name(&e);
        Part::new(
            &e,
            &naming,
            info,
            "file:///a/store.zarr".into(),
            None,
            Utc::now(),
        )
    }

    #[test]
    fn antimeridian_footprints_become_multipolygons_with_west_above_east() {
        let info = AssetInfo {
            footprint: Some(Footprint::from_lonlat_bbox([170.0, -20.0, 200.0, -10.0]).unwrap()),
            ..AssetInfo::default()
        };
        let p = part(info, None);
        assert_eq!(p.split_rings.len(), 1);
        // Stored parts round-trip, and older ones without `split_rings` still read.
        let stored = serde_json::to_value(&p).unwrap();
        assert_eq!(serde_json::from_value::<Part>(stored).unwrap(), p);
        let item = assemble("c", "i", std::slice::from_ref(&p));
        assert_eq!(item["geometry"]["type"], "MultiPolygon");
        assert_eq!(item["bbox"], json!([170.0, -20.0, -160.0, -10.0]));
        let mut old = serde_json::to_value(&p).unwrap();
        old.as_object_mut().unwrap().remove("split_rings");
        let old: Part = serde_json::from_value(old).unwrap();
        assert_eq!(assemble("c", "i", &[old])["geometry"]["type"], "Polygon");
    }

    #[test]
    fn crawl_time_is_not_called_a_modification_time() {
        let p = part(AssetInfo::default(), None);
        let item = assemble("c", "i", &[p]);
        assert_eq!(item["properties"]["arcolake:datetime_source"], "crawl-time");
        let t = Utc.with_ymd_and_hms(2020, 1, 2, 3, 4, 5).unwrap();
        let item = assemble("c", "i", &[part(AssetInfo::default(), Some(t))]);
        assert_eq!(
            item["properties"]["arcolake:datetime_source"],
            "file-modified"
        );
        assert_eq!(item["properties"]["datetime"], "2020-01-02T03:04:05Z");
    }

    #[test]
    fn empty_strings_are_dropped_from_assets_and_properties() {
        let mut info = AssetInfo::default();
        info.fields.insert("description".into(), "".into());
        info.fields.insert(
            "raster:bands".into(),
            json!([{"description": " ", "unit": "m"}]),
        );
        info.properties.insert("title".into(), "".into());
        let p = part(info, None);
        assert!(!p.asset.contains_key("description"));
        assert_eq!(p.asset["raster:bands"], json!([{"unit": "m"}]));
        assert!(!p.properties.contains_key("title"));
    }

    #[test]
    fn items_carry_proj_code_and_never_proj_epsg() {
        let mut info = AssetInfo::default();
        info.locate(
            Some(32631),
            Some([500_000.0, 5_000_000.0, 510_000.0, 5_010_000.0]),
            "",
        );
        assert!(!info.fields.contains_key("proj:epsg"));
        let item = assemble("c", "i", &[part(info, None)]);
        assert_eq!(item["properties"]["proj:code"], "EPSG:32631");
        assert!(item["properties"].get("proj:epsg").is_none());
        assert!(item["assets"]["data"].get("proj:epsg").is_none());
        // A part stored by an earlier version, with `proj:epsg` and an empty text.
        let mut old = part(AssetInfo::default(), None);
        old.asset.insert("proj:epsg".into(), 32631.into());
        old.asset.insert("description".into(), "".into());
        let item = assemble("c", "i", &[old]);
        assert!(item["assets"]["data"].get("proj:epsg").is_none());
        assert!(item["assets"]["data"].get("description").is_none());
    }
}
