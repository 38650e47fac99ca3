//! Keyset page tokens: an opaque, URL-safe encoding of where a page starts.
//!
//! A token holds the sort key of the boundary item (its values under the
//! search's sort order), the item's `(collection, id)` as the tie-break, and
//! the direction to read in. No OFFSET is ever used, so page 1,000 costs what
//! page 1 costs, and items inserted while a client pages never make it skip
//! or repeat an item.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// Which way a page is read from its boundary item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Items after the boundary, in sort order.
    #[serde(rename = "n")]
    Next,
    /// Items before the boundary, in sort order.
    #[serde(rename = "p")]
    Prev,
}

/// The position a page starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageToken {
    /// Read direction.
    #[serde(rename = "d")]
    pub direction: Direction,
    /// Sort key values of the boundary item, one per sort field.
    #[serde(rename = "k")]
    pub key: Vec<Value>,
    /// Collection of the boundary item.
    #[serde(rename = "c")]
    pub collection: String,
    /// Id of the boundary item.
    #[serde(rename = "i")]
    pub id: String,
}

impl PageToken {
    /// The opaque text form used in links.
    pub fn encode(&self) -> String {
        // Serialising a struct of strings and JSON values cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Parse a token from a link; anything malformed is a 400.
    pub fn decode(text: &str) -> Result<Self> {
        let bad = || {
            Error::invalid_search(
                "token is not a valid page token; use the links this server returned",
            )
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = PageToken {
            direction: Direction::Prev,
            key: vec![Value::String("2024-01-01T00:00:00Z".into())],
            collection: "c".into(),
            id: "a/b ü".into(),
        };
        assert_eq!(PageToken::decode(&t.encode()).unwrap(), t);
        assert!(PageToken::decode("not a token!").is_err());
        assert!(PageToken::decode("e30").is_err());
    }
}
