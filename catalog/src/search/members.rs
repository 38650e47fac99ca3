//! One reading of a search's members, however they arrive: as query
//! parameters (text: lists comma-separated, JSON members as JSON text) or as
//! members of a POST body (JSON). Item search, item lists, aggregation and
//! collection search all read their members here, so a member means the same
//! and is refused in the same words whichever way it is sent.
//!
//! An empty query parameter and a JSON `null` count as absent, except for
//! `fields`, where a `null` is refused (it is more often a bug than a wish
//! for the default).

use cql2::Expr;
use serde_json::{Map, Value};

use super::fields::Fields;
use super::filter::{self, Filter};
use super::page::PageToken;
use super::request::{
    Bbox, Interval, check_list, parse_intersects, parse_limit_or, parse_q, q_from_value, split_list,
};
use super::sort::{self, SortBy};
use crate::{Error, Result};

/// One member of a search request, as it arrived.
#[derive(Debug, Clone, Copy)]
pub enum Member<'a> {
    /// A query parameter's text.
    Text(&'a str),
    /// A member of a POST body.
    Json(&'a Value),
}

/// The members of one search request.
pub trait Members {
    /// The member called `name` (as the STAC API spells it), if given.
    fn member(&self, name: &str) -> Option<Member<'_>>;
}

impl Members for Map<String, Value> {
    fn member(&self, name: &str) -> Option<Member<'_>> {
        self.get(name).map(Member::Json)
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::invalid_search(reason)
}

/// `None` for an absent member, an empty query parameter or a JSON `null`.
fn given(m: Option<Member<'_>>) -> Option<Member<'_>> {
    match m {
        Some(Member::Text(t)) if t.trim().is_empty() => None,
        Some(Member::Json(Value::Null)) | None => None,
        other => other,
    }
}

/// A member that is a string either way (`datetime`, `token`,
/// `filter-lang`); an empty string counts as absent.
pub fn text<'a>(name: &str, m: Option<Member<'a>>) -> Result<Option<&'a str>> {
    match given(m) {
        None => Ok(None),
        Some(Member::Text(t)) => Ok(Some(t)),
        Some(Member::Json(Value::String(s))) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
        Some(Member::Json(other)) => Err(invalid(format!("{name} must be a string, got {other}"))),
    }
}

/// `bbox`: `w,s,e,n` (or 6 numbers) in a query string, an array of numbers
/// in a body.
pub fn bbox(m: Option<Member<'_>>) -> Result<Option<Bbox>> {
    match given(m) {
        None => Ok(None),
        Some(Member::Text(t)) => Bbox::parse(t).map(Some),
        Some(Member::Json(Value::Array(items))) => {
            let numbers = items
                .iter()
                .map(|v| {
                    v.as_f64()
                        .ok_or_else(|| invalid(format!("bbox must list numbers, got {v}")))
                })
                .collect::<Result<Vec<_>>>()?;
            Bbox::from_numbers(&numbers).map(Some)
        }
        Some(Member::Json(other)) => Err(invalid(format!(
            "bbox must be an array of 4 or 6 numbers, got {other}"
        ))),
    }
}

/// `intersects`: a GeoJSON geometry, as JSON text in a query string.
pub fn intersects(m: Option<Member<'_>>) -> Result<Option<String>> {
    match given(m) {
        None => Ok(None),
        Some(Member::Text(t)) => {
            let v: Value = serde_json::from_str(t)
                .map_err(|e| invalid(format!("intersects is not JSON: {e}")))?;
            parse_intersects(&v).map(Some)
        }
        Some(Member::Json(v)) => parse_intersects(v).map(Some),
    }
}

/// `datetime`: an instant or an interval.
pub fn datetime(m: Option<Member<'_>>) -> Result<Option<Interval>> {
    text("datetime", m)?.map(Interval::parse).transpose()
}

/// `ids`, `collections`: comma-separated in a query string, an array of
/// strings in a body. A string in a body is read as the query-string form
/// (comma-separated), a documented leniency: the ecosystem's own
/// conformance validator sends `"collections": "<id>"`, and refusing it
/// would fail the clients built the same way. Any other type is a 400
/// naming the field.
pub fn list(name: &str, m: Option<Member<'_>>) -> Result<Vec<String>> {
    match given(m) {
        None => Ok(Vec::new()),
        Some(Member::Text(t)) => split_list(name, t),
        Some(Member::Json(Value::String(t))) => split_list(name, t),
        Some(Member::Json(Value::Array(items))) => check_list(
            name,
            items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid(format!("{name} must list strings, got {i}")))
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(Member::Json(other)) => Err(invalid(format!(
            "{name} must be an array of strings, got {other}"
        ))),
    }
}

/// `limit`: `default` when absent.
pub fn limit(m: Option<Member<'_>>, default: u32) -> Result<u32> {
    match given(m) {
        None => Ok(default),
        Some(Member::Text(t)) => parse_limit_or(Some(t), default),
        Some(Member::Json(Value::Number(n))) => parse_limit_or(Some(&n.to_string()), default),
        Some(Member::Json(Value::String(s))) => parse_limit_or(Some(s), default),
        Some(Member::Json(other)) => Err(invalid(format!("limit must be an integer, got {other}"))),
    }
}

