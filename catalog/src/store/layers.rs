//! Vector datasets published as tile layers: a table per publication in
//! the schema `layers`, geometry in EPSG:4326 (reprojected by PostGIS on
//! import, so tiles need one transform, to Web Mercator, as footprints do),
//! attributes in one jsonb column that `ST_AsMVT` spreads into feature
//! properties with their types.

use super::replica::lookup;
use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Postgres, Row, Transaction};

use super::Store;
use super::tiles::{DEFAULT_TILE_LIMIT, SIMPLIFY_SHARE, Tile, WORLD_WIDTH, tile_bounds};
use crate::{Error, Result};

/// The name of the MVT layer of a published dataset.
pub const LAYER_NAME: &str = "features";

/// A published layer, as tiles and feature pages need it.
#[derive(Debug, Clone)]
pub struct Published {
    /// The table, schema-qualified and quoted.
    pub table: String,
    /// The change stamp of this publication.
    pub stamp: i64,
    /// Extent of the features, in longitude/latitude.
    pub bbox: Option<[f64; 4]>,
    /// Attribute names and kinds (`Number`, `String`, ...).
    pub columns: Vec<(String, String)>,
    /// How many features it holds.
    pub features: i64,
    /// The file's change token when it was imported.
    pub source_token: String,
    /// The asset href it was imported from.
    pub href: String,
}

/// What a publication is of, and what the file said.
#[derive(Debug, Clone)]
pub struct LayerSource {
    /// Collection of the item.
    pub collection: String,
    /// The item.
    pub item: String,
    /// The asset key.
    pub asset: String,
    /// The asset's href.
    pub href: String,
    /// The file's change token.
    pub token: String,
    /// EPSG code of the file's geometry.
    pub srid: u32,
}

/// A publication being written: its rows go into a fresh table inside one
/// transaction, swapped in by [`LayerWriter::finish`]. Dropped unfinished,
/// nothing changes.
pub struct LayerWriter {
    tx: Transaction<'static, Postgres>,
    table: String,
    source: LayerSource,
    written: i64,
}

impl std::fmt::Debug for LayerWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerWriter")
            .field("table", &self.table)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

fn layer_error(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) => Error::invalid_input(format!(
            "the dataset could not be imported: {}",
            db.message()
        )),
        _ => Error::from(e),
    }
}

impl LayerWriter {
    /// Write a batch of features: WKB geometries in the file's CRS and
    /// their attributes.
    pub async fn write(&mut self, geometries: Vec<Vec<u8>>, properties: Vec<Value>) -> Result<()> {
        self.written += i64::try_from(geometries.len()).unwrap_or(i64::MAX);
        let transform = if self.source.srid == 4326 {
            "ST_SetSRID(ST_GeomFromWKB(g), 4326)".to_owned()
        } else {
            format!(
                "ST_Transform(ST_SetSRID(ST_GeomFromWKB(g), {}), 4326)",
                self.source.srid
            )
        };
        sqlx::query(&format!(
            "INSERT INTO {} (geom, props) SELECT ST_Force2D({transform}), p \
             FROM unnest($1::bytea[], $2::jsonb[]) AS u(g, p)",
            self.table
        ))
        .bind(geometries)
        .bind(properties)
        .execute(&mut *self.tx)
        .await
        .map_err(layer_error)?;
        Ok(())
    }

