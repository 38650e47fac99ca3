//! The legacy query extension, translated into a CQL2 expression so that it
//! runs through the same compiler (and the same typing) as `filter`.
//!
//! `{"eo:cloud_cover": {"lt": "20"}, "instruments": {"in": ["msi"]}}`: every
//! property's operators are combined with `and`. Values arrive as JSON of any type (often
//! strings) and are typed by the queryables when compiled.

use cql2::Expr;
use serde_json::Value;

use crate::{Error, Result};

fn literal(v: &Value) -> Result<Expr> {
    Ok(match v {
        Value::Null => Expr::Null,
        Value::Bool(b) => Expr::Bool(*b),
        Value::Number(n) => Expr::Float(
            n.as_f64()
                .ok_or_else(|| Error::invalid_search("query numbers must be finite"))?,
        ),
        Value::String(s) => Expr::Literal(s.clone()),
        Value::Array(_) | Value::Object(_) => {
            return Err(Error::invalid_search(format!(
                "query value {v} must be a string, number or boolean"
            )));
        }
    })
}

/// Escape LIKE wildcards in a literal prefix, suffix or infix.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn op(op: &str, args: Vec<Expr>) -> Expr {
    Expr::Operation {
        op: op.to_owned(),
        args: args.into_iter().map(Box::new).collect(),
    }
}

/// Translate a query object into one CQL2 expression.
pub fn to_cql2(query: &Value) -> Result<Expr> {
    let Value::Object(props) = query else {
        return Err(Error::invalid_search(
            "query must be an object of property → {operator: value}",
        ));
    };
    let mut conds = Vec::new();
    for (name, ops) in props {
        let Value::Object(ops) = ops else {
            return Err(Error::invalid_search(format!(
                "query.{name} must be an object of operators (eq, neq, lt, lte, gt, gte, startsWith, endsWith, contains, in)"
            )));
        };
        let property = Expr::Property {
            property: name.clone(),
        };
        for (o, v) in ops {
            let text = || {
                v.as_str().map(like_escape).ok_or_else(|| {
                    Error::invalid_search(format!("query.{name}.{o} takes a string"))
                })
            };
            let cond = match o.as_str() {
                "eq" => op("=", vec![property.clone(), literal(v)?]),
                "neq" => op("<>", vec![property.clone(), literal(v)?]),
                "lt" => op("<", vec![property.clone(), literal(v)?]),
                "lte" => op("<=", vec![property.clone(), literal(v)?]),
                "gt" => op(">", vec![property.clone(), literal(v)?]),
                "gte" => op(">=", vec![property.clone(), literal(v)?]),
                "startsWith" => op(
                    "like",
                    vec![property.clone(), Expr::Literal(format!("{}%", text()?))],
                ),
                "endsWith" => op(
                    "like",
                    vec![property.clone(), Expr::Literal(format!("%{}", text()?))],
                ),
                "contains" => op(
                    "like",
                    vec![property.clone(), Expr::Literal(format!("%{}%", text()?))],
                ),
                "in" => {
                    let Value::Array(items) = v else {
                        return Err(Error::invalid_search(format!(
                            "query.{name}.in takes an array"
                        )));
                    };
                    let list = items
                        .iter()
                        .map(|i| literal(i).map(Box::new))
                        .collect::<Result<Vec<_>>>()?;
                    op("in", vec![property.clone(), Expr::Array(list)])
                }
                other => {
                    return Err(Error::invalid_search(format!(
                        "query operator {other:?} on {name} is not one of eq, neq, lt, lte, gt, gte, startsWith, endsWith, contains, in"
                    )));
                }
            };
            conds.push(cond);
        }
    }
    Ok(match conds.len() {
        0 => Expr::Bool(true),
        1 => conds.pop().unwrap_or(Expr::Bool(true)),
        _ => op("and", conds),
    })
}
