//! Item search: validated [`Search`] to SQL with bound parameters only.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder, Row};

use super::{Store, StoredItem};
use crate::search::{Direction, PageToken, Search};
use crate::{Error, Result};

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
    /// Matches of the whole search, on first pages only.
    pub matched: Option<Count>,
}

fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, search: &Search) {
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
    if !search.ids.is_empty() {
        qb.push(" AND id = ANY(")
            .push_bind(search.ids.clone())
            .push(")");
    }
    if let Some(bbox) = &search.bbox {
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
}

fn key_datetime(token: &PageToken) -> Result<DateTime<Utc>> {
    let bad = || Error::invalid_search("token does not belong to this search's sort order");
    match token.key.as_slice() {
        [Value::String(s)] => DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn token_for(item: &StoredItem, direction: Direction) -> PageToken {
    PageToken {
        direction,
        key: vec![Value::String(
            item.datetime.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        )],
        collection: item.collection.clone(),
        id: item.id.clone(),
    }
}

impl Store {
    /// Run one page of `search`, sorted by datetime descending with
    /// `(collection, id)` as the tie-break.
    pub async fn search(&self, search: &Search) -> Result<ItemPage> {
        let limit = i64::from(search.limit);
        let direction = search
            .token
            .as_ref()
            .map_or(Direction::Next, |t| t.direction);
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT collection, id, datetime, content::text, links::text FROM items",
        );
        push_filters(&mut qb, search);
        if let Some(token) = &search.token {
            let datetime = key_datetime(token)?;
            let op = if direction == Direction::Next {
                " < "
            } else {
                " > "
            };
            qb.push(" AND (datetime, collection, id)")
                .push(op)
                .push("(")
                .push_bind(datetime)
                .push(", ")
                .push_bind(token.collection.clone())
                .push(", ")
                .push_bind(token.id.clone())
                .push(")");
        }
        qb.push(if direction == Direction::Next {
            " ORDER BY datetime DESC, collection DESC, id DESC"
        } else {
            " ORDER BY datetime ASC, collection ASC, id ASC"
        });
        qb.push(" LIMIT ").push_bind(limit + 1);

        let rows = qb.build().fetch_all(&self.pool).await?;
        let items: Vec<StoredItem> = rows
            .iter()
            .map(|r| StoredItem {
                collection: r.get(0),
                id: r.get(1),
                datetime: r.get(2),
                content: r.get(3),
                links: r.get(4),
            })
            .collect();
        // A first page that is not full holds every match: no count needed.
        let matched = match &search.token {
            Some(_) => None,
            None if items.len() <= usize::try_from(limit).unwrap_or(usize::MAX) => Some(Count {
                value: items.len() as u64,
                exact: true,
            }),
            None => Some(self.count(search).await?),
        };
        let mut items = items;
        let more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let (has_next, has_prev) = match (&search.token, direction) {
            (None, _) => (more, false),
            (Some(_), Direction::Next) => (more, true),
            (Some(_), Direction::Prev) => (true, more),
        };
        if direction == Direction::Prev {
            items.reverse();
        }
        let next = if has_next {
            items.last().map(|i| token_for(i, Direction::Next))
        } else {
            None
        };
        let prev = if has_prev {
            items.first().map(|i| token_for(i, Direction::Prev))
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

    /// Count matches: exactly up to the count limit, else the planner's
    /// estimate. When the planner already expects far more matches than the
    /// limit, the exact (capped) count is skipped: it could only confirm
    /// that there are more.
    pub async fn count(&self, search: &Search) -> Result<Count> {
        let mut qb = QueryBuilder::<Postgres>::new("EXPLAIN (FORMAT JSON) SELECT 1 FROM items");
        push_filters(&mut qb, search);
        let plan: Value = qb.build().fetch_one(&self.pool).await?.get(0);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "row estimates are non-negative and far below 2^53"
        )]
        let estimate = plan[0]["Plan"]["Plan Rows"]
            .as_f64()
            .unwrap_or(0.0)
            .max(0.0)
            .round() as u64;
        if estimate > self.count_limit.saturating_mul(2) {
            return Ok(Count {
                value: estimate,
                exact: false,
            });
        }
        let cap = i64::try_from(self.count_limit).unwrap_or(i64::MAX);
        let mut qb = QueryBuilder::<Postgres>::new("SELECT count(*) FROM (SELECT 1 FROM items");
        push_filters(&mut qb, search);
        qb.push(" LIMIT ").push_bind(cap + 1).push(") AS capped");
        let n: i64 = qb.build().fetch_one(&self.pool).await?.get(0);
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
