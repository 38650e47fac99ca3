//! Item search: validated [`Search`] to SQL with bound parameters only.

use serde_json::Value;
use sqlx::{Postgres, QueryBuilder, Row};

use super::{Store, StoredItem};
use crate::search::sort::SortPlan;
use crate::search::sql::{Sql, Value as SqlValue};
use crate::search::{Direction, PageToken, Queryables, Search};
use crate::{Error, Result};

/// SQLSTATE of a statement cancelled by its timeout.
const QUERY_CANCELED: &str = "57014";

/// How many items matched a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// The number.
    pub value: u64,
    /// `false` when it is the planner's estimate.
    pub exact: bool,
}

/// One page of a search.
#[derive(Debug, Clone)]
pub struct ItemPage {
    /// The items, in sort order.
    pub items: Vec<StoredItem>,
    /// Token of the following page, if there is one.
    pub next: Option<PageToken>,
    /// Token of the preceding page, if there is one.
    pub prev: Option<PageToken>,
    /// Matches of the whole search: counted for the first page, then carried
    /// by its page tokens to every later one.
    pub matched: Option<Count>,
}

/// A search resolved against the queryables: its extra predicate (filter,
/// query, free text) and its order.
pub(super) struct Plan {
    predicate: Sql,
    sort: SortPlan,
    /// Restricted collections the caller does not see, resolved before the
    /// query so that the planner prunes their partitions (and its estimate
    /// of the matches never counts them).
    hidden: Vec<String>,
}

/// The free-text predicate over an item's title, description and keywords.
fn free_text(q: &[String]) -> Sql {
    let mut s = Sql::text(
        "to_tsvector('simple', concat_ws(' ', properties->>'title', \
         properties->>'description', properties->>'keywords')) @@ (",
    );
    let parts = q.iter().map(|alt| {
        let mut p = Sql::text("phraseto_tsquery('simple', ");
        p.push_bind(SqlValue::Text(alt.clone())).push(")");
        p
    });
    s.push_sql(Sql::join(parts, " || ")).push(")");
    s
}

pub(super) fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, search: &Search, plan: &Plan) {
    qb.push(" WHERE true");
    match search.collections.as_slice() {
        [] => {}
        [one] => {
            qb.push(" AND collection = ").push_bind(one.clone());
        }
        many => {
            qb.push(" AND collection = ANY(")
                .push_bind(many.to_vec())
                .push(")");
        }
    }
    if !plan.hidden.is_empty() {
        qb.push(" AND collection <> ALL(")
            .push_bind(plan.hidden.clone())
            .push(")");
    }
    if !search.ids.is_empty() {
        qb.push(" AND id = ANY(")
            .push_bind(search.ids.clone())
            .push(")");
    }
    if search.bbox.is_some_and(|b| b.covers_world()) {
        // What QGIS asks first for a whole layer: a box around the world
        // filters nothing but items without a footprint, and must cost
        // what no box costs (the datetime index walks the page in order).
        qb.push(" AND geometry IS NOT NULL");
    } else if let Some(bbox) = &search.bbox {
        qb.push(" AND (");
        for (i, [w, s, e, n]) in bbox.parts().into_iter().enumerate() {
            if i > 0 {
                qb.push(" OR ");
            }
            qb.push("ST_Intersects(geometry, ST_MakeEnvelope(")
                .push_bind(w)
                .push(", ")
                .push_bind(s)
                .push(", ")
                .push_bind(e)
                .push(", ")
                .push_bind(n)
                .push(", 4326))");
        }
        qb.push(")");
    }
    if let Some(geojson) = &search.intersects {
        qb.push(" AND ST_Intersects(geometry, ST_GeomFromGeoJSON(")
            .push_bind(geojson.clone())
            .push("))");
    }
    if let Some(interval) = &search.datetime {
        // The item's span [datetime, end_datetime] overlaps the interval.
        // `datetime` is the span's start and the leading sort key, so the
        // upper bound is an index condition of the sorted scan.
        if let Some(end) = interval.end {
            qb.push(" AND datetime <= ").push_bind(end);
        }
        if let Some(start) = interval.start {
            // No item spans longer than its collection's longest span, so
            // its start lies at most that long before the interval: a lower
            // bound on the sort key, and a bounded index range.
            qb.push(" AND end_datetime >= ").push_bind(start);
            qb.push(" AND datetime >= ")
                .push_bind(start)
                .push(" - (SELECT coalesce(max(max_item_span), interval '0') FROM collections");
            if !search.collections.is_empty() {
                qb.push(" WHERE id = ANY(")
                    .push_bind(search.collections.clone())
                    .push(")");
            }
            qb.push(")");
        }
    }
    if !plan.predicate.is_empty() {
        qb.push(" AND ");
        plan.predicate.push_to(qb);
    }
}

