//! Queryables: the properties a filter, a sort or a query may name, and
//! their types.
//!
//! Every item write records the property names and JSON kinds it carries
//! (`item_properties`), so the queryables of a collection are exactly the
//! properties its items have, typed by what they hold, plus the core fields
//! and the types the STAC extensions define for well-known names. A property
//! that no item carries is not a queryable: naming it is a 400, since such a
//! filter could only ever match nothing and is far more often a typo.
//! Operators can add or retype properties with a queryables file
//! (`serve --queryables`), whose entries win.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

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

    /// The kind from a JSON Schema (`type`, `format`).
    pub fn from_schema(schema: &Value) -> Option<Self> {
        if schema
            .get("$ref")
            .and_then(Value::as_str)
            .is_some_and(|r| r.contains("geojson"))
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

/// Well-known properties: their STAC types, titles and ranges.
fn known(name: &str) -> Option<Value> {
    Some(match name {
        "eo:cloud_cover" => {
            json!({"title": "Cloud cover (%)", "type": "number", "minimum": 0, "maximum": 100})
        }
        "eo:snow_cover" => {
            json!({"title": "Snow cover (%)", "type": "number", "minimum": 0, "maximum": 100})
        }
        "gsd" => {
            json!({"title": "Ground sample distance (m)", "type": "number", "exclusiveMinimum": 0})
        }
        "platform" => json!({"title": "Platform", "type": "string"}),
        "constellation" => json!({"title": "Constellation", "type": "string"}),
        "mission" => json!({"title": "Mission", "type": "string"}),
        "instruments" => {
            json!({"title": "Instruments", "type": "array", "items": {"type": "string"}})
        }
        "proj:epsg" => json!({"title": "EPSG code", "type": ["integer", "null"]}),
        "proj:code" => json!({"title": "Projection code", "type": ["string", "null"]}),
        "created" => json!({"title": "Created", "type": "string", "format": "date-time"}),
        "updated" => json!({"title": "Updated", "type": "string", "format": "date-time"}),
        "title" => json!({"title": "Title", "type": "string"}),
        "description" => json!({"title": "Description", "type": "string"}),
        "keywords" => json!({"title": "Keywords", "type": "array", "items": {"type": "string"}}),
        "view:off_nadir" => {
            json!({"title": "Off-nadir angle (°)", "type": "number", "minimum": 0, "maximum": 90})
        }
        "view:sun_azimuth" => {
            json!({"title": "Sun azimuth (°)", "type": "number", "minimum": 0, "maximum": 360})
        }
        "view:sun_elevation" => {
            json!({"title": "Sun elevation (°)", "type": "number", "minimum": -90, "maximum": 90})
        }
        "sat:relative_orbit" => json!({"title": "Relative orbit", "type": "integer", "minimum": 1}),
        "sat:orbit_state" => {
            json!({"title": "Orbit state", "type": "string", "enum": ["ascending", "descending", "geostationary"]})
        }
        _ => return None,
    })
}

fn schema_for_kind(kind: Kind) -> Value {
    match kind {
        Kind::Number => json!({"type": "number"}),
        Kind::Text => json!({"type": "string"}),
        Kind::Timestamp => json!({"type": "string", "format": "date-time"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Array => json!({"type": "array"}),
        Kind::Object => json!({"type": "object"}),
        Kind::Geometry => json!({"$ref": "https://geojson.org/schema/Geometry.json"}),
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
            let schema = known(name)
                .filter(|s| Kind::from_schema(s) == Some(kind))
                .unwrap_or_else(|| schema_for_kind(kind));
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
}
