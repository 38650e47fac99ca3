//! The catalog's error kinds, grouped by what a caller can do about them.

use crate::model::{CollectionId, ItemId};

/// Everything that can go wrong in the catalog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No collection with this id.
    #[error("collection {id} not found")]
    CollectionNotFound { id: CollectionId },
    /// No item with this id in this collection.
    #[error("item {item} not found in collection {collection}")]
    ItemNotFound {
        collection: CollectionId,
        item: ItemId,
    },
    /// A collection with this id exists already.
    #[error("collection {id} already exists")]
    CollectionExists { id: CollectionId },
    /// An item with this id exists already in this collection.
    #[error("item {item} already exists in collection {collection}")]
    ItemExists {
        collection: CollectionId,
        item: ItemId,
    },
    /// A search request that cannot be run as given.
    #[error("invalid search: {reason}")]
    InvalidSearch { reason: String },
    /// A STAC document that is not valid; `field` names the JSON path.
    #[error("invalid {kind}: {field}: {reason}")]
    InvalidDocument {
        kind: &'static str,
        field: String,
        reason: String,
    },
    /// The embedded PostgreSQL cluster could not be set up or started.
    #[error("embedded PostgreSQL: {reason}")]
    Embedded { reason: String },
    /// An export could not be written (`arcolake export`).
    #[error("export: {reason}")]
    Export { reason: String },
    /// An I/O failure outside the database (data directory, lock files).
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A migration failed to apply.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value the database cannot take (a data exception, SQLSTATE class
    /// 22: e.g. a NUL character in text); the client's input is at fault.
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    /// A statement ran longer than the statement timeout and was cancelled;
    /// the same request may succeed when the server is less busy.
    #[error("the query ran longer than the time allowed and was cancelled")]
    Timeout,
    /// No database connection became free in time: the server is busy.
    #[error("the catalog database is busy or unreachable")]
    Busy,
    /// Any other database failure.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut => return Self::Busy,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // Class 22: a value the database cannot take (a NUL in text,
                // a number out of range).
                if code.starts_with("22") {
                    return Self::InvalidInput {
                        reason: db.message().to_owned(),
                    };
                }
                // query_canceled: the statement timeout.
                if code == "57014" {
                    return Self::Timeout;
                }
                // PostGIS reports what it cannot compute for the geometries
                // it was given as an internal error (XX000): relate predicates
                // on GEOMETRYCOLLECTIONs, geohashes of projected coordinates,
                // topology exceptions. The input is at fault.
                if code == "XX000" && is_geometry_complaint(db.message()) {
                    return Self::InvalidInput {
                        reason: format!(
                            "the spatial operation cannot be computed for the geometries given: {}",
                            db.message()
                        ),
                    };
                }
            }
            _ => {}
        }
        Self::Database(e)
    }
}

/// Whether an internal-error message comes from PostGIS's geometry code.
fn is_geometry_complaint(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "geos",
        "lwgeom",
        "lwcollection",
        "geometry",
        "geohash",
        "relate",
        "topologyexception",
        "illegalargumentexception",
        "postgis",
        "st_",
        "decimal degrees",
    ]
    .iter()
    .any(|marker| m.contains(marker))
}

impl Error {
    /// An `InvalidInput` with the given reason.
    pub fn invalid_input(reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            reason: reason.into(),
        }
    }

    /// An `InvalidSearch` with the given reason.
    pub fn invalid_search(reason: impl Into<String>) -> Self {
        Self::InvalidSearch {
            reason: reason.into(),
        }
    }

    /// An `InvalidDocument` about an Item.
    pub fn invalid_item(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidDocument {
            kind: "item",
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An `InvalidDocument` about a Collection.
    pub fn invalid_collection(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidDocument {
            kind: "collection",
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    pub(crate) fn export(reason: impl Into<String>) -> Self {
        Self::Export {
            reason: reason.into(),
        }
    }

    pub(crate) fn embedded(reason: impl Into<String>) -> Self {
        Self::Embedded {
            reason: reason.into(),
        }
    }
}

/// The catalog's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
