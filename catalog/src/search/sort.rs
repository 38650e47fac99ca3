//! The sort extension and the keyset conditions that page through any sort.
//!
//! Every sort is made total by `(collection, id)` as the tie-break, in the
//! direction of the first key. A property key may be missing on some items:
//! it sorts as `(value IS NULL, value)`, so missing values come after all
//! others ascending and before them descending (PostgreSQL's own order of
//! NULL), and no comparison in a keyset condition ever meets a NULL. When
//! every key runs the same way the condition is one row comparison, which a
//! btree index over the same expressions answers as a range scan; mixed
//! directions expand into the lexicographic OR form.

use chrono::DateTime;
use serde_json::Value as Json;

use super::filter::property_accessor;
use super::page::{Direction, PageToken};
use super::queryables::{Column, Kind, Queryables};
use super::sql::{Sql, Value};
use crate::{Error, Result};

/// The most sort keys one request may give.
const MAX_KEYS: usize = 16;

/// One requested sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortBy {
    /// The queryable sorted on.
    pub field: String,
    /// `true` for descending.
    pub descending: bool,
}

/// Parse the GET form: `-datetime,+eo:cloud_cover,id` (no sign: ascending).
pub fn parse_param(text: &str) -> Result<Vec<SortBy>> {
    let keys: Vec<SortBy> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (descending, field) = match p.as_bytes()[0] {
                b'-' => (true, &p[1..]),
                b'+' => (false, &p[1..]),
                _ => (false, p),
            };
            SortBy {
                field: field.trim().to_owned(),
                descending,
            }
        })
        .collect();
    check(keys)
}

