//! CQL2 filters: parsing (text and JSON, through the `cql2` crate) and the
//! compiler from a parsed expression to an SQL predicate over `items`.
//!
//! The compiler is written here rather than taken from `cql2`'s SQL output:
//! that output formats literals into the SQL text and knows nothing of this
//! schema (real columns, typed accessors whose expressions indexes match,
//! item time spans). Every literal becomes a bind parameter; the only names
//! written into SQL text are queryables, through [`Sql::literal_name`].
//!
//! Typing follows the queryables: a string literal compared with a number
//! property is read as a number, with a timestamp property as a timestamp;
//! a comparison that has no common type is a 400 that says which operands.

use chrono::{DateTime, NaiveDate, Utc};
use cql2::Expr;
use serde_json::Value as Json;

use super::queryables::{Column, Kind, Queryables};
use super::sql::{Sql, Value};
use crate::model::geometry;
use crate::{Error, Result};

/// The deepest nesting a filter may have (parentheses in text, objects and
/// arrays in JSON), checked before parsing.
pub const MAX_DEPTH: usize = 512;
/// The most values an `in` list or array literal may hold.
pub const MAX_LIST: usize = 100_000;

/// The CRS84 URIs `filter-crs` accepts.
const CRS84: &[&str] = &[
    "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    "https://www.opengis.net/def/crs/OGC/1.3/CRS84",
];

/// Check `filter-crs`: only CRS84 is supported.
pub fn check_crs(crs: Option<&str>) -> Result<()> {
    match crs.map(str::trim) {
        None | Some("") => Ok(()),
        Some(c) if CRS84.contains(&c) => Ok(()),
        Some(other) => Err(Error::invalid_search(format!(
            "filter-crs {other:?} is not supported; use {}",
            CRS84[0]
        ))),
    }
}

fn bad(reason: impl Into<String>) -> Error {
    Error::invalid_search(reason)
}

/// The deepest bracket nesting of `text`, ignoring brackets in quoted strings.
fn nesting(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for b in text.bytes() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' && q == b'"' {
                escaped = true;
            } else if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'\'' | b'"' => quote = Some(b),
            b'(' | b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn check_depth(depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(bad(format!(
            "filter is nested {depth} levels deep; at most {MAX_DEPTH} are allowed"
        )));
    }
    Ok(())
}

/// Nesting above which parsing, compiling and dropping run on a stack of
/// their own: the parsers and the compiler recurse once (or a few times)
/// per level, and a worker thread's stack is not sized for 500 levels.
const DEEP: usize = 24;
/// The stack deep filters get.
const DEEP_STACK: usize = 64 << 20;

fn on_stack<T>(depth: usize, f: impl FnOnce() -> T) -> T {
    if depth > DEEP {
        stacker::grow(DEEP_STACK, f)
    } else {
        f()
    }
}

fn json_depth(value: &Json) -> usize {
    let mut max = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Json::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Json::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    max
}

/// A parsed CQL2 filter, with its nesting depth. Deep filters are compiled
/// and dropped on a stack of their own.
#[derive(Debug)]
pub struct Filter {
    expr: Option<Expr>,
    depth: usize,
}

impl Clone for Filter {
    fn clone(&self) -> Self {
        on_stack(self.depth, || Self {
            expr: self.expr.clone(),
            depth: self.depth,
        })
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        if let Some(expr) = self.expr.take() {
            on_stack(self.depth, move || drop(expr));
        }
    }
}

impl Filter {
    fn new(expr: Expr, depth: usize) -> Self {
        Self {
            expr: Some(expr),
            depth,
        }
    }

    /// A filter from an expression built in code (query extension).
    pub fn from_expr(expr: Expr) -> Self {
        // Built expressions are shallow: a conjunction of comparisons.
        Self::new(expr, 4)
    }

    /// This filter AND another expression.
    #[must_use]
    pub fn and(mut self, other: Expr) -> Self {
        let depth = self.depth + 1;
        let expr = self.expr.take();
        let combined = match expr {
            None => other,
            Some(e) => Expr::Operation {
                op: "and".into(),
                args: vec![Box::new(e), Box::new(other)],
            },
        };
        Self::new(combined, depth)
    }

    /// Compile against `queryables` into an SQL predicate.
    pub fn compile(&self, queryables: &Queryables) -> Result<Sql> {
        let Some(expr) = &self.expr else {
            return Ok(Sql::text("true"));
        };
        on_stack(self.depth, || Compiler::new(queryables).predicate(expr))
    }

    /// Run `f` on the expression (evaluation outside SQL: collection
    /// search), on a grown stack when the filter is deep.
    pub fn run<T>(&self, f: impl FnOnce(&Expr) -> T) -> Option<T> {
        let expr = self.expr.as_ref()?;
        Some(on_stack(self.depth, || f(expr)))
    }
}

/// Parse cql2-text.
pub fn parse_text(text: &str) -> Result<Filter> {
    let depth = nesting(text);
    check_depth(depth)?;
    on_stack(depth, || {
        cql2::parse_text(text)
            .map(|e| Filter::new(e, depth))
            .map_err(|e| bad(format!("filter is not valid cql2-text: {e}")))
    })
}

