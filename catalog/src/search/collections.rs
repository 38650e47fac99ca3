//! Collection search: `bbox`, `datetime`, free text `q`, CQL2 `filter`,
//! `sortby`, `fields`, `limit` and keyset paging over collections.
//!
//! A catalog holds thousands of collections at most, not millions: they are
//! matched in memory against their documents (CQL2 through the `cql2`
//! crate's evaluator), which also lets a filter name any member of a
//! collection (`license`, `keywords`, `summaries.platform`, …).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::fields::Fields;
use super::filter::Filter;
use super::members::{self, Member, Members};
use super::page::{Direction, PageToken};
use super::request::{Bbox, Interval};
use super::sort::SortBy;
use crate::{Error, Result};

/// Collections per page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 100;

/// Collection search parameters in a query string.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CollectionParams {
    /// `w,s,e,n`.
    pub bbox: Option<String>,
    /// Instant or interval.
    pub datetime: Option<String>,
    /// Free text.
    pub q: Option<String>,
    /// CQL2 filter over collection members.
    pub filter: Option<String>,
    /// `cql2-text` (default) or `cql2-json`.
    #[serde(rename = "filter-lang")]
    pub filter_lang: Option<String>,
    /// CRS84 only.
    #[serde(rename = "filter-crs")]
    pub filter_crs: Option<String>,
    /// `-title,id`.
    pub sortby: Option<String>,
    /// `id,title,-links`.
    pub fields: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Page token.
    pub token: Option<String>,
    /// Everything else, ignored.
    #[serde(flatten)]
    pub other: std::collections::HashMap<String, String>,
}

/// A validated collection search.
#[derive(Debug, Clone, Default)]
pub struct CollectionSearch {
    /// Spatial filter on the overall extent.
    pub bbox: Option<Bbox>,
    /// Temporal filter on the overall extent.
    pub datetime: Option<Interval>,
    /// Free-text alternatives.
    pub q: Vec<String>,
    /// CQL2 filter.
    pub filter: Option<Filter>,
    /// Sort keys (empty: relevance with `q`, else id).
    pub sortby: Vec<SortBy>,
    /// Fields to include or exclude.
    pub fields: Fields,
    /// Page size.
    pub limit: u32,
    /// Where the page starts.
    pub token: Option<PageToken>,
}

impl Members for CollectionParams {
    fn member(&self, name: &str) -> Option<Member<'_>> {
        let v = match name {
            "bbox" => &self.bbox,
            "datetime" => &self.datetime,
            "q" => &self.q,
            "filter" => &self.filter,
            "filter-lang" => &self.filter_lang,
            "filter-crs" => &self.filter_crs,
            "sortby" => &self.sortby,
            "fields" => &self.fields,
            "limit" => &self.limit,
            "token" => &self.token,
            _ => return None,
        };
        v.as_deref().map(Member::Text)
    }
}

impl CollectionSearch {
    /// Validate GET parameters.
    pub fn from_params(p: &CollectionParams) -> Result<Self> {
        Self::from_members(p)
    }

    /// Validate a POST body (`/collections-search`).
    pub fn from_body(b: &Map<String, Value>) -> Result<Self> {
        Self::from_members(b)
    }

    /// Validate a collection search's members, however they arrived (the
    /// parser item search uses).
    pub fn from_members(m: &impl Members) -> Result<Self> {
        let get = |name: &str| m.member(name);
        Ok(Self {
            filter: members::filter(m)?,
            bbox: members::bbox(get("bbox"))?,
            datetime: members::datetime(get("datetime"))?,
            q: members::q(get("q"))?,
            sortby: members::sortby(get("sortby"))?,
            fields: members::fields(get("fields"))?,
            limit: members::limit(get("limit"), DEFAULT_LIMIT)?,
            token: members::token(get("token"))?,
        })
    }
}

/// A collection document and its id.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The id.
    pub id: String,
    /// The document (without generated links).
    pub doc: Value,
}

/// One page of a collection search.
#[derive(Debug)]
pub struct CollectionPage {
    /// Matching collections, in order.
    pub collections: Vec<Candidate>,
    /// All matches.
    pub matched: usize,
    /// Token of the next page.
    pub next: Option<PageToken>,
    /// Token of the previous page.
    pub prev: Option<PageToken>,
}

