//! A validated STAC item search, from GET query parameters or a POST body,
//! both read by one parser ([`super::members`]).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::fields::Fields;
use super::filter::Filter;
use super::members::{self, Member, Members};
use super::page::PageToken;
use super::sort::SortBy;
use crate::model::geometry;
use crate::{Error, Result};

/// Items per page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 10;
/// The largest page served; larger requests are clamped to it.
pub const MAX_LIMIT: u32 = 10_000;
/// The most ids or collections one search may name.
pub const MAX_LIST: usize = 10_000;

/// A bounding box in CRS84, as `[west, south, east, north]`.
/// `west > east` means the box crosses the antimeridian.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bbox {
    /// Westernmost longitude.
    pub west: f64,
    /// Southernmost latitude.
    pub south: f64,
    /// Easternmost longitude.
    pub east: f64,
    /// Northernmost latitude.
    pub north: f64,
}

impl Bbox {
    /// Parse 4 (2D) or 6 (3D) numbers; the heights of a 3D box are ignored.
    pub fn from_numbers(n: &[f64]) -> Result<Self> {
        let (west, south, east, north) = match *n {
            [w, s, e, no] => (w, s, e, no),
            [w, s, _, e, no, _] => (w, s, e, no),
            _ => {
                return Err(Error::invalid_search(format!(
                    "bbox needs 4 or 6 numbers, got {}",
                    n.len()
                )));
            }
        };
        if n.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid_search("bbox numbers must be finite"));
        }
        if !(-90.0..=90.0).contains(&south) || !(-90.0..=90.0).contains(&north) {
            return Err(Error::invalid_search(
                "bbox latitudes must lie within [-90, 90]",
            ));
        }
        if south > north {
            return Err(Error::invalid_search("bbox south is greater than north"));
        }
        if !(-180.0..=180.0).contains(&west) || !(-180.0..=180.0).contains(&east) {
            return Err(Error::invalid_search(
                "bbox longitudes must lie within [-180, 180]",
            ));
        }
        Ok(Self {
            west,
            south,
            east,
            north,
        })
    }

    /// Parse the GET form `w,s,e,n` or `w,s,zmin,e,n,zmax`.
    pub fn parse(text: &str) -> Result<Self> {
        let numbers = text
            .split(',')
            .map(|t| t.trim().parse::<f64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                Error::invalid_search(format!(
                    "bbox {text:?} is not a comma-separated list of numbers"
                ))
            })?;
        Self::from_numbers(&numbers)
    }

    /// Whether the box covers the whole world: it then filters nothing but
    /// items without a geometry.
    pub fn covers_world(&self) -> bool {
        self.west <= -180.0 && self.east >= 180.0 && self.south <= -90.0 && self.north >= 90.0
    }

    /// The box as one or two non-crossing boxes.
    pub fn parts(&self) -> Vec<[f64; 4]> {
        if self.west > self.east {
            vec![
                [self.west, self.south, 180.0, self.north],
                [-180.0, self.south, self.east, self.north],
            ]
        } else {
            vec![[self.west, self.south, self.east, self.north]]
        }
    }
}

/// A temporal filter: an instant or an interval, either end open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// Inclusive start, `None` when open.
    pub start: Option<DateTime<Utc>>,
    /// Inclusive end, `None` when open.
    pub end: Option<DateTime<Utc>>,
}

impl Interval {
    /// Parse `t`, `a/b`, `../b`, `a/..` (an empty end counts as open).
    pub fn parse(text: &str) -> Result<Self> {
        let instant = |s: &str| -> Result<Option<DateTime<Utc>>> {
            let s = s.trim();
            if s.is_empty() || s == ".." {
                return Ok(None);
            }
            DateTime::parse_from_rfc3339(s)
                .map(|d| Some(d.with_timezone(&Utc)))
                .map_err(|e| {
                    Error::invalid_search(format!(
                        "datetime {s:?} is not an RFC 3339 date-time ({e})"
                    ))
                })
        };
        let interval = match text.split_once('/') {
            None => {
                let t = instant(text)?.ok_or_else(|| Error::invalid_search("datetime is empty"))?;
                Self {
                    start: Some(t),
                    end: Some(t),
                }
            }
            Some((a, b)) => {
                if b.contains('/') {
                    return Err(Error::invalid_search(format!(
                        "datetime {text:?} has more than one '/'"
                    )));
                }
                let interval = Self {
                    start: instant(a)?,
                    end: instant(b)?,
                };
                if interval.start.is_none() && interval.end.is_none() {
                    return Err(Error::invalid_search(
                        "datetime interval is open at both ends ('../..')",
                    ));
                }
                interval
            }
        };
        if let (Some(s), Some(e)) = (interval.start, interval.end)
            && s > e
        {
            return Err(Error::invalid_search(format!(
                "datetime {text:?} starts after it ends"
            )));
        }
        Ok(interval)
    }
}

