//! STAC item search: validated requests and keyset page tokens.

pub mod page;
pub mod request;

pub use page::{Direction, PageToken};
pub use request::{Bbox, DEFAULT_LIMIT, Interval, MAX_LIMIT, Search, SearchBody, SearchParams};
