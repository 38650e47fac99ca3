//! STAC item search: validated requests, the CQL2 compiler, queryables,
//! sorting, fields and keyset page tokens.

pub mod collections;
pub mod fields;
pub mod filter;
pub mod members;
pub mod page;
pub mod query;
pub mod queryables;
pub mod request;
pub mod sort;
pub mod sql;

pub use page::{Direction, PageToken};
pub use queryables::{Kind, Queryables};
pub use request::{Bbox, DEFAULT_LIMIT, Interval, MAX_LIMIT, Search, SearchBody, SearchParams};
