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
    /// Any other database failure.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.code().is_some_and(|c| c.starts_with("22"))
        {
            return Self::InvalidInput {
                reason: db.message().to_owned(),
            };
        }
        Self::Database(e)
    }
}

impl Error {
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

    pub(crate) fn embedded(reason: impl Into<String>) -> Self {
        Self::Embedded {
            reason: reason.into(),
        }
    }
}

/// The catalog's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