fn overall_bbox(doc: &Value) -> Option<Bbox> {
    let b = doc.pointer("/extent/spatial/bbox/0")?.as_array()?;
    let n: Vec<f64> = b.iter().filter_map(Value::as_f64).collect();
    Bbox::from_numbers(&n).ok()
}

fn bbox_matches(query: &Bbox, doc: &Value) -> bool {
    let Some(extent) = overall_bbox(doc) else {
        return false;
    };
    query.parts().iter().any(|[w, s, e, n]| {
        extent
            .parts()
            .iter()
            .any(|[w2, s2, e2, n2]| w <= e2 && w2 <= e && s <= n2 && s2 <= n)
    })
}

fn instant(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn datetime_matches(query: &Interval, doc: &Value) -> bool {
    let Some(interval) = doc
        .pointer("/extent/temporal/interval/0")
        .and_then(Value::as_array)
    else {
        return false;
    };
    let (start, end) = (instant(interval.first()), instant(interval.get(1)));
    let ends_before = matches!((end, query.start), (Some(e), Some(s)) if e < s);
    let starts_after = matches!((start, query.end), (Some(s), Some(e)) if s > e);
    !ends_before && !starts_after
}

fn normalise(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Relevance of a collection to free-text alternatives: 0 when none
/// matches; a phrase in the title weighs 3, in keywords 2, in the
/// description 1.
pub fn relevance(q: &[String], doc: &Value) -> u32 {
    let field = |name: &str| {
        format!(
            " {} ",
            normalise(&match doc.get(name) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            })
        )
    };
    let (title, keywords, description) = (field("title"), field("keywords"), field("description"));
    q.iter()
        .map(|alt| {
            let phrase = format!(" {} ", normalise(alt));
            if phrase.trim().is_empty() {
                return 0;
            }
            u32::from(title.contains(&phrase)) * 3
                + u32::from(keywords.contains(&phrase)) * 2
                + u32::from(description.contains(&phrase))
        })
        .sum()
}

fn member<'a>(doc: &'a Value, path: &str) -> &'a Value {
    let mut v = doc;
    for part in path.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return &Value::Null,
        }
    }
    v
}

