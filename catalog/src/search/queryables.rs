//! Queryables: the properties a filter, a sort or a query may name, and
//! their types.
//!
//! Every item write records the property names and JSON kinds it carries
//! (`item_properties`), so the queryables of a collection are exactly the
//! properties its items have, typed by what they hold, plus the core fields
//! and the types the STAC extensions define for well-known names. Titles
//! come from the collections' `summaries` (a summary that is a JSON Schema
//! with a `title`) or from the extensions' field definitions. A search may
//! name any property of the whole catalog, whatever collections it is
//! restricted to (clients offer the catalog's queryables for any choice of
//! collection): one the searched collections lack matches nothing there. A
//! name no item of the catalog carries (and not STAC common metadata) is a
//! 400, since it is far more often a typo. Operators can add or retype
//! properties with a queryables file (`serve --queryables`), whose entries
//! win.
//!
//! The sortables are the queryables `sortby` accepts: those holding numbers,
//! strings, timestamps or booleans.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::sql::Sql;

/// What a queryable holds, and so how it is compared and sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A JSON number, compared as `float8`.
    Number,
    /// A JSON string, compared as text.
    Text,
    /// An RFC 3339 string, compared as `timestamptz`.
    Timestamp,
    /// A JSON boolean.
    Bool,
    /// A JSON array; `=` and `in` match any element.
    Array,
    /// A JSON object: only `isNull` applies.
    Object,
    /// The item geometry.
    Geometry,
}

impl Kind {
    /// The name stored in `item_properties.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Number => "number",
            Kind::Text => "string",
            Kind::Timestamp => "datetime",
            Kind::Bool => "boolean",
            Kind::Array => "array",
            Kind::Object => "object",
            Kind::Geometry => "geometry",
        }
    }

    /// Parse a stored kind name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "number" | "integer" => Kind::Number,
            "string" => Kind::Text,
            "datetime" => Kind::Timestamp,
            "boolean" => Kind::Bool,
            "array" => Kind::Array,
            "object" => Kind::Object,
            "geometry" => Kind::Geometry,
            _ => return None,
        })
    }

    /// The kind of a JSON property value; `None` for null.
    pub fn of(value: &Value) -> Option<Self> {
        Some(match value {
            Value::Null => return None,
            Value::Bool(_) => Kind::Bool,
            Value::Number(_) => Kind::Number,
            Value::String(s) if looks_like_timestamp(s) => Kind::Timestamp,
            Value::String(_) => Kind::Text,
            Value::Array(_) => Kind::Array,
            Value::Object(_) => Kind::Object,
        })
    }

    /// The kind from a JSON Schema (`type`, `format`): a geometry is a
    /// `geometry-*` format (OGC API Features part 3) or a `$ref` to a
    /// GeoJSON schema.
    pub fn from_schema(schema: &Value) -> Option<Self> {
        if schema
            .get("$ref")
            .and_then(Value::as_str)
            .is_some_and(|r| r.contains("geojson"))
            || schema
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("geometry"))
        {
            return Some(Kind::Geometry);
        }
        let ty = match schema.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("string"),
            _ => return None,
        };
        if ty == "string" && schema.get("format").and_then(Value::as_str) == Some("date-time") {
            return Some(Kind::Timestamp);
        }
        Kind::parse(ty)
    }
}

/// `true` for strings in the shape of an RFC 3339 date-time.
pub fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// Where an item's value of a queryable lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// A real column of `items`.
    Real(&'static str),
    /// A member of `content->'properties'`.
    Property,
}

/// One queryable.
#[derive(Debug, Clone, PartialEq)]
pub struct Queryable {
    /// Its kind.
    pub kind: Kind,
    /// Where it is stored.
    pub column: Column,
    /// Its JSON Schema, as served.
    pub schema: Value,
}

