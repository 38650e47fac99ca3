//! STAC Collections as the catalog stores them.

use serde_json::Value;

use super::{CollectionId, keep_foreign_links};
use crate::{Error, Result};

/// Link relations the API builds for collections, and the structural links of
/// static catalogs (`item`, `child`), which mean nothing in the API: dropped.
pub(crate) const GENERATED_COLLECTION_RELS: &[&str] =
    &["self", "root", "parent", "items", "item", "child"];

/// A validated Collection, ready to be written.
#[derive(Debug, Clone)]
pub struct CollectionRecord {
    /// The collection id.
    pub id: CollectionId,
    /// The document without `links`.
    pub content: Value,
    /// Links other than the generated ones, kept as posted.
    pub links: Option<Value>,
}

impl CollectionRecord {
    /// Validate a Collection document.
    pub fn from_value(value: Value) -> Result<Self> {
        if let Some(path) = super::find_nul(&value, "") {
            return Err(Error::invalid_collection(
                path,
                "contains a NUL character, which cannot be stored",
            ));
        }
        let Value::Object(mut doc) = value else {
            return Err(Error::invalid_collection(
                "collection",
                "must be a JSON object",
            ));
        };
        match doc.get("type") {
            Some(Value::String(t)) if t == "Collection" => {}
            _ => {
                return Err(Error::invalid_collection(
                    "type",
                    "is required and must be \"Collection\"",
                ));
            }
        }
        let id = match doc.get("id") {
            Some(Value::String(id)) => {
                CollectionId::new(id.clone()).map_err(|e| Error::invalid_collection("id", e))?
            }
            _ => {
                return Err(Error::invalid_collection(
                    "id",
                    "is required and must be a string",
                ));
            }
        };
        match doc.get("arcolake:access") {
            None | Some(Value::Null) => {}
            Some(Value::String(a)) if a == "public" || a == "restricted" => {}
            Some(_) => {
                return Err(Error::invalid_collection(
                    "arcolake:access",
                    "must be \"public\" or \"restricted\"",
                ));
            }
        }
        for field in ["stac_version", "description", "license"] {
            if !matches!(doc.get(field), Some(Value::String(_))) {
                return Err(Error::invalid_collection(
                    field,
                    "is required and must be a string",
                ));
            }
        }
        let Some(Value::Object(extent)) = doc.get("extent") else {
            return Err(Error::invalid_collection(
                "extent",
                "is required and must be an object",
            ));
        };
        let bboxes = extent
            .get("spatial")
            .and_then(|s| s.get("bbox"))
            .and_then(Value::as_array);
        match bboxes {
            Some(list) if !list.is_empty() => {
                for (i, b) in list.iter().enumerate() {
                    super::geometry::validate_bbox(b).map_err(|e| {
                        Error::invalid_collection(format!("extent.spatial.bbox[{i}]"), e)
                    })?;
                }
            }
            _ => {
                return Err(Error::invalid_collection(
                    "extent.spatial.bbox",
                    "must be a non-empty array of bboxes",
                ));
            }
        }
        let intervals = extent
            .get("temporal")
            .and_then(|t| t.get("interval"))
            .and_then(Value::as_array);
        match intervals {
            Some(list) if !list.is_empty() => {
                for (i, interval) in list.iter().enumerate() {
                    let ok = interval.as_array().is_some_and(|pair| {
                        pair.len() == 2
                            && pair.iter().all(|t| {
                                t.is_null()
                                    || t.as_str().is_some_and(|s| {
                                        chrono::DateTime::parse_from_rfc3339(s).is_ok()
                                    })
                            })
                    });
                    if !ok {
                        return Err(Error::invalid_collection(
                            format!("extent.temporal.interval[{i}]"),
                            "must be a pair of RFC 3339 date-times or nulls",
                        ));
                    }
                }
            }
            _ => {
                return Err(Error::invalid_collection(
                    "extent.temporal.interval",
                    "must be a non-empty array of intervals",
                ));
            }
        }
        let links = match doc.remove("links") {
            None | Some(Value::Null) => None,
            Some(Value::Array(links)) => {
                keep_foreign_links(links, "links", GENERATED_COLLECTION_RELS)?
            }
            Some(_) => {
                return Err(Error::invalid_collection(
                    "links",
                    "must be an array of link objects",
                ));
            }
        };
        let content = Value::Object(doc);
        if let Err(e) = <stac::Collection as serde::Deserialize>::deserialize(&content) {
            return Err(Error::invalid_collection("collection", e.to_string()));
        }
        Ok(Self { id, content, links })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn collection_needs_an_extent() {
        let v = json!({"type": "Collection", "id": "c", "stac_version": "1.0.0", "description": "d", "license": "CC-BY-4.0"});
        let err = CollectionRecord::from_value(v).unwrap_err().to_string();
        assert!(err.contains("extent"), "{err}");
    }
}
