//! Vector tiles of item footprints, made by PostGIS (`ST_AsMVT`).

use super::replica::lookup;
use sqlx::{Postgres, QueryBuilder, Row};

use super::Store;
use super::search::push_filters;
use crate::search::{Direction, Search};
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
/// `datetime` unless the operator names others (where the item has them,
/// as numbers, strings or booleans).
pub const FEATURE_PROPERTIES: [&str; 3] = ["eo:cloud_cover", "platform", "gsd"];
/// Geometry is simplified to this share of a tile's width before it is
/// encoded: 1/1024 is a quarter of a screen pixel of a 256-pixel tile (4
/// units of the 4096-unit MVT grid), so the drawing does not change while
/// a detailed footprint at a low zoom loses the vertices no one sees.
pub const SIMPLIFY_SHARE: f64 = 1.0 / 1024.0;
/// Width of the `WebMercatorQuad` world, in metres of EPSG:3857.
pub(crate) const WORLD_WIDTH: f64 = 40_075_016.685_578_49;

/// Longitude/latitude bounds of tile z/x/y of `WebMercatorQuad`, grown by
/// the 64-unit MVT buffer (1/64 of the tile) and kept inside the world.
pub(crate) fn tile_bounds(z: u8, x: u32, y: u32) -> [f64; 4] {
    let size = f64::from(1u32 << z.min(31));
    let margin = 1.0 / 64.0;
    let lon = |t: f64| (t / size * 360.0 - 180.0).clamp(-180.0, 180.0);
    let lat = |t: f64| {
        let t = t.clamp(0.0, size);
        (std::f64::consts::PI * (1.0 - 2.0 * t / size))
            .sinh()
            .atan()
            .to_degrees()
    };
    let (x, y) = (f64::from(x), f64::from(y));
    [
        lon(x - margin),
        lat(y + 1.0 + margin),
        lon(x + 1.0 + margin),
        lat(y - margin),
    ]
}

/// The type a tile property is encoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PropertyKind {
    Number,
    String,
}