impl Plan {
    /// `ORDER BY` of the search's order read in `direction`.
    pub(super) fn order(&self, direction: Direction) -> String {
        self.sort.order_by(direction)
    }
}

/// Searches with a geometry, a box or a filter are planned for their own
/// values (an unnamed statement, never a cached generic plan): a search
/// geometry then folds into a constant once, where a generic plan rebuilds
/// it from its parameter for every row it tests, and the planner sees how
/// large the area is and how selective the filter. A prepared box search
/// switches to a generic plan after five executions, which cannot tell a
/// box around a continent from one around a city and scans every match of
/// a large box spatially, then sorts them all. Other searches reuse their
/// plans.
pub(super) fn one_shot(search: &Search) -> bool {
    search.intersects.is_some()
        || search.filter.is_some()
        || search.bbox.is_some_and(|b| !b.covers_world())
}

/// What the plan of a page query says about counting its matches.
struct PlanShape {
    /// The plan sorts all matches (a `Sort` under the `Limit`).
    sorts_all: bool,
    /// The planner's estimate of all matches.
    matches: u64,
}

fn plan_rows(node: &Value) -> u64 {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "row estimates are non-negative and far below 2^53"
    )]
    let rows = node["Plan Rows"].as_f64().unwrap_or(0.0).max(0.0).round() as u64;
    rows
}

impl PlanShape {
    fn of(explained: &Value) -> Self {
        let top = &explained[0]["Plan"];
        // The node under the `Limit` (init plans sit beside it).
        let below_limit = top["Plans"]
            .as_array()
            .and_then(|plans| plans.iter().find(|p| p["Parent Relationship"] == "Outer"))
            .filter(|_| top["Node Type"] == "Limit")
            .unwrap_or(top);
        Self {
            sorts_all: below_limit["Node Type"] == "Sort",
            matches: plan_rows(below_limit),
        }
    }
}

/// The query for one page of `search`, after `prefix` (`EXPLAIN `). With
/// `counted`, each row also carries the number of all matches (a window
/// count: worth it only when the plan enumerates every match anyway).
fn page_query<'a>(
    prefix: &str,
    search: &'a Search,
    plan: &Plan,
    direction: Direction,
    counted: bool,
) -> Result<QueryBuilder<'a, Postgres>> {
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "{prefix}SELECT collection, id, datetime, content::text, links::text, {}::text{} FROM items",
        plan.sort.key_columns(),
        if counted { ", count(*) OVER ()" } else { "" }
    ));
    push_filters(&mut qb, search, plan);
    if let Some(token) = &search.token {
        plan.sort.after(token)?.push_to(&mut qb);
    }
    qb.push(plan.sort.order_by(direction));
    qb.push(" LIMIT ").push_bind(i64::from(search.limit) + 1);
    Ok(qb)
}

impl Store {
    /// Resolve filter, query, free text and sort against the queryables:
    /// those of the searched collections, then those of the rest of the
    /// catalog (a property only other collections have matches nothing).
    /// A name the cached queryables do not know gets one fresh look.
    pub(super) async fn plan(&self, search: &Search) -> Result<Plan> {
        let hidden = self.hidden_collections(&search.visibility).await?;
        let build = |q: &Queryables| -> Result<Plan> {
            let mut parts = Vec::new();
            if let Some(filter) = &search.filter {
                parts.push(filter.compile(q)?.wrapped());
            }
            if !search.q.is_empty() {
                parts.push(free_text(&search.q));
            }
            Ok(Plan {
                predicate: Sql::join(parts, " AND "),
                sort: SortPlan::resolve(&search.sortby, q)?,
                hidden: hidden.clone(),
            })
        };
        if search.filter.is_none() && search.sortby.is_empty() {
            return build(&Queryables::core());
        }
        let q = self
            .search_queryables(&search.collections, &search.visibility, false)
            .await?;
        match build(&q) {
            Ok(plan) => Ok(plan),
            Err(Error::InvalidSearch { .. }) => {
                let q = self
                    .search_queryables(&search.collections, &search.visibility, true)
                    .await?;
                build(&q)
            }
            Err(e) => Err(e),
        }
    }

