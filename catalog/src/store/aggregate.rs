//! The aggregation extension: counts and frequency distributions over the
//! items a search matches, each computed in SQL over the search's filters.

use serde_json::{Value, json};
use sqlx::{Postgres, QueryBuilder, Row};

use super::Store;
use super::search::push_filters;
use crate::search::Search;
use crate::{Error, Result};

/// What each aggregation is, as listed at `/aggregations`.
pub const AGGREGATIONS: &[(&str, &str, &str)] = &[
    ("total_count", "integer", "Number of matching items"),
    ("datetime_min", "datetime", "Earliest item datetime"),
    ("datetime_max", "datetime", "Latest item datetime"),
    (
        "datetime_frequency",
        "frequency_distribution",
        "Items per calendar interval (datetime_frequency_interval: day, week, month (default) or year)",
    ),
    (
        "collection_frequency",
        "frequency_distribution",
        "Items per collection",
    ),
    (
        "platform_frequency",
        "frequency_distribution",
        "Items per platform",
    ),
    (
        "cloud_cover_frequency",
        "frequency_distribution",
        "Items per 10 % band of eo:cloud_cover",
    ),
    (
        "grid_geohash_frequency",
        "frequency_distribution",
        "Items per geohash cell of their centroid (grid_geohash_frequency_precision 1-12, default 2)",
    ),
    (
        "grid_geotile_frequency",
        "frequency_distribution",
        "Items per web-mercator tile z/x/y of their centroid (grid_geotile_frequency_precision 0-20, default 4)",
    ),
];

/// The calendar interval of `datetime_frequency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interval {
    /// Calendar days (UTC).
    Day,
    /// ISO weeks, starting on Monday.
    Week,
    /// Calendar months.
    #[default]
    Month,
    /// Calendar years.
    Year,
}

impl Interval {
    /// The `date_trunc` field name: trusted SQL text, never user input.
    fn sql(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
        }
    }
}

impl std::str::FromStr for Interval {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "day" => Ok(Self::Day),
            "week" => Ok(Self::Week),
            "month" => Ok(Self::Month),
            "year" => Ok(Self::Year),
            _ => Err(Error::invalid_search(format!(
                "datetime_frequency_interval {s:?} is not day, week, month or year"
            ))),
        }
    }
}

/// Options of the frequency aggregations.
#[derive(Debug, Clone)]
pub struct AggregateOptions {
    /// The calendar interval of `datetime_frequency`.
    pub datetime_interval: Interval,
    /// Geohash length.
    pub geohash_precision: i32,
    /// Tile zoom.
    pub geotile_precision: i32,
}

impl Default for AggregateOptions {
    fn default() -> Self {
        Self {
            datetime_interval: Interval::Month,
            geohash_precision: 2,
            geotile_precision: 4,
        }
    }
}

impl AggregateOptions {
    /// Check the options' ranges.
    pub fn check(self) -> Result<Self> {
        if !(1..=12).contains(&self.geohash_precision) {
            return Err(Error::invalid_search(
                "grid_geohash_frequency_precision must lie in 1..=12",
            ));
        }
        if !(0..=20).contains(&self.geotile_precision) {
            return Err(Error::invalid_search(
                "grid_geotile_frequency_precision must lie in 0..=20",
            ));
        }
        Ok(self)
    }
}

/// The most buckets one frequency aggregation returns.
const MAX_BUCKETS: i64 = 10_000;

impl Store {
    /// Compute the named aggregations over the items `search` matches.
    pub async fn aggregate(
        &self,
        search: &Search,
        names: &[String],
        options: &AggregateOptions,
    ) -> Result<Vec<Value>> {
        let plan = self.plan(search).await?;
        let mut out = Vec::new();
        for name in names {
            let Some((_, data_type, _)) = AGGREGATIONS.iter().find(|(n, ..)| n == name) else {
                return Err(Error::invalid_search(format!(
                    "aggregation {name:?} is not available; see /aggregations"
                )));
            };
            let run = |select: &str, group: bool| {
                let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {select} FROM items"));
                push_filters(&mut qb, search, &plan);
                if group {
                    qb.push(format!(" GROUP BY 1 ORDER BY 1 LIMIT {MAX_BUCKETS}"));
                }
                qb
            };
            let value = match name.as_str() {
                "total_count" => {
                    let n: i64 = run("count(*)", false)
                        .build()
                        .persistent(!super::search::one_shot(search))
                        .fetch_one(self.reader())
                        .await?
                        .get(0);
                    json!({"name": name, "data_type": data_type, "value": n})
                }
                "datetime_min" | "datetime_max" => {
                    let f = if name == "datetime_min" { "min" } else { "max" };
                    let sql = format!("{f}(datetime)");
                    let v: Option<chrono::DateTime<chrono::Utc>> = run(&sql, false)
                        .build()
                        .persistent(!super::search::one_shot(search))
                        .fetch_one(self.reader())
                        .await?
                        .get(0);
                    let v = v.map_or(Value::Null, |t| {
                        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                    });
                    json!({"name": name, "data_type": data_type, "value": v})
                }
                _ => {
                    let (key, key_type) = match name.as_str() {
                        "datetime_frequency" => (
                            format!(
                                "to_char(date_trunc('{}', datetime AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                                options.datetime_interval.sql()
                            ),
                            "datetime",
                        ),
                        "collection_frequency" => ("collection".to_owned(), "string"),
                        "platform_frequency" => ("properties->>'platform'".to_owned(), "string"),
                        "cloud_cover_frequency" => (
                            "(SELECT CASE WHEN v >= 100 THEN 90 ELSE floor(v / 10) * 10 END \
                              FROM (SELECT arcolake_number(properties->'eo:cloud_cover') AS v) AS c)::text"
                                .to_owned(),
                            "numeric",
                        ),
                        "grid_geohash_frequency" => (
                            format!(
                                "ST_GeoHash(ST_PointOnSurface(geometry), {})",
                                options.geohash_precision
                            ),
                            "string",
                        ),
                        _ => {
                            let z = options.geotile_precision;
                            (
                                format!(
                                    "(WITH p AS (SELECT ST_X(c) AS lon, greatest(-85.0511, least(85.0511, ST_Y(c))) AS lat \
                                      FROM (SELECT ST_PointOnSurface(geometry) AS c) AS s) \
                                     SELECT '{z}/' || least(floor((lon + 180) / 360 * 2^{z}), 2^{z} - 1)::bigint || '/' || \
                                     least(floor((1 - ln(tan(radians(lat)) + 1 / cos(radians(lat))) / pi()) / 2 * 2^{z}), 2^{z} - 1)::bigint FROM p)"
                                ),
                                "string",
                            )
                        }
                    };
                    let select = format!("{key} AS k, count(*)");
                    let rows = run(&select, true)
                        .build()
                        .persistent(!super::search::one_shot(search))
                        .fetch_all(self.reader())
                        .await?;
                    let buckets: Vec<Value> = rows
                        .iter()
                        .filter_map(|r| {
                            let k: Option<String> = r.get(0);
                            let n: i64 = r.get(1);
                            let k = k?;
                            let key = if key_type == "numeric" {
                                k.parse::<f64>()
                                    .map(Value::from)
                                    .unwrap_or(Value::String(k))
                            } else {
                                Value::String(k)
                            };
                            Some(json!({"key": key, "data_type": key_type, "frequency": n}))
                        })
                        .collect();
                    json!({"name": name, "data_type": data_type, "buckets": buckets})
                }
            };
            out.push(value);
        }
        Ok(out)
    }
}
