//! Bulk loads into a collection's empty partition.
//!
//! Writing into a live, indexed partition costs PostgreSQL more than twice
//! what the rows alone cost: every index is maintained row by row, the
//! change-stamp triggers copy each row into a transition table, and each
//! batch checks its keys for conflicts. When a load finds a collection's
//! partition empty, its items go instead into a *staging table* of the
//! partition's shape that is not part of `items`: rows are sent with
//! `COPY … (FORMAT binary)`, built in Rust (the geometry as EWKB, the
//! timestamps as integers, the properties as their own jsonb), with no index
//! and no trigger. When every row is in, the indexes are built two at a time
//! and the staging table takes the empty partition's place in one short
//! transaction, with the change stamp, queryables and item span a plain load
//! records. Readers see all of the load's items of that collection or none.
//!
//! A killed load leaves its staging table behind and nothing in the
//! catalog; the next load drops it. Each staging table is owned through an
//! advisory lock held by the load's own connection, so two loads never share
//! one. If the partition is no longer empty at the swap (an API write or
//! another load came in meanwhile), the staged rows are upserted into it
//! instead, exactly as a plain load would have written them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use geozero::{CoordDimensions, ToWkb};
use md5::{Digest, Md5};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tracing::{debug, info};

use super::items::{for_each_kind, note_properties};
use super::{Store, WriteCounts};
use crate::model::ItemRecord;
use crate::search::Kind;
use crate::{Error, Result};

/// The columns a staged row carries, in the order it sends them. `revision`
/// comes last, so a repeated item's count can be set in place.
const COLUMNS: &str = "collection, id, geometry, datetime, start_datetime, end_datetime, \
                       content, links, properties, revision";
const FIELDS: i16 = 10;
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A validated item as one row of binary COPY data.
#[derive(Debug, Clone)]
pub struct StagedRow {
    /// The item id.
    pub id: String,
    /// The row, ready to send.
    pub bytes: Vec<u8>,
    /// Seconds from the item's start to its end.
    pub span: f64,
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) -> std::result::Result<(), String> {
    let len = i32::try_from(bytes.len()).map_err(|_| "a value of more than 2 GiB".to_owned())?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn timestamp(out: &mut Vec<u8>, t: DateTime<Utc>) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&(t.timestamp_micros() - PG_EPOCH_MICROS).to_be_bytes());
}

/// `true` when a position of the GeoJSON geometry has a third number: then
/// PostGIS makes the whole geometry 3D (missing heights 0), and so does this.
fn has_z(geometry: &Value) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::Array(a) if a.first().is_some_and(Value::is_number) => a.len() > 2,
            Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    match geometry.get("geometries") {
        Some(Value::Array(parts)) => parts.iter().any(has_z),
        _ => geometry.get("coordinates").is_some_and(walk),
    }
}

/// The geometry as EWKB with SRID 4326, as `ST_GeomFromGeoJSON` makes it.
fn ewkb(record: &ItemRecord) -> std::result::Result<Option<Vec<u8>>, String> {
    let Some(text) = &record.geometry else {
        return Ok(None);
    };
    let dims = match record.content.get("geometry") {
        Some(g) if has_z(g) => CoordDimensions::xyz(),
        _ => CoordDimensions::xy(),
    };
    geozero::geojson::GeoJson(text)
        .to_ewkb(dims, Some(4326))
        .map(Some)
        .map_err(|e| format!("geometry: {e}"))
}

