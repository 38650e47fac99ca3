//! The arcolake catalog: STAC domain types, the PostGIS store, search, and
//! the database it lives in.
//!
//! It owns validation of Items and Collections ([`model`]), the search
//! request and its keyset pages ([`search`]), the store ([`store::Store`]),
//! link building ([`links`]), response documents spliced from stored JSON
//! ([`document`]), the embedded PostgreSQL cluster ([`embedded`]) and
//! migrations ([`migrate`]). It knows nothing of HTTP or object storage.
//!
//! Entry points: [`db::Database::open`] with a [`db::DbConfig`], then
//! [`store::Store::new`] over its pool.

pub mod access;
pub mod db;
pub mod document;
pub mod embedded;
mod error;
pub mod export;
pub mod links;
pub mod load;
pub mod migrate;
pub mod model;
pub mod search;
pub mod store;

pub use db::{Database, DbConfig};
pub use error::{Error, Result};
pub use model::{CollectionId, CollectionRecord, ItemId, ItemRecord};
pub use store::Store;
