//! Response documents assembled from stored JSON.
//!
//! Stored items are spliced, not re-serialised: the JSON text PostgreSQL
//! returns for an item gets its links prepended, and pages are concatenations
//! of those texts. No item is parsed on the read path.

use std::fmt::Write as _;

use serde_json::Value;

use crate::links::{GEOJSON, JSON, Links};
use crate::search::fields::Fields;
use crate::store::{StoredCollection, StoredItem};

/// Append `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Append one link object, in the member order of [`crate::links::link`].
fn push_link(out: &mut String, rel: &str, media_type: &str, href: &str) {
    out.push_str("{\"rel\":");
    push_json_str(out, rel);
    out.push_str(",\"type\":");
    push_json_str(out, media_type);
    out.push_str(",\"href\":");
    push_json_str(out, href);
    out.push('}');
}

/// An item's generated links, written as text: on a page of items this
/// runs per item, and building `Value`s for it was most of the rendering.
fn item_links_text(out: &mut String, links: &Links, collection: &str, id: &str) {
    let coll = links.collection(collection);
    push_link(out, "self", GEOJSON, &links.item(collection, id));
    out.push(',');
    push_link(out, "parent", JSON, &coll);
    out.push(',');
    push_link(out, "collection", JSON, &coll);
    out.push(',');
    push_link(out, "root", JSON, &links.root());
}

/// Write `{"links":[<generated>,<stored>],` + the stored object minus its `{`.
fn splice(out: &mut String, generated: &[Value], stored_links: Option<&str>, content: &str) {
    out.push_str("{\"links\":[");
    for (i, link) in generated.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&link.to_string());
    }
    splice_rest(out, stored_links, content);
}

/// Splice an item with its generated links written as text.
fn splice_item(out: &mut String, links: &Links, stored: &StoredItem) {
    out.push_str("{\"links\":[");
    item_links_text(out, links, &stored.collection, &stored.id);
    splice_rest(out, stored.links.as_deref(), &stored.content);
}

/// The stored links and the stored object after the generated links.
fn splice_rest(out: &mut String, stored_links: Option<&str>, content: &str) {
    if let Some(extra) = stored_links.map(str::trim).filter(|s| s.len() > 2) {
        // `extra` is a JSON array: append its elements.
        out.push(',');
        out.push_str(&extra[1..extra.len() - 1]);
    }
    out.push(']');
    let body = content.trim_start().strip_prefix('{').unwrap_or(content);
    if !body.trim_start().starts_with('}') {
        out.push(',');
    }
    out.push_str(body);
}

/// One item as JSON text.
pub fn item(stored: &StoredItem, links: &Links) -> String {
    let mut out = String::with_capacity(stored.content.len() + 512);
    splice_item(&mut out, links, stored);
    out
}

/// One collection as JSON text.
pub fn collection(stored: &StoredCollection, links: &Links) -> String {
    let mut out = String::with_capacity(stored.content.len() + 512);
    splice(
        &mut out,
        &links.collection_links(&stored.id),
        stored.links.as_deref(),
        &stored.content,
    );
    out
}

/// An ItemCollection page; `members` are extra top-level members (already JSON).
pub fn item_collection(
    items: &[StoredItem],
    links: &Links,
    page_links: &[Value],
    members: &[(&str, Value)],
) -> String {
    let size: usize = items.iter().map(|i| i.content.len() + 600).sum();
    feature_collection(size, items, page_links, members, |out, stored| {
        splice_item(out, links, stored);
    })
}

/// `{"type":"FeatureCollection","features":[…],"links":[…],<members>}` with
/// each feature written by `feature`.
fn feature_collection<T>(
    size: usize,
    features: &[T],
    page_links: &[Value],
    members: &[(&str, Value)],
    feature: impl Fn(&mut String, &T),
) -> String {
    let mut out = String::with_capacity(size + 1024);
    out.push_str("{\"type\":\"FeatureCollection\",\"features\":[");
    for (n, f) in features.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        feature(&mut out, f);
    }
    out.push_str("],\"links\":");
    out.push_str(&Value::Array(page_links.to_vec()).to_string());
    for (name, value) in members {
        out.push_str(",\"");
        out.push_str(name);
        out.push_str("\":");
        out.push_str(&value.to_string());
    }
    out.push('}');
    out
}

/// An ItemCollection page with the fields extension applied to each item.
/// Items are parsed and re-serialised here, which the default path avoids.
pub fn item_collection_fields(
    items: &[StoredItem],
    links: &Links,
    page_links: &[Value],
    members: &[(&str, Value)],
    fields: &Fields,
) -> String {
    let shaped: Vec<String> = items
        .iter()
        .map(|stored| {
            let text = item(stored, links);
            match serde_json::from_str::<Value>(&text) {
                Ok(mut v) => {
                    fields.apply(&mut v);
                    v.to_string()
                }
                Err(_) => text,
            }
        })
        .collect();
    let size = shaped.iter().map(|t| t.len() + 8).sum();
    feature_collection(size, &shaped, page_links, members, |out, text| {
        out.push_str(text);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spliced_item_is_valid_json_with_links_first() {
        let stored = StoredItem {
            collection: "c".into(),
            id: "i".into(),
            datetime: chrono::DateTime::default(),
            content: r#"{"id": "i", "type": "Feature"}"#.into(),
            links: Some(r#"[{"rel": "license", "href": "http://l"}]"#.into()),
        };
        let text = item(&stored, &Links::new("http://h"));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["links"].as_array().unwrap().len(), 5);
        let generated: Vec<Value> = v["links"].as_array().unwrap()[..4].to_vec();
        assert_eq!(generated, Links::new("http://h").item_links("c", "i"));
        let mut quoted = String::new();
        push_json_str(&mut quoted, "a\"b\\c\u{1}");
        assert_eq!(
            serde_json::from_str::<String>(&quoted).unwrap(),
            "a\"b\\c\u{1}"
        );
        assert_eq!(v["id"], "i");
        let page = item_collection(
            &[stored],
            &Links::new("http://h"),
            &[],
            &[("numberReturned", 1.into())],
        );
        let v: Value = serde_json::from_str(&page).unwrap();
        assert_eq!(v["features"][0]["links"][4]["rel"], "license");
    }
}
