//! Items in the store: single writes and the bulk path.

use super::replica::lookup;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::{Store, StoredItem, UNIQUE_VIOLATION, WriteCounts, is_code, item_write_error};
use crate::access::Visibility;
use crate::model::{CollectionId, ItemId, ItemRecord};
use crate::search::Kind;
use crate::{Error, Result};

/// What a bulk write does with an item whose id exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Fail the whole write with `ItemExists`.
    Fail,
    /// Replace the existing item.
    Replace,
}

const INSERT_ITEMS: &str = "INSERT INTO items \
    (collection, id, geometry, datetime, start_datetime, end_datetime, content, properties, links) \
    SELECT c, i, ST_GeomFromGeoJSON(g), d, s, e, j::json, (j::json -> 'properties')::jsonb, l::json \
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], \
                $6::timestamptz[], $7::text[], $8::text[]) AS t(c, i, g, d, s, e, j, l)";

pub(super) const UPSERT_SUFFIX: &str = " ON CONFLICT ON CONSTRAINT items_pkey DO UPDATE SET \
    geometry = EXCLUDED.geometry, datetime = EXCLUDED.datetime, \
    start_datetime = EXCLUDED.start_datetime, end_datetime = EXCLUDED.end_datetime, \
    content = EXCLUDED.content, properties = EXCLUDED.properties, links = EXCLUDED.links, revision = items.revision + 1, updated_at = now() \
    RETURNING (revision = 1)";

/// Items prepared for one bulk write: column arrays for an `unnest` insert,
/// serialised off the writer's thread. A later item with the same
/// `(collection, id)` replaces an earlier one.
#[derive(Debug, Default)]
pub struct ItemBatch {
    collection: Vec<String>,
    id: Vec<String>,
    geometry: Vec<Option<String>>,
    datetime: Vec<DateTime<Utc>>,
    start: Vec<DateTime<Utc>>,
    end: Vec<DateTime<Utc>>,
    content: Vec<String>,
    links: Vec<Option<String>>,
    position: HashMap<(String, String), usize>,
    duplicate: Option<(CollectionId, ItemId)>,
    /// Collection → property → kinds seen in the batch, for the queryables.
    properties: BTreeMap<String, BTreeMap<String, BTreeSet<Kind>>>,
}

/// One item of a batch, as its columns.
struct BatchRow {
    collection: String,
    id: String,
    geometry: Option<String>,
    datetime: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    content: String,
    links: Option<String>,
}

