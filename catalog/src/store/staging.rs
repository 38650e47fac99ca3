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
/// How long the swap waits for the lock on `items` before it tries again.
const SWAP_LOCK_TIMEOUT: &str = "5s";
const SWAP_ATTEMPTS: u32 = 12;

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

/// Collections a load may stage, and the connection holding their locks.
pub struct Stager {
    /// Holds the advisory lock of every staging table this load owns; the
    /// locks go when it closes.
    conn: PgConnection,
    stageable: HashSet<String>,
}

impl std::fmt::Debug for Stager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stager")
            .field("stageable", &self.stageable)
            .finish_non_exhaustive()
    }
}

impl Stager {
    /// Drop the staging tables killed loads left, and take the collections
    /// whose partition is empty and that no other load stages.
    pub async fn begin(store: &Store) -> Result<Self> {
        let mut conn = store.pool().acquire().await?.detach();
        let left: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_class WHERE relname LIKE 'items\\_load\\_%' AND relkind = 'r'",
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
        let empty: Vec<String> = if row_triggers {
            info!("items has row triggers; every item is written through its live partition");
            Vec::new()
        } else {
            sqlx::query_scalar(
                "SELECT c.id FROM collections c \
                 WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.collection = c.id)",
            )
            .fetch_all(&mut conn)
            .await?
        };
        let mut stageable = HashSet::new();
        for collection in empty {
            let free: bool =
                sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({LOCK_KEY})"))
                    .bind(staging_table(&collection))
                    .fetch_one(&mut conn)
                    .await?;
            if free {
                stageable.insert(collection);
            }
        }
        sqlx::query("SET synchronous_commit = off")
            .execute(&mut conn)
            .await?;
        Ok(Self { conn, stageable })
    }

    /// The collections this load stages.
    pub fn stageable(&self) -> &HashSet<String> {
        &self.stageable
    }