/// Parse cql2-json given as text.
pub fn parse_json_text(text: &str) -> Result<Filter> {
    let depth = nesting(text);
    check_depth(depth)?;
    let value = on_stack(depth, || {
        let mut de = serde_json::Deserializer::from_str(text);
        de.disable_recursion_limit();
        serde::Deserialize::deserialize(&mut de)
            .map_err(|e| bad(format!("filter is not valid JSON: {e}")))
    })?;
    parse_json(value)
}

/// Parse cql2-json given as a JSON value.
pub fn parse_json(value: Json) -> Result<Filter> {
    let depth = json_depth(&value);
    on_stack(depth, || {
        check_depth(depth)?;
        if !matches!(value, Json::Object(_) | Json::Bool(_)) {
            return Err(bad(
                "filter in cql2-json must be a JSON object (an operation) or a boolean",
            ));
        }
        serde_json::from_value::<Expr>(value)
            .map(|e| Filter::new(e, depth))
            .map_err(|e| bad(format!("filter is not valid cql2-json: {e}")))
    })
}

/// Parse a filter as a GET parameter: `lang` defaults to cql2-text.
pub fn parse_param(filter: &str, lang: Option<&str>) -> Result<Filter> {
    match lang.map(str::trim) {
        None | Some("" | "cql2-text") => parse_text(filter),
        Some("cql2-json") => parse_json_text(filter),
        Some(other) => Err(bad(format!(
            "filter-lang {other:?} is not supported; use cql2-text or cql2-json"
        ))),
    }
}

/// Parse a filter as a POST member: `lang` defaults to cql2-json; a string
/// filter is read as cql2-text unless `lang` says otherwise.
pub fn parse_member(filter: Json, lang: Option<&str>) -> Result<Filter> {
    match (lang.map(str::trim), filter) {
        (None | Some("" | "cql2-text"), Json::String(text)) => parse_text(&text),
        (Some("cql2-text"), _) => Err(bad("filter-lang is cql2-text but filter is not a string")),
        (Some("cql2-json"), Json::String(text)) => parse_json_text(&text),
        (None | Some("" | "cql2-json"), value) => parse_json(value),
        (Some(other), _) => Err(bad(format!(
            "filter-lang {other:?} is not supported; use cql2-text or cql2-json"
        ))),
    }
}

/// A compiled operand: SQL with the type it has, or a literal whose type
/// the other operand decides.
#[derive(Debug, Clone)]
enum Operand {
    Typed(Sql, Kind),
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    /// An array literal, kept as values.
    List(Vec<Expr>),
}

impl Operand {
    fn describe(&self) -> String {
        match self {
            Operand::Typed(_, k) => format!("a {} value", k.as_str()),
            Operand::Str(s) => format!("the string {s:?}"),
            Operand::Num(n) => format!("the number {n}"),
            Operand::Bool(b) => format!("the boolean {b}"),
            Operand::Null => "null".into(),
            Operand::List(_) => "an array".into(),
        }
    }
}

/// A time span operand for temporal functions.
struct Span {
    start: Sql,
    end: Sql,
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(bad(format!(
        "{t:?} is not an RFC 3339 timestamp or a date (YYYY-MM-DD)"
    )))
}

/// Spellings of CQL2 operators that other servers accept (pgstac's
/// `snake_case` names, which many clients send), with the CQL2 name each
/// stands for. Matched case-insensitively, as cql2-text names are.
const ALIASES: &[(&str, &str)] = &[
    ("a_contained_by", "a_containedBy"),
    ("t_met_by", "t_metBy"),
    ("t_overlapped_by", "t_overlappedBy"),
    ("t_started_by", "t_startedBy"),
    ("t_finished_by", "t_finishedBy"),
];

/// The CQL2 name of operator `op`, resolving [`ALIASES`].
fn canonical_op(op: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(op))
        .map_or(op, |(_, name)| name)
}

/// Core fields held in real columns that are never NULL there (an item
/// without a `datetime` has its span's start in the column), so whether the
/// item's document gives them is read from its properties.
const TIME_COLUMNS: &[&str] = &["datetime", "start_datetime", "end_datetime"];

fn literal_text(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(s) => Some(s),
        _ => None,
    }
}

/// Compiles CQL2 expressions against a set of queryables.
pub struct Compiler<'a> {
    queryables: &'a Queryables,
}

impl<'a> Compiler<'a> {
    /// A compiler resolving property names in `queryables`.
    pub fn new(queryables: &'a Queryables) -> Self {
        Self { queryables }
    }

    /// Compile a boolean expression.
    pub fn predicate(&self, e: &Expr) -> Result<Sql> {
        match e {
            Expr::Bool(true) => Ok(Sql::text("true")),
            Expr::Bool(false) => Ok(Sql::text("false")),
            Expr::Operation { op, args } => self.operation(op, args),
            Expr::Property { property } => match self.property(property)? {
                (sql, Kind::Bool) => Ok(sql.wrapped()),
                (_, kind) => Err(bad(format!(
                    "property {property} is a {} and cannot stand alone as a condition",
                    kind.as_str()
                ))),
            },
            other => Err(bad(format!("{} is not a condition", describe_expr(other)))),
        }
    }