/// Encode a validated item as a row of `COPY … (FORMAT binary)` data.
pub fn encode_row(record: &ItemRecord) -> std::result::Result<StagedRow, String> {
    let content = crate::model::json_text(&record.content);
    let mut out = Vec::with_capacity(content.len() * 5 / 4 + 256);
    out.extend_from_slice(&FIELDS.to_be_bytes());
    field(&mut out, record.collection.as_str().as_bytes())?;
    field(&mut out, record.id.as_str().as_bytes())?;
    match ewkb(record)? {
        Some(g) => field(&mut out, &g)?,
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    timestamp(&mut out, record.datetime);
    timestamp(&mut out, record.start_datetime);
    timestamp(&mut out, record.end_datetime);
    field(&mut out, content.as_bytes())?;
    match &record.links {
        Some(l) => field(&mut out, crate::model::json_text(l).as_bytes())?,
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    match record.content.get("properties") {
        Some(p) => {
            // jsonb's binary form: a version byte, then the text.
            let mut jsonb = Vec::with_capacity(1024);
            jsonb.push(1);
            serde_json::to_writer(&mut jsonb, p).map_err(|e| e.to_string())?;
            field(&mut out, &jsonb)?;
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    field(&mut out, &1i32.to_be_bytes())?;
    Ok(StagedRow {
        id: record.id.as_str().to_owned(),
        bytes: out,
        span: super::items::span_seconds(record.end_datetime - record.start_datetime),
    })
}

/// The `properties` of an encoded row (its ninth field).
fn properties_of(row: &[u8]) -> Option<Value> {
    let mut at = 2;
    for _ in 0..8 {
        let len = i32::from_be_bytes(row.get(at..at + 4)?.try_into().ok()?);
        at += 4 + usize::try_from(len).unwrap_or(0);
    }
    let len = usize::try_from(i32::from_be_bytes(row.get(at..at + 4)?.try_into().ok()?)).ok()?;
    // jsonb: a version byte, then the text.
    serde_json::from_slice(row.get(at + 5..at + 4 + len)?).ok()
}

/// Set the `revision` of an encoded row (its last field).
fn set_revision(row: &mut [u8], revision: i32) {
    let at = row.len() - 4;
    row[at..].copy_from_slice(&revision.to_be_bytes());
}

/// The staging table of a collection's partition.
pub fn staging_table(collection: &str) -> String {
    let digest = Md5::digest(collection.as_bytes());
    let mut name = String::from("items_load_");
    for b in digest {
        let _ = write!(name, "{b:02x}");
    }
    name
}

fn key(id: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(id.as_bytes()).into())
}

/// The advisory-lock key that owns a staging table.
const LOCK_KEY: &str = "hashtextextended($1, 7170)";

/// The upsert of staged rows into `items`. Repeats within one statement
/// are collapsed to the latest (the highest revision); a row new to the
/// catalog gets revision 1, a replaced one the next revision, as a plain
/// load's batches do, which also tells which were new (`xmax` cannot be
/// returned through a partitioned table).
fn upsert_sql(from: &str, repeats: bool) -> String {
    let plain = "collection, id, geometry, datetime, start_datetime, end_datetime, content, \
                 links, properties";
    let latest = if repeats {
        format!("SELECT DISTINCT ON (id) {plain} FROM rows ORDER BY id, revision DESC")
    } else {
        format!("SELECT {plain} FROM rows")
    };
    format!(
        "WITH rows AS ({from}) INSERT INTO items ({plain}) {latest}{}",
        super::items::UPSERT_SUFFIX
    )
}

fn counts(created: &[bool]) -> WriteCounts {
    let inserted = created.iter().filter(|c| **c).count() as u64;
    WriteCounts {
        inserted,
        updated: created.len() as u64 - inserted,
    }
}

/// How a staged collection ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Finished {
    /// Items written.
    pub counts: WriteCounts,
    /// `true` when the staging table took the partition's place; `false`
    /// when its items were upserted into the live partition (or there were
    /// none).
    pub swapped: bool,
}

/// Most staging tables one load holds at once; the items of further new
/// collections go into their live partitions (each staging table holds an
/// advisory lock, and PostgreSQL's lock table is finite).
pub const MAX_STAGED: usize = 64;

/// Staging tables of one load, and the connection that owns them.
pub struct Stager {
    /// Holds the advisory lock of every staging table this load owns; the
    /// locks go when it closes.
    conn: PgConnection,
    stageable: HashSet<String>,
    /// Tries of the swap before the staged rows are upserted instead.
    swap_attempts: u32,
    /// Staging tables made by this load.
    staged: usize,
}

impl std::fmt::Debug for Stager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stager")
            .field("stageable", &self.stageable)
            .finish_non_exhaustive()
    }
}