/// Order of JSON sort values: numbers, then strings, then booleans; null
/// (missing) after everything.
fn compare(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Null => 4,
            _ => 3,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

impl CollectionSearch {
    /// The sort keys used: the request's, or relevance with `q`, or id.
    fn keys(&self, c: &Candidate) -> Vec<Value> {
        let mut keys: Vec<Value> = self
            .sortby
            .iter()
            .map(|s| {
                let path = s.field.strip_prefix("properties.").unwrap_or(&s.field);
                member(&c.doc, path).clone()
            })
            .collect();
        if self.sortby.is_empty() && !self.q.is_empty() {
            keys.push(Value::from(relevance(&self.q, &c.doc)));
        }
        keys
    }

    fn order(&self, a: &[Value], a_id: &str, b: &[Value], b_id: &str) -> Ordering {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            let descending = match self.sortby.get(i) {
                Some(s) => s.descending,
                None => true, // relevance: best first
            };
            let o = compare(x, y);
            let o = if descending && !x.is_null() && !y.is_null() {
                o.reverse()
            } else {
                o
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        a_id.cmp(b_id)
    }

    /// Match, sort and page `candidates`.
    pub fn run(&self, candidates: Vec<Candidate>) -> Result<CollectionPage> {
        let mut matched: Vec<(Vec<Value>, Candidate)> = Vec::new();
        for c in candidates {
            if let Some(b) = &self.bbox
                && !bbox_matches(b, &c.doc)
            {
                continue;
            }
            if let Some(d) = &self.datetime
                && !datetime_matches(d, &c.doc)
            {
                continue;
            }
            if !self.q.is_empty() && relevance(&self.q, &c.doc) == 0 {
                continue;
            }
            if let Some(f) = &self.filter {
                let hit = f
                    .run(|e| e.clone().reduce(Some(&c.doc)).map_err(Box::new))
                    .transpose()
                    .map_err(|e| {
                        Error::invalid_search(format!("filter cannot be evaluated: {e}"))
                    })?;
                if !matches!(hit, Some(cql2::Expr::Bool(true))) {
                    continue;
                }
            }
            matched.push((self.keys(&c), c));
        }
        matched.sort_by(|(ka, a), (kb, b)| self.order(ka, &a.id, kb, &b.id));
        let total = matched.len();
        let limit = self.limit as usize;
        let (start, end) = match &self.token {
            None => (0, limit.min(total)),
            Some(t) => {
                if t.key.len() != matched.first().map_or(t.key.len(), |m| m.0.len()) {
                    return Err(Error::invalid_search(
                        "token does not belong to this search's sort order",
                    ));
                }
                let after = matched
                    .iter()
                    .position(|(k, c)| self.order(k, &c.id, &t.key, &t.id) == Ordering::Greater)
                    .unwrap_or(total);
                match t.direction {
                    Direction::Next => (after, (after + limit).min(total)),
                    Direction::Prev => {
                        let before = matched
                            .iter()
                            .position(|(k, c)| {
                                self.order(k, &c.id, &t.key, &t.id) != Ordering::Less
                            })
                            .unwrap_or(total);
                        (before.saturating_sub(limit), before)
                    }
                }
            }
        };
        let token = |i: usize, direction| {
            let (k, c) = &matched[i];
            PageToken::new(direction, k.clone(), String::new(), c.id.clone())
        };
        let next = (end < total && end > start).then(|| token(end - 1, Direction::Next));
        let prev = (start > 0 && start < total).then(|| token(start, Direction::Prev));
        let collections = matched
            .into_iter()
            .skip(start)
            .take(end - start)
            .map(|(_, c)| c)
            .collect();
        Ok(CollectionPage {
            collections,
            matched: total,
            next,
            prev,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::request::parse_q;
    use super::super::{filter, sort};
    use super::*;

    fn candidates() -> Vec<Candidate> {
        let doc = |id: &str, title: &str, kw: &[&str], w: f64, start: &str| Candidate {
            id: id.into(),
            doc: json!({"id": id, "title": title, "description": "x", "keywords": kw, "license": "CC-BY-4.0",
                "extent": {"spatial": {"bbox": [[w, 0, w + 10.0, 10]]}, "temporal": {"interval": [[start, null]]}}}),
        };
        vec![
            doc(
                "s2",
                "Sentinel-2 L2A",
                &["optical", "sentinel"],
                0.0,
                "2017-01-01T00:00:00Z",
            ),
            doc(
                "l8",
                "Landsat 8",
                &["optical", "landsat"],
                20.0,
                "2013-01-01T00:00:00Z",
            ),
            doc(
                "dem",
                "Copernicus DEM",
                &["elevation", "sentinel"],
                40.0,
                "2020-01-01T00:00:00Z",
            ),
        ]
    }

    fn ids(s: &CollectionSearch) -> Vec<String> {
        s.run(candidates())
            .unwrap()
            .collections
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    #[test]
    fn free_text_ranks_title_over_keywords() {
        let s = CollectionSearch {
            q: parse_q("sentinel").unwrap(),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(&s), ["s2", "dem"]);
        let s = CollectionSearch {
            q: parse_q("landsat,elevation").unwrap(),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(&s), ["l8", "dem"]);
    }

    #[test]
    fn bbox_datetime_filter_sort_and_paging() {
        let s = CollectionSearch {
            bbox: Some(Bbox::parse("15,0,45,5").unwrap()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(&s), ["dem", "l8"]);
        let s = CollectionSearch {
            datetime: Some(Interval::parse("../2015-01-01T00:00:00Z").unwrap()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(&s), ["l8"]);
        let s = CollectionSearch {
            filter: Some(filter::parse_text("title LIKE 'Sentinel%'").unwrap()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(&s), ["s2"]);
        let s = CollectionSearch {
            sortby: sort::parse_param("-title").unwrap(),
            limit: 2,
            ..Default::default()
        };
        let page = s.run(candidates()).unwrap();
        assert_eq!(
            page.collections
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>(),
            ["s2", "l8"]
        );
        let s2 = CollectionSearch {
            token: page.next.clone(),
            ..s.clone()
        };
        let page2 = s2.run(candidates()).unwrap();
        assert_eq!(page2.collections[0].id, "dem");
        let s3 = CollectionSearch {
            token: page2.prev.clone(),
            ..s
        };
        assert_eq!(s3.run(candidates()).unwrap().collections.len(), 2);
    }
}