impl Queryable {
    /// `true` when its kind can be sorted on (number, string, timestamp,
    /// boolean).
    pub fn sortable_kind(&self) -> bool {
        matches!(
            self.kind,
            Kind::Number | Kind::Text | Kind::Timestamp | Kind::Bool
        )
    }

    /// `true` when `sortby` accepts it under `name`: a sortable kind, and a
    /// real column or a name the sort SQL can spell (sort keys are written
    /// into page tokens' key expressions, which take no bound values).
    pub fn sortable(&self, name: &str) -> bool {
        self.sortable_kind()
            && (matches!(self.column, Column::Real(_))
                || Sql::literal_name(Queryables::canonical(name))
                    .values()
                    .is_empty())
    }
}

/// Core fields of every item: real columns.
const CORE: &[(&str, Kind, &str, &str)] = &[
    ("id", Kind::Text, "id", "Item id"),
    ("collection", Kind::Text, "collection", "Collection id"),
    ("geometry", Kind::Geometry, "geometry", "Footprint"),
    (
        "datetime",
        Kind::Timestamp,
        "datetime",
        "Acquisition time (start of the item's time span)",
    ),
    (
        "start_datetime",
        Kind::Timestamp,
        "start_datetime",
        "Start of the item's time span",
    ),
    (
        "end_datetime",
        Kind::Timestamp,
        "end_datetime",
        "End of the item's time span",
    ),
];

/// STAC common metadata: always queryable.
const COMMON: &[&str] = &[
    "title",
    "description",
    "platform",
    "constellation",
    "mission",
    "instruments",
    "gsd",
    "created",
    "updated",
];

/// A percentage: a number from 0 to 100.
fn percent(title: &str) -> Value {
    json!({"title": title, "type": "number", "minimum": 0, "maximum": 100})
}

fn string(title: &str) -> Value {
    json!({"title": title, "type": "string"})
}

fn number(title: &str) -> Value {
    json!({"title": title, "type": "number"})
}

fn integer(title: &str) -> Value {
    json!({"title": title, "type": "integer"})
}

fn timestamp(title: &str) -> Value {
    json!({"title": title, "type": "string", "format": "date-time"})
}

fn array(title: &str) -> Value {
    json!({"title": title, "type": "array"})
}

fn object(title: &str) -> Value {
    json!({"title": title, "type": "object"})
}

