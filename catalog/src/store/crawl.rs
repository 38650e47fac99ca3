//! Crawl state: what the crawler registered from each storage object.
//!
//! See `migrations/0003_create_crawl_objects.sql`. The crawler writes rows
//! and the items built from them in one transaction per batch: a
//! [`CrawlChange`] is applied by [`Store::commit_crawl_change`], which asks
//! the crawler to rebuild each item the change touches from its stored parts.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use sqlx::PgConnection;

use super::Store;
use super::items::{ItemBatch, OnConflict};
use crate::{ItemRecord, Result};

/// One batch of changes to a source's crawl state.
#[derive(Debug, Clone, Copy)]
pub enum CrawlChange<'a> {
    /// Objects read (new or changed) or marked missing by this crawl
    /// generation: inserted or replaced.
    Put {
        /// The crawl generation that saw them.
        generation: i64,
        /// The objects.
        objects: &'a [CrawlObject],
    },
    /// Objects gone from storage: forgotten.
    Remove {
        /// Their paths (relative to the source root).
        objects: &'a [CrawlObject],
    },
}

/// A stored part of an item, as the crawler's rebuild sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPart {
    /// The crawl-state key of the source the object belongs to.
    pub source: String,
    /// The object's path.
    pub path: String,
    /// The object's contribution to the item.
    pub part: Value,
}

/// What to do with an item after a change touched it.
#[derive(Debug)]
pub enum Rebuilt {
    /// Write this item (insert or replace).
    Item(Box<ItemRecord>),
    /// Leave the stored item as it is and forget the change tokens of these
    /// (source, path) objects, so the next crawl reads them again (for
    /// stored parts that can no longer be decoded, e.g. after an upgrade).
    Keep {
        /// Objects to read again.
        reread: Vec<(String, String)>,
    },
    /// Nothing valid can be built: leave the stored item as it is.
    Unchanged,
}

/// What one committed change did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrawlCommit {
    /// Items inserted or replaced.
    pub written: u64,
    /// Items deleted because no part of them is left.
    pub removed: u64,
    /// Items kept as they were because a stored part could not be decoded.
    pub kept: u64,
}

/// The sizes of a source's crawl state, for the removal guard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrawlStateSize {
    /// Objects registered by earlier crawls of the source.
    pub known: u64,
    /// Of those, the ones the current crawl has not seen.
    pub unseen: u64,
}

/// One registered object.
#[derive(Debug, Clone, PartialEq)]
pub struct CrawlObject {
    /// Path relative to the source root.
    pub path: String,
    /// Change token.
    pub token: String,
    /// Collection of the item the object feeds.
    pub collection: String,
    /// Item the object feeds.
    pub item_id: String,
    /// The object's contribution to the item.
    pub part: Value,
}

/// An item key: (collection, id).
pub type ItemKey = (String, String);

impl Store {
    /// Start a crawl of `source` into `collection`: returns its new
    /// generation number.
    pub async fn begin_crawl(&self, source: &str, collection: &str) -> Result<i64> {
        let g: i64 = sqlx::query_scalar(
            "INSERT INTO crawl_runs (source, collection, generation) VALUES ($1, $2, 1) \
             ON CONFLICT (source) DO UPDATE SET generation = crawl_runs.generation + 1, \
             started_at = now(), finished_at = NULL, complete = false RETURNING generation",
        )
        .bind(source)
        .bind(collection)
        .fetch_one(&self.pool)
        .await?;
        Ok(g)
    }

