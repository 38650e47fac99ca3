//! The PostGIS store: collections, items and search over one pool.
//!
//! Functions taking `impl PgExecutor` run one statement; those taking
//! `&mut PgConnection` run several, so callers choose a pool connection or a
//! transaction. sqlx errors are turned into domain kinds here and nowhere else.

mod aggregate;
mod collections;
pub mod crawl;
pub mod items;
pub mod layers;
mod queryables;
pub mod replica;
mod search;
pub mod staging;
pub mod tiles;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

pub use aggregate::{AGGREGATIONS, AggregateOptions, Interval};
pub use queryables::parse_overrides;
pub use search::{Count, ItemPage};

use crate::model::{CollectionId, ItemId};
use crate::{Error, Result};

/// The catalog store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    count_limit: u64,
    count_timeout: std::time::Duration,
    queryables: std::sync::Arc<queryables::QueryablesCache>,
    replica: Option<std::sync::Arc<replica::Replica>>,
}

/// An item as read back: JSON text ready to splice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// Collection id.
    pub collection: String,
    /// Item id.
    pub id: String,
    /// The sort instant.
    pub datetime: DateTime<Utc>,
    /// The Item without links, as JSON text.
    pub content: String,
    /// Stored foreign links as a JSON array text.
    pub links: Option<String>,
}

/// A collection as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCollection {
    /// Collection id.
    pub id: String,
    /// The Collection without links, as JSON text.
    pub content: String,
    /// Stored foreign links as a JSON array text.
    pub links: Option<String>,
}

/// Counts of a bulk write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Rows newly inserted.
    pub inserted: u64,
    /// Rows that replaced an existing one.
    pub updated: u64,
}

impl Store {
    /// A store over `pool`. `numberMatched` is counted exactly up to
    /// `count_limit` matches and estimated above that.
    pub fn new(pool: PgPool, count_limit: u64) -> Self {
        Self {
            pool,
            count_limit,
            count_timeout: DEFAULT_COUNT_TIMEOUT,
            queryables: std::sync::Arc::default(),
            replica: None,
        }
    }

    /// The same store with another time budget for exact counts.
    #[must_use]
    pub fn with_count_timeout(mut self, budget: std::time::Duration) -> Self {
        self.count_timeout = budget;
        self
    }

    /// The same store with the operator's queryables overrides (see
    /// [`parse_overrides`]).
    #[must_use]
    pub fn with_queryables(
        mut self,
        overrides: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        self.queryables =
            std::sync::Arc::new(queryables::QueryablesCache::with_overrides(overrides));
        self
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `true` when the database answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// How long an exact (capped) count may run before the planner's estimate
/// is answered instead.
pub const DEFAULT_COUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(50);

/// SQLSTATE of a unique violation.
const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE raised when no partition accepts a row (collection missing).
const CHECK_VIOLATION: &str = "23514";

pub(crate) fn is_code(e: &sqlx::Error, code: &str) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(code))
}

/// Map an item write failure to a domain error.
fn item_write_error(e: sqlx::Error, collection: &CollectionId, item: Option<&ItemId>) -> Error {
    if is_code(&e, UNIQUE_VIOLATION)
        && let Some(item) = item
    {
        return Error::ItemExists {
            collection: collection.clone(),
            item: item.clone(),
        };
    }
    if is_code(&e, CHECK_VIOLATION)
        && !matches!(&e, sqlx::Error::Database(db) if db.constraint().is_some())
    {
        return Error::CollectionNotFound {
            id: collection.clone(),
        };
    }
    Error::from(e)
}