/// Well-known properties: their types, titles and ranges, as STAC common
/// metadata and the STAC extensions (eo, view, sat, proj, raster, sar,
/// landsat, s2, mgrs, file, table, datacube) define them.
fn known(name: &str) -> Option<Value> {
    Some(match name {
        // Common metadata.
        "platform" => string("Platform"),
        "constellation" => string("Constellation"),
        "mission" => string("Mission"),
        "instruments" => {
            json!({"title": "Instruments", "type": "array", "items": {"type": "string"}})
        }
        "gsd" => {
            json!({"title": "Ground sample distance (m)", "type": "number", "exclusiveMinimum": 0})
        }
        "created" => timestamp("Created"),
        "updated" => timestamp("Updated"),
        "title" => string("Title"),
        "description" => string("Description"),
        "keywords" => json!({"title": "Keywords", "type": "array", "items": {"type": "string"}}),
        "license" => string("License"),
        "providers" => array("Providers"),
        "roles" => array("Roles"),
        // eo
        "eo:cloud_cover" => percent("Cloud cover (%)"),
        "eo:snow_cover" => percent("Snow cover (%)"),
        "eo:bands" => array("Bands"),
        // view
        "view:off_nadir" => {
            json!({"title": "Off-nadir angle (°)", "type": "number", "minimum": 0, "maximum": 90})
        }
        "view:incidence_angle" => {
            json!({"title": "Incidence angle (°)", "type": "number", "minimum": 0, "maximum": 90})
        }
        "view:azimuth" => {
            json!({"title": "Viewing azimuth (°)", "type": "number", "minimum": 0, "maximum": 360})
        }
        "view:sun_azimuth" => {
            json!({"title": "Sun azimuth (°)", "type": "number", "minimum": 0, "maximum": 360})
        }
        "view:sun_elevation" => {
            json!({"title": "Sun elevation (°)", "type": "number", "minimum": -90, "maximum": 90})
        }
        // sat
        "sat:platform_international_designator" => string("International designator"),
        "sat:absolute_orbit" => json!({"title": "Absolute orbit", "type": "integer", "minimum": 1}),
        "sat:relative_orbit" => json!({"title": "Relative orbit", "type": "integer", "minimum": 1}),
        "sat:orbit_cycle" => json!({"title": "Orbit cycle", "type": "integer", "minimum": 1}),
        "sat:anx_datetime" => timestamp("Ascending node crossing time"),
        "sat:orbit_state" => {
            json!({"title": "Orbit state", "type": "string", "enum": ["ascending", "descending", "geostationary"]})
        }
        // proj
        "proj:epsg" => json!({"title": "EPSG code", "type": ["integer", "null"]}),
        "proj:code" => json!({"title": "Projection code", "type": ["string", "null"]}),
        "proj:wkt2" => json!({"title": "Projection (WKT2)", "type": ["string", "null"]}),
        "proj:projjson" => object("Projection (PROJJSON)"),
        "proj:geometry" => object("Footprint in the projection"),
        "proj:bbox" => array("Bounding box in the projection"),
        "proj:centroid" => object("Centroid"),
        "proj:shape" => array("Shape (rows, columns)"),
        "proj:transform" => array("Affine transform"),
        // raster
        "raster:bands" => array("Raster bands"),
        // sar
        "sar:instrument_mode" => string("Instrument mode"),
        "sar:frequency_band" => {
            json!({"title": "Frequency band", "type": "string", "enum": ["P", "L", "S", "C", "X", "Ku", "K", "Ka"]})
        }
        "sar:center_frequency" => number("Center frequency (GHz)"),
        "sar:polarizations" => {
            json!({"title": "Polarizations", "type": "array", "items": {"type": "string"}})
        }
        "sar:product_type" => string("SAR product type"),
        "sar:resolution_range" => number("Range resolution (m)"),
        "sar:resolution_azimuth" => number("Azimuth resolution (m)"),
        "sar:pixel_spacing_range" => number("Range pixel spacing (m)"),
        "sar:pixel_spacing_azimuth" => number("Azimuth pixel spacing (m)"),
        "sar:looks_range" => integer("Range looks"),
        "sar:looks_azimuth" => integer("Azimuth looks"),
        "sar:looks_equivalent_number" => number("Equivalent number of looks"),
        "sar:observation_direction" => {
            json!({"title": "Observation direction", "type": "string", "enum": ["left", "right"]})
        }
        // landsat
        "landsat:scene_id" => string("Landsat scene id"),
        "landsat:wrs_type" => string("WRS type"),
        "landsat:wrs_path" => string("WRS path"),
        "landsat:wrs_row" => string("WRS row"),
        "landsat:collection_category" => string("Collection category"),
        "landsat:collection_number" => string("Collection number"),
        "landsat:correction" => string("Correction level"),
        "landsat:cloud_cover_land" => percent("Cloud cover over land (%)"),
        "landsat:product_generated" => timestamp("Product generated"),
        // s2
        "s2:mgrs_tile" => string("MGRS tile"),
        "s2:tile_id" => string("Tile id"),
        "s2:granule_id" => string("Granule id"),
        "s2:datastrip_id" => string("Datastrip id"),
        "s2:datatake_id" => string("Datatake id"),
        "s2:datatake_type" => string("Datatake type"),
        "s2:product_uri" => string("Product URI"),
        "s2:product_type" => string("Product type"),
        "s2:processing_baseline" => string("Processing baseline"),
        "s2:generation_time" => timestamp("Generation time"),
        "s2:reflectance_conversion_factor" => number("Reflectance conversion factor"),
        "s2:mean_solar_zenith" => number("Mean solar zenith (°)"),
        "s2:mean_solar_azimuth" => number("Mean solar azimuth (°)"),
        "s2:cloud_shadow_percentage" => percent("Cloud shadow (%)"),
        "s2:dark_features_percentage" => percent("Dark features (%)"),
        "s2:degraded_msi_data_percentage" => percent("Degraded MSI data (%)"),
        "s2:high_proba_clouds_percentage" => percent("High probability clouds (%)"),
        "s2:medium_proba_clouds_percentage" => percent("Medium probability clouds (%)"),
        "s2:nodata_pixel_percentage" => percent("No-data pixels (%)"),
        "s2:not_vegetated_percentage" => percent("Not vegetated (%)"),
        "s2:saturated_defective_pixel_percentage" => percent("Saturated or defective pixels (%)"),
        "s2:snow_ice_percentage" => percent("Snow and ice (%)"),
        "s2:thin_cirrus_percentage" => percent("Thin cirrus (%)"),
        "s2:unclassified_percentage" => percent("Unclassified (%)"),
        "s2:vegetation_percentage" => percent("Vegetation (%)"),
        "s2:water_percentage" => percent("Water (%)"),
        // mgrs
        "mgrs:utm_zone" => {
            json!({"title": "UTM zone", "type": "integer", "minimum": 1, "maximum": 60})
        }
        "mgrs:latitude_band" => string("Latitude band"),
        "mgrs:grid_square" => string("Grid square"),
        // file
        "file:size" => integer("File size (bytes)"),
        "file:checksum" => string("Checksum"),
        "file:header_size" => integer("Header size (bytes)"),
        "file:byte_order" => {
            json!({"title": "Byte order", "type": "string", "enum": ["big-endian", "little-endian"]})
        }
        // table
        "table:row_count" => integer("Row count"),
        "table:primary_geometry" => string("Primary geometry column"),
        "table:columns" => array("Columns"),
        "table:tables" => object("Tables"),
        // datacube
        "cube:dimensions" => object("Dimensions"),
        "cube:variables" => object("Variables"),
        _ => return None,
    })
}