impl Stager {
    /// Drop the staging tables stopped loads left, and find the collections
    /// whose partition is empty.
    pub async fn begin(store: &Store) -> Result<Self> {
        let mut conn = store.pool().acquire().await?.detach();
        let left: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_class \
             WHERE relname ~ '^items_load_[0-9a-f]{32}$' AND relkind = 'r' \
               AND relnamespace = current_schema()::regnamespace",
        )
        .fetch_all(&mut conn)
        .await?;
        for table in left {
            let free: bool =
                sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({LOCK_KEY})"))
                    .bind(&table)
                    .fetch_one(&mut conn)
                    .await?;
            if free {
                info!(table, "dropping the staging table a stopped load left");
                sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
                    .execute(&mut conn)
                    .await?;
                sqlx::query(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
                    .bind(&table)
                    .execute(&mut conn)
                    .await?;
            }
        }
        // Row triggers a deployment put on `items` would not see staged
        // rows: then nothing is staged. (The change stamps are statement
        // triggers, recorded by the swap itself.)
        let row_triggers: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'items'::regclass \
             AND NOT tgisinternal AND tgtype & 1 = 1)",
        )
        .fetch_one(&mut conn)
        .await?;
        let stageable = if row_triggers {
            info!("items has row triggers; every item is written through its live partition");
            HashSet::new()
        } else {
            sqlx::query_scalar(
                "SELECT c.id FROM collections c \
                 WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.collection = c.id)",
            )
            .fetch_all(&mut conn)
            .await?
            .into_iter()
            .collect()
        };
        sqlx::query("SET synchronous_commit = off")
            .execute(&mut conn)
            .await?;
        Ok(Self {
            conn,
            stageable,
            swap_attempts: 20,
            staged: 0,
        })
    }

    /// The collections whose partition was empty as the load began.
    pub fn stageable(&self) -> &HashSet<String> {
        &self.stageable
    }

    /// Try the swap this many times (each waits up to half a second for the
    /// lock on `items`) before upserting the staged rows instead.
    #[must_use]
    pub fn swap_attempts(mut self, attempts: u32) -> Self {
        self.swap_attempts = attempts.max(1);
        self
    }

    /// Start on the items of `collection` (one of [`Self::stageable`]): a
    /// staging table, or, when another load stages the collection already,
    /// upserts into its live partition.
    pub async fn stage(&mut self, collection: &str) -> Result<Staging> {
        let table = staging_table(collection);
        let mut staging = Staging {
            collection: collection.to_owned(),
            table: None,
            live: partition_of(&mut self.conn, collection).await?,
            literal: String::new(),
            seen: HashSet::new(),
            properties: BTreeMap::new(),
            span: 0.0,
            rows: 0,
            counts: HashMap::new(),
        };
        let mine: bool = self.staged < MAX_STAGED
            && sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({LOCK_KEY})"))
                .bind(&table)
                .fetch_one(&mut self.conn)
                .await?;
        if !mine {
            info!(
                collection,
                "another load stages this collection; writing into its partition"
            );
            return Ok(staging);
        }
        let literal: String = sqlx::query_scalar("SELECT quote_literal($1)")
            .bind(collection)
            .fetch_one(&mut self.conn)
            .await?;
        let mut tx = self.conn.begin().await?;
        // Ours now: one left by a stopped load of the same collection goes.
        sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "CREATE TABLE {table} (LIKE items INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
             INCLUDING STORAGE, CONSTRAINT {table}_collection CHECK (collection = {literal})) \
             WITH (toast_tuple_target = 8160)"
        ))
        .execute(&mut *tx)
        .await?;
        // As the partition is made (migrations/0002): lz4 where the server has it.
        let lz4: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass \
             AND attname = 'content' AND attcompression = 'l')",
        )
        .bind(&staging.live)
        .fetch_one(&mut *tx)
        .await?;
        if lz4 {
            sqlx::query(&format!(
                "ALTER TABLE {table} ALTER COLUMN content SET COMPRESSION lz4"
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        staging.table = Some(table);
        staging.literal = literal;
        self.staged += 1;
        Ok(staging)
    }

    /// Write rows, all of them or none: into the staging table in one
    /// `COPY`, or (when the collection is not staged) upserted into its
    /// partition in one transaction with their queryables and item span.
    pub async fn write(
        &mut self,
        staging: &mut Staging,
        rows: &[&StagedRow],
    ) -> Result<WriteCounts> {
        let Some(table) = &staging.table else {
            let mut tx = self.conn.begin().await?;
            sqlx::query(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS items_copy (LIKE {} INCLUDING DEFAULTS) \
                 ON COMMIT DELETE ROWS",
                staging.live
            ))
            .execute(&mut *tx)
            .await?;
            copy_rows(&mut tx, "items_copy", rows).await?;
            let created: Vec<bool> =
                sqlx::query_scalar(&upsert_sql("SELECT * FROM items_copy", true))
                    .fetch_all(&mut *tx)
                    .await?;
            let mut kinds = BTreeMap::new();
            for row in rows {
                note_properties(&mut kinds, properties_of(&row.bytes).as_ref());
            }
            let span = rows.iter().map(|r| r.span).fold(0.0, f64::max);
            record(&mut tx, &staging.collection, kinds, span).await?;
            tx.commit().await?;
            return Ok(counts(&created));
        };
        let n = copy_rows(&mut self.conn, table, rows).await?;
        staging.rows += n;
        staging.span = rows.iter().map(|r| r.span).fold(staging.span, f64::max);
        Ok(WriteCounts {
            inserted: n,
            updated: 0,
        })
    }

    /// Put the staged items of one collection into the catalog: keep the
    /// latest version of repeated items, build the indexes, then swap the
    /// staging table in for the empty partition, or upsert its rows when
    /// the partition has items by now or the swap cannot get its lock.
    pub async fn finish(&mut self, store: &Store, mut staging: Staging) -> Result<Finished> {
        let Some(table) = staging.table.clone() else {
            return Ok(Finished::default());
        };
        if !staging.counts.is_empty() {
            let gone = sqlx::query(&format!(
                "DELETE FROM {table} s USING (SELECT id, max(revision) AS latest FROM {table} \
                 GROUP BY id HAVING count(*) > 1) r WHERE s.id = r.id AND s.revision < r.latest"
            ))
            .execute(&mut self.conn)
            .await?
            .rows_affected();
            staging.rows -= gone;
        }
        if staging.rows == 0 {
            sqlx::query(&format!("DROP TABLE {table}"))
                .execute(&mut self.conn)
                .await?;
            self.release(&table).await;
            return Ok(Finished::default());
        }
        let started = std::time::Instant::now();
        // Hint bits and the visibility map now, while no index is there to
        // slow the pass down: the load's closing VACUUM then skips the pages.
        sqlx::query(&format!("VACUUM {table}"))
            .execute(&mut self.conn)
            .await?;
        let names = self.build_indexes(store, &table).await?;
        debug!(
            collection = staging.collection,
            seconds = started.elapsed().as_secs_f64(),
            "vacuumed and indexed"
        );
        for attempt in 1..=self.swap_attempts {
            match self.swap(&staging, &table, &names).await {
                Ok(Some(counts)) => {
                    self.release(&table).await;
                    return Ok(Finished {
                        counts,
                        swapped: true,
                    });
                }
                Ok(None) => break,
                Err(Error::Database(e))
                    if super::is_code(&e, "55P03") || super::is_code(&e, "40P01") =>
                {
                    info!(
                        collection = staging.collection,
                        attempt, "waiting for readers of items to swap the loaded partition in"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(
                        100 * u64::from(attempt.min(10)),
                    ))
                    .await;
                }
                Err(e) => return Err(e),
            }
        }
        let counts = self.upsert_staged(&staging, &table).await?;
        Ok(Finished {
            counts,
            swapped: false,
        })
    }

    /// The staged rows upserted into the live partition in one
    /// transaction, without holding up readers.
    async fn upsert_staged(&mut self, staging: &Staging, table: &str) -> Result<WriteCounts> {
        info!(
            collection = staging.collection,
            "the partition has items by now, or is busy: upserting the staged items into it"
        );
        // One transaction (it blocks no reader): a load stopped half-way
        // leaves none of the staged items in the catalog, as before the swap.
        let mut tx = self.conn.begin().await?;
        let created: Vec<bool> =
            sqlx::query_scalar(&upsert_sql(&format!("SELECT * FROM {table}"), false))
                .fetch_all(&mut *tx)
                .await?;
        record(&mut tx, &staging.collection, staging.kinds(), staging.span).await?;
        sqlx::query(&format!("DROP TABLE {table}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.release(table).await;
        Ok(counts(&created))
    }

    /// Give up the advisory lock of a staging table that is gone.
    async fn release(&mut self, table: &str) {
        if let Err(e) = sqlx::query(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
            .bind(table)
            .execute(&mut self.conn)
            .await
        {
            debug!(table, error = %e, "could not release a staging lock");
        }
    }

    /// Drop the staging tables of a load that stops on an error (best
    /// effort: the next load drops what is left).
    pub async fn abandon(&mut self, tables: impl Iterator<Item = String>) {
        for table in tables {
            if let Err(e) = sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
                .execute(&mut self.conn)
                .await
            {
                debug!(table, error = %e, "could not drop a staging table");
            }
        }
    }

    /// The parent's indexes, made on the staging table by two connections;
    /// returns each one's name and its parent's.
    async fn build_indexes(&mut self, store: &Store, table: &str) -> Result<Vec<(String, String)>> {
        // Constraint indexes (the primary key) are built as unique indexes
        // and made constraints at the end (a constraint's ALTER TABLE would
        // lock the other builder out), so that ATTACH PARTITION adopts them.
        let constraints: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT CASE contype WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END, \
                    pg_get_indexdef(conindid), \
                    (SELECT relname::text FROM pg_class WHERE oid = conindid) FROM pg_constraint \
             WHERE conrelid = 'items'::regclass AND contype IN ('p', 'u')",
        )
        .fetch_all(&mut self.conn)
        .await?;
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT pg_get_indexdef(i.indexrelid), \
                    (SELECT relname::text FROM pg_class WHERE oid = i.indexrelid) FROM pg_index i \
             WHERE i.indrelid = 'items'::regclass \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        )
        .fetch_all(&mut self.conn)
        .await?;
        // Named here: two builds naming their own would race for one name.
        let create = |name: &str, def: &str| -> Result<String> {
            let (head, tail) = def
                .split_once(" ON ONLY ")
                .ok_or_else(|| Error::embedded(format!("unexpected index definition: {def}")))?;
            let using = tail.split_once(' ').map_or("", |(_, rest)| rest);
            let unique = if head.starts_with("CREATE UNIQUE") {
                "UNIQUE "
            } else {
                ""
            };
            Ok(format!("CREATE {unique}INDEX {name} ON {table} {using}"))
        };
        let mut statements = Vec::new();
        let mut constraint_sql = Vec::new();
        let mut names = Vec::new();
        for (n, (kind, def, parent)) in constraints.iter().enumerate() {
            let name = format!("{table}_c{n}");
            statements.push(create(&name, def)?);
            constraint_sql.push(format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} {kind} USING INDEX {name}"
            ));
            names.push((name, parent.clone()));
        }
        for (n, (def, parent)) in indexes.iter().enumerate() {
            let name = format!("{table}_i{n}");
            statements.push(create(&name, def)?);
            names.push((name, parent.clone()));
        }
        // The longest builds first, so the two connections end together.
        statements.sort_by_key(|s| !s.contains("USING gist"));
        let queue = std::sync::Mutex::new(statements.into_iter());
        let mut other = store.pool().acquire().await?;
        let (a, b) = tokio::join!(
            run_queue(&mut self.conn, &queue),
            run_queue(&mut other, &queue)
        );
        a.and(b)?;
        for sql in constraint_sql {
            sqlx::query(&sql).execute(&mut self.conn).await?;
        }
        Ok(names)
    }

    /// The swap, in one transaction: `None` when the partition has items by
    /// now (nothing was changed).
    async fn swap(
        &mut self,
        staging: &Staging,
        table: &str,
        names: &[(String, String)],
    ) -> Result<Option<WriteCounts>> {
        let Staging {
            collection,
            live,
            literal,
            ..
        } = staging;
        let mut tx = self.conn.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '500ms'")
            .execute(&mut *tx)
            .await?;
        // The parent first, as every reader locks it before the partition;
        // holding it, no reader reaches a partition.
        sqlx::query("LOCK TABLE ONLY items IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let empty: bool = sqlx::query_scalar(&format!("SELECT NOT EXISTS (SELECT 1 FROM {live})"))
            .fetch_one(&mut *tx)
            .await?;
        if !empty {
            tx.rollback().await?;
            return Ok(None);
        }
        // Each index is named after the parent's it will be attached to
        // (the live partition, whose names these may take, is gone by then).
        let renames = index_names(live, names)
            .into_iter()
            .map(|(index, name)| format!("ALTER INDEX {index} RENAME TO {}", quote_ident(&name)))
            .collect::<Vec<_>>();
        for sql in [
            format!("ALTER TABLE items DETACH PARTITION {live}"),
            format!("DROP TABLE {live}"),
            format!("ALTER TABLE {table} RENAME TO {live}"),
            format!("ALTER TABLE items ATTACH PARTITION {live} FOR VALUES IN ({literal})"),
            format!("ALTER TABLE {live} DROP CONSTRAINT {table}_collection"),
        ]
        .into_iter()
        .chain(renames)
        {
            sqlx::query(&sql).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO collection_changes (collection) VALUES ($1)")
            .bind(collection)
            .execute(&mut *tx)
            .await?;
        record(&mut tx, collection, staging.kinds(), staging.span).await?;
        tx.commit().await?;
        Ok(Some(WriteCounts {
            inserted: staging.rows,
            updated: 0,
        }))
    }
}

/// The partition's name for each staged index: the live partition's name
/// and the parent index's (without `items_`), numbered where that would be
/// too long for PostgreSQL (63 bytes) or taken twice.
fn index_names(live: &str, names: &[(String, String)]) -> Vec<(String, String)> {
    let base: Vec<String> = names
        .iter()
        .map(|(_, parent)| format!("{live}_{}", parent.strip_prefix("items_").unwrap_or(parent)))
        .collect();
    names
        .iter()
        .zip(&base)
        .enumerate()
        .map(|(n, ((index, parent), name))| {
            let unique = base.iter().filter(|b| *b == name).count() == 1;
            if name.len() <= 63 && unique {
                return (index.clone(), name.clone());
            }
            let mut numbered = format!(
                "{live}_{n}_{}",
                parent.strip_prefix("items_").unwrap_or(parent)
            );
            let mut end = 63.min(numbered.len());
            while !numbered.is_char_boundary(end) {
                end -= 1;
            }
            numbered.truncate(end);
            (index.clone(), numbered)
        })
        .collect()
}

/// An SQL identifier, quoted.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Send rows to `table` in one `COPY`.
async fn copy_rows(conn: &mut PgConnection, table: &str, rows: &[&StagedRow]) -> Result<u64> {
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {table} ({COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut buf = Vec::with_capacity(1 << 20);
    buf.extend_from_slice(COPY_HEADER);
    for row in rows {
        buf.extend_from_slice(&row.bytes);
        if buf.len() >= 1 << 20 {
            copy.send(std::mem::take(&mut buf)).await?;
            buf.reserve(1 << 20);
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf).await?;
    Ok(copy.finish().await?)
}

/// Record a collection's queryables and longest item span, as a plain
/// load's batches do.
async fn record(
    conn: &mut PgConnection,
    collection: &str,
    kinds: BTreeMap<String, BTreeSet<Kind>>,
    span: f64,
) -> Result<()> {
    Store::record_properties(conn, &BTreeMap::from([(collection.to_owned(), kinds)])).await?;
    Store::record_spans(conn, HashMap::from([(collection, span)])).await
}

/// Run the statements of a shared queue, one at a time, until it is empty.
async fn run_queue(
    conn: &mut PgConnection,
    queue: &std::sync::Mutex<std::vec::IntoIter<String>>,
) -> Result<()> {
    loop {
        let next = queue
            .lock()
            .map_err(|_| Error::embedded("index queue poisoned"))?
            .next();
        let Some(sql) = next else {
            return Ok(());
        };
        sqlx::query(&sql).execute(&mut *conn).await?;
    }
}

/// The partition table of a collection.
async fn partition_of(conn: &mut PgConnection, collection: &str) -> Result<String> {
    let name: Option<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'items'::regclass AND c.relname = items_partition_name($1)",
    )
    .bind(collection)
    .fetch_optional(&mut *conn)
    .await?;
    name.ok_or_else(|| Error::embedded(format!("collection {collection:?} has no partition")))
}

/// One collection's items on their way in.
#[derive(Debug)]
pub struct Staging {
    collection: String,
    /// The staging table; `None` when the items go into the live partition.
    table: Option<String>,
    live: String,
    /// The collection id as an SQL literal (for DDL).
    literal: String,
    /// Keys of the items met (MD5 of the id).
    seen: HashSet<u128>,
    /// Property → kind → items of that kind sent (a refused row is taken
    /// off again), for the queryables.
    properties: BTreeMap<String, BTreeMap<Kind, u64>>,
    /// The longest time span of the rows sent, in seconds.
    span: f64,
    rows: u64,
    /// Items met more than once, and how often: each later version is sent
    /// with the count so far as its revision, the highest kept at the end.
    counts: HashMap<u128, i32>,
}

impl Staging {
    /// Take a row: a repeated item gets the times it was met as revision.
    pub fn admit(&mut self, mut row: StagedRow) -> StagedRow {
        let k = key(&row.id);
        if !self.seen.insert(k) {
            let n = self.counts.entry(k).or_insert(1);
            *n += 1;
            set_revision(&mut row.bytes, *n);
        }
        row
    }

    /// The staging table, when the items go to one.
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    /// The collection.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// `true` when the items go to a staging table (else into the live
    /// partition).
    pub fn is_staged(&self) -> bool {
        self.table.is_some()
    }

    /// Count the property kinds of the collection's items, for the queryables.
    pub fn note(&mut self, props: BTreeMap<String, BTreeMap<Kind, u64>>) {
        for (name, kinds) in props {
            let seen = self.properties.entry(name).or_default();
            for (kind, n) in kinds {
                *seen.entry(kind).or_default() += n;
            }
        }
    }

    /// Take the properties of a row the database refused off the counts.
    pub fn forget(&mut self, row: &[u8]) {
        for_each_kind(properties_of(row).as_ref(), |name, kind| {
            if let Some(n) = self.properties.get_mut(name).and_then(|k| k.get_mut(&kind)) {
                *n = n.saturating_sub(1);
            }
        });
    }

    /// The property kinds of the items sent.
    fn kinds(&self) -> BTreeMap<String, BTreeSet<Kind>> {
        self.properties
            .iter()
            .map(|(name, kinds)| {
                let sent = kinds.iter().filter(|(_, n)| **n > 0).map(|(k, _)| *k);
                (name.clone(), sent.collect::<BTreeSet<Kind>>())
            })
            .filter(|(_, kinds)| !kinds.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_follow_the_parent_and_stay_unique_and_short() {
        let live = "items_2fe34766ff1f8958cba5d1f1e67f7d66";
        let names: Vec<(String, String)> = [
            "items_pkey",
            "items_foo",
            "foo",
            "items_geometry_datetime_cloud_cover_gsd_idx",
            "items_éééééééééééééééééééééééééé",
        ]
        .iter()
        .enumerate()
        .map(|(n, p)| (format!("staged_{n}"), (*p).to_owned()))
        .collect();
        let out = index_names(live, &names);
        assert_eq!(out[0], ("staged_0".to_owned(), format!("{live}_pkey")));
        assert!(
            out.iter()
                .all(|(_, n)| n.len() <= 63 && n.starts_with(live))
        );
        let distinct: HashSet<&String> = out.iter().map(|(_, n)| n).collect();
        assert_eq!(distinct.len(), out.len(), "{out:?}");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn rows_carry_their_properties_and_revision_where_the_reader_finds_them() {
        let value = serde_json::json!({
            "type": "Feature", "stac_version": "1.0.0", "id": "x", "collection": "c",
            "geometry": {"type": "Point", "coordinates": [1.0, 2.0, 3.0]},
            "properties": {"datetime": "2024-01-01T00:00:00Z", "gsd": 10},
            "assets": {}
        });
        let record = ItemRecord::from_value(value, None).unwrap();
        let mut row = encode_row(&record).unwrap();
        assert_eq!(
            properties_of(&row.bytes),
            Some(serde_json::json!({"datetime": "2024-01-01T00:00:00Z", "gsd": 10}))
        );
        set_revision(&mut row.bytes, 3);
        assert_eq!(row.bytes[row.bytes.len() - 4..], 3i32.to_be_bytes());
        // EWKB of a 3D point with SRID 4326: little-endian, Z and SRID flags.
        let g = ewkb(&record).unwrap().unwrap();
        assert_eq!(g[0], 1);
        assert_eq!(u32::from_le_bytes(g[1..5].try_into().unwrap()), 0xA000_0001);
        assert_eq!(u32::from_le_bytes(g[5..9].try_into().unwrap()), 4326);
    }
}