/// Parse the POST form: `[{"field": "datetime", "direction": "desc"}]`
/// (a GET-style string is accepted too).
pub fn parse_value(value: &Json) -> Result<Vec<SortBy>> {
    match value {
        Json::Null => Ok(Vec::new()),
        Json::String(s) => parse_param(s),
        Json::Array(items) => {
            let keys = items
                .iter()
                .map(|i| {
                    let field = i.get("field").and_then(Json::as_str).ok_or_else(|| {
                        Error::invalid_search("each sortby entry needs a \"field\" string")
                    })?;
                    let descending = match i.get("direction").and_then(Json::as_str) {
                        None | Some("asc" | "ASC") => false,
                        Some("desc" | "DESC") => true,
                        Some(other) => {
                            return Err(Error::invalid_search(format!(
                                "sortby direction {other:?} is neither \"asc\" nor \"desc\""
                            )));
                        }
                    };
                    Ok(SortBy {
                        field: field.to_owned(),
                        descending,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            check(keys)
        }
        _ => Err(Error::invalid_search(
            "sortby must be an array of {\"field\", \"direction\"} objects",
        )),
    }
}

fn check(keys: Vec<SortBy>) -> Result<Vec<SortBy>> {
    if keys.len() > MAX_KEYS {
        return Err(Error::invalid_search(format!(
            "sortby has {} keys; at most {MAX_KEYS} are allowed",
            keys.len()
        )));
    }
    if keys.iter().any(|k| k.field.is_empty()) {
        return Err(Error::invalid_search("sortby names an empty field"));
    }
    Ok(keys)
}

/// One column of a resolved sort: an expression, its type, its direction.
#[derive(Debug, Clone)]
struct Key {
    sql: String,
    kind: Kind,
    descending: bool,
    nullable: bool,
}

/// A sort resolved against the queryables: keys, then the tie-break.
#[derive(Debug, Clone)]
pub struct SortPlan {
    keys: Vec<Key>,
    tiebreak_descending: bool,
}

impl SortPlan {
    /// The default sort: newest first.
    pub fn default_order() -> Self {
        Self {
            keys: vec![Key {
                sql: "datetime".into(),
                kind: Kind::Timestamp,
                descending: true,
                nullable: false,
            }],
            tiebreak_descending: true,
        }
    }

    /// Resolve `sortby` (empty: the default sort).
    pub fn resolve(sortby: &[SortBy], queryables: &Queryables) -> Result<Self> {
        if sortby.is_empty() {
            return Ok(Self::default_order());
        }
        let mut keys = Vec::new();
        for s in sortby {
            let q = queryables.get(&s.field).ok_or_else(|| {
                Error::invalid_search(format!(
                    "cannot sort by {}: it is not a queryable of this catalog; see /sortables",
                    s.field
                ))
            })?;
            if !q.sortable_kind() {
                return Err(Error::invalid_search(format!(
                    "cannot sort by {}: it holds {} values",
                    s.field,
                    q.kind.as_str()
                )));
            }
            let (sql, nullable) = match q.column {
                Column::Real(col) => (col.to_owned(), false),
                Column::Property => {
                    let accessor = property_accessor(Queryables::canonical(&s.field), q.kind);
                    if !q.sortable(&s.field) {
                        return Err(Error::invalid_search(format!(
                            "cannot sort by {}: its name has characters sorting does not support",
                            s.field
                        )));
                    }
                    (accessor.debug_text(), true)
                }
            };
            if keys.iter().any(|k: &Key| k.sql == sql) {
                continue;
            }
            keys.push(Key {
                sql,
                kind: q.kind,
                descending: s.descending,
                nullable,
            });
        }
        let tiebreak_descending = keys.first().is_some_and(|k| k.descending);
        Ok(Self {
            keys,
            tiebreak_descending,
        })
    }

    /// The SQL building the page token's key values: a JSON array.
    pub fn key_columns(&self) -> String {
        let parts: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("to_jsonb({})", k.sql))
            .collect();
        format!("jsonb_build_array({})", parts.join(", "))
    }

    /// Sort atoms in order: each nullable key as its null flag and value.
    fn atoms(&self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for k in &self.keys {
            if k.nullable {
                out.push((format!("({} IS NULL)", k.sql), k.descending));
            }
            out.push((k.sql.clone(), k.descending));
        }
        out.push(("collection".into(), self.tiebreak_descending));
        out.push(("id".into(), self.tiebreak_descending));
        out
    }

    /// `ORDER BY` for reading in `direction`.
    pub fn order_by(&self, direction: Direction) -> String {
        let parts: Vec<String> = self
            .atoms()
            .into_iter()
            .map(|(sql, desc)| {
                let desc = desc != (direction == Direction::Prev);
                format!("{sql} {}", if desc { "DESC" } else { "ASC" })
            })
            .collect();
        format!(" ORDER BY {}", parts.join(", "))
    }

    /// The condition selecting rows after (or, for `Prev`, before) the
    /// token's boundary item in this order.
    pub fn after(&self, token: &PageToken) -> Result<Sql> {
        let wrong = || Error::invalid_search("token does not belong to this search's sort order");
        if token.key.len() != self.keys.len() {
            return Err(wrong());
        }
        // (expression, descending, boundary value) in order.
        let mut atoms: Vec<(String, bool, Sql)> = Vec::new();
        for (k, v) in self.keys.iter().zip(&token.key) {
            let is_null = v.is_null();
            if k.nullable {
                atoms.push((
                    format!("({} IS NULL)", k.sql),
                    k.descending,
                    Sql::bind(Value::Bool(is_null)),
                ));
            } else if is_null {
                return Err(wrong());
            }
            if !is_null {
                atoms.push((
                    k.sql.clone(),
                    k.descending,
                    Sql::bind(bound_value(k.kind, v).ok_or_else(wrong)?),
                ));
            }
        }
        atoms.push((
            "collection".into(),
            self.tiebreak_descending,
            Sql::bind(Value::Text(token.collection.clone())),
        ));
        atoms.push((
            "id".into(),
            self.tiebreak_descending,
            Sql::bind(Value::Text(token.id.clone())),
        ));
        let prev = token.direction == Direction::Prev;
        let op = |desc: bool| if desc == prev { " > " } else { " < " };
        let first = atoms[0].1;
        if atoms.iter().all(|a| a.1 == first) {
            let mut s = Sql::text(" AND (");
            s.push(
                atoms
                    .iter()
                    .map(|a| a.0.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            s.push(")").push(op(first)).push("(");
            s.push_sql(Sql::join(atoms.into_iter().map(|a| a.2), ", "));
            s.push(")");
            return Ok(s);
        }
        let mut ors = Vec::new();
        for i in 0..atoms.len() {
            let mut conj = Vec::new();
            for a in &atoms[..i] {
                let mut e = Sql::text(a.0.clone());
                e.push(" = ").push_sql(a.2.clone());
                conj.push(e);
            }
            let mut last = Sql::text(atoms[i].0.clone());
            last.push(op(atoms[i].1)).push_sql(atoms[i].2.clone());
            conj.push(last);
            ors.push(Sql::join(conj, " AND ").wrapped());
        }
        let mut s = Sql::text(" AND ");
        s.push_sql(Sql::join(ors, " OR ").wrapped());
        Ok(s)
    }
}

/// A token's key value as a bind of the key's type.
fn bound_value(kind: Kind, v: &Json) -> Option<Value> {
    Some(match (kind, v) {
        (Kind::Number, Json::Number(n)) => Value::Number(n.as_f64()?),
        (Kind::Text, Json::String(s)) => Value::Text(s.clone()),
        (Kind::Timestamp, Json::String(s)) => {
            Value::Timestamp(DateTime::parse_from_rfc3339(s).ok()?.to_utc())
        }
        (Kind::Bool, Json::Bool(b)) => Value::Bool(*b),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn plan(text: &str) -> SortPlan {
        let mut seen = BTreeMap::new();
        seen.insert("eo:cloud_cover".to_owned(), vec![Kind::Number]);
        SortPlan::resolve(&parse_param(text).unwrap(), &Queryables::from_seen(&seen)).unwrap()
    }

    fn token(key: Vec<Json>) -> PageToken {
        PageToken::new(Direction::Next, key, "c".into(), "i".into())
    }

    #[test]
    fn one_direction_is_one_row_comparison() {
        let p = plan("eo:cloud_cover");
        let s = p.after(&token(vec![json!(12.5)])).unwrap();
        assert_eq!(
            s.debug_text(),
            " AND ((arcolake_number(properties->'eo:cloud_cover') IS NULL), \
             arcolake_number(properties->'eo:cloud_cover'), collection, id) > ($1, $2, $3, $4)"
        );
        // A missing boundary value skips the value column.
        let s = p.after(&token(vec![Json::Null])).unwrap();
        assert_eq!(s.values().len(), 3);
        assert!(p.order_by(Direction::Next).contains("IS NULL) ASC"));
    }

    #[test]
    fn mixed_directions_expand() {
        let p = plan("-datetime,+eo:cloud_cover");
        let s = p
            .after(&token(vec![json!("2020-01-01T00:00:00+00:00"), json!(3)]))
            .unwrap();
        assert!(s.debug_text().contains(" OR "), "{}", s.debug_text());
        assert!(p.after(&token(vec![json!(1)])).is_err());
        assert!(parse_value(&json!([{"field": "x", "direction": "up"}])).is_err());
    }
}