impl ItemBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Items in the batch (after de-duplication).
    pub fn len(&self) -> usize {
        self.id.len()
    }

    /// `true` when the batch holds no item.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    /// Distinct collections the batch writes to.
    pub fn collections(&self) -> BTreeSet<&str> {
        self.collection.iter().map(String::as_str).collect()
    }

    /// Add one validated item.
    pub fn push(&mut self, r: &ItemRecord) {
        let seen = match self.properties.get_mut(r.collection.as_str()) {
            Some(seen) => seen,
            None => self
                .properties
                .entry(r.collection.as_str().to_owned())
                .or_default(),
        };
        note_properties(seen, r.content.get("properties"));
        self.push_row(BatchRow {
            collection: r.collection.as_str().to_owned(),
            id: r.id.as_str().to_owned(),
            geometry: r.geometry.clone(),
            datetime: r.datetime,
            start: r.start_datetime,
            end: r.end_datetime,
            content: crate::model::json_text(&r.content),
            links: r.links.as_ref().map(crate::model::json_text),
        });
    }

    /// Move every item of `other` into this batch, in order.
    pub fn append(&mut self, mut other: ItemBatch) {
        if self.duplicate.is_none() {
            self.duplicate.clone_from(&other.duplicate);
        }
        for (collection, props) in std::mem::take(&mut other.properties) {
            let seen = self.properties.entry(collection).or_default();
            for (name, kinds) in props {
                seen.entry(name).or_default().extend(kinds);
            }
        }
        for row in other.into_rows() {
            self.push_row(row);
        }
    }

    /// Drop the items of collections not in `known`; returns their keys.
    pub fn retain_collections(
        &mut self,
        known: &std::collections::HashSet<String>,
    ) -> Vec<(String, String)> {
        if self.collection.iter().all(|c| known.contains(c)) {
            return Vec::new();
        }
        let old = std::mem::take(self);
        self.duplicate.clone_from(&old.duplicate);
        self.properties = old
            .properties
            .iter()
            .filter(|(c, _)| known.contains(*c))
            .map(|(c, p)| (c.clone(), p.clone()))
            .collect();
        let mut removed = Vec::new();
        for row in old.into_rows() {
            if known.contains(&row.collection) {
                self.push_row(row);
            } else {
                removed.push((row.collection, row.id));
            }
        }
        removed
    }

    fn push_row(&mut self, row: BatchRow) {
        let key = (row.collection, row.id);
        if let Some(&at) = self.position.get(&key) {
            if self.duplicate.is_none() {
                self.duplicate = CollectionId::new(key.0.clone())
                    .ok()
                    .zip(ItemId::new(key.1.clone()).ok());
            }
            (
                self.geometry[at],
                self.datetime[at],
                self.start[at],
                self.end[at],
            ) = (row.geometry, row.datetime, row.start, row.end);
            (self.content[at], self.links[at]) = (row.content, row.links);
            return;
        }
        self.position.insert(key.clone(), self.id.len());
        self.collection.push(key.0);
        self.id.push(key.1);
        self.geometry.push(row.geometry);
        self.datetime.push(row.datetime);
        self.start.push(row.start);
        self.end.push(row.end);
        self.content.push(row.content);
        self.links.push(row.links);
    }

    fn into_rows(self) -> impl Iterator<Item = BatchRow> {
        let ItemBatch {
            collection,
            id,
            geometry,
            datetime,
            start,
            end,
            content,
            links,
            ..
        } = self;
        collection
            .into_iter()
            .zip(id)
            .zip(geometry)
            .zip(datetime)
            .zip(start)
            .zip(end)
            .zip(content)
            .zip(links)
            .map(
                |(((((((collection, id), geometry), datetime), start), end), content), links)| {
                    BatchRow {
                        collection,
                        id,
                        geometry,
                        datetime,
                        start,
                        end,
                        content,
                        links,
                    }
                },
            )
    }

    /// Empty the batch, keeping its allocations.
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

impl Store {
    /// One item, if `visibility` sees its collection.
    pub async fn get_item(
        &self,
        collection: &CollectionId,
        id: &ItemId,
        visibility: &Visibility,
    ) -> Result<StoredItem> {
        let hidden = self.hidden_on_primary(visibility).await?;
        let row = lookup!(self, |pool| {
            let mut qb = QueryBuilder::<Postgres>::new(
                "SELECT collection, id, datetime, content::text, links::text FROM items WHERE collection = ",
            );
            qb.push_bind(collection.as_str())
                .push(" AND id = ")
                .push_bind(id.as_str());
            visibility.push_condition_with(&mut qb, "collection", hidden.as_deref());
            qb.build().fetch_optional(pool).await?
        });
        match row {
            Some(r) => Ok(StoredItem {
                collection: r.get(0),
                id: r.get(1),
                datetime: r.get(2),
                content: r.get(3),
                links: r.get(4),
            }),
            None => Err(self.missing_item(collection, id, visibility).await),
        }
    }

    /// Why an item was not found: its collection is missing (or hidden from
    /// `visibility`), or the item is.
    async fn missing_item(
        &self,
        collection: &CollectionId,
        id: &ItemId,
        visibility: &Visibility,
    ) -> Error {
        match self
            .collection_visible(collection.as_str(), visibility)
            .await
        {
            Ok(false) => Error::CollectionNotFound {
                id: collection.clone(),
            },
            Ok(true) => Error::ItemNotFound {
                collection: collection.clone(),
                item: id.clone(),
            },
            Err(e) => e,
        }
    }

    /// Create one item; `ItemExists` if the id is taken in its collection.
    /// The item, the queryables bookkeeping and the collection's longest
    /// span are written in one transaction.
    pub async fn create_item(&self, record: &ItemRecord) -> Result<()> {
        self.wrote();
        self.insert_items(std::slice::from_ref(record)).await?;
        Ok(())
    }

