//! The fields extension: include and exclude members by dotted path.
//!
//! The most specific rule that names a member or one of its ancestors
//! decides; a path in both lists is included. What unnamed members do
//! depends on `include`: absent, every member is kept unless excluded;
//! present but empty, the default set is kept (`type`, `stac_version`,
//! `id`, `geometry`, `bbox`, `links`, `assets`, `collection`,
//! `properties.datetime`); listing paths, only those are kept, with what
//! identifies the item (`type`, `stac_version`, `id`, `collection`).

use serde_json::{Map, Value};

use crate::{Error, Result};

/// Members kept whatever the include list says (unless excluded by name).
const IDENTITY: &[&str] = &["type", "stac_version", "id", "collection"];

/// What an empty include list keeps.
const DEFAULT_SET: &[&str] = &[
    "type",
    "stac_version",
    "stac_extensions",
    "id",
    "geometry",
    "bbox",
    "links",
    "assets",
    "collection",
    "properties.datetime",
];

/// The most paths one request may name.
const MAX_PATHS: usize = 1_000;

/// Requested include and exclude paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    /// Dotted paths to keep; `None` when the request has no include list.
    pub include: Option<Vec<String>>,
    /// Dotted paths to drop.
    pub exclude: Vec<String>,
}

impl Fields {
    /// Parse the GET form: `id,-geometry,+properties.eo:cloud_cover`.
    pub fn parse(text: &str) -> Result<Self> {
        let mut f = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(p) = part.strip_prefix('-') {
                f.exclude.push(p.to_owned());
            } else {
                f.include
                    .get_or_insert_with(Vec::new)
                    .push(part.strip_prefix('+').unwrap_or(part).to_owned());
            }
        }
        f.check()
    }

    /// Parse the POST form: `{"include": [...], "exclude": [...]}`.
    pub fn from_value(value: &Value) -> Result<Self> {
        let list = |name: &str| -> Result<Option<Vec<String>>> {
            match value.get(name) {
                None => Ok(None),
                Some(Value::Null) => Ok(Some(Vec::new())),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str().map(str::to_owned).ok_or_else(|| {
                            Error::invalid_search(format!("fields.{name} must list strings"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Some),
                Some(_) => Err(Error::invalid_search(format!(
                    "fields.{name} must be an array of strings"
                ))),
            }
        };
        match value {
            Value::Object(_) => Self {
                include: list("include")?,
                exclude: list("exclude")?.unwrap_or_default(),
            }
            .check(),
            Value::String(s) => Self::parse(s),
            _ => Err(Error::invalid_search(
                "fields must be an object with include and exclude lists",
            )),
        }
    }

    fn check(self) -> Result<Self> {
        if self.include.as_ref().map_or(0, Vec::len) + self.exclude.len() > MAX_PATHS {
            return Err(Error::invalid_search(format!(
                "fields names more than {MAX_PATHS} paths"
            )));
        }
        Ok(self)
    }

    /// `true` when the request changes nothing.
    pub fn is_default(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    fn includes(&self) -> &[String] {
        self.include.as_deref().unwrap_or_default()
    }

    /// `Some(true)` keep, `Some(false)` drop, `None` no rule names `path`
    /// or an ancestor of it.
    fn rule(&self, path: &str) -> Option<bool> {
        let covers = |rule: &str| {
            path == rule
                || (path.starts_with(rule) && path.as_bytes().get(rule.len()) == Some(&b'.'))
        };
        let best = |rules: &[String]| rules.iter().filter(|r| covers(r)).map(String::len).max();
        match (best(self.includes()), best(&self.exclude)) {
            (None, None) => None,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(i), Some(e)) => Some(i >= e),
        }
    }

    /// `true` when some include rule lies below `path`.
    fn includes_below(&self, path: &str) -> bool {
        self.includes()
            .iter()
            .any(|r| r.starts_with(path) && r.as_bytes().get(path.len()) == Some(&b'.'))
    }

    /// Apply to an item, in place.
    pub fn apply(&self, item: &mut Value) {
        if self.is_default() {
            return;
        }
        let Value::Object(map) = item else {
            return;
        };
        match &self.include {
            Some(list) if list.is_empty() => {
                let with_default = Self {
                    // Explicit exclusions beat the default set.
                    include: Some(
                        DEFAULT_SET
                            .iter()
                            .filter(|d| !self.exclude.iter().any(|e| e == *d))
                            .map(|s| (*s).to_owned())
                            .collect(),
                    ),
                    exclude: self.exclude.clone(),
                };
                with_default.filter(map, "", false, true);
            }
            Some(_) => self.filter(map, "", false, true),
            None => self.filter(map, "", true, true),
        }
    }

    fn filter(&self, map: &mut Map<String, Value>, prefix: &str, inherited: bool, top: bool) {
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if top && IDENTITY.contains(&key.as_str()) && self.rule(&path) != Some(false) {
                continue;
            }
            let keep = self.rule(&path).unwrap_or(inherited);
            let deeper = self
                .includes()
                .iter()
                .chain(&self.exclude)
                .any(|r| r.starts_with(&path) && r.as_bytes().get(path.len()) == Some(&b'.'));
            if deeper && let Some(Value::Object(child)) = map.get_mut(&key) {
                self.filter(child, &path, keep, false);
                if !keep && child.is_empty() && !self.includes_below(&path) {
                    map.remove(&key);
                }
                continue;
            }
            if !keep {
                map.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item() -> Value {
        json!({"type": "Feature", "id": "a", "geometry": {"type": "Point"}, "bbox": [0, 0, 1, 1],
               "properties": {"datetime": "x", "eo:cloud_cover": 5, "gsd": 10},
               "assets": {"b": {"href": "h"}}})
    }

    #[test]
    fn include_exclude_and_specificity() {
        let mut v = item();
        Fields::parse("properties.eo:cloud_cover")
            .unwrap()
            .apply(&mut v);
        assert_eq!(
            v,
            json!({"type": "Feature", "id": "a", "properties": {"eo:cloud_cover": 5}})
        );

        let mut v = item();
        Fields::parse("-geometry,-properties.gsd")
            .unwrap()
            .apply(&mut v);
        assert!(v.get("geometry").is_none());
        assert_eq!(
            v["properties"],
            json!({"datetime": "x", "eo:cloud_cover": 5})
        );

        let mut v = item();
        Fields::from_value(&json!({"include": ["properties.gsd"], "exclude": ["properties"]}))
            .unwrap()
            .apply(&mut v);
        assert_eq!(v["properties"], json!({"gsd": 10}));

        let mut v = item();
        Fields::parse("assets,-assets").unwrap().apply(&mut v);
        assert!(
            v.get("assets").is_some(),
            "a path in both lists is included"
        );

        let mut v = item();
        Fields::parse("").unwrap().apply(&mut v);
        assert_eq!(v, item());

        let mut v = item();
        Fields::from_value(&json!({"include": [], "exclude": ["geometry"]}))
            .unwrap()
            .apply(&mut v);
        assert_eq!(v["properties"], json!({"datetime": "x"}));
        assert!(v.get("geometry").is_none() && v.get("assets").is_some());
    }
}
