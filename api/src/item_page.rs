//! ItemCollection pages of items and searches, with their paging links.

use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::Response;
use catalog::links::{Links, link};
use catalog::search::PageToken;
use catalog::search::fields::Fields;
use catalog::store::ItemPage;
use serde_json::{Value, json};

use crate::response::{GEOJSON, JSON, json_text};

/// How a client asked for this page, so paging links can ask the same way.
pub enum Origin<'a> {
    /// A GET to `href` with the query string in `uri`.
    Get { href: String, uri: &'a Uri },
    /// A POST of `body` to `href`.
    Post { href: String, body: &'a Value },
}

fn get_href(href: &str, uri: &Uri, token: Option<&PageToken>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(q) = uri.query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if k != "token" {
                query.append_pair(&k, &v);
            }
        }
    }
    if let Some(t) = token {
        query.append_pair("token", &t.encode());
    }
    let query = query.finish();
    if query.is_empty() {
        href.to_owned()
    } else {
        format!("{href}?{query}")
    }
}

/// A `next` or `prev` link asking the way the client asked.
pub fn paging_link(rel: &str, origin: &Origin<'_>, token: &PageToken, media_type: &str) -> Value {
    match origin {
        Origin::Get { href, uri } => link(rel, &get_href(href, uri, Some(token)), media_type),
        Origin::Post { href, body } => {
            let mut body = (*body).clone();
            if let Value::Object(map) = &mut body {
                map.insert("token".into(), Value::String(token.encode()));
            }
            json!({"rel": rel, "type": media_type, "href": href, "method": "POST", "body": body})
        }
    }
}

/// The `first` link of a page: the same request without a token.
pub fn first_link(origin: &Origin<'_>, media_type: &str) -> Value {
    match origin {
        Origin::Get { href, uri } => link("first", &get_href(href, uri, None), media_type),
        Origin::Post { href, body } => {
            let mut body = (*body).clone();
            if let Value::Object(map) = &mut body {
                map.remove("token");
            }
            json!({"rel": "first", "type": media_type, "href": href, "method": "POST", "body": body})
        }
    }
}

/// The `self` link of a page.
pub fn self_link(origin: &Origin<'_>, media_type: &str) -> Value {
    match origin {
        Origin::Get { href, uri } => {
            let href = match uri.query().filter(|q| !q.is_empty()) {
                Some(q) => format!("{href}?{q}"),
                None => href.clone(),
            };
            link("self", &href, media_type)
        }
        Origin::Post { href, .. } => link("self", href, media_type),
    }
}

/// Render a page; `context` links (root, parent, collection) go after `self`,
/// then `first` (on pages after the first), `next` and `prev`.
/// `numberMatched` is on every page: the first page's count, carried by the
/// tokens.
pub fn render(
    page: &ItemPage,
    links: &Links,
    origin: &Origin<'_>,
    context: Vec<Value>,
    fields: &Fields,
) -> Response {
    let mut page_links = vec![
        self_link(origin, GEOJSON),
        link("root", &links.root(), JSON),
    ];
    page_links.extend(context);
    // Pages after the first link back to it (the first page is its own
    // `self`; a POST link repeats the body, which may be large).
    if page.prev.is_some() {
        page_links.push(first_link(origin, GEOJSON));
    }
    if let Some(t) = &page.next {
        page_links.push(paging_link("next", origin, t, GEOJSON));
    }
    if let Some(t) = &page.prev {
        page_links.push(paging_link("prev", origin, t, GEOJSON));
    }
    let mut members: Vec<(&str, Value)> = vec![("numberReturned", page.items.len().into())];
    if let Some(count) = page.matched {
        members.push(("numberMatched", count.value.into()));
        if !count.exact {
            members.push(("numberMatchedIsEstimate", true.into()));
        }
    }
    let body = if fields.is_default() {
        catalog::document::item_collection(&page.items, links, &page_links, &members)
    } else {
        catalog::document::item_collection_fields(&page.items, links, &page_links, &members, fields)
    };
    json_text(StatusCode::OK, GEOJSON, body)
}