/// A validated search. Built from [`SearchParams`] (GET) or [`SearchBody`]
/// (POST), or any other [`Members`], by one parser.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Spatial filter by box.
    pub bbox: Option<Bbox>,
    /// Spatial filter by GeoJSON geometry text.
    pub intersects: Option<String>,
    /// Temporal filter.
    pub datetime: Option<Interval>,
    /// Item ids to match (empty: any).
    pub ids: Vec<String>,
    /// Collections to search (empty: all).
    pub collections: Vec<String>,
    /// Page size, clamped to [`MAX_LIMIT`].
    pub limit: u32,
    /// Where this page starts.
    pub token: Option<PageToken>,
    /// CQL2 filter (with the query extension's conditions joined by `and`).
    pub filter: Option<Filter>,
    /// Sort keys (empty: newest first).
    pub sortby: Vec<SortBy>,
    /// Fields to include or exclude.
    pub fields: Fields,
    /// Free-text alternatives (any may match).
    pub q: Vec<String>,
    /// Count matches exactly, however many (`context=on`).
    pub exact_count: bool,
    /// The collections the caller may see (public ones only until the
    /// caller's grants are set).
    pub visibility: crate::access::Visibility,
}

/// Search parameters as they arrive in a query string.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchParams {
    /// `w,s,e,n` or `w,s,zmin,e,n,zmax`.
    pub bbox: Option<String>,
    /// A GeoJSON geometry, as JSON text.
    pub intersects: Option<String>,
    /// An RFC 3339 instant or interval.
    pub datetime: Option<String>,
    /// Comma-separated item ids.
    pub ids: Option<String>,
    /// Comma-separated collection ids.
    pub collections: Option<String>,
    /// Page size.
    pub limit: Option<String>,
    /// Page token from a `next`/`prev` link.
    pub token: Option<String>,
    /// CQL2 filter.
    pub filter: Option<String>,
    /// `cql2-text` (default) or `cql2-json`.
    #[serde(rename = "filter-lang")]
    pub filter_lang: Option<String>,
    /// CRS of the filter's geometries (CRS84 only).
    #[serde(rename = "filter-crs")]
    pub filter_crs: Option<String>,
    /// `-datetime,+eo:cloud_cover`.
    pub sortby: Option<String>,
    /// `id,-geometry,properties.eo:cloud_cover`.
    pub fields: Option<String>,
    /// Query extension object, as JSON text.
    pub query: Option<String>,
    /// Free text.
    pub q: Option<String>,
    /// `on` asks for an exact `numberMatched`.
    pub context: Option<String>,
    /// Everything else, ignored.
    #[serde(flatten)]
    pub other: std::collections::HashMap<String, String>,
}

impl Members for SearchParams {
    fn member(&self, name: &str) -> Option<Member<'_>> {
        let v = match name {
            "bbox" => &self.bbox,
            "intersects" => &self.intersects,
            "datetime" => &self.datetime,
            "ids" => &self.ids,
            "collections" => &self.collections,
            "limit" => &self.limit,
            "token" => &self.token,
            "filter" => &self.filter,
            "filter-lang" => &self.filter_lang,
            "filter-crs" => &self.filter_crs,
            "sortby" => &self.sortby,
            "fields" => &self.fields,
            "query" => &self.query,
            "q" => &self.q,
            "context" => &self.context,
            _ => return None,
        };
        v.as_deref().map(Member::Text)
    }
}

/// A search as it arrives in a POST body: members are kept as JSON and
/// read by the same parser as query parameters.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchBody {
    /// 4 or 6 numbers.
    pub bbox: Option<Value>,
    /// A GeoJSON geometry object.
    pub intersects: Option<Value>,
    /// An RFC 3339 instant or interval.
    pub datetime: Option<Value>,
    /// Item ids: an array of strings.
    pub ids: Option<Value>,
    /// Collection ids: an array of strings.
    pub collections: Option<Value>,
    /// Page size.
    pub limit: Option<Value>,
    /// Page token from a `next`/`prev` link.
    pub token: Option<Value>,
    /// CQL2 filter: a cql2-json object, or cql2-text as a string.
    pub filter: Option<Value>,
    /// `cql2-json` (default) or `cql2-text`.
    #[serde(rename = "filter-lang")]
    pub filter_lang: Option<Value>,
    /// CRS of the filter's geometries (CRS84 only).
    #[serde(rename = "filter-crs")]
    pub filter_crs: Option<Value>,
    /// `[{"field": …, "direction": "asc"|"desc"}]`.
    pub sortby: Option<Value>,
    /// `{"include": […], "exclude": […]}`; present but null is an error.
    #[serde(default, deserialize_with = "present")]
    pub fields: Option<Value>,
    /// Query extension object.
    pub query: Option<Value>,
    /// Free text: a string or a list of alternatives.
    pub q: Option<Value>,
    /// `"on"` (or `true`) asks for an exact `numberMatched`.
    pub context: Option<Value>,
    /// Everything else, ignored.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Members for SearchBody {
    fn member(&self, name: &str) -> Option<Member<'_>> {
        let v = match name {
            "bbox" => &self.bbox,
            "intersects" => &self.intersects,
            "datetime" => &self.datetime,
            "ids" => &self.ids,
            "collections" => &self.collections,
            "limit" => &self.limit,
            "token" => &self.token,
            "filter" => &self.filter,
            "filter-lang" => &self.filter_lang,
            "filter-crs" => &self.filter_crs,
            "sortby" => &self.sortby,
            "fields" => &self.fields,
            "query" => &self.query,
            "q" => &self.q,
            "context" => &self.context,
            _ => return None,
        };
        v.as_ref().map(Member::Json)
    }
}

