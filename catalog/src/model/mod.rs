//! STAC domain types as the catalog validates and stores them.

mod collection;
pub mod geometry;
mod ids;
mod item;

pub use collection::CollectionRecord;
pub use ids::{CollectionId, ItemId};
pub use item::{ItemRecord, merge_patch};
pub(crate) use item::{find_nul, json_text, keep_foreign_links};
