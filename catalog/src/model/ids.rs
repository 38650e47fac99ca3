//! Validated identifiers of collections and items.

use std::fmt;

use serde::{Deserialize, Serialize};

const MAX_ID_LEN: usize = 1024;

fn check_id(kind: &'static str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{kind} id must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!("{kind} id is longer than {MAX_ID_LEN} bytes"));
    }
    if id.chars().any(char::is_control) {
        return Err(format!("{kind} id must not contain control characters"));
    }
    Ok(())
}

macro_rules! id_type {
    ($name:ident, $kind:literal) => {
        #[doc = concat!("The id of a ", $kind, ": non-empty, at most 1024 bytes, no control characters.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Validates a ", $kind, " id.")]
            pub fn new(id: impl Into<String>) -> Result<Self, String> {
                let id = id.into();
                check_id($kind, &id)?;
                Ok(Self(id))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(id: String) -> Result<Self, String> {
                Self::new(id)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(CollectionId, "collection");
id_type!(ItemId, "item");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_and_control_characters() {
        assert!(CollectionId::new("").is_err());
        assert!(ItemId::new("a\nb").is_err());
        assert!(ItemId::new("x".repeat(2000)).is_err());
        assert_eq!(
            ItemId::new("S2A_T31UFU").map(String::from),
            Ok("S2A_T31UFU".to_owned())
        );
    }
}