    /// Start staging `collection` (one of [`Self::stageable`]).
    pub async fn stage(&mut self, collection: &str) -> Result<Staging> {
        let table = staging_table(collection);
        let live = partition_of(&mut self.conn, collection).await?;
        let literal = collection.replace('\'', "''");
        let mut tx = self.conn.begin().await?;
        sqlx::query(&format!(
            "CREATE TABLE {table} (LIKE items INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
             INCLUDING STORAGE, CONSTRAINT {table}_collection CHECK (collection = '{literal}')) \
             WITH (toast_tuple_target = 8160)"
        ))
        .execute(&mut *tx)
        .await?;
        // As the partition is made (migrations/0002): lz4 where the server has it.
        let lz4: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass \
             AND attname = 'content' AND attcompression = 'l')",
        )
        .bind(&live)
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
        Ok(Staging {
            collection: collection.to_owned(),
            table,
            live,
            seen: HashSet::new(),
            repeated: HashMap::new(),
            properties: BTreeMap::new(),
            span: 0.0,
            rows: 0,
        })
    }

    /// Send rows to a staging table in one `COPY` (all of them or none).
    pub async fn copy(&mut self, staging: &Staging, rows: &[&[u8]]) -> Result<u64> {
        let mut copy = self
            .conn
            .copy_in_raw(&format!(
                "COPY {} ({COLUMNS}) FROM STDIN (FORMAT binary)",
                staging.table
            ))
            .await?;
        let mut buf = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(COPY_HEADER);
        for row in rows {
            buf.extend_from_slice(row);
            if buf.len() >= 1 << 20 {
                copy.send(std::mem::take(&mut buf)).await?;
                buf.reserve(1 << 20);
            }
        }
        buf.extend_from_slice(&(-1i16).to_be_bytes());
        copy.send(buf).await?;
        Ok(copy.finish().await?)
    }

    /// Delete the first versions of repeated items whose latest version
    /// (from [`Staging::take_repeated`]) was sent.
    pub async fn drop_replaced(&mut self, staging: &mut Staging, ids: &[&str]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let gone = sqlx::query(&format!(
            "DELETE FROM {} WHERE id = ANY($1) AND revision = 1",
            staging.table
        ))
        .bind(ids)
        .execute(&mut self.conn)
        .await?
        .rows_affected();
        staging.rows -= gone;
        Ok(())
    }

    /// Put the staged items of one collection into the catalog: build the
    /// indexes, then swap the staging table in for the empty partition (or
    /// upsert its rows when the partition has items by now).
    pub async fn finish(&mut self, store: &Store, staging: Staging) -> Result<WriteCounts> {
        if staging.rows == 0 {
            sqlx::query(&format!("DROP TABLE {}", staging.table))
                .execute(&mut self.conn)
                .await?;
            return Ok(WriteCounts::default());
        }
        let started = std::time::Instant::now();
        // Hint bits and the visibility map now, while no index is there to
        // slow the pass down: the load's closing VACUUM then skips the pages.
        sqlx::query(&format!("VACUUM {}", staging.table))
            .execute(&mut self.conn)
            .await?;
        debug!(
            collection = staging.collection,
            seconds = started.elapsed().as_secs_f64(),
            "vacuumed"
        );
        self.build_indexes(store, &staging).await?;
        debug!(
            collection = staging.collection,
            seconds = started.elapsed().as_secs_f64(),
            "indexes built"
        );
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.swap(&staging).await {
                Err(Error::Database(e))
                    if attempt < SWAP_ATTEMPTS && super::is_code(&e, "55P03") =>
                {
                    info!(
                        collection = staging.collection,
                        "waiting for readers of items to swap the loaded partition in"
                    );
                }
                other => return other,
            }
        }
    }

    /// The parent's indexes, made on the staging table by two connections.
    async fn build_indexes(&mut self, store: &Store, staging: &Staging) -> Result<()> {
        let table = &staging.table;
        // Constraint indexes (the primary key) are made as constraints, so
        // that ATTACH PARTITION adopts them instead of building its own.
        let constraints: Vec<String> = sqlx::query_scalar(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = 'items'::regclass AND contype IN ('p', 'u')",
        )
        .fetch_all(&mut self.conn)
        .await?;
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
             WHERE i.indrelid = 'items'::regclass \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        )
        .fetch_all(&mut self.conn)
        .await?;
        // Named here: two builds naming their own would race for one name.
        let mut statements: Vec<String> = constraints
            .iter()
            .enumerate()
            .map(|(n, c)| format!("ALTER TABLE {table} ADD CONSTRAINT {table}_c{n} {c}"))
            .collect();
        for (n, def) in indexes.iter().enumerate() {
            let (head, tail) = def
                .split_once(" ON ONLY ")
                .ok_or_else(|| Error::embedded(format!("unexpected index definition: {def}")))?;
            let using = tail.split_once(' ').map_or("", |(_, rest)| rest);
            let unique = if head.starts_with("CREATE UNIQUE") {
                "UNIQUE "
            } else {
                ""
            };
            statements.push(format!(
                "CREATE {unique}INDEX {table}_i{n} ON {table} {using}"
            ));
        }
        // The longest builds first, so the two connections end together.
        statements.sort_by_key(|s| !s.contains("USING gist"));
        let queue = std::sync::Mutex::new(statements.into_iter());
        let mut other = store.pool().acquire().await?;
        let (a, b) = tokio::join!(
            run_queue(&mut self.conn, &queue),
            run_queue(&mut other, &queue)
        );
        a.and(b)
    }

    /// The swap, in one transaction.
    async fn swap(&mut self, staging: &Staging) -> Result<WriteCounts> {
        let Staging {
            collection,
            table,
            live,
            ..
        } = staging;
        let mut tx = self.conn.begin().await?;
        sqlx::query(&format!("SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'"))
            .execute(&mut *tx)
            .await?;
        // The parent first, as every reader locks it before the partition.
        sqlx::query("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let empty: bool = sqlx::query_scalar(&format!("SELECT NOT EXISTS (SELECT 1 FROM {live})"))
            .fetch_one(&mut *tx)
            .await?;
        let counts = if empty {
            let literal = collection.replace('\'', "''");
            let indexes: Vec<String> = sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE i.indrelid = $1::regclass",
            )
            .bind(table)
            .fetch_all(&mut *tx)
            .await?;
            let renames = indexes.iter().filter_map(|index| {
                let tail = index.strip_prefix(table.as_str())?;
                Some(format!("ALTER INDEX {index} RENAME TO {live}{tail}"))
            });
            for sql in [
                format!("ALTER TABLE items DETACH PARTITION {live}"),
                format!("DROP TABLE {live}"),
                format!("ALTER TABLE {table} RENAME TO {live}"),
                format!("ALTER TABLE items ATTACH PARTITION {live} FOR VALUES IN ('{literal}')"),
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
            WriteCounts {
                inserted: staging.rows,
                updated: 0,
            }
        } else {
            info!(
                collection,
                "the partition has items by now; upserting the staged ones into it"
            );
            let created: Vec<bool> = sqlx::query_scalar(&format!(
                "INSERT INTO items ({COLUMNS}) SELECT {COLUMNS} FROM {table} {}",
                super::items::UPSERT_SUFFIX
            ))
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(&format!("DROP TABLE {table}"))
                .execute(&mut *tx)
                .await?;
            let inserted = created.iter().filter(|c| **c).count() as u64;
            WriteCounts {
                inserted,
                updated: created.len() as u64 - inserted,
            }
        };
        Store::record_properties(
            &mut tx,
            &BTreeMap::from([(collection.clone(), staging.kinds())]),
        )
        .await?;
        if staging.span > 0.0 {
            sqlx::query(
                "UPDATE collections SET max_item_span = $2 * interval '1 second' \
                 WHERE id = $1 AND max_item_span < $2 * interval '1 second'",
            )
            .bind(collection)
            .bind(staging.span)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(counts)
    }
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
    table: String,
    live: String,
    /// Keys of the items sent (MD5 of the id).
    seen: HashSet<u128>,
    /// Items met again: id, times met, latest row.
    repeated: HashMap<u128, (String, i32, Vec<u8>)>,
    /// Property → kind → items of that kind sent (a refused row is taken
    /// off again), for the queryables.
    properties: BTreeMap<String, BTreeMap<Kind, u64>>,
    span: f64,
    rows: u64,
}

impl Staging {
    /// Take a row: `Some` when it is to be sent now, `None` when it repeats
    /// an item already sent (it then replaces that item at the end).
    pub fn admit(&mut self, row: StagedRow) -> Option<StagedRow> {
        self.span = self.span.max(row.span);
        let k = key(&row.id);
        if self.seen.insert(k) {
            return Some(row);
        }
        let entry = self
            .repeated
            .entry(k)
            .or_insert_with(|| (row.id.clone(), 1, Vec::new()));
        entry.1 += 1;
        entry.2 = row.bytes;
        None
    }

    /// The latest version of each item met more than once, its revision
    /// the number of times it was met (as a load of one item per batch
    /// counts them), in id order.
    pub fn take_repeated(&mut self) -> Vec<(String, Vec<u8>)> {
        let mut rows: Vec<(String, Vec<u8>)> = std::mem::take(&mut self.repeated)
            .into_values()
            .map(|(id, count, mut row)| {
                set_revision(&mut row, count);
                (id, row)
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// The collection staged.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// Count rows the database took.
    pub fn took(&mut self, rows: u64) {
        self.rows += rows;
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
        let Some(Value::Object(props)) = properties_of(row) else {
            return;
        };
        for (name, value) in &props {
            if let Some(kind) = Kind::of(value)
                && let Some(n) = self.properties.get_mut(name).and_then(|k| k.get_mut(&kind))
            {
                *n = n.saturating_sub(1);
            }
        }
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