    fn operation(&self, op: &str, args: &[Box<Expr>]) -> Result<Sql> {
        let op = canonical_op(op);
        let arity = |n: usize| -> Result<()> {
            if args.len() == n {
                Ok(())
            } else {
                Err(bad(format!(
                    "{op} takes {n} argument(s), got {}",
                    args.len()
                )))
            }
        };
        match op {
            "and" | "or" => {
                if args.is_empty() {
                    return Err(bad(format!("{op} needs at least one argument")));
                }
                let parts = args
                    .iter()
                    .map(|a| self.predicate(a).map(Sql::wrapped))
                    .collect::<Result<Vec<_>>>()?;
                let sep = if op == "and" { " AND " } else { " OR " };
                Ok(Sql::join(parts, sep).wrapped())
            }
            "not" => {
                arity(1)?;
                let mut s = Sql::text("NOT ");
                s.push_sql(self.predicate(&args[0])?.wrapped());
                Ok(s)
            }
            "=" | "<>" | "<" | "<=" | ">" | ">=" => {
                arity(2)?;
                self.compare(op, &args[0], &args[1])
            }
            "like" => {
                arity(2)?;
                let a = self.text_operand(&args[0])?;
                let b = self.text_operand(&args[1])?;
                let mut s = a.wrapped();
                s.push(" LIKE ").push_sql(b.wrapped());
                Ok(s)
            }
            "between" => {
                // Also the older JSON form: `[property, [low, high]]`.
                let (x, lo, hi) = if let [x, range] = args
                    && let Expr::Array(r) = &**range
                    && let [lo, hi] = r.as_slice()
                {
                    (self.operand(x)?, self.operand(lo)?, self.operand(hi)?)
                } else {
                    arity(3)?;
                    (
                        self.operand(&args[0])?,
                        self.operand(&args[1])?,
                        self.operand(&args[2])?,
                    )
                };
                let kind = common_kind(&[&x, &lo, &hi])?;
                let mut s = Self::coerce(x, kind)?;
                s.push(" BETWEEN ")
                    .push_sql(Self::coerce(lo, kind)?)
                    .push(" AND ")
                    .push_sql(Self::coerce(hi, kind)?);
                Ok(s.wrapped())
            }
            "in" => {
                arity(2)?;
                self.in_list(&args[0], &args[1])
            }
            "isNull" => {
                arity(1)?;
                if let Expr::Property { property } = &*args[0]
                    && let Some(q) = self.queryables.get(property)
                    && matches!(q.column, Column::Real(c) if TIME_COLUMNS.contains(&c))
                {
                    // `"datetime": null` (an item given by its range) is null.
                    let mut s =
                        property_accessor(Queryables::canonical(property), Kind::Text).wrapped();
                    s.push(" IS NULL");
                    return Ok(s);
                }
                match self.operand(&args[0])? {
                    Operand::Typed(sql, Kind::Array | Kind::Object) => {
                        let mut s = Sql::text("(");
                        s.push_sql(sql.clone())
                            .push(" IS NULL OR ")
                            .push_sql(sql)
                            .push(" = 'null'::jsonb)");
                        Ok(s)
                    }
                    Operand::Typed(sql, _) => {
                        let mut s = sql.wrapped();
                        s.push(" IS NULL");
                        Ok(s)
                    }
                    Operand::Null => Ok(Sql::text("true")),
                    _ => Ok(Sql::text("false")),
                }
            }
            "s_intersects" | "s_equals" | "s_disjoint" | "s_touches" | "s_within"
            | "s_overlaps" | "s_crosses" | "s_contains" => {
                arity(2)?;
                let f = match op {
                    "s_intersects" => "ST_Intersects",
                    "s_equals" => "ST_Equals",
                    "s_disjoint" => "ST_Disjoint",
                    "s_touches" => "ST_Touches",
                    "s_within" => "ST_Within",
                    "s_overlaps" => "ST_Overlaps",
                    "s_crosses" => "ST_Crosses",
                    _ => "ST_Contains",
                };
                let mut s = Sql::text(format!("{f}("));
                s.push_sql(self.geometry(&args[0])?)
                    .push(", ")
                    .push_sql(self.geometry(&args[1])?)
                    .push(")");
                Ok(s)
            }
            op if op.starts_with("t_") => {
                arity(2)?;
                self.temporal(op, &args[0], &args[1])
            }
            "a_equals" | "a_contains" | "a_containedBy" | "a_overlaps" => {
                arity(2)?;
                self.array_op(op, &args[0], &args[1])
            }
            other => Err(bad(format!(
                "{other} is not a condition this server knows (it supports the CQL2 comparison, \
                 like, between, in, isNull, spatial s_*, temporal t_* and array a_* operators)"
            ))),
        }
    }