    /// Run one page of `search` in its sort order, with `(collection, id)`
    /// as the tie-break.
    ///
    /// The first page counts the matches; its tokens carry the count, so
    /// every later page repeats it without counting again. A token is only
    /// honoured by the search it came from.
    pub async fn search(&self, search: &Search) -> Result<ItemPage> {
        // Hashing the search is needed only to check a token or to write
        // one: a first page that holds every match does neither.
        let fingerprint = search.token.as_ref().map(|_| search.fingerprint());
        if let Some(token) = &search.token
            && token.search != fingerprint
        {
            return Err(Error::invalid_search(
                "token belongs to another search; follow the links of this search's pages",
            ));
        }
        let plan = self.plan(search).await?;
        let limit = i64::from(search.limit);
        let direction = search
            .token
            .as_ref()
            .map_or(Direction::Next, |t| t.direction);
        // A first page needs a count. The plan of the page decides how: a
        // plan that sorts enumerates every match anyway, so a window count
        // in the same query costs next to nothing; an ordered scan stops
        // after one page, and the count is made apart (or estimated).
        let shape = if search.token.is_none() && !search.exact_count {
            let mut qb = page_query("EXPLAIN (FORMAT JSON) ", search, &plan, direction, false)?;
            let explained: Value = qb
                .build()
                .persistent(!one_shot(search))
                .fetch_one(self.reader())
                .await?
                .get(0);
            Some(PlanShape::of(&explained))
        } else {
            None
        };
        let counted = shape.as_ref().is_some_and(|s| s.sorts_all);
        let mut qb = page_query("", search, &plan, direction, counted)?;
        let rows = qb
            .build()
            .persistent(!one_shot(search))
            .fetch_all(self.reader())
            .await?;
        let window_count: Option<u64> = if counted {
            Some(
                rows.first()
                    .map_or(0, |r| u64::try_from(r.get::<i64, _>(6)).unwrap_or(0)),
            )
        } else {
            None
        };
        let mut keys: Vec<Vec<Value>> = Vec::with_capacity(rows.len());
        let items: Vec<StoredItem> = rows
            .iter()
            .map(|r| {
                keys.push(serde_json::from_str(r.get::<&str, _>(5)).unwrap_or_default());
                StoredItem {
                    collection: r.get(0),
                    id: r.get(1),
                    datetime: r.get(2),
                    content: r.get(3),
                    links: r.get(4),
                }
            })
            .collect();
        let cap = usize::try_from(limit).unwrap_or(usize::MAX);
        // A first page that is not full holds every match: no count needed.
        let matched = match (&search.token, window_count) {
            (Some(token), _) => token.matched.map(|value| Count {
                value,
                exact: !token.estimate,
            }),
            (None, _) if items.len() <= cap => Some(Count {
                value: items.len() as u64,
                exact: true,
            }),
            (None, Some(n)) => Some(Count {
                value: n,
                exact: true,
            }),
            (None, None) => Some(match &shape {
                Some(shape) => self.count_capped(search, &plan, shape.matches).await?,
                None => self.count_exact(search, &plan).await?,
            }),
        };
        let mut items = items;
        let more = items.len() > cap;
        items.truncate(cap);
        keys.truncate(cap);
        let (has_next, has_prev) = match (&search.token, direction) {
            (None, _) => (more, false),
            (Some(_), Direction::Next) => (more, true),
            (Some(_), Direction::Prev) => (true, more),
        };
        if direction == Direction::Prev {
            items.reverse();
            keys.reverse();
        }
        let fingerprint =
            fingerprint.or_else(|| (has_next || has_prev).then(|| search.fingerprint()));
        let token = |at: usize, direction| {
            items.get(at).map(|i| PageToken {
                matched: matched.map(|c| c.value),
                estimate: matched.is_some_and(|c| !c.exact),
                search: fingerprint,
                ..PageToken::new(
                    direction,
                    keys[at].clone(),
                    i.collection.clone(),
                    i.id.clone(),
                )
            })
        };
        let next = if has_next {
            items
                .len()
                .checked_sub(1)
                .and_then(|last| token(last, Direction::Next))
        } else {
            None
        };
        let prev = if has_prev {
            token(0, Direction::Prev)
        } else {
            None
        };
        Ok(ItemPage {
            items,
            next,
            prev,
            matched,
        })
    }

