//! Absolute links, built from the public root URL of the service.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Value, json};

/// Characters escaped in a path segment (RFC 3986 `pchar` complement).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Media type of GeoJSON documents.
pub const GEOJSON: &str = "application/geo+json";
/// Media type of plain JSON documents.
pub const JSON: &str = "application/json";
/// Media type of a queryables document.
pub const SCHEMA_JSON: &str = "application/schema+json";
/// Link relation of a queryables document.
pub const QUERYABLES_REL: &str = "http://www.opengis.net/def/rel/ogc/1.0/queryables";
/// Link relation of a sortables document.
pub const SORTABLES_REL: &str = "http://www.opengis.net/def/rel/ogc/1.0/sortables";
/// The link relation of a collection's vector tilesets.
pub const TILESETS_VECTOR_REL: &str = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector";

/// Builds the service's absolute URLs from its public root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    base: String,
}

/// Percent-encode one URL path segment.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// One link object.
pub fn link(rel: &str, href: &str, media_type: &str) -> Value {
    json!({"rel": rel, "type": media_type, "href": href})
}

/// One link object with a title.
pub fn titled(rel: &str, href: &str, media_type: &str, title: &str) -> Value {
    json!({"rel": rel, "type": media_type, "href": href, "title": title})
}

impl Links {
    /// Links under `base` (`https://host/prefix`); a trailing slash is ignored.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The root URL with a trailing slash: the landing page.
    pub fn root(&self) -> String {
        format!("{}/", self.base)
    }

    /// `path` (starting with `/`) under the root.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The collections list.
    pub fn collections(&self) -> String {
        self.url("/collections")
    }

    /// One collection.
    pub fn collection(&self, id: &str) -> String {
        format!("{}/collections/{}", self.base, segment(id))
    }

    /// The items of one collection.
    pub fn items(&self, collection: &str) -> String {
        format!("{}/items", self.collection(collection))
    }

    /// One item.
    pub fn item(&self, collection: &str, id: &str) -> String {
        format!("{}/items/{}", self.collection(collection), segment(id))
    }

    /// Collection search by POST.
    pub fn collections_search(&self) -> String {
        self.url("/collections-search")
    }

    /// The search endpoint.
    pub fn search(&self) -> String {
        self.url("/search")
    }

    /// The generated links of an item, as a JSON array's elements (no brackets).
    pub fn item_links(&self, collection: &str, id: &str) -> Vec<Value> {
        let coll = self.collection(collection);
        vec![
            link("self", &self.item(collection, id), GEOJSON),
            link("parent", &coll, JSON),
            link("collection", &coll, JSON),
            link("root", &self.root(), JSON),
        ]
    }

    /// The generated links of a collection.
    pub fn collection_links(&self, id: &str) -> Vec<Value> {
        vec![
            titled("self", &self.collection(id), JSON, "This collection"),
            titled("parent", &self.root(), JSON, "Landing page"),
            titled("root", &self.root(), JSON, "Landing page"),
            titled(
                "items",
                &self.items(id),
                GEOJSON,
                "Items of this collection",
            ),
            titled(
                QUERYABLES_REL,
                &self.queryables(Some(id)),
                SCHEMA_JSON,
                "Queryables of this collection",
            ),
            titled(
                SORTABLES_REL,
                &self.sortables(Some(id)),
                SCHEMA_JSON,
                "Sortables of this collection",
            ),
            titled(
                "aggregate",
                &format!("{}/aggregate", self.collection(id)),
                JSON,
                "Aggregations over this collection's items",
            ),
            titled(
                TILESETS_VECTOR_REL,
                &format!("{}/tiles", self.collection(id)),
                JSON,
                "Vector tiles of this collection's footprints",
            ),
        ]
    }

    /// The queryables document of one collection, or of the whole catalog.
    pub fn queryables(&self, collection: Option<&str>) -> String {
        match collection {
            Some(id) => format!("{}/queryables", self.collection(id)),
            None => self.url("/queryables"),
        }
    }

    /// The sortables document of one collection, or of the whole catalog.
    pub fn sortables(&self, collection: Option<&str>) -> String {
        match collection {
            Some(id) => format!("{}/sortables", self.collection(id)),
            None => self.url("/sortables"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_absolute_and_escaped() {
        let l = Links::new("https://stac.example.org/api/");
        assert_eq!(l.root(), "https://stac.example.org/api/");
        assert_eq!(
            l.item("s2 l2a", "a/b?c"),
            "https://stac.example.org/api/collections/s2%20l2a/items/a%2Fb%3Fc"
        );
        assert_eq!(l.item_links("c", "i")[0]["rel"], "self");
    }
}