    fn property(&self, name: &str) -> Result<(Sql, Kind)> {
        let q = self.queryables.get(name).ok_or_else(|| {
            bad(format!(
                "{name} is neither a property of this catalog's items nor STAC common metadata; see /queryables"
            ))
        })?;
        let name = Queryables::canonical(name);
        let sql = match q.column {
            Column::Real(col) => Sql::text(col),
            Column::Property => property_accessor(name, q.kind),
        };
        Ok((sql, q.kind))
    }

    fn operand(&self, e: &Expr) -> Result<Operand> {
        Ok(match e {
            Expr::Property { property } => {
                let (sql, kind) = self.property(property)?;
                Operand::Typed(sql, kind)
            }
            Expr::Float(n) => Operand::Num(*n),
            Expr::Literal(s) => Operand::Str(s.clone()),
            Expr::Bool(b) => Operand::Bool(*b),
            Expr::Null => Operand::Null,
            Expr::Timestamp { timestamp } | Expr::Date { date: timestamp } => {
                let text = literal_text(timestamp)
                    .ok_or_else(|| bad("TIMESTAMP and DATE take a string literal"))?;
                Operand::Typed(
                    Sql::bind(Value::Timestamp(parse_instant(text)?)),
                    Kind::Timestamp,
                )
            }
            Expr::Array(items) => {
                if items.len() > MAX_LIST {
                    return Err(bad(format!(
                        "an array holds {} values; at most {MAX_LIST} are allowed",
                        items.len()
                    )));
                }
                Operand::List(items.iter().map(|b| (**b).clone()).collect())
            }
            Expr::Geometry(_) | Expr::BBox { .. } => {
                Operand::Typed(self.geometry(e)?, Kind::Geometry)
            }
            Expr::Operation { op, args } => match op.as_str() {
                "casei" | "accenti" => {
                    if args.len() != 1 {
                        return Err(bad(format!("{op} takes one argument")));
                    }
                    let inner = self.text_operand(&args[0])?;
                    let f = if op == "casei" {
                        "lower("
                    } else {
                        "arcolake_unaccent("
                    };
                    let mut s = Sql::text(f);
                    s.push_sql(inner).push(")");
                    Operand::Typed(s, Kind::Text)
                }
                "+" | "-" | "*" | "/" | "%" | "^" | "div" => {
                    Operand::Typed(self.arithmetic(op, args)?, Kind::Number)
                }
                _ => Operand::Typed(self.predicate(e)?, Kind::Bool),
            },
            Expr::Interval { .. } => {
                return Err(bad(
                    "an INTERVAL can only be used in a temporal function (t_*)",
                ));
            }
        })
    }