/// The titles a collection's `summaries` declare: those summaries that are
/// JSON Schema objects with a `title` (value lists and ranges have none).
pub fn summary_titles(summaries: &Value) -> BTreeMap<String, String> {
    let Value::Object(map) = summaries else {
        return BTreeMap::new();
    };
    map.iter()
        .filter_map(|(name, summary)| {
            let title = summary.get("title")?.as_str()?.trim();
            (!title.is_empty()).then(|| (name.clone(), title.to_owned()))
        })
        .collect()
}

/// `schema` with the title of `from`, when it has one.
fn titled(mut schema: Value, from: &Value) -> Value {
    if let (Value::Object(m), Some(title)) = (&mut schema, from.get("title")) {
        m.insert("title".into(), title.clone());
    }
    schema
}

fn schema_for_kind(kind: Kind) -> Value {
    match kind {
        Kind::Number => json!({"type": "number"}),
        Kind::Text => json!({"type": "string"}),
        Kind::Timestamp => json!({"type": "string", "format": "date-time"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Array => json!({"type": "array"}),
        Kind::Object => json!({"type": "object"}),
        // Inline, not a `$ref` to geojson.org: a client offline (or
        // behind a proxy) resolves nothing and logs no error.
        Kind::Geometry => json!({"type": "object", "format": "geometry-any"}),
    }
}

/// The queryables of one or more collections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Queryables {
    entries: BTreeMap<String, Queryable>,
}

impl Queryables {
    /// The core fields alone.
    pub fn core() -> Self {
        let mut entries = BTreeMap::new();
        for (name, kind, column, title) in CORE {
            let mut schema = schema_for_kind(*kind);
            if let Value::Object(m) = &mut schema {
                m.insert("title".into(), Value::String((*title).into()));
            }
            entries.insert(
                (*name).to_owned(),
                Queryable {
                    kind: *kind,
                    column: Column::Real(column),
                    schema,
                },
            );
        }
        Self { entries }
    }

    /// Core fields, the STAC common metadata (queryable whether or not an
    /// item carries them: the spec defines their types), and properties
    /// seen on items, as `(name, kinds)`.
    /// A property seen with several kinds takes the most specific one that
    /// covers them: integers and floats are numbers; timestamps mixed with
    /// other strings are text.
    pub fn from_seen(seen: &BTreeMap<String, Vec<Kind>>) -> Self {
        let mut q = Self::core();
        for name in COMMON {
            if let Some(schema) = known(name)
                && let Some(kind) = Kind::from_schema(&schema)
            {
                q.entries.insert(
                    (*name).to_owned(),
                    Queryable {
                        kind,
                        column: Column::Property,
                        schema,
                    },
                );
            }
        }
        for (name, kinds) in seen {
            if q.entries
                .get(name)
                .is_some_and(|e| e.column != Column::Property || COMMON.contains(&name.as_str()))
            {
                continue;
            }
            let kind = match kinds.as_slice() {
                [one] => *one,
                many if many
                    .iter()
                    .all(|k| matches!(k, Kind::Text | Kind::Timestamp)) =>
                {
                    Kind::Text
                }
                many => *many.iter().min().unwrap_or(&Kind::Object),
            };
            // A well-known name stored with another type keeps its title.
            let schema = match known(name) {
                Some(s) if Kind::from_schema(&s) == Some(kind) => s,
                Some(s) => titled(schema_for_kind(kind), &s),
                None => schema_for_kind(kind),
            };
            q.entries.insert(
                name.clone(),
                Queryable {
                    kind,
                    column: Column::Property,
                    schema,
                },
            );
        }
        q
    }

    /// Apply operator entries (`name → JSON Schema`); they win.
    pub fn apply_overrides(&mut self, overrides: &Map<String, Value>) {
        for (name, schema) in overrides {
            if CORE.iter().any(|(n, ..)| n == name) {
                continue;
            }
            if let Some(kind) = Kind::from_schema(schema) {
                self.entries.insert(
                    name.clone(),
                    Queryable {
                        kind,
                        column: Column::Property,
                        schema: schema.clone(),
                    },
                );
            }
        }
    }

    /// Add the entries of `other` whose names this set lacks: a search
    /// restricted to some collections may still name the properties of the
    /// others (they match nothing there).
    pub fn fill_from(&mut self, other: &Queryables) {
        for (name, q) in &other.entries {
            self.entries
                .entry(name.clone())
                .or_insert_with(|| q.clone());
        }
    }

    /// Title properties with the titles collections declare in their
    /// summaries (`name → title`); these win over the built-in titles.
    pub fn apply_titles(&mut self, titles: &BTreeMap<String, String>) {
        for (name, title) in titles {
            if let Some(q) = self.entries.get_mut(name)
                && q.column == Column::Property
                && let Value::Object(m) = &mut q.schema
            {
                m.insert("title".into(), Value::String(title.clone()));
            }
        }
    }

    /// The queryables `sortby` accepts.
    #[must_use]
    pub fn sortables(&self) -> Self {
        Self {
            entries: self
                .entries
                .iter()
                .filter(|(name, q)| q.sortable(name))
                .map(|(name, q)| (name.clone(), q.clone()))
                .collect(),
        }
    }

    /// Look a name up; `properties.` prefixes are accepted.
    pub fn get(&self, name: &str) -> Option<&Queryable> {
        let name = name.strip_prefix("properties.").unwrap_or(name);
        self.entries.get(name)
    }

    /// The canonical name (without a `properties.` prefix).
    pub fn canonical(name: &str) -> &str {
        name.strip_prefix("properties.").unwrap_or(name)
    }

    /// The JSON Schema document served at a queryables endpoint.
    pub fn to_schema(&self, id: &str, title: &str) -> Value {
        let properties: Map<String, Value> = self
            .entries
            .iter()
            .map(|(name, q)| (name.clone(), q.schema.clone()))
            .collect();
        json!({
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "$id": id,
            "type": "object",
            "title": title,
            "properties": properties,
            "additionalProperties": false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_values_and_mixtures() {
        assert_eq!(Kind::of(&json!(1.5)), Some(Kind::Number));
        assert_eq!(
            Kind::of(&json!("2020-01-01T00:00:00Z")),
            Some(Kind::Timestamp)
        );
        assert_eq!(Kind::of(&json!("2020-01-01")), Some(Kind::Text));
        assert_eq!(Kind::of(&json!(null)), None);
        let mut seen = BTreeMap::new();
        seen.insert("a".to_owned(), vec![Kind::Text, Kind::Timestamp]);
        seen.insert("eo:cloud_cover".to_owned(), vec![Kind::Number]);
        let q = Queryables::from_seen(&seen);
        assert_eq!(q.get("a").unwrap().kind, Kind::Text);
        assert_eq!(
            q.get("properties.eo:cloud_cover").unwrap().kind,
            Kind::Number
        );
        assert_eq!(q.get("eo:cloud_cover").unwrap().schema["maximum"], 100);
        assert_eq!(q.get("datetime").unwrap().column, Column::Real("datetime"));
        assert!(q.get("nope").is_none());
    }

    #[test]
    fn titles_come_from_the_extensions_and_summaries() {
        let mut seen = BTreeMap::new();
        seen.insert("landsat:wrs_path".to_owned(), vec![Kind::Number]);
        seen.insert("s2:mgrs_tile".to_owned(), vec![Kind::Text]);
        seen.insert("tile".to_owned(), vec![Kind::Text]);
        let mut q = Queryables::from_seen(&seen);
        // Stored as a number where the extension says string: typed by the
        // items, titled by the extension.
        let wrs = q.get("landsat:wrs_path").unwrap();
        assert_eq!(wrs.kind, Kind::Number);
        assert_eq!(wrs.schema, json!({"type": "number", "title": "WRS path"}));
        assert_eq!(q.get("s2:mgrs_tile").unwrap().schema["title"], "MGRS tile");
        assert!(q.get("tile").unwrap().schema.get("title").is_none());
        let titles = summary_titles(&json!({
            "tile": {"title": "Tile", "type": "string"},
            "s2:mgrs_tile": {"title": "Tile (MGRS)"},
            "gsd": [10, 20],
            "eo:cloud_cover": {"minimum": 0, "maximum": 5},
        }));
        assert_eq!(titles.len(), 2);
        q.apply_titles(&titles);
        assert_eq!(q.get("tile").unwrap().schema["title"], "Tile");
        assert_eq!(
            q.get("s2:mgrs_tile").unwrap().schema["title"],
            "Tile (MGRS)"
        );
    }

    #[test]
    fn geometry_is_described_inline_and_sortables_are_scalars() {
        let mut seen = BTreeMap::new();
        seen.insert("instruments".to_owned(), vec![Kind::Array]);
        seen.insert("odd name".to_owned(), vec![Kind::Number]);
        seen.insert("eo:cloud_cover".to_owned(), vec![Kind::Number]);
        let q = Queryables::from_seen(&seen);
        let g = &q.get("geometry").unwrap().schema;
        assert!(g.get("$ref").is_none(), "{g}");
        assert_eq!(Kind::from_schema(g), Some(Kind::Geometry));
        let s = q.sortables();
        for name in [
            "id",
            "collection",
            "datetime",
            "eo:cloud_cover",
            "gsd",
            "created",
        ] {
            assert!(s.get(name).is_some(), "{name}");
        }
        for name in ["geometry", "instruments", "odd name"] {
            assert!(s.get(name).is_none(), "{name}");
        }
    }
}