    /// The plan PostgreSQL chooses for the first page of `search`, as text,
    /// run on `conn` (so session settings there apply).
    pub async fn explain(&self, search: &Search, conn: &mut sqlx::PgConnection) -> Result<String> {
        let plan = self.plan(search).await?;
        let mut qb = page_query("EXPLAIN ", search, &plan, Direction::Next, false)?;
        let lines: Vec<String> = qb
            .build()
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        Ok(lines.join("\n"))
    }

    /// Count every match (`context=on`).
    async fn count_exact(&self, search: &Search, plan: &Plan) -> Result<Count> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT count(*) FROM items");
        push_filters(&mut qb, search, plan);
        let n: i64 = qb
            .build()
            .persistent(!one_shot(search))
            .fetch_one(self.reader())
            .await?
            .get(0);
        Ok(Count {
            value: u64::try_from(n).unwrap_or(0),
            exact: true,
        })
    }

    /// Count matches: exactly up to the count limit, else the planner's
    /// `estimate` (from the page query's plan). When the planner already
    /// expects far more matches than the limit, the exact (capped) count is
    /// skipped: it could only confirm that there are more.
    async fn count_capped(&self, search: &Search, plan: &Plan, estimate: u64) -> Result<Count> {
        if estimate > self.count_limit.saturating_mul(2) {
            return Ok(Count {
                value: estimate,
                exact: false,
            });
        }
        let cap = i64::try_from(self.count_limit).unwrap_or(i64::MAX);
        // The planner can be far off (a selective filter on a property
        // without an index looks like a third of the table), so the capped
        // count also runs under a time budget; past it, the estimate stands.
        let mut tx = self.reader().begin().await?;
        sqlx::query("SELECT set_config('statement_timeout', $1, true)")
            .bind(format!("{}ms", self.count_timeout.as_millis().max(1)))
            .execute(&mut *tx)
            .await?;
        let mut qb = QueryBuilder::<Postgres>::new("SELECT count(*) FROM (SELECT 1 FROM items");
        push_filters(&mut qb, search, plan);
        qb.push(" LIMIT ").push_bind(cap + 1).push(") AS capped");
        let n: i64 = match qb
            .build()
            .persistent(!one_shot(search))
            .fetch_one(&mut *tx)
            .await
        {
            Ok(row) => row.get(0),
            Err(e) if super::is_code(&e, QUERY_CANCELED) => {
                return Ok(Count {
                    value: estimate.max(u64::from(search.limit) + 1),
                    exact: false,
                });
            }
            Err(e) => return Err(e.into()),
        };
        tx.commit().await?;
        if n <= cap {
            return Ok(Count {
                value: u64::try_from(n).unwrap_or(0),
                exact: true,
            });
        }
        // An estimate below what was just counted would be plainly wrong.
        Ok(Count {
            value: estimate.max(self.count_limit + 1),
            exact: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn plan_shape_looks_under_the_limit_past_init_plans() {
        let sorted = json!([{"Plan": {"Node Type": "Limit", "Plan Rows": 51, "Plans": [
            {"Node Type": "Result", "Parent Relationship": "InitPlan", "Plan Rows": 1},
            {"Node Type": "Sort", "Parent Relationship": "Outer", "Plan Rows": 133}
        ]}}]);
        let shape = PlanShape::of(&sorted);
        assert!(shape.sorts_all);
        assert_eq!(shape.matches, 133);
        let ordered = json!([{"Plan": {"Node Type": "Limit", "Plan Rows": 51, "Plans": [
            {"Node Type": "Merge Append", "Parent Relationship": "Outer", "Plan Rows": 99000}
        ]}}]);
        let shape = PlanShape::of(&ordered);
        assert!(!shape.sorts_all);
        assert_eq!(shape.matches, 99000);
    }
}