    fn arithmetic(&self, op: &str, args: &[Box<Expr>]) -> Result<Sql> {
        if args.len() < 2 {
            return Err(bad(format!("{op} takes at least two arguments")));
        }
        let mut nums = args
            .iter()
            .map(|a| {
                let o = self.operand(a)?;
                Self::coerce(o, Kind::Number)
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let mut acc = nums.next().unwrap_or_default();
        for next in nums {
            let mut s = Sql::new();
            match op {
                "+" | "-" | "*" => {
                    s.push("(")
                        .push_sql(acc)
                        .push(format!(" {op} "))
                        .push_sql(next)
                        .push(")");
                }
                "/" => {
                    s.push("(")
                        .push_sql(acc)
                        .push(" / NULLIF(")
                        .push_sql(next)
                        .push(", 0))");
                }
                "%" => {
                    s.push("(mod((")
                        .push_sql(acc)
                        .push(")::numeric, NULLIF(")
                        .push_sql(next)
                        .push(", 0)::numeric))::float8");
                }
                "div" => {
                    s.push("trunc(")
                        .push_sql(acc)
                        .push(" / NULLIF(")
                        .push_sql(next)
                        .push(", 0))");
                }
                _ => {
                    s.push("power(")
                        .push_sql(acc)
                        .push(", ")
                        .push_sql(next)
                        .push(")");
                }
            }
            acc = s;
        }
        Ok(acc)
    }

    /// An operand as SQL of `kind`, converting literals.
    fn coerce(o: Operand, kind: Kind) -> Result<Sql> {
        let mismatch = |o: &Operand| {
            bad(format!(
                "cannot use {} where a {} is expected",
                o.describe(),
                kind.as_str()
            ))
        };
        Ok(match (o, kind) {
            (Operand::Typed(sql, k), want) if k == want => sql,
            (Operand::Null, _) => Sql::text("NULL"),
            (Operand::Num(n), Kind::Number) => Sql::bind(Value::Number(n)),
            (Operand::Num(n), Kind::Text) => Sql::bind(Value::Text(format_number(n))),
            (Operand::Str(s), Kind::Number) => match s.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Sql::bind(Value::Number(n)),
                _ => {
                    return Err(bad(format!(
                        "{s:?} is not a number, and is compared with a number"
                    )));
                }
            },
            (Operand::Str(s), Kind::Text) => Sql::bind(Value::Text(s)),
            (Operand::Str(s), Kind::Timestamp) => Sql::bind(Value::Timestamp(parse_instant(&s)?)),
            (Operand::Str(s), Kind::Bool) => match s.trim() {
                "true" => Sql::bind(Value::Bool(true)),
                "false" => Sql::bind(Value::Bool(false)),
                _ => return Err(bad(format!("{s:?} is not a boolean"))),
            },
            (Operand::Bool(b), Kind::Bool) => Sql::bind(Value::Bool(b)),
            (Operand::Bool(b), Kind::Text) => Sql::bind(Value::Text(b.to_string())),
            (o, _) => return Err(mismatch(&o)),
        })
    }

    fn text_operand(&self, e: &Expr) -> Result<Sql> {
        let o = self.operand(e)?;
        Self::coerce(o, Kind::Text)
    }

    fn compare(&self, op: &str, a: &Expr, b: &Expr) -> Result<Sql> {
        let (a, b) = (self.operand(a)?, self.operand(b)?);
        // An array-valued property equals a scalar when any element does.
        let (arr, other) = match (&a, &b) {
            (Operand::Typed(s, Kind::Array), o) | (o, Operand::Typed(s, Kind::Array)) => {
                (Some(s.clone()), o.clone())
            }
            _ => (None, Operand::Null),
        };
        if let Some(array) = arr {
            if !matches!(op, "=" | "<>") {
                return Err(bad(format!(
                    "{op} does not apply to an array; use =, <>, in or the a_* functions"
                )));
            }
            let element = element_json(&other)?;
            let mut s = Sql::text(if op == "=" { "(" } else { "NOT (" });
            s.push_sql(array)
                .push(" @> ")
                .push_bind(Value::Json(format!("[{element}]")))
                .push(")");
            return Ok(s);
        }
        let kind = common_kind(&[&a, &b])?;
        if kind == Kind::Geometry || kind == Kind::Object {
            return Err(bad(format!(
                "{op} does not apply to {} values; use the s_* functions for geometries",
                kind.as_str()
            )));
        }
        let mut s = Self::coerce(a, kind)?.wrapped();
        s.push(format!(" {op} "))
            .push_sql(Self::coerce(b, kind)?.wrapped());
        Ok(s)
    }

    fn in_list(&self, x: &Expr, list: &Expr) -> Result<Sql> {
        let x = self.operand(x)?;
        let Operand::List(items) = self.operand(list)? else {
            return Err(bad("in needs a list of values as its second argument"));
        };
        if items.is_empty() {
            return Ok(Sql::text("false"));
        }
        let ops = items
            .iter()
            .map(|i| self.operand(i))
            .collect::<Result<Vec<_>>>()?;
        if let Operand::Typed(array, Kind::Array) = &x {
            let elements = ops
                .iter()
                .map(|o| element_json(o).map(|e| format!("[{e}]")))
                .collect::<Result<Vec<_>>>()?;
            let mut s = Sql::text("(");
            s.push_sql(array.clone())
                .push(" @> ANY(")
                .push_bind(Value::Jsons(elements))
                .push("))");
            return Ok(s);
        }
        let mut all = vec![&x];
        all.extend(ops.iter());
        let kind = common_kind(&all)?;
        let literal = ops
            .iter()
            .all(|o| matches!(o, Operand::Str(_) | Operand::Num(_) | Operand::Bool(_)));
        if literal && matches!(kind, Kind::Number | Kind::Text | Kind::Timestamp) {
            let array = match kind {
                Kind::Number => Value::Numbers(
                    ops.into_iter()
                        .map(|o| match o {
                            Operand::Num(n) => Ok(n),
                            Operand::Str(s) => s.trim().parse::<f64>().map_err(|_| {
                                bad(format!(
                                    "{s:?} is not a number, and is compared with a number"
                                ))
                            }),
                            o => Err(bad(format!("{} is not a number", o.describe()))),
                        })
                        .collect::<Result<_>>()?,
                ),
                Kind::Text => Value::Texts(
                    ops.into_iter()
                        .map(|o| match o {
                            Operand::Str(s) => Ok(s),
                            Operand::Num(n) => Ok(format_number(n)),
                            o => Err(bad(format!("{} is not a string", o.describe()))),
                        })
                        .collect::<Result<_>>()?,
                ),
                _ => Value::Timestamps(
                    ops.into_iter()
                        .map(|o| match o {
                            Operand::Str(s) => parse_instant(&s),
                            o => Err(bad(format!("{} is not a timestamp", o.describe()))),
                        })
                        .collect::<Result<_>>()?,
                ),
            };
            let mut s = Self::coerce(x, kind)?.wrapped();
            s.push(" = ANY(").push_bind(array).push(")");
            return Ok(s);
        }
        let left = Self::coerce(x, kind)?.wrapped();
        let parts = ops
            .into_iter()
            .map(|o| {
                let mut s = left.clone();
                s.push(" = ").push_sql(Self::coerce(o, kind)?.wrapped());
                Ok(s)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Sql::join(parts, " OR ").wrapped())
    }

    fn geometry(&self, e: &Expr) -> Result<Sql> {
        match e {
            Expr::Property { property } => match self.property(property)? {
                (sql, Kind::Geometry) => Ok(sql),
                (_, kind) => Err(bad(format!(
                    "{property} is a {}, not a geometry",
                    kind.as_str()
                ))),
            },
            Expr::Geometry(g) => {
                let value = serde_json::to_value(g)
                    .map_err(|e| bad(format!("geometry literal is not valid: {e}")))?;
                geometry::validate(&value)
                    .map_err(|e| bad(format!("geometry literal is not valid: {e}")))?;
                let mut s = Sql::text("ST_GeomFromGeoJSON(");
                s.push_bind(Value::Text(value.to_string())).push(")");
                Ok(s)
            }
            Expr::BBox { bbox } => {
                let numbers = bbox
                    .iter()
                    .map(|b| match **b {
                        Expr::Float(n) => Ok(n),
                        _ => Err(bad("BBOX takes numbers")),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let b = super::Bbox::from_numbers(&numbers)?;
                let envelopes = b
                    .parts()
                    .into_iter()
                    .map(|[w, s, e, n]| {
                        let mut sql = Sql::text("ST_MakeEnvelope(");
                        sql.push_bind(Value::Number(w))
                            .push(", ")
                            .push_bind(Value::Number(s))
                            .push(", ")
                            .push_bind(Value::Number(e))
                            .push(", ")
                            .push_bind(Value::Number(n))
                            .push(", 4326)");
                        sql
                    })
                    .collect::<Vec<_>>();
                if envelopes.len() == 1 {
                    Ok(envelopes.into_iter().next().unwrap_or_default())
                } else {
                    let mut s = Sql::text("ST_Collect(");
                    s.push_sql(Sql::join(envelopes, ", ")).push(")");
                    Ok(s)
                }
            }
            other => Err(bad(format!("{} is not a geometry", describe_expr(other)))),
        }
    }

    fn bound(&self, e: &Expr, open: &str) -> Result<Sql> {
        match e {
            Expr::Literal(s) if s == ".." || s.is_empty() => Ok(Sql::text(open)),
            Expr::Literal(s) => Ok(Sql::bind(Value::Timestamp(parse_instant(s)?))),
            Expr::Timestamp { timestamp } | Expr::Date { date: timestamp } => {
                match literal_text(timestamp) {
                    Some(t) => Ok(Sql::bind(Value::Timestamp(parse_instant(t)?))),
                    None => Err(bad("TIMESTAMP and DATE take a string literal")),
                }
            }
            Expr::Property { property } => match self.property(property)? {
                (sql, Kind::Timestamp) => Ok(sql),
                (_, kind) => Err(bad(format!(
                    "{property} is a {}, not a timestamp",
                    kind.as_str()
                ))),
            },
            other => Err(bad(format!("{} is not an instant", describe_expr(other)))),
        }
    }

    fn span(&self, e: &Expr) -> Result<Span> {
        match e {
            Expr::Interval { interval } => match interval.as_slice() {
                [a, b] => Ok(Span {
                    start: self.bound(a, "'-infinity'::timestamptz")?,
                    end: self.bound(b, "'infinity'::timestamptz")?,
                }),
                _ => Err(bad("an INTERVAL has two bounds")),
            },
            // An item's datetime is its whole span, both ends inclusive.
            Expr::Property { property } if Queryables::canonical(property) == "datetime" => {
                Ok(Span {
                    start: Sql::text("datetime"),
                    end: Sql::text("end_datetime"),
                })
            }
            other => {
                let instant = self.bound(other, "NULL")?;
                Ok(Span {
                    start: instant.clone(),
                    end: instant,
                })
            }
        }
    }

    fn temporal(&self, op: &str, left: &Expr, right: &Expr) -> Result<Sql> {
        let (first, second) = (self.span(left)?, self.span(right)?);
        let c = |l: &Sql, o: &str, r: &Sql| {
            let mut out = l.clone();
            out.push(format!(" {o} ")).push_sql(r.clone());
            out
        };
        let all = |parts: Vec<Sql>| Sql::join(parts, " AND ").wrapped();
        let (s1, e1, s2, e2) = (&first.start, &first.end, &second.start, &second.end);
        Ok(match op {
            "t_before" => c(e1, "<", s2),
            "t_after" => c(s1, ">", e2),
            "t_meets" => c(e1, "=", s2),
            "t_metBy" => c(s1, "=", e2),
            "t_overlaps" => all(vec![c(s1, "<", s2), c(e1, ">", s2), c(e1, "<", e2)]),
            "t_overlappedBy" => all(vec![c(s2, "<", s1), c(e2, ">", s1), c(e2, "<", e1)]),
            "t_starts" => all(vec![c(s1, "=", s2), c(e1, "<", e2)]),
            "t_startedBy" => all(vec![c(s1, "=", s2), c(e1, ">", e2)]),
            "t_during" => all(vec![c(s1, ">", s2), c(e1, "<", e2)]),
            "t_contains" => all(vec![c(s1, "<", s2), c(e1, ">", e2)]),
            "t_finishes" => all(vec![c(s1, ">", s2), c(e1, "=", e2)]),
            "t_finishedBy" => all(vec![c(s1, "<", s2), c(e1, "=", e2)]),
            "t_equals" => all(vec![c(s1, "=", s2), c(e1, "=", e2)]),
            "t_disjoint" => {
                let mut s = Sql::text("(");
                s.push_sql(c(e1, "<", s2))
                    .push(" OR ")
                    .push_sql(c(s1, ">", e2))
                    .push(")");
                s
            }
            "t_intersects" => all(vec![c(s1, "<=", e2), c(e1, ">=", s2)]),
            other => return Err(bad(format!("{other} is not a CQL2 temporal function"))),
        })
    }

    fn array_operand(&self, e: &Expr) -> Result<(Sql, bool)> {
        match self.operand(e)? {
            Operand::Typed(sql, Kind::Array) => Ok((sql, false)),
            Operand::List(items) => {
                let values = items
                    .iter()
                    .map(|i| self.operand(i).and_then(|o| element_json(&o)))
                    .collect::<Result<Vec<_>>>()?;
                Ok((
                    Sql::bind(Value::Json(format!("[{}]", values.join(",")))),
                    true,
                ))
            }
            o => Err(bad(format!(
                "array functions take arrays, not {}",
                o.describe()
            ))),
        }
    }

    fn array_op(&self, op: &str, left: &Expr, right: &Expr) -> Result<Sql> {
        let (x, _) = self.array_operand(left)?;
        let (y, _) = self.array_operand(right)?;
        let two = |o: &str| {
            let mut s = Sql::text("(");
            s.push_sql(x.clone())
                .push(format!(" {o} "))
                .push_sql(y.clone())
                .push(")");
            s
        };
        Ok(match op {
            "a_equals" => {
                let mut s = two("@>");
                s.push(" AND ").push_sql(two("<@"));
                s.wrapped()
            }
            "a_contains" => two("@>"),
            "a_containedBy" => two("<@"),
            _ => {
                let mut s = Sql::text("EXISTS (SELECT 1 FROM jsonb_array_elements(");
                s.push_sql(y.clone())
                    .push(") AS e(v) WHERE ")
                    .push_sql(x.clone())
                    .push(" @> jsonb_build_array(e.v))");
                s
            }
        })
    }
}

/// The SQL reading property `name` (written as a literal when it can be, so
/// expression indexes match) as `kind`.
pub fn property_accessor(name: &str, kind: Kind) -> Sql {
    let mut s = Sql::new();
    match kind {
        Kind::Number => {
            s.push("arcolake_number(properties->")
                .push_sql(Sql::literal_name(name))
                .push(")");
        }
        Kind::Timestamp => {
            s.push("arcolake_timestamp(properties->")
                .push_sql(Sql::literal_name(name))
                .push(")");
        }
        Kind::Bool => {
            s.push("arcolake_boolean(properties->")
                .push_sql(Sql::literal_name(name))
                .push(")");
        }
        Kind::Text => {
            s.push("(properties->>")
                .push_sql(Sql::literal_name(name))
                .push(")");
        }
        Kind::Array | Kind::Object | Kind::Geometry => {
            s.push("(properties->")
                .push_sql(Sql::literal_name(name))
                .push(")");
        }
    }
    s
}

fn format_number(n: f64) -> String {
    serde_json::Number::from_f64(n).map_or_else(|| n.to_string(), |v| v.to_string())
}

/// A scalar operand as a JSON text, for containment tests on arrays.
fn element_json(o: &Operand) -> Result<String> {
    Ok(match o {
        Operand::Str(s) => Json::String(s.clone()).to_string(),
        Operand::Num(n) => serde_json::Number::from_f64(*n)
            .map(Json::Number)
            .ok_or_else(|| bad("numbers must be finite"))?
            .to_string(),
        Operand::Bool(b) => b.to_string(),
        Operand::Null => "null".into(),
        other => {
            return Err(bad(format!(
                "{} cannot be an array element here; use literals",
                other.describe()
            )));
        }
    })
}

/// The type two or more operands are compared as.
fn common_kind(ops: &[&Operand]) -> Result<Kind> {
    let typed: Vec<Kind> = ops
        .iter()
        .filter_map(|o| match o {
            Operand::Typed(_, k) => Some(*k),
            _ => None,
        })
        .collect();
    if let Some(first) = typed.first() {
        if typed.iter().any(|k| k != first) {
            return Err(bad(format!(
                "cannot compare a {} with a {}",
                first.as_str(),
                typed
                    .iter()
                    .find(|k| *k != first)
                    .map_or("?", |k| k.as_str())
            )));
        }
        return Ok(*first);
    }
    // Only literals: numbers if any is a number, booleans if all are, else text.
    if ops.iter().any(|o| matches!(o, Operand::Num(_))) {
        return Ok(Kind::Number);
    }
    if ops
        .iter()
        .all(|o| matches!(o, Operand::Bool(_) | Operand::Null))
    {
        return Ok(Kind::Bool);
    }
    Ok(Kind::Text)
}

fn describe_expr(e: &Expr) -> String {
    match e {
        Expr::Property { property } => format!("property {property}"),
        Expr::Float(n) => format!("the number {n}"),
        Expr::Literal(s) => format!("the string {s:?}"),
        Expr::Bool(b) => format!("the boolean {b}"),
        Expr::Null => "null".into(),
        Expr::Array(_) => "an array".into(),
        Expr::Geometry(_) | Expr::BBox { .. } => "a geometry".into(),
        Expr::Timestamp { .. } | Expr::Date { .. } => "a timestamp".into(),
        Expr::Interval { .. } => "an interval".into(),
        Expr::Operation { op, .. } => format!("the {op} operation"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn queryables() -> Queryables {
        let mut seen = BTreeMap::new();
        seen.insert("eo:cloud_cover".to_owned(), vec![Kind::Number]);
        seen.insert("platform".to_owned(), vec![Kind::Text]);
        seen.insert("instruments".to_owned(), vec![Kind::Array]);
        seen.insert("created".to_owned(), vec![Kind::Timestamp]);
        Queryables::from_seen(&seen)
    }

    fn compile(text: &str) -> Result<Sql> {
        let q = queryables();
        parse_text(text)?.compile(&q)
    }

    #[test]
    fn literals_are_bound_and_typed_by_the_queryable() {
        let sql = compile("\"eo:cloud_cover\" < '20' AND platform = 'x''; drop'").unwrap();
        let text = sql.debug_text();
        assert!(
            text.contains("arcolake_number(properties->'eo:cloud_cover')"),
            "{text}"
        );
        assert!(!text.contains("drop"), "{text}");
        assert_eq!(sql.values()[0], &Value::Number(20.0));
        assert_eq!(sql.values()[1], &Value::Text("x'; drop".into()));
    }

    #[test]
    fn unknown_properties_and_type_errors_are_named() {
        let e = compile("nope = 1").unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        let e = compile("\"eo:cloud_cover\" = 'cloudy'")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a number"), "{e}");
        assert!(compile("platform < datetime").is_err());
    }

    #[test]
    fn datetime_in_temporal_functions_is_the_item_span() {
        let sql =
            compile("t_intersects(datetime, INTERVAL('2020-01-01T00:00:00Z', '..'))").unwrap();
        assert_eq!(
            sql.debug_text(),
            "(datetime <= 'infinity'::timestamptz AND end_datetime >= $1)"
        );
    }

    #[test]
    fn pgstac_spellings_are_aliases() {
        let a = compile("A_CONTAINED_BY(instruments, ('a', 'b'))").unwrap();
        let b = compile("A_CONTAINEDBY(instruments, ('a', 'b'))").unwrap();
        assert_eq!(a.debug_text(), b.debug_text());
        let json = parse_json(serde_json::json!({"op": "a_contained_by", "args": [{"property": "instruments"}, ["a"]]}))
            .unwrap()
            .compile(&queryables())
            .unwrap();
        assert!(json.debug_text().contains("<@"), "{}", json.debug_text());
        assert!(compile("T_OVERLAPPED_BY(datetime, INTERVAL('2020-01-01', '2021-01-01'))").is_ok());
    }

    #[test]
    fn time_columns_are_null_when_the_document_says_so() {
        let sql = compile("datetime IS NULL").unwrap();
        assert_eq!(sql.debug_text(), "((properties->>'datetime')) IS NULL");
        let sql = compile("end_datetime IS NOT NULL").unwrap();
        assert!(
            sql.debug_text().contains("properties->>'end_datetime'"),
            "{}",
            sql.debug_text()
        );
    }

    #[test]
    fn deep_nesting_compiles_and_too_deep_is_refused() {
        let mut text = "platform = 'a'".to_owned();
        for _ in 0..200 {
            text = format!("(NOT ({text}))");
        }
        // Runs on a test thread's default stack.
        assert!(compile(&text).is_ok());
        let mut text = "platform = 'a'".to_owned();
        for _ in 0..=MAX_DEPTH {
            text = format!("({text})");
        }
        let e = compile(&text).unwrap_err().to_string();
        assert!(e.contains("at most"), "{e}");
    }

    #[test]
    fn post_and_get_forms() {
        assert!(parse_member(serde_json::json!("platform = 'a'"), None).is_ok());
        assert!(
            parse_member(
                serde_json::json!({"op": "=", "args": [{"property": "platform"}, "a"]}),
                None
            )
            .is_ok()
        );
        assert!(
            parse_param(
                "{\"op\":\"=\",\"args\":[{\"property\":\"platform\"},\"a\"]}",
                Some("cql2-json")
            )
            .is_ok()
        );
        assert!(parse_param("platform = 'a'", Some("cql3")).is_err());
        assert!(check_crs(Some("EPSG:4326")).is_err());
        assert!(check_crs(Some(CRS84[0])).is_ok());
    }
}