/// `token`: from a `next` or `prev` link.
pub fn token(m: Option<Member<'_>>) -> Result<Option<PageToken>> {
    text("token", m)?.map(PageToken::decode).transpose()
}

/// `filter` with `filter-lang` and `filter-crs`. Its language defaults to
/// cql2-text in a query string and to cql2-json in a body, where a string
/// filter is read as cql2-text.
pub fn filter(members: &impl Members) -> Result<Option<Filter>> {
    filter::check_crs(text("filter-crs", members.member("filter-crs"))?)?;
    let lang = text("filter-lang", members.member("filter-lang"))?;
    match given(members.member("filter")) {
        None => Ok(None),
        Some(Member::Text(t)) => filter::parse_param(t, lang).map(Some),
        Some(Member::Json(v)) => filter::parse_member(v.clone(), lang).map(Some),
    }
}

/// `query` (the query extension), as a CQL2 expression; JSON text in a
/// query string.
pub fn query(m: Option<Member<'_>>) -> Result<Option<Expr>> {
    match given(m) {
        None => Ok(None),
        Some(Member::Text(t)) => {
            let v: Value =
                serde_json::from_str(t).map_err(|e| invalid(format!("query is not JSON: {e}")))?;
            super::query::to_cql2(&v).map(Some)
        }
        Some(Member::Json(v)) => super::query::to_cql2(v).map(Some),
    }
}

/// `sortby`: `-datetime,+id` in a query string, a list of
/// `{"field", "direction"}` in a body.
pub fn sortby(m: Option<Member<'_>>) -> Result<Vec<SortBy>> {
    match given(m) {
        None => Ok(Vec::new()),
        Some(Member::Text(t)) => sort::parse_param(t),
        Some(Member::Json(v)) => sort::parse_value(v),
    }
}

/// `fields`: `id,-geometry` in a query string, `{"include", "exclude"}` in
/// a body, where `null` is refused.
pub fn fields(m: Option<Member<'_>>) -> Result<Fields> {
    match m {
        None => Ok(Fields::default()),
        Some(Member::Json(Value::Null)) => Err(invalid(
            "fields is null; send an object with include and exclude lists, or leave it out",
        )),
        Some(Member::Text(t)) => Fields::parse(t),
        Some(Member::Json(v)) => Fields::from_value(v),
    }
}

/// `q`: free-text alternatives, comma-separated in a query string, a string
/// or a list of strings in a body.
pub fn q(m: Option<Member<'_>>) -> Result<Vec<String>> {
    match given(m) {
        None => Ok(Vec::new()),
        Some(Member::Text(t)) => parse_q(t),
        Some(Member::Json(v)) => q_from_value(v),
    }
}

/// `context`: `on` (or `true`) asks for an exact `numberMatched`.
pub fn context(m: Option<Member<'_>>) -> bool {
    let on = |s: &str| matches!(s.trim(), "on" | "true" | "exact");
    match given(m) {
        Some(Member::Text(t)) => on(t),
        Some(Member::Json(Value::String(t))) => on(t),
        Some(Member::Json(Value::Bool(b))) => *b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_member_reads_the_same_from_text_and_json() {
        let text = |t: &'static str| Some(Member::Text(t));
        let body = json!({"bbox": [1, 2, 3, 4], "ids": ["a", "b"], "limit": 5, "datetime": "",
            "q": ["x", "y"], "sortby": [{"field": "id", "direction": "desc"}], "context": true});
        let j = |name: &str| body.get(name).map(Member::Json);
        assert_eq!(bbox(text("1,2,3,4")).unwrap(), bbox(j("bbox")).unwrap());
        assert_eq!(
            list("ids", text("a,b")).unwrap(),
            list("ids", j("ids")).unwrap()
        );
        assert_eq!(
            limit(text("5"), 10).unwrap(),
            limit(j("limit"), 10).unwrap()
        );
        assert_eq!(limit(text(""), 10).unwrap(), 10);
        assert!(datetime(j("datetime")).unwrap().is_none());
        assert_eq!(q(text("x,y")).unwrap(), q(j("q")).unwrap());
        assert_eq!(sortby(text("-id")).unwrap(), sortby(j("sortby")).unwrap());
        assert_eq!(context(text("on")), context(j("context")));
        assert_eq!(
            list("ids", Some(Member::Json(&json!("a,b")))).unwrap(),
            list("ids", text("a,b")).unwrap()
        );
        assert!(list("ids", Some(Member::Json(&json!(7)))).is_err());
        assert!(bbox(Some(Member::Json(&json!("1,2,3,4")))).is_err());
        assert!(fields(Some(Member::Json(&Value::Null))).is_err());
        assert!(fields(text("")).unwrap().is_default());
    }
}