/// The type of the well-known STAC properties: encoded as typed columns,
/// which `ST_AsMVT` writes faster than the values of a jsonb.
fn property_kind(name: &str) -> Option<PropertyKind> {
    match name {
        "eo:cloud_cover"
        | "eo:snow_cover"
        | "gsd"
        | "proj:epsg"
        | "sat:relative_orbit"
        | "sat:absolute_orbit"
        | "view:off_nadir"
        | "view:incidence_angle"
        | "view:azimuth"
        | "view:sun_azimuth"
        | "view:sun_elevation"
        | "landsat:wrs_path"
        | "landsat:wrs_row" => Some(PropertyKind::Number),
        "platform" | "constellation" | "mission" | "title" | "sat:orbit_state" | "s2:mgrs_tile"
        | "landsat:scene_id" => Some(PropertyKind::String),
        _ => None,
    }
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One tile of footprints.
#[derive(Debug, Clone)]
pub struct Tile {
    /// The MVT bytes (empty when no footprint meets the tile).
    pub bytes: Vec<u8>,
    /// More items meet the tile than it holds: it keeps the newest.
    pub limited: bool,
}

impl Store {
    /// The newest change stamp of any of `collections` (of every
    /// collection when empty).
    pub async fn stamp_of(&self, collections: &[String]) -> Result<i64> {
        if collections.is_empty() {
            return Ok(sqlx::query_scalar(
                "SELECT coalesce(max(stamp), 0) FROM collection_changes",
            )
            .fetch_one(self.reader())
            .await?);
        }
        Ok(sqlx::query_scalar(
            "SELECT coalesce(max(stamp), 0) FROM collection_changes WHERE collection = ANY($1)",
        )
        .bind(collections)
        .fetch_one(self.reader())
        .await?)
    }

    /// The footprints of the items `search` matches (its filters, its
    /// visibility) meeting tile `z/x/y` of `WebMercatorQuad`: in the
    /// search's order (newest first by default), at most `limit`.
    pub async fn search_tile(
        &self,
        search: &Search,
        (z, x, y): (u8, u32, u32),
        limit: u32,
        properties: &[String],
    ) -> Result<Tile> {
        let plan = self.plan(search).await?;
        let order = plan.order(Direction::Next);
        let [west, south, east, north] = tile_bounds(z, x, y);
        #[expect(clippy::cast_precision_loss, reason = "2^24 is exact in f64")]
        let tolerance = WORLD_WIDTH / (1u64 << z) as f64 * SIMPLIFY_SHARE;
        // One pass: the newest `limit` items meeting the tile (the tile
        // and its buffer as a constant box: with an unnamed statement
        // PostgreSQL plans each tile with its own values, and PostGIS's
        // statistics tell a world tile, where walking the newest items
        // first wins, from a street tile, where the spatial index does);
        // each property read once from the item's properties; encoded and
        // counted by one aggregate.
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT ST_AsMVT(f.*, '{FOOTPRINT_LAYER}', 4096, 'geom', 'fid') \
             FILTER (WHERE f.geom IS NOT NULL), count(*) FROM (SELECT \
             (hashtextextended(sub.collection || '/' || sub.id, 0) & 9223372036854775807) AS fid, \
             sub.id, sub.collection, \
             to_char(sub.datetime AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS datetime"
        ));
        let mut untyped = Vec::new();
        // The feature's own columns are not properties to repeat.
        let properties: Vec<&String> = properties
            .iter()
            .filter(|p| {
                !["id", "collection", "datetime", "fid", "geom", "properties"].contains(&p.as_str())
            })
            .collect();
        for (i, name) in properties.iter().enumerate() {
            let value = format!("v.v{i}");
            let column = quote_ident(name);
            match property_kind(name) {
                Some(PropertyKind::Number) => qb.push(format!(
                    ", CASE WHEN jsonb_typeof({value}) = 'number' THEN ({value})::float8 END AS {column}"
                )),
                Some(PropertyKind::String) => qb.push(format!(
                    ", CASE WHEN jsonb_typeof({value}) = 'string' THEN {value} #>> '{{}}' END AS {column}"
                )),
                None => {
                    untyped.push((name, value));
                    &mut qb
                }
            };
        }
        if !untyped.is_empty() {
            // Properties of no known type: one jsonb, which ST_AsMVT
            // spreads into values of each one's own type.
            qb.push(", jsonb_strip_nulls(jsonb_build_object(");
            for (i, (name, value)) in untyped.into_iter().enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                qb.push_bind((**name).clone()).push(format!(
                    "::text, CASE WHEN jsonb_typeof({value}) IN ('number', 'string', 'boolean') \
                     THEN {value} END"
                ));
            }
            qb.push(")) AS properties");
        }
        // The row past the cap is read (so the answer knows more items meet
        // the tile) but gets no geometry, so it is not encoded.
        qb.push(", CASE WHEN sub.rn <= ")
            .push_bind(i64::from(limit))
            .push(
            " THEN ST_AsMVTGeom(ST_Simplify(ST_Transform(CASE WHEN ST_YMax(sub.geometry) > 85.0511287798 \
             OR ST_YMin(sub.geometry) < -85.0511287798 THEN ST_ClipByBox2D(sub.geometry, \
             ST_MakeEnvelope(-180, -85.0511287798, 180, 85.0511287798, 4326)) ELSE sub.geometry END, \
             3857), ",
        )
        .push_bind(tolerance)
        .push(", true), ST_TileEnvelope(")
        .push_bind(i32::from(z))
        .push(", ")
        .push_bind(i32::try_from(x).map_err(|_| Error::invalid_input("tile column too large"))?)
        .push(", ")
        .push_bind(i32::try_from(y).map_err(|_| Error::invalid_input("tile row too large"))?)
        .push(
            "), 4096, 64, true) END AS geom FROM (SELECT newest.*, row_number() OVER () AS rn FROM ( \
             SELECT collection, id, datetime, geometry, properties FROM items",
        );
        push_filters(&mut qb, search, &plan);
        qb.push(" AND geometry && ST_MakeEnvelope(")
            .push_bind(west)
            .push(", ")
            .push_bind(south)
            .push(", ")
            .push_bind(east)
            .push(", ")
            .push_bind(north)
            .push(", 4326)")
            .push(&order)
            .push(" LIMIT ")
            .push_bind(i64::from(limit) + 1)
            .push(") newest) sub CROSS JOIN LATERAL (SELECT ");
        if properties.is_empty() {
            qb.push("1 AS none");
        }
        for (i, name) in properties.iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            qb.push("sub.properties->")
                .push_bind((*name).clone())
                .push(format!("::text AS v{i}"));
        }
        qb.push(") v) f");
        let row = qb
            .build()
            .persistent(false)
            .fetch_one(self.reader())
            .await?;
        let bytes: Option<Vec<u8>> = row.get(0);
        let picked: i64 = row.get(1);
        Ok(Tile {
            bytes: bytes.unwrap_or_default(),
            limited: picked > i64::from(limit),
        })
    }

    /// Forget the change stamps no one reads: each collection keeps only
    /// its newest (also a deleted collection, so the catalog-wide stamp
    /// never goes back). Returns how many rows went.
    pub async fn prune_stamps(&self) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM collection_changes c WHERE stamp < \
             (SELECT max(stamp) FROM collection_changes d WHERE d.collection = c.collection)",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Register a search body under `id` (a content hash: registering the
    /// same search again changes nothing).
    pub async fn register_search(&self, id: &str, body: &serde_json::Value) -> Result<()> {
        self.wrote();
        sqlx::query(
            "INSERT INTO registered_searches (id, body) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The body of a registered search.
    pub async fn registered_search(&self, id: &str) -> Result<Option<serde_json::Value>> {
        Ok(lookup!(self, |pool| {
            sqlx::query_scalar("SELECT body FROM registered_searches WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::tile_bounds;

    #[test]
    fn tile_bounds_cover_the_tile_and_its_buffer() {
        let [w, s, e, n] = tile_bounds(0, 0, 0);
        assert!((w + 180.0).abs() < 1e-12 && (e - 180.0).abs() < 1e-12);
        assert!((n - 85.051_128_78).abs() < 1e-6 && (s + 85.051_128_78).abs() < 1e-6);
        // z=1, x=1, y=0: the north-east quarter, a little past its edges.
        let [w, s, e, n] = tile_bounds(1, 1, 0);
        assert!(w < 0.0 && w > -6.0, "{w}");
        assert!(s < 0.0 && s > -6.0, "{s}");
        assert!((e - 180.0).abs() < 1e-12);
        assert!((n - 85.051_128_78).abs() < 1e-6);
    }
}
