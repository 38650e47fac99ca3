//! Keyset page tokens: an opaque, URL-safe encoding of where a page starts.
//!
//! A token holds the sort key of the boundary item (its values under the
//! search's sort order), the item's `(collection, id)` as the tie-break, and
//! the direction to read in. No OFFSET is ever used, so page 1,000 costs what
//! page 1 costs, and items inserted while a client pages never make it skip
//! or repeat an item.
//!
//! A token also carries what the first page counted (`numberMatched` and
//! whether it is an estimate), so every page repeats it without counting
//! again, and a fingerprint of the search it belongs to, so it cannot be
//! carried over to another search (whose count it would misstate). The text
//! form ends in a checksum: a token edited by hand is refused as malformed
//! (a 400) before any of it reaches a query. Tokens are not secrets.

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
#[serde(deny_unknown_fields)]
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
    /// `numberMatched` as the first page of the search counted it.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<u64>,
    /// `true` when [`Self::matched`] is an estimate.
    #[serde(rename = "e", default, skip_serializing_if = "std::ops::Not::not")]
    pub estimate: bool,
    /// Fingerprint of the search the token belongs to.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub search: Option<u64>,
}

/// Bytes of the checksum that ends a token.
const CHECKSUM: usize = 8;

/// FNV-1a over `bytes`, from a basis that names what is hashed.
pub(crate) fn fnv1a(domain: &str, bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in domain.bytes().chain([0]).chain(bytes.iter().copied()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `true` when a string or key of `v` holds a NUL character (which
/// PostgreSQL text and jsonb cannot store).
pub(crate) fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

impl PageToken {
    /// A token at the boundary item `(collection, id)` with sort key `key`.
    pub fn new(direction: Direction, key: Vec<Value>, collection: String, id: String) -> Self {
        Self {
            direction,
            key,
            collection,
            id,
            matched: None,
            estimate: false,
            search: None,
        }
    }

    /// The opaque text form used in links.
    pub fn encode(&self) -> String {
        // Serialising a struct of strings, numbers and JSON values cannot fail.
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        let sum = fnv1a("page-token", &bytes);
        bytes.extend_from_slice(&sum.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Parse a token from a link; anything malformed or edited is a 400.
    pub fn decode(text: &str) -> Result<Self> {
        let bad = || {
            Error::invalid_search(
                "token is not a valid page token; use the links this server returned",
            )
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|_| bad())?;
        let split = bytes.len().checked_sub(CHECKSUM).ok_or_else(bad)?;
        let (payload, sum) = bytes.split_at(split);
        if sum != fnv1a("page-token", payload).to_be_bytes() {
            return Err(bad());
        }
        let token: Self = serde_json::from_slice(payload).map_err(|_| bad())?;
        if token.collection.contains('\0')
            || token.id.contains('\0')
            || token.key.iter().any(has_nul)
        {
            return Err(bad());
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let mut t = PageToken::new(
            Direction::Prev,
            vec![Value::String("2024-01-01T00:00:00Z".into())],
            "c".into(),
            "a/b ü".into(),
        );
        assert_eq!(PageToken::decode(&t.encode()).unwrap(), t);
        t.matched = Some(12_345);
        t.estimate = true;
        t.search = Some(u64::MAX);
        assert_eq!(PageToken::decode(&t.encode()).unwrap(), t);
        assert!(PageToken::decode("not a token!").is_err());
        assert!(PageToken::decode("e30").is_err());
        // Valid JSON without the checksum.
        assert!(
            PageToken::decode(&URL_SAFE_NO_PAD.encode(br#"{"d":"n","k":[],"c":"c","i":"i"}"#))
                .is_err()
        );
    }

    #[test]
    fn an_edited_token_is_refused() {
        let mut t = PageToken::new(Direction::Next, vec![], "c".into(), "i".into());
        t.matched = Some(10);
        let mut bytes = URL_SAFE_NO_PAD.decode(t.encode()).unwrap();
        // `"m":10` becomes `"m":90`.
        let at = bytes.windows(4).position(|w| w == b"\"m\":").unwrap() + 4;
        bytes[at] = b'9';
        assert!(PageToken::decode(&URL_SAFE_NO_PAD.encode(&bytes)).is_err());
        // A checksummed token with a NUL or a wrong type is refused too.
        for payload in [
            r#"{"d":"n","k":[],"c":"c\u0000","i":"i"}"#,
            r#"{"d":"n","k":[],"c":"c","i":"i","m":-1}"#,
            r#"{"d":"n","k":[],"c":"c","i":"i","x":1}"#,
        ] {
            let mut bytes = payload.as_bytes().to_vec();
            bytes.extend_from_slice(&fnv1a("page-token", payload.as_bytes()).to_be_bytes());
            assert!(
                PageToken::decode(&URL_SAFE_NO_PAD.encode(&bytes)).is_err(),
                "{payload}"
            );
        }
    }
}
