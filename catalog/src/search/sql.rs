//! SQL text with bound values, built before a query builder exists.
//!
//! The filter compiler, the sort and the keyset conditions produce [`Sql`]:
//! trusted text written by this crate, and values that only ever travel as
//! bind parameters. [`Sql::push_to`] hands both to a sqlx `QueryBuilder`.
//! Keeping the two apart makes "no user text formatted into SQL" a property
//! of the type: the only way user input reaches the text is
//! [`Sql::literal_name`], which admits a conservative character set.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

/// A value that travels as a bind parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `float8`.
    Number(f64),
    /// `text`.
    Text(String),
    /// `timestamptz`.
    Timestamp(DateTime<Utc>),
    /// `boolean`.
    Bool(bool),
    /// `jsonb`, as JSON text.
    Json(String),
    /// `float8[]`.
    Numbers(Vec<f64>),
    /// `text[]`.
    Texts(Vec<String>),
    /// `timestamptz[]`.
    Timestamps(Vec<DateTime<Utc>>),
    /// `jsonb[]`, as JSON texts.
    Jsons(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Bind(Value),
}

/// A fragment of SQL: trusted text and bound values, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    parts: Vec<Part>,
}

impl Sql {
    /// An empty fragment.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fragment of trusted text.
    pub fn text(text: impl Into<String>) -> Self {
        let mut s = Self::new();
        s.push(text);
        s
    }

    /// A fragment that is one bound value.
    pub fn bind(value: Value) -> Self {
        let mut s = Self::new();
        s.push_bind(value);
        s
    }

    /// Append trusted text (never user input).
    pub fn push(&mut self, text: impl Into<String>) -> &mut Self {
        let text = text.into();
        if let Some(Part::Text(last)) = self.parts.last_mut() {
            last.push_str(&text);
        } else {
            self.parts.push(Part::Text(text));
        }
        self
    }

    /// Append a bound value.
    pub fn push_bind(&mut self, value: Value) -> &mut Self {
        self.parts.push(Part::Bind(value));
        self
    }

    /// Append another fragment.
    pub fn push_sql(&mut self, other: Sql) -> &mut Self {
        for part in other.parts {
            match part {
                Part::Text(t) => {
                    self.push(t);
                }
                Part::Bind(v) => {
                    self.push_bind(v);
                }
            }
        }
        self
    }

    /// `true` when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// A name (a property key) as an SQL string literal, when it is made of
    /// characters that cannot end or escape one; otherwise as a bound text.
    ///
    /// Literal names are what lets expression indexes on a property match a
    /// query: an index on `content->'properties'->'gsd'` is never used for
    /// `content->'properties'->$1`.
    pub fn literal_name(name: &str) -> Self {
        let plain = !name.is_empty()
            && name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.' | '@'));
        if plain {
            Self::text(format!("'{name}'"))
        } else {
            let mut s = Self::text("(");
            s.push_bind(Value::Text(name.to_owned())).push("::text)");
            s
        }
    }

    /// Join fragments with a separator.
    pub fn join(parts: impl IntoIterator<Item = Sql>, separator: &str) -> Self {
        let mut out = Self::new();
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                out.push(separator);
            }
            out.push_sql(part);
        }
        out
    }

    /// The fragment in parentheses.
    #[must_use]
    pub fn wrapped(self) -> Self {
        let mut out = Self::text("(");
        out.push_sql(self).push(")");
        out
    }

    /// Write the fragment into a query builder, binding every value.
    pub fn push_to(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        for part in &self.parts {
            match part {
                Part::Text(t) => {
                    qb.push(t);
                }
                Part::Bind(v) => match v.clone() {
                    Value::Number(n) => {
                        qb.push_bind(n).push("::float8");
                    }
                    Value::Text(t) => {
                        qb.push_bind(t).push("::text");
                    }
                    Value::Timestamp(t) => {
                        qb.push_bind(t).push("::timestamptz");
                    }
                    Value::Bool(b) => {
                        qb.push_bind(b).push("::boolean");
                    }
                    Value::Json(j) => {
                        qb.push_bind(j).push("::jsonb");
                    }
                    Value::Numbers(n) => {
                        qb.push_bind(n).push("::float8[]");
                    }
                    Value::Texts(t) => {
                        qb.push_bind(t).push("::text[]");
                    }
                    Value::Timestamps(t) => {
                        qb.push_bind(t).push("::timestamptz[]");
                    }
                    Value::Jsons(j) => {
                        qb.push_bind(j).push("::jsonb[]");
                    }
                },
            }
        }
    }

    /// The text with `$n` placeholders, for tests and plan notes.
    pub fn debug_text(&self) -> String {
        let mut n = 0;
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Bind(_) => {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                }
            }
        }
        out
    }

    /// Bound values in order, for tests.
    pub fn values(&self) -> Vec<&Value> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Bind(v) => Some(v),
                Part::Text(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_quotes_are_bound_not_written() {
        assert_eq!(
            Sql::literal_name("eo:cloud_cover").debug_text(),
            "'eo:cloud_cover'"
        );
        let evil = Sql::literal_name("x'); DROP TABLE items; --");
        assert_eq!(evil.debug_text(), "($1::text)");
        assert_eq!(evil.values().len(), 1);
    }
}