    /// Create items, all or none (`ItemExists` when any id is taken).
    pub async fn insert_items(&self, records: &[ItemRecord]) -> Result<WriteCounts> {
        self.wrote();
        let mut tx = self.pool.begin().await?;
        let counts = Self::write_items(&mut tx, records, OnConflict::Fail).await?;
        tx.commit().await?;
        Ok(counts)
    }

    /// Replace an existing item; `ItemNotFound` if it does not exist. One
    /// transaction, like [`Store::create_item`].
    pub async fn replace_item(&self, record: &ItemRecord) -> Result<()> {
        self.wrote();
        let mut tx = self.pool.begin().await?;
        Self::update_item(&mut tx, record).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Apply `change` to the stored item (its JSON with links) and write the
    /// result, in one transaction that holds the row: two concurrent patches
    /// of one item both apply, one after the other.
    pub async fn patch_item<F>(
        &self,
        collection: &CollectionId,
        id: &ItemId,
        change: F,
    ) -> Result<()>
    where
        F: FnOnce(serde_json::Value) -> Result<ItemRecord>,
    {
        self.wrote();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT content, links FROM items WHERE collection = $1 AND id = $2 FOR UPDATE",
        )
        .bind(collection.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(self.missing_item(collection, id, &Visibility::all()).await);
        };
        let mut content: serde_json::Value = row.get(0);
        let links: Option<serde_json::Value> = row.get(1);
        if let (serde_json::Value::Object(map), Some(links)) = (&mut content, links) {
            map.insert("links".into(), links);
        }
        let record = change(content)?;
        Self::update_item(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Update one existing item and its bookkeeping on `conn`.
    async fn update_item(conn: &mut PgConnection, record: &ItemRecord) -> Result<()> {
        let done = sqlx::query(
            "UPDATE items SET geometry = ST_GeomFromGeoJSON($3), datetime = $4, start_datetime = $5, \
             end_datetime = $6, content = $7::json, properties = ($7::json -> 'properties')::jsonb, \
             links = $8::json, revision = revision + 1, updated_at = now() \
             WHERE collection = $1 AND id = $2",
        )
        .bind(record.collection.as_str())
        .bind(record.id.as_str())
        .bind(record.geometry.as_deref())
        .bind(record.datetime)
        .bind(record.start_datetime)
        .bind(record.end_datetime)
        .bind(crate::model::json_text(&record.content))
        .bind(record.links.as_ref().map(ToString::to_string))
        .execute(&mut *conn)
        .await
        .map_err(|e| item_write_error(e, &record.collection, Some(&record.id)))?;
        if done.rows_affected() == 0 {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM collections WHERE id = $1)")
                    .bind(record.collection.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
            return Err(if exists {
                Error::ItemNotFound {
                    collection: record.collection.clone(),
                    item: record.id.clone(),
                }
            } else {
                Error::CollectionNotFound {
                    id: record.collection.clone(),
                }
            });
        }
        let mut batch = ItemBatch::new();
        batch.push(record);
        Self::record_properties(conn, &batch.properties).await?;
        let secs = span_seconds(record.end_datetime - record.start_datetime);
        if secs > 0.0 {
            sqlx::query(
                "UPDATE collections SET max_item_span = $2 * interval '1 second' \
                 WHERE id = $1 AND max_item_span < $2 * interval '1 second'",
            )
            .bind(record.collection.as_str())
            .bind(secs)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Delete one item.
    pub async fn delete_item(&self, collection: &CollectionId, id: &ItemId) -> Result<()> {
        self.wrote();
        let done = sqlx::query("DELETE FROM items WHERE collection = $1 AND id = $2")
            .bind(collection.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(self.missing_item(collection, id, &Visibility::all()).await);
        }
        Ok(())
    }

    /// Write many items in one statement on `conn`.
    ///
    /// Run it inside a transaction for all-or-nothing semantics. Within one
    /// call, a later record with the same `(collection, id)` wins (or, with
    /// [`OnConflict::Fail`], is an `ItemExists` error). Every target
    /// collection must exist (`CollectionNotFound` otherwise).
    pub async fn write_items(
        conn: &mut PgConnection,
        records: &[ItemRecord],
        on_conflict: OnConflict,
    ) -> Result<WriteCounts> {
        let mut batch = ItemBatch::new();
        for r in records {
            batch.push(r);
        }
        Self::write_batch(conn, &batch, on_conflict).await
    }

    /// Write a prepared [`ItemBatch`] in one statement on `conn`.
    pub async fn write_batch(
        conn: &mut PgConnection,
        batch: &ItemBatch,
        on_conflict: OnConflict,
    ) -> Result<WriteCounts> {
        if batch.is_empty() {
            return Ok(WriteCounts::default());
        }
        if on_conflict == OnConflict::Fail
            && let Some((collection, item)) = &batch.duplicate
        {
            return Err(Error::ItemExists {
                collection: collection.clone(),
                item: item.clone(),
            });
        }
        let names: Vec<&str> = batch.collections().into_iter().collect();
        let found: Vec<String> =
            sqlx::query_scalar("SELECT id FROM collections WHERE id = ANY($1)")
                .bind(&names)
                .fetch_all(&mut *conn)
                .await?;
        if let Some(missing) = names.iter().find(|n| !found.iter().any(|f| f == *n)) {
            let id =
                CollectionId::new(*missing).map_err(|e| Error::invalid_item("collection", e))?;
            return Err(Error::CollectionNotFound { id });
        }
        let sql = match on_conflict {
            OnConflict::Fail => format!("{INSERT_ITEMS} RETURNING true"),
            OnConflict::Replace => format!("{INSERT_ITEMS}{UPSERT_SUFFIX}"),
        };
        let first = || {
            let c = CollectionId::new(batch.collection[0].clone()).ok();
            let i = ItemId::new(batch.id[0].clone()).ok();
            c.zip(i)
        };
        let created: Vec<bool> = sqlx::query_scalar(&sql)
            .bind(&batch.collection)
            .bind(&batch.id)
            .bind(&batch.geometry)
            .bind(&batch.datetime)
            .bind(&batch.start)
            .bind(&batch.end)
            .bind(&batch.content)
            .bind(&batch.links)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| {
                if is_code(&e, UNIQUE_VIOLATION)
                    && let Some((collection, item)) = duplicate_key(&e)
                        .and_then(|(c, i)| CollectionId::new(c).ok().zip(ItemId::new(i).ok()))
                        .or_else(first)
                {
                    return Error::ItemExists { collection, item };
                }
                match first() {
                    Some((collection, _)) => item_write_error(e, &collection, None),
                    None => Error::from(e),
                }
            })?;
        Self::record_properties(conn, &batch.properties).await?;
        // Widen each collection's longest item span when this batch has a
        // longer one (the temporal filter's lower bound depends on it).
        let mut spans: HashMap<&str, f64> = HashMap::new();
        for (i, c) in batch.collection.iter().enumerate() {
            let secs = span_seconds(batch.end[i] - batch.start[i]);
            let e = spans.entry(c.as_str()).or_insert(0.0);
            *e = e.max(secs);
        }
        Self::record_spans(conn, spans).await?;
        let inserted = created.iter().filter(|c| **c).count() as u64;
        Ok(WriteCounts {
            inserted,
            updated: created.len() as u64 - inserted,
        })
    }
}

impl Store {
    /// Widen each collection's longest item span to the given seconds where
    /// they are longer.
    pub(super) async fn record_spans(
        conn: &mut PgConnection,
        spans: HashMap<&str, f64>,
    ) -> Result<()> {
        let (ids, secs): (Vec<&str>, Vec<f64>) =
            spans.into_iter().filter(|(_, s)| *s > 0.0).unzip();
        if !ids.is_empty() {
            sqlx::query(
                "UPDATE collections SET max_item_span = v.span * interval '1 second' \
                 FROM unnest($1::text[], $2::float8[]) AS v(id, span) \
                 WHERE collections.id = v.id AND collections.max_item_span < v.span * interval '1 second'",
            )
            .bind(&ids)
            .bind(&secs)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Note the properties a batch carries, for the queryables. Rows are
    /// written in key order, so concurrent writers cannot deadlock here.
    pub(super) async fn record_properties(
        conn: &mut PgConnection,
        properties: &BTreeMap<String, BTreeMap<String, BTreeSet<Kind>>>,
    ) -> Result<()> {
        let (mut c, mut n, mut k) = (Vec::new(), Vec::new(), Vec::new());
        for (collection, props) in properties {
            for (name, kinds) in props {
                for kind in kinds {
                    c.push(collection.as_str());
                    n.push(name.as_str());
                    k.push(kind.as_str());
                }
            }
        }
        if c.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO item_properties (collection, name, kind) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&c)
        .bind(&n)
        .bind(&k)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Note the kind of each of an item's `properties`, for the queryables.
pub(crate) fn note_properties(
    seen: &mut BTreeMap<String, BTreeSet<Kind>>,
    properties: Option<&serde_json::Value>,
) {
    for_each_kind(properties, |name, kind| match seen.get_mut(name) {
        Some(kinds) => {
            kinds.insert(kind);
        }
        None => {
            seen.insert(name.to_owned(), BTreeSet::from([kind]));
        }
    });
}

/// Count the kind of each of an item's `properties`, for the queryables.
pub(crate) fn count_properties(
    seen: &mut BTreeMap<String, BTreeMap<Kind, u64>>,
    properties: Option<&serde_json::Value>,
) {
    for_each_kind(properties, |name, kind| {
        let kinds = match seen.get_mut(name) {
            Some(kinds) => kinds,
            None => seen.entry(name.to_owned()).or_default(),
        };
        *kinds.entry(kind).or_default() += 1;
    });
}

/// Call `f` with the name and kind of each of an item's `properties`.
pub(crate) fn for_each_kind(properties: Option<&serde_json::Value>, mut f: impl FnMut(&str, Kind)) {
    let Some(props) = properties.and_then(|p| p.as_object()) else {
        return;
    };
    for (name, value) in props {
        if let Some(kind) = Kind::of(value) {
            f(name, kind);
        }
    }
}

/// A time span in seconds, for `max_item_span`.
pub(super) fn span_seconds(span: chrono::TimeDelta) -> f64 {
    #[expect(
        clippy::cast_precision_loss,
        reason = "a span in seconds; sub-microsecond loss does not matter"
    )]
    span.num_microseconds()
        .map_or(f64::MAX, |us| us as f64 / 1e6)
}

/// `(collection, id)` from "Key (collection, id)=(a, b) already exists."
fn duplicate_key(e: &sqlx::Error) -> Option<(String, String)> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    let detail = pg.detail()?;
    let values = detail
        .split_once(")=(")?
        .1
        .rsplit_once(") already exists")?
        .0;
    let (c, i) = values.split_once(", ")?;
    Some((c.to_owned(), i.to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(collection: &str, id: &str, datetime: &str) -> ItemRecord {
        let doc = json!({
            "type": "Feature", "stac_version": "1.0.0", "id": id, "collection": collection,
            "geometry": null, "properties": {"datetime": datetime}, "assets": {}
        });
        ItemRecord::from_value(doc, None).unwrap()
    }

    #[test]
    fn batches_keep_the_last_of_duplicate_keys_and_drop_unknown_collections() {
        let mut a = ItemBatch::new();
        a.push(&record("c", "x", "2020-01-01T00:00:00Z"));
        a.push(&record("d", "x", "2020-01-01T00:00:00Z"));
        let mut b = ItemBatch::new();
        b.push(&record("c", "x", "2021-01-01T00:00:00Z"));
        b.push(&record("c", "y", "2021-01-01T00:00:00Z"));
        a.append(b);
        assert_eq!(a.len(), 3);
        assert!(a.content[0].contains("2021"), "the later duplicate wins");
        assert!(a.duplicate.is_some());
        let removed = a.retain_collections(&["c".to_owned()].into_iter().collect());
        assert_eq!(removed, [("d".to_owned(), "x".to_owned())]);
        assert_eq!(a.id, ["x", "y"]);
        a.push(&record("c", "y", "2022-01-01T00:00:00Z"));
        assert_eq!(a.len(), 2, "positions survive retain");
    }
}