/// Keep an explicit `null` as `Some(Value::Null)`, apart from absence.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The longest free-text query accepted.
const MAX_Q: usize = 4_096;

/// Free-text alternatives from the GET form: commas separate alternatives
/// (any may match); words within one must all appear, in order. Double
/// quotes keep commas inside a phrase.
pub fn parse_q(text: &str) -> Result<Vec<String>> {
    if text.len() > MAX_Q {
        return Err(Error::invalid_search(format!(
            "q is {} bytes long; at most {MAX_Q} are allowed",
            text.len()
        )));
    }
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    Ok(out
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

/// Free-text alternatives from a POST member: a string or a list of them.
pub(crate) fn q_from_value(v: &Value) -> Result<Vec<String>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => parse_q(s),
        Value::Array(items) => {
            let mut out = Vec::new();
            for i in items {
                let s = i.as_str().ok_or_else(|| {
                    Error::invalid_search("q must be a string or a list of strings")
                })?;
                out.extend(parse_q(s)?);
            }
            Ok(out)
        }
        _ => Err(Error::invalid_search(
            "q must be a string or a list of strings",
        )),
    }
}

/// AND a query-extension condition into a filter.
fn with_query(filter: Option<Filter>, query: Option<cql2::Expr>) -> Option<Filter> {
    match (filter, query) {
        (filter, None) => filter,
        (None, Some(extra)) => Some(Filter::from_expr(extra)),
        (Some(f), Some(extra)) => Some(f.and(extra)),
    }
}

/// A `limit` value: `default` when absent, at least 1, clamped to
/// [`MAX_LIMIT`].
pub(crate) fn parse_limit_or(value: Option<&str>, default: u32) -> Result<u32> {
    let Some(text) = value else {
        return Ok(default);
    };
    let n: i64 = text
        .trim()
        .parse()
        .map_err(|_| Error::invalid_search(format!("limit {text:?} is not an integer")))?;
    if n < 1 {
        return Err(Error::invalid_search(format!(
            "limit must be at least 1, got {n}"
        )));
    }
    Ok(u32::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT))
}

pub(crate) fn split_list(name: &str, text: &str) -> Result<Vec<String>> {
    let list: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    check_list(name, list)
}

pub(crate) fn check_list(name: &str, list: Vec<String>) -> Result<Vec<String>> {
    if list.len() > MAX_LIST {
        return Err(Error::invalid_search(format!(
            "{name} names {} values; at most {MAX_LIST} are allowed",
            list.len()
        )));
    }
    Ok(list)
}

pub(crate) fn parse_intersects(value: &Value) -> Result<String> {
    geometry::validate(value).map_err(|e| {
        Error::invalid_search(format!("intersects is not a valid GeoJSON geometry: {e}"))
    })?;
    Ok(value.to_string())
}

impl Search {
    /// Validate GET parameters.
    pub fn from_params(p: &SearchParams) -> Result<Self> {
        Self::from_members(p)
    }

    /// Validate a POST body.
    pub fn from_body(b: &SearchBody) -> Result<Self> {
        Self::from_members(b)
    }

    /// Validate a search's members, however they arrived.
    pub fn from_members(m: &impl Members) -> Result<Self> {
        let get = |name: &str| m.member(name);
        let filter = members::filter(m)?;
        let search = Self {
            bbox: members::bbox(get("bbox"))?,
            intersects: members::intersects(get("intersects"))?,
            datetime: members::datetime(get("datetime"))?,
            ids: members::list("ids", get("ids"))?,
            collections: members::list("collections", get("collections"))?,
            limit: members::limit(get("limit"), DEFAULT_LIMIT)?,
            token: members::token(get("token"))?,
            filter: with_query(filter, members::query(get("query"))?),
            sortby: members::sortby(get("sortby"))?,
            fields: members::fields(get("fields"))?,
            q: members::q(get("q"))?,
            exact_count: members::context(get("context")),
            visibility: crate::access::Visibility::public(),
        };
        search.check()
    }

