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
    /// No object changes: these items are rebuilt from their stored parts.
    Rebuild {
        /// The items.
        keys: &'a [ItemKey],
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

/// Shard `index` of `count` of a sharded crawl (`--shard K/N`, K from 0).
///
/// At depth 0 an object belongs to the shard of its item's id, so the
/// files of one item are never split between shards, and the split is the
/// same in every run and on every machine (see
/// `migrations/0010_crawl_shards.sql`); every shard lists the whole source.
/// At depth `D` an object inside a directory `D` levels down belongs to the
/// shard of that directory (an object nearer the root still to the shard
/// of its item's id), so a shard lists only its own directories
/// (`migrations/0011_crawl_shard_dirs.sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// From 0 to `count - 1`.
    pub index: u32,
    /// How many shards there are (at least 1).
    pub count: u32,
    /// The depth of the directories shards own; 0: shards own items.
    pub depth: u32,
}

impl Shard {
    /// Shard `index` of `count`; an index past the count is refused.
    pub fn new(index: u32, count: u32) -> std::result::Result<Self, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard {index} of {count} does not exist: shards count from 0 to {}",
                count - 1
            ));
        }
        Ok(Self {
            index,
            count,
            depth: 0,
        })
    }

    /// The same shard, owning the directories `depth` levels down.
    #[must_use]
    pub fn with_depth(mut self, depth: u32) -> Self {
        self.depth = depth;
        self
    }

    /// The shard hash of an item id: the first 32 bits of its MD5, as the
    /// catalog's `crawl_shard_hash` computes it.
    pub fn hash(item_id: &str) -> u32 {
        use md5::Digest as _;
        let digest = md5::Md5::digest(item_id.as_bytes());
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
    }

    /// Whether this shard owns the key (an item id, or a directory's path).
    pub fn owns(&self, key: &str) -> bool {
        Self::hash(key) % self.count == self.index
    }

    /// The directory `depth` levels down that holds `path`, if the path
    /// lies that deep (as the catalog's `crawl_shard_key` cuts it).
    pub fn dir_of(path: &str, depth: u32) -> Option<&str> {
        if depth == 0 {
            return None;
        }
        let mut slashes = path.match_indices('/').map(|(at, _)| at);
        slashes.nth(depth as usize - 1).map(|at| &path[..at])
    }

    /// Whether the object at `path` belongs to this shard; `item_id` names
    /// its item, asked for only when the path does not decide.
    pub fn owns_object(&self, path: &str, item_id: impl FnOnce() -> String) -> bool {
        match Self::dir_of(path, self.depth) {
            Some(dir) => self.owns(dir),
            None => self.owns(&item_id()),
        }
    }

    /// The SQL parameters of [`Self`]'s filter: (count, index, depth), or
    /// (1, 0, 0) for an unsharded crawl, which owns everything.
    fn bind(shard: Option<Self>) -> (i64, i64, i32) {
        shard.map_or((1, 0, 0), |s| {
            (
                i64::from(s.count),
                i64::from(s.index),
                i32::try_from(s.depth).unwrap_or(i32::MAX),
            )
        })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `K/N`, K counting from 0.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a shard: write K/N, e.g. 0/4"))?;
        let number = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?} is not a shard: K and N are whole numbers, e.g. 0/4"))
        };
        Self::new(number(k)?, number(n)?)
    }
}

/// The crawl objects a shard owns, with its count, index and depth bound
/// as `$3`, `$4` and `$5`: the stored hash of the item id at depth 0.
const SHARD_FILTER: &str = "(CASE WHEN $5 = 0 THEN shard_hash \
    ELSE crawl_shard_hash(crawl_shard_key(path, item_id, $5)) END) % $3 = $4";

