//! A validated STAC item search, from GET query parameters or a POST body.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::page::PageToken;
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

/// A validated search. Built from [`SearchParams`] (GET) or [`SearchBody`] (POST).
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
    /// Everything else, checked for unsupported extensions.
    #[serde(flatten)]
    pub other: std::collections::HashMap<String, String>,
}

/// A search as it arrives in a POST body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchBody {
    /// 4 or 6 numbers.
    pub bbox: Option<Vec<f64>>,
    /// A GeoJSON geometry object.
    pub intersects: Option<Value>,
    /// An RFC 3339 instant or interval.
    pub datetime: Option<String>,
    /// Item ids.
    pub ids: Option<Vec<String>>,
    /// Collection ids.
    pub collections: Option<Vec<String>>,
    /// Page size.
    pub limit: Option<Value>,
    /// Page token from a `next`/`prev` link.
    pub token: Option<String>,
    /// Everything else, checked for unsupported extensions.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Extension members this server does not implement yet: refusing them is
/// better than answering as if they had been applied.
const UNSUPPORTED: &[&str] = &[
    "filter",
    "filter-lang",
    "filter-crs",
    "sortby",
    "fields",
    "query",
    "q",
];

fn refuse_unsupported<'a>(keys: impl Iterator<Item = &'a String>) -> Result<()> {
    for key in keys {
        if UNSUPPORTED.contains(&key.as_str()) {
            return Err(Error::invalid_search(format!(
                "the `{key}` parameter is not supported by this server"
            )));
        }
    }
    Ok(())
}

fn parse_limit(value: Option<&str>) -> Result<u32> {
    let Some(text) = value else {
        return Ok(DEFAULT_LIMIT);
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

fn split_list(name: &str, text: &str) -> Result<Vec<String>> {
    let list: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    check_list(name, list)
}

fn check_list(name: &str, list: Vec<String>) -> Result<Vec<String>> {
    if list.len() > MAX_LIST {
        return Err(Error::invalid_search(format!(
            "{name} names {} values; at most {MAX_LIST} are allowed",
            list.len()
        )));
    }
    Ok(list)
}

fn parse_intersects(value: &Value) -> Result<String> {
    geometry::validate(value).map_err(|e| {
        Error::invalid_search(format!("intersects is not a valid GeoJSON geometry: {e}"))
    })?;
    Ok(value.to_string())
}

impl Search {
    /// Validate GET parameters.
    pub fn from_params(p: &SearchParams) -> Result<Self> {
        refuse_unsupported(p.other.keys())?;
        let intersects = match &p.intersects {
            Some(text) => {
                let v: Value = serde_json::from_str(text)
                    .map_err(|e| Error::invalid_search(format!("intersects is not JSON: {e}")))?;
                Some(parse_intersects(&v)?)
            }
            None => None,
        };
        let search = Self {
            bbox: p
                .bbox
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(Bbox::parse)
                .transpose()?,
            intersects,
            datetime: p
                .datetime
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(Interval::parse)
                .transpose()?,
            ids: p
                .ids
                .as_deref()
                .map(|t| split_list("ids", t))
                .transpose()?
                .unwrap_or_default(),
            collections: p
                .collections
                .as_deref()
                .map(|t| split_list("collections", t))
                .transpose()?
                .unwrap_or_default(),
            limit: parse_limit(p.limit.as_deref())?,
            token: p
                .token
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(PageToken::decode)
                .transpose()?,
        };
        search.check()
    }

    /// Validate a POST body.
    pub fn from_body(b: &SearchBody) -> Result<Self> {
        refuse_unsupported(b.other.keys())?;
        let limit = match &b.limit {
            None | Some(Value::Null) => DEFAULT_LIMIT,
            Some(Value::Number(n)) => parse_limit(Some(&n.to_string()))?,
            Some(Value::String(s)) => parse_limit(Some(s))?,
            Some(other) => {
                return Err(Error::invalid_search(format!(
                    "limit must be an integer, got {other}"
                )));
            }
        };
        let search = Self {
            bbox: b.bbox.as_deref().map(Bbox::from_numbers).transpose()?,
            intersects: match &b.intersects {
                None | Some(Value::Null) => None,
                Some(v) => Some(parse_intersects(v)?),
            },
            datetime: b
                .datetime
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(Interval::parse)
                .transpose()?,
            ids: check_list("ids", b.ids.clone().unwrap_or_default())?,
            collections: check_list("collections", b.collections.clone().unwrap_or_default())?,
            limit,
            token: b
                .token
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(PageToken::decode)
                .transpose()?,
        };
        search.check()
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
    fn limit_is_clamped_and_checked() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(parse_limit(Some("1000000")).unwrap(), MAX_LIMIT);
        assert!(parse_limit(Some("0")).is_err());
        assert!(parse_limit(Some("-1")).is_err());
        assert!(parse_limit(Some("ten")).is_err());
    }
}