    /// Index the new table, swap it in for the previous publication (which
    /// is dropped) and commit.
    pub async fn finish(mut self, columns: &[(String, String)]) -> Result<Published> {
        sqlx::query(&format!("CREATE INDEX ON {} USING gist (geom)", self.table))
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(&format!("ANALYZE {}", self.table))
            .execute(&mut *self.tx)
            .await?;
        let s = &self.source;
        let old: Option<String> = sqlx::query_scalar(
            "SELECT table_name FROM published_layers \
             WHERE collection = $1 AND item = $2 AND asset = $3 FOR UPDATE",
        )
        .bind(&s.collection)
        .bind(&s.item)
        .bind(&s.asset)
        .fetch_optional(&mut *self.tx)
        .await?;
        let columns_json: Value = columns
            .iter()
            .map(|(n, k)| Value::Array(vec![Value::from(n.as_str()), Value::from(k.as_str())]))
            .collect();
        let row = sqlx::query(&format!(
            "INSERT INTO published_layers AS l (collection, item, asset, table_name, href, \
               source_token, source_srid, columns, features, bbox) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, \
               (SELECT ARRAY[ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)] \
                FROM (SELECT ST_Extent(geom) AS e FROM {}) x WHERE e IS NOT NULL) \
             ON CONFLICT (collection, item, asset) DO UPDATE SET \
               table_name = excluded.table_name, href = excluded.href, \
               source_token = excluded.source_token, source_srid = excluded.source_srid, \
               columns = excluded.columns, features = excluded.features, bbox = excluded.bbox, \
               stamp = nextval('change_stamps'), published_at = now() \
             RETURNING stamp, bbox",
            self.table
        ))
        .bind(&s.collection)
        .bind(&s.item)
        .bind(&s.asset)
        .bind(&self.table)
        .bind(&s.href)
        .bind(&s.token)
        .bind(i32::try_from(s.srid).unwrap_or(4326))
        .bind(&columns_json)
        .bind(self.written)
        .fetch_one(&mut *self.tx)
        .await?;
        if let Some(old) = old {
            sqlx::query(&format!("DROP TABLE IF EXISTS {old}"))
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        let bbox: Option<Vec<f64>> = row.get(1);
        Ok(Published {
            table: self.table,
            stamp: row.get(0),
            bbox: bbox.and_then(|b| b.try_into().ok()),
            columns: columns.to_vec(),
            features: self.written,
            source_token: self.source.token,
            href: self.source.href,
        })
    }
}

impl Store {
    /// Begin publishing a dataset: a new, empty table in a transaction.
    pub async fn begin_layer(&self, source: LayerSource) -> Result<LayerWriter> {
        self.wrote();
        let mut tx = self.pool.begin().await?;
        // One publisher of an asset at a time: a second waits here until
        // the first commits or gives up, then replaces its layer.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!(
                "layer/{}/{}/{}",
                source.collection, source.item, source.asset
            ))
            .execute(&mut *tx)
            .await?;
        // Stamps are unique, so each publication's table name is too.
        let stamp: i64 = sqlx::query_scalar("SELECT nextval('change_stamps')")
            .fetch_one(&mut *tx)
            .await?;
        let digest = Sha256::digest(
            format!("{}/{}/{}", source.collection, source.item, source.asset).as_bytes(),
        );
        let hex = digest[..8]
            .iter()
            .fold(String::with_capacity(16), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            });
        let table = format!("layers.\"l_{hex}_{stamp}\"");
        sqlx::query(&format!(
            "CREATE TABLE {table} (fid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
             geom geometry(Geometry, 4326) NOT NULL, props jsonb NOT NULL DEFAULT '{{}}')"
        ))
        .execute(&mut *tx)
        .await?;
        Ok(LayerWriter {
            tx,
            table,
            source,
            written: 0,
        })
    }

    /// The assets of a collection's items that may be vector datasets
    /// (GeoParquet or FlatGeobuf by media type or extension): item, key,
    /// href and media type.
    pub async fn vector_assets(
        &self,
        collection: &str,
    ) -> Result<Vec<(String, String, String, String)>> {
        let rows = sqlx::query(
            "SELECT i.id, a.key, a.value->>'href', coalesce(a.value->>'type', '') \
             FROM items i, json_each(CASE WHEN json_typeof(i.content->'assets') = 'object' \
                                     THEN i.content->'assets' END) a \
             WHERE i.collection = $1 \
               AND (a.value->>'type' ~* '(parquet|flatgeobuf)' \
                    OR a.value->>'href' ~* '\\.(parquet|geoparquet|fgb)([?#]|$)') \
             ORDER BY i.id, a.key",
        )
        .bind(collection)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    /// The layer published from an item's asset.
    pub async fn published_layer(
        &self,
        collection: &str,
        item: &str,
        asset: &str,
    ) -> Result<Option<Published>> {
        let row = lookup!(self, |pool| {
            sqlx::query(
                "SELECT table_name, stamp, bbox, columns, features, source_token, href FROM published_layers \
                 WHERE collection = $1 AND item = $2 AND asset = $3",
            )
            .bind(collection)
            .bind(item)
            .bind(asset)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|row| {
            let bbox: Option<Vec<f64>> = row.get(2);
            let columns: Value = row.get(3);
            Published {
                table: row.get(0),
                stamp: row.get(1),
                bbox: bbox.and_then(|b| b.try_into().ok()),
                columns: columns
                    .as_array()
                    .map(|cs| {
                        cs.iter()
                            .filter_map(|c| {
                                Some((c[0].as_str()?.to_owned(), c[1].as_str()?.to_owned()))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                features: row.get(4),
                source_token: row.get(5),
                href: row.get(6),
            }
        }))
    }

    /// Tile `z/x/y` of a published layer: at most the default cap of
    /// features, simplified for the zoom like footprints.
    pub async fn layer_tile(&self, layer: &Published, (z, x, y): (u8, u32, u32)) -> Result<Tile> {
        #[expect(clippy::cast_precision_loss, reason = "2^24 is exact in f64")]
        let tolerance = WORLD_WIDTH / (1u64 << z) as f64 * SIMPLIFY_SHARE;
        let limit = i64::from(DEFAULT_TILE_LIMIT);
        let [west, south, east, north] = tile_bounds(z, x, y);
        let row = sqlx::query(&format!(
            "WITH env AS (SELECT ST_TileEnvelope($1, $2, $3) AS m), \
             picked AS (SELECT fid, geom, props FROM {table} \
               WHERE geom && ST_MakeEnvelope($6, $7, $8, $9, 4326) ORDER BY fid LIMIT $4 + 1), \
             feats AS (SELECT fid, props, ST_AsMVTGeom(ST_Simplify(ST_Transform(geom, 3857), $5, true), \
               env.m, 4096, 64, true) AS geom FROM (SELECT * FROM picked ORDER BY fid LIMIT $4) p, env) \
             SELECT (SELECT ST_AsMVT(feats.*, '{LAYER_NAME}', 4096, 'geom', 'fid') FROM feats \
               WHERE geom IS NOT NULL), (SELECT count(*) FROM picked)",
            table = layer.table
        ))
        .bind(i32::from(z))
        .bind(i32::try_from(x).map_err(|_| Error::invalid_input("tile column too large"))?)
        .bind(i32::try_from(y).map_err(|_| Error::invalid_input("tile row too large"))?)
        .bind(limit)
        .bind(tolerance)
        .bind(west)
        .bind(south)
        .bind(east)
        .bind(north)
        .persistent(false)
        .fetch_one(self.reader())
        .await?;
        let bytes: Option<Vec<u8>> = row.get(0);
        let picked: i64 = row.get(1);
        Ok(Tile {
            bytes: bytes.unwrap_or_default(),
            limited: picked > limit,
        })
    }

    /// A page of a published layer's features as GeoJSON: those meeting
    /// `bbox` (longitude/latitude), after feature id `after`, at most
    /// `limit`. Returns the features and the id to continue after.
    pub async fn layer_features(
        &self,
        layer: &Published,
        bbox: Option<[f64; 4]>,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<Value>, Option<i64>)> {
        let mut sql = format!(
            "SELECT fid, json_build_object('type', 'Feature', 'id', fid, \
               'geometry', ST_AsGeoJSON(geom)::json, 'properties', props) \
             FROM {} WHERE fid > $1",
            layer.table
        );
        match bbox {
            Some(b) if b[0] > b[2] => sql.push_str(
                " AND (geom && ST_MakeEnvelope($3, $4, 180, $6, 4326) \
                   OR geom && ST_MakeEnvelope(-180, $4, $5, $6, 4326))",
            ),
            Some(_) => sql.push_str(" AND geom && ST_MakeEnvelope($3, $4, $5, $6, 4326)"),
            None => {}
        }
        sql.push_str(" ORDER BY fid LIMIT $2");
        let mut q = sqlx::query(&sql).bind(after).bind(limit + 1);
        if let Some(b) = bbox {
            q = q.bind(b[0]).bind(b[1]).bind(b[2]).bind(b[3]);
        }
        let rows = q.fetch_all(self.reader()).await?;
        let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        let mut features = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in rows
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            last = Some(row.get::<i64, _>(0));
            features.push(row.get::<Value, _>(1));
        }
        Ok((features, if more { last } else { None }))
    }
}
