//! Vector tiles of item footprints, made by PostGIS (`ST_AsMVT`).

use sqlx::Row;

use super::Store;
use crate::access::Visibility;
use crate::{Error, Result};

/// The deepest zoom level served.
pub const MAX_ZOOM: u8 = 24;
/// Features in one tile unless the request asks for fewer or more.
pub const DEFAULT_TILE_LIMIT: u32 = 10_000;
/// The most features one tile may hold.
pub const MAX_TILE_LIMIT: u32 = 50_000;
/// The name of the MVT layer of footprints.
pub const FOOTPRINT_LAYER: &str = "footprints";
/// Item properties carried by each feature besides `id`, `collection` and
/// `datetime` (where the item has them, as numbers or strings).
pub const FEATURE_PROPERTIES: [&str; 3] = ["eo:cloud_cover", "platform", "gsd"];

/// One tile of footprints.
#[derive(Debug, Clone)]
pub struct Tile {
    /// The MVT bytes (empty when no footprint meets the tile).
    pub bytes: Vec<u8>,
    /// More items meet the tile than it holds: it keeps the newest.
    pub limited: bool,
}

impl Store {
    /// The newest change stamp of `collection` (0 before any change).
    pub async fn collection_stamp(&self, collection: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce(max(stamp), 0) FROM collection_changes WHERE collection = $1",
        )
        .bind(collection)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The footprints of `collection` meeting tile `z/x/y` of `WebMercatorQuad`,
    /// newest first, at most `limit`; `CollectionNotFound` when `visibility`
    /// does not see the collection.
    pub async fn footprint_tile(
        &self,
        collection: &str,
        visibility: &Visibility,
        (z, x, y): (u8, u32, u32),
        limit: u32,
    ) -> Result<Tile> {
        if !self.collection_visible(collection, visibility).await? {
            return Err(Error::CollectionNotFound {
                id: crate::CollectionId::new(collection).map_err(Error::invalid_input)?,
            });
        }
        let number = |p: &str| {
            format!(
                "CASE WHEN jsonb_typeof(p.properties->'{p}') = 'number' \
                 THEN (p.properties->>'{p}')::float8 END AS \"{p}\""
            )
        };
        // Footprints are clipped to the latitudes Web Mercator can show
        // before they are projected; a footprint split at the antimeridian
        // (a MultiPolygon) is drawn on both edges.
        let sql = format!(
            "WITH env AS (SELECT ST_TileEnvelope($1, $2, $3) AS m), \
             picked AS ( \
                SELECT i.collection, i.id, i.datetime, i.geometry, i.properties \
                FROM items i, env \
                WHERE i.collection = $4 AND i.geometry && ST_Transform(env.m, 4326) \
                ORDER BY i.datetime DESC, i.id \
                LIMIT $5 + 1), \
             feats AS ( \
                SELECT (hashtextextended(p.collection || '/' || p.id, 0) & 9223372036854775807) AS fid, \
                       p.id, p.collection, \
                       to_char(p.datetime AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS datetime, \
                       {cloud}, \
                       p.properties->>'platform' AS platform, \
                       {gsd}, \
                       ST_AsMVTGeom(ST_Transform(ST_ClipByBox2D(p.geometry, \
                           ST_MakeEnvelope(-180, -85.0511287798, 180, 85.0511287798, 4326)), 3857), \
                           env.m, 4096, 64, true) AS geom \
                FROM (SELECT * FROM picked ORDER BY datetime DESC, id LIMIT $5) p, env) \
             SELECT (SELECT ST_AsMVT(feats.*, '{FOOTPRINT_LAYER}', 4096, 'geom', 'fid') \
                     FROM feats WHERE geom IS NOT NULL), \
                    (SELECT count(*) FROM picked)",
            cloud = number("eo:cloud_cover"),
            gsd = number("gsd"),
        );
        let row = sqlx::query(&sql)
            .bind(i32::from(z))
            .bind(i32::try_from(x).map_err(|_| Error::invalid_input("tile column too large"))?)
            .bind(i32::try_from(y).map_err(|_| Error::invalid_input("tile row too large"))?)
            .bind(collection)
            .bind(i64::from(limit))
            .fetch_one(&self.pool)
            .await?;
        let bytes: Option<Vec<u8>> = row.get(0);
        let picked: i64 = row.get(1);
        Ok(Tile {
            bytes: bytes.unwrap_or_default(),
            limited: picked > i64::from(limit),
        })
    }
}