impl Store {
    /// Start a crawl of `source` into `collection` (or of one shard of
    /// it): returns its new generation number. Shards of one source running
    /// at once each get their own.
    pub async fn begin_crawl(
        &self,
        source: &str,
        collection: &str,
        shard: Option<Shard>,
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let g: i64 = sqlx::query_scalar(
            "INSERT INTO crawl_runs (source, collection, generation) VALUES ($1, $2, 1) \
             ON CONFLICT (source) DO UPDATE SET generation = crawl_runs.generation + 1, \
             started_at = now(), finished_at = NULL, complete = false RETURNING generation",
        )
        .bind(source)
        .bind(collection)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(s) = shard {
            // The shards of one round (since the last finalization) must
            // own the same directories. The run's row, locked above,
            // orders shards that start at once.
            let other: Option<(i32, i32)> = sqlx::query_as(
                "SELECT s.shard, s.depth FROM crawl_shards s JOIN crawl_runs r USING (source) \
                 WHERE s.source = $1 AND s.shards = $2 AND s.shard <> $3 AND s.depth <> $4 \
                 AND s.generation > r.finalized_generation ORDER BY s.shard LIMIT 1",
            )
            .bind(source)
            .bind(i64::from(s.count))
            .bind(i64::from(s.index))
            .bind(i32::try_from(s.depth).unwrap_or(i32::MAX))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((other, depth)) = other {
                return Err(crate::Error::InvalidInput {
                    reason: format!(
                        "shard {other}/{count} of this round of {source} ran with a shard depth \
                         of {depth} (--shard-depth or shard_depth), this one has {mine}: the \
                         shards of a round must use the same depth (finish the round with that \
                         depth, or close it with `arcolake crawl --finalize` first)",
                        count = s.count,
                        mine = s.depth,
                    ),
                });
            }
        }
        if let Some(s) = shard {
            sqlx::query(
                "INSERT INTO crawl_shards (source, shards, shard, generation, depth) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (source, shards, shard) DO UPDATE SET generation = EXCLUDED.generation, \
                 depth = EXCLUDED.depth, started_at = now(), finished_at = NULL, complete = false",
            )
            .bind(source)
            .bind(i64::from(s.count))
            .bind(i64::from(s.index))
            .bind(g)
            .bind(i32::try_from(s.depth).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(g)
    }

    /// How many objects earlier crawls of `source` (of its `shard`, if one)
    /// registered, and how many of them crawl `generation` has not seen.
    pub async fn crawl_state_size(
        &self,
        source: &str,
        generation: i64,
        shard: Option<Shard>,
    ) -> Result<CrawlStateSize> {
        let (count, index, depth) = Shard::bind(shard);
        let (known, unseen): (i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*), count(*) FILTER (WHERE generation < $2) \
             FROM crawl_objects WHERE source = $1 AND {SHARD_FILTER}"
        ))
        .bind(source)
        .bind(generation)
        .bind(count)
        .bind(index)
        .bind(depth)
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
            CrawlChange::Rebuild { keys } => (&[][..], keys.to_vec()),
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

    /// Record the end of a crawl (or of one shard's run of generation
    /// `generation`). Returns whether the collection is to be finalized
    /// now (its extent worked out): after every complete unsharded crawl,
    /// and after the last shard of a round of `N` shards to complete.
    /// Exactly one of the shards of a round gets `true`.
    pub async fn finish_crawl(
        &self,
        source: &str,
        generation: i64,
        complete: bool,
        shard: Option<Shard>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // The run's row is the lock that orders the shards' ends.
        let (latest, finalized): (i64, i64) = sqlx::query_as(
            "SELECT generation, finalized_generation FROM crawl_runs WHERE source = $1 FOR UPDATE",
        )
        .bind(source)
        .fetch_one(&mut *tx)
        .await?;
        let Some(s) = shard else {
            sqlx::query(
                "UPDATE crawl_runs SET finished_at = now(), complete = $2, \
                 finalized_generation = CASE WHEN $2 THEN generation ELSE finalized_generation END \
                 WHERE source = $1",
            )
            .bind(source)
            .bind(complete)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(complete);
        };
        sqlx::query(
            "UPDATE crawl_shards SET finished_at = now(), complete = $5 \
             WHERE source = $1 AND shards = $2 AND shard = $3 AND generation = $4",
        )
        .bind(source)
        .bind(i64::from(s.count))
        .bind(i64::from(s.index))
        .bind(generation)
        .bind(complete)
        .execute(&mut *tx)
        .await?;
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM crawl_shards WHERE source = $1 AND shards = $2 \
             AND complete AND generation > $3",
        )
        .bind(source)
        .bind(i64::from(s.count))
        .bind(finalized)
        .fetch_one(&mut *tx)
        .await?;
        let last = complete && done == i64::from(s.count);
        if last {
            sqlx::query(
                "UPDATE crawl_runs SET finished_at = now(), complete = true, \
                 finalized_generation = $2 WHERE source = $1",
            )
            .bind(source)
            .bind(latest)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(last)
    }

    /// Items of `collection` whose crawled files lie in directories of
    /// different shards, for the depths the shards of its sources used
    /// (`--shard-depth`): a grouping template's group across directories.
    /// Shards writing such an item at once can each miss the other's
    /// files, so it is rebuilt when the round is finalized.
    /// Returns each item's key and its stored content (JSON text), if any.
    pub async fn crawl_items_across_shard_dirs(
        &self,
        collection: &str,
    ) -> Result<Vec<(ItemKey, Option<String>)>> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "WITH d AS (SELECT DISTINCT s.source, s.depth FROM crawl_shards s \
                 JOIN crawl_runs r USING (source) WHERE r.collection = $1 AND s.depth > 0), \
             k AS (SELECT DISTINCT o.collection, o.item_id FROM crawl_objects o JOIN d USING (source) \
                 WHERE o.collection = $1 GROUP BY o.collection, o.item_id, d.depth \
                 HAVING count(DISTINCT crawl_shard_key(o.path, o.item_id, d.depth)) > 1) \
             SELECT k.collection, k.item_id, i.content::text FROM k \
             LEFT JOIN items i ON i.collection = k.collection AND i.id = k.item_id ORDER BY 1, 2",
        )
        .bind(collection)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(c, i, content)| ((c, i), content))
            .collect())
    }

    /// Mark every crawl of `collection` finalized (`arcolake crawl
    /// --finalize`), so that the next round of shards ends with its own.
    pub async fn mark_crawls_finalized(&self, collection: &str) -> Result<()> {
        sqlx::query(
            "UPDATE crawl_runs SET finalized_generation = generation WHERE collection = $1",
        )
        .bind(collection)
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
            "UPDATE crawl_objects SET generation = GREATEST(generation, $3) \
             WHERE source = $1 AND path = ANY($2)",
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
             item_id = EXCLUDED.item_id, part = EXCLUDED.part, generation = GREATEST(crawl_objects.generation, EXCLUDED.generation)",
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

    /// Objects of `source` (of its `shard`, if one) not seen by crawl
    /// `generation`, at most `limit`, in path order after `after` (`""`
    /// from the first): each call goes on where the last one ended, so the
    /// shard filter runs once per object over all the calls.
    pub async fn stale_crawl_objects(
        &self,
        source: &str,
        generation: i64,
        shard: Option<Shard>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<CrawlObject>> {
        let (count, index, depth) = Shard::bind(shard);
        let rows: Vec<(String, String, String, String, Value)> = sqlx::query_as(&format!(
            "SELECT path, token, collection, item_id, part FROM crawl_objects \
             WHERE source = $1 AND generation < $2 AND path > $6 AND {SHARD_FILTER} \
             ORDER BY path LIMIT $7"
        ))
        .bind(source)
        .bind(generation)
        .bind(count)
        .bind(index)
        .bind(depth)
        .bind(after)
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