    /// How many objects earlier crawls of `source` registered, and how many
    /// of them crawl `generation` has not seen.
    pub async fn crawl_state_size(&self, source: &str, generation: i64) -> Result<CrawlStateSize> {
        let (known, unseen): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE generation < $2) \
             FROM crawl_objects WHERE source = $1",
        )
        .bind(source)
        .bind(generation)
        .fetch_one(&self.pool)
        .await?;
        Ok(CrawlStateSize {
            known: u64::try_from(known).unwrap_or(0),
            unseen: u64::try_from(unseen).unwrap_or(0),
        })
    }

    /// Apply one change to `source`'s crawl state and rebuild every item it
    /// touches, in one transaction: the objects and the items built from
    /// them are never out of step, however the process ends.
    ///
    /// `rebuild` gets each touched item's key and all its stored parts (from
    /// every source), and says what the item becomes; an item with no part
    /// left is deleted.
    pub async fn commit_crawl_change<F>(
        &self,
        source: &str,
        change: CrawlChange<'_>,
        rebuild: F,
    ) -> Result<CrawlCommit>
    where
        F: Fn(&ItemKey, &[StoredPart]) -> Rebuilt,
    {
        let mut tx = self.pool.begin().await?;
        // The items the objects feed now, and (for replaced objects) fed
        // before: all of them are rebuilt.
        let (objects, before) = match change {
            CrawlChange::Put {
                generation,
                objects,
            } => (
                objects,
                Self::put_crawl_objects(&mut tx, source, generation, objects).await?,
            ),
            CrawlChange::Remove { objects } => {
                let paths: Vec<String> = objects.iter().map(|o| o.path.clone()).collect();
                Self::delete_crawl_objects(&mut tx, source, &paths).await?;
                (objects, Vec::new())
            }
        };
        let mut keys: Vec<ItemKey> = objects
            .iter()
            .map(|o| (o.collection.clone(), o.item_id.clone()))
            .chain(before)
            .collect();
        keys.sort();
        keys.dedup();
        let mut grouped: BTreeMap<ItemKey, Vec<StoredPart>> = BTreeMap::new();
        for (key, part) in Self::item_parts(&mut tx, &keys).await? {
            grouped.entry(key).or_default().push(part);
        }
        let mut commit = CrawlCommit::default();
        let gone: Vec<ItemKey> = keys
            .iter()
            .filter(|k| !grouped.contains_key(*k))
            .cloned()
            .collect();
        commit.removed = Self::delete_items(&mut tx, &gone).await?;
        let mut batch = ItemBatch::new();
        let mut reread: Vec<(String, String)> = Vec::new();
        for (key, parts) in &grouped {
            match rebuild(key, parts) {
                Rebuilt::Item(record) => batch.push(&record),
                Rebuilt::Keep { reread: objects } => {
                    commit.kept += 1;
                    reread.extend(objects);
                }
                Rebuilt::Unchanged => {}
            }
        }
        if !reread.is_empty() {
            let (sources, paths): (Vec<String>, Vec<String>) = reread.into_iter().unzip();
            sqlx::query(
                "UPDATE crawl_objects o SET token = '' FROM unnest($1::text[], $2::text[]) AS k(source, path) \
                 WHERE o.source = k.source AND o.path = k.path",
            )
            .bind(&sources)
            .bind(&paths)
            .execute(&mut *tx)
            .await?;
        }
        let counts = Self::write_batch(&mut tx, &batch, OnConflict::Replace).await?;
        commit.written = counts.inserted + counts.updated;
        tx.commit().await?;
        Ok(commit)
    }

    /// Record the end of a crawl.
    pub async fn finish_crawl(&self, source: &str, complete: bool) -> Result<()> {
        sqlx::query("UPDATE crawl_runs SET finished_at = now(), complete = $2 WHERE source = $1")
            .bind(source)
            .bind(complete)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Known tokens of `paths`. An object marked missing has the empty token,
    /// so that it is read again when it comes back.
    pub async fn crawl_tokens(
        &self,
        source: &str,
        paths: &[String],
    ) -> Result<HashMap<String, String>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT path, CASE WHEN part->>'missing_since' IS NOT NULL \
             THEN '' ELSE token END FROM crawl_objects WHERE source = $1 AND path = ANY($2)",
        )
        .bind(source)
        .bind(paths)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Mark unchanged objects as seen by crawl `generation`.
    pub async fn touch_crawl_objects(
        &self,
        source: &str,
        paths: &[String],
        generation: i64,
    ) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE crawl_objects SET generation = $3 WHERE source = $1 AND path = ANY($2)",
        )
        .bind(source)
        .bind(paths)
        .bind(generation)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Write objects (insert or replace); returns the items they fed before,
    /// so that an object moved to another item leaves the old one rebuilt.
    async fn put_crawl_objects(
        conn: &mut PgConnection,
        source: &str,
        generation: i64,
        objects: &[CrawlObject],
    ) -> Result<Vec<ItemKey>> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let paths: Vec<&str> = objects.iter().map(|o| o.path.as_str()).collect();
        let before: Vec<ItemKey> = sqlx::query_as(
            "SELECT collection, item_id FROM crawl_objects WHERE source = $1 AND path = ANY($2)",
        )
        .bind(source)
        .bind(&paths)
        .fetch_all(&mut *conn)
        .await?;
        let tokens: Vec<&str> = objects.iter().map(|o| o.token.as_str()).collect();
        let collections: Vec<&str> = objects.iter().map(|o| o.collection.as_str()).collect();
        let items: Vec<&str> = objects.iter().map(|o| o.item_id.as_str()).collect();
        let parts: Vec<&Value> = objects.iter().map(|o| &o.part).collect();
        sqlx::query(
            "INSERT INTO crawl_objects (source, path, token, collection, item_id, part, generation) \
             SELECT $1, * , $7 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[]) \
             ON CONFLICT (source, path) DO UPDATE SET token = EXCLUDED.token, collection = EXCLUDED.collection, \
             item_id = EXCLUDED.item_id, part = EXCLUDED.part, generation = EXCLUDED.generation",
        )
        .bind(source)
        .bind(&paths)
        .bind(&tokens)
        .bind(&collections)
        .bind(&items)
        .bind(&parts)
        .bind(generation)
        .execute(&mut *conn)
        .await?;
        Ok(before)
    }

    /// Objects of `source` not seen by crawl `generation` (at most `limit`).
    pub async fn stale_crawl_objects(
        &self,
        source: &str,
        generation: i64,
        limit: i64,
    ) -> Result<Vec<CrawlObject>> {
        let rows: Vec<(String, String, String, String, Value)> = sqlx::query_as(
            "SELECT path, token, collection, item_id, part FROM crawl_objects \
             WHERE source = $1 AND generation < $2 ORDER BY path LIMIT $3",
        )
        .bind(source)
        .bind(generation)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(path, token, collection, item_id, part)| CrawlObject {
                path,
                token,
                collection,
                item_id,
                part,
            })
            .collect())
    }

    /// Forget objects.
    async fn delete_crawl_objects(
        conn: &mut PgConnection,
        source: &str,
        paths: &[String],
    ) -> Result<()> {
        sqlx::query("DELETE FROM crawl_objects WHERE source = $1 AND path = ANY($2)")
            .bind(source)
            .bind(paths)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Every part of the given items, from every source.
    async fn item_parts(
        conn: &mut PgConnection,
        keys: &[ItemKey],
    ) -> Result<Vec<(ItemKey, StoredPart)>> {
        let (c, i): (Vec<&str>, Vec<&str>) =
            keys.iter().map(|(c, i)| (c.as_str(), i.as_str())).unzip();
        let rows: Vec<(String, String, String, String, Value)> = sqlx::query_as(
            "SELECT o.collection, o.item_id, o.source, o.path, o.part FROM crawl_objects o \
             JOIN unnest($1::text[], $2::text[]) AS k(collection, item_id) \
             ON o.collection = k.collection AND o.item_id = k.item_id ORDER BY o.path, o.source",
        )
        .bind(&c)
        .bind(&i)
        .fetch_all(conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(c, i, source, path, part)| ((c, i), StoredPart { source, path, part }))
            .collect())
    }

    /// Delete items by key; returns how many went.
    async fn delete_items(conn: &mut PgConnection, keys: &[ItemKey]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let (c, i): (Vec<&str>, Vec<&str>) =
            keys.iter().map(|(c, i)| (c.as_str(), i.as_str())).unzip();
        let done = sqlx::query(
            "DELETE FROM items USING unnest($1::text[], $2::text[]) AS k(collection, item_id) \
             WHERE items.collection = k.collection AND items.id = k.item_id",
        )
        .bind(&c)
        .bind(&i)
        .execute(conn)
        .await?;
        Ok(done.rows_affected())
    }

    /// Recompute a collection's spatial and temporal extent from its items.
    pub async fn refresh_collection_extent(&self, collection: &str) -> Result<()> {
        sqlx::query(
            "UPDATE collections c SET content = jsonb_set(c.content, '{extent}', jsonb_build_object( \
               'spatial', jsonb_build_object('bbox', jsonb_build_array(jsonb_build_array( \
                  ST_XMin(x.e), ST_YMin(x.e), ST_XMax(x.e), ST_YMax(x.e)))), \
               'temporal', jsonb_build_object('interval', jsonb_build_array(jsonb_build_array(x.s, x.t))))), \
               updated_at = now() \
             FROM (SELECT ST_Extent(geometry) AS e, to_jsonb(min(start_datetime)) AS s, \
                   to_jsonb(max(end_datetime)) AS t FROM items WHERE collection = $1) x \
             WHERE c.id = $1 AND x.e IS NOT NULL",
        )
        .bind(collection)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