    /// A fingerprint of what decides the matches and their order (not the
    /// page size, the fields or the count mode), carried by page tokens so a
    /// token is only honoured by the search it came from.
    pub fn fingerprint(&self) -> u64 {
        super::page::fnv1a("search", self.fingerprint_text().as_bytes())
    }

    /// The text the fingerprint hashes: everything that decides which
    /// items match and in which order, and who asks (for keys that must
    /// not collide, such as cached tiles, hash this with a strong digest).
    pub fn fingerprint_text(&self) -> String {
        let filter = self
            .filter
            .as_ref()
            .and_then(|f| f.run(|e| format!("{e:?}")))
            .unwrap_or_default();
        format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{filter}",
            self.visibility,
            self.collections,
            self.ids,
            self.bbox,
            self.intersects,
            self.datetime,
            self.q,
            self.sortby,
        )
    }

    fn check(self) -> Result<Self> {
        if self.bbox.is_some() && self.intersects.is_some() {
            return Err(Error::invalid_search(
                "bbox and intersects cannot both be given",
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_forms() {
        let i = Interval::parse("2020-01-01T00:00:00Z").unwrap();
        assert_eq!(i.start, i.end);
        assert!(
            Interval::parse("../2020-01-01T00:00:00Z")
                .unwrap()
                .start
                .is_none()
        );
        assert!(
            Interval::parse("2020-01-01T00:00:00Z/..")
                .unwrap()
                .end
                .is_none()
        );
        assert!(
            Interval::parse("2020-01-01T00:00:00Z/")
                .unwrap()
                .end
                .is_none()
        );
        assert!(Interval::parse("../..").is_err());
        assert!(Interval::parse("2021-01-01T00:00:00Z/2020-01-01T00:00:00Z").is_err());
        assert!(Interval::parse("yesterday").is_err());
    }

    #[test]
    fn bbox_forms() {
        assert_eq!(Bbox::parse("1,2,3,4").unwrap().parts().len(), 1);
        let b = Bbox::parse("1,2,0,3,4,100").unwrap();
        assert_eq!((b.west, b.south, b.east, b.north), (1.0, 2.0, 3.0, 4.0));
        assert_eq!(Bbox::parse("170,-10,-170,10").unwrap().parts().len(), 2);
        assert!(Bbox::parse("1,2,3").is_err());
        assert!(Bbox::parse("0,10,1,5").is_err());
        assert!(Bbox::parse("a,b,c,d").is_err());
    }

    #[test]
    fn post_lists_are_arrays_or_comma_separated_strings() {
        for member in ["ids", "collections"] {
            let body: SearchBody =
                serde_json::from_value(serde_json::json!({ member: "a,b" })).unwrap();
            let s = Search::from_body(&body).unwrap();
            let got = if member == "ids" {
                &s.ids
            } else {
                &s.collections
            };
            assert_eq!(got, &["a", "b"]);
            let body: SearchBody =
                serde_json::from_value(serde_json::json!({ member: 5 })).unwrap();
            let e = Search::from_body(&body).unwrap_err().to_string();
            assert!(e.contains(member) && e.contains("array"), "{e}");
            let body: SearchBody =
                serde_json::from_value(serde_json::json!({ member: ["a", "b"] })).unwrap();
            assert!(Search::from_body(&body).is_ok());
        }
    }

    #[test]
    fn fingerprints_follow_what_decides_the_matches() {
        let get = |q: &str| {
            let p: SearchParams = serde_urlencoded_like(q);
            Search::from_params(&p).unwrap().fingerprint()
        };
        assert_eq!(get("collections=a&limit=5"), get("collections=a&limit=9"));
        assert_eq!(get("filter=gsd=1&fields=id"), get("filter=gsd=1"));
        assert_ne!(get("collections=a"), get("collections=b"));
        assert_ne!(get("filter=gsd=1"), get("filter=gsd=2"));
        assert_ne!(get("sortby=gsd"), get("sortby=-gsd"));
    }

    fn serde_urlencoded_like(q: &str) -> SearchParams {
        let map: serde_json::Map<String, Value> = q
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect();
        serde_json::from_value(Value::Object(map)).unwrap()
    }

    #[test]
    fn limit_is_clamped_and_checked() {
        let parse_limit = |v| parse_limit_or(v, DEFAULT_LIMIT);
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(parse_limit(Some("1000000")).unwrap(), MAX_LIMIT);
        assert!(parse_limit(Some("0")).is_err());
        assert!(parse_limit(Some("-1")).is_err());
        assert!(parse_limit(Some("ten")).is_err());
    }
}
