//! HMAC-signed URLs to the server's streaming route, for storage that cannot
//! sign for itself (WebDAV doors, POSIX mounts) and for prefix-scoped
//! tokens (a Zarr store is many objects).
//!
//! A signature covers a version tag, the scope (one object of one source, or
//! every object of one collection), and the expiry; it is checked in
//! constant time. Several keys may be configured: the first signs, every
//! one verifies, so a key rotates without downtime (add the new key first,
//! drop the old one once the longest expiry has passed).

use ring::hmac;

/// What a signature allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// One object: a source's name and the path inside it.
    Object { source: &'a str, path: &'a str },
    /// Every object of the collection's sources (Zarr stores, partitioned
    /// datasets).
    Collection(&'a str),
}

impl Scope<'_> {
    fn message(&self, expires: i64) -> String {
        // Fields are separated by a newline, which no field may hold.
        match self {
            Self::Object { source, path } => {
                format!("arcolake-1\nobject\n{source}\n{path}\n{expires}")
            }
            Self::Collection(c) => format!("arcolake-1\ncollection\n{c}\n{expires}"),
        }
    }
}

/// A signature: which key made it, and its value (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The key id.
    pub kid: String,
    /// HMAC-SHA256, lower-case hex.
    pub sig: String,
}

/// Why a signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Past its expiry.
    Expired,
    /// No configured key has this id.
    UnknownKey,
    /// The value does not match the scope and expiry.
    Invalid,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Expired => "the signature has expired; sign the href again",
            Self::UnknownKey => {
                "the signature was made with a key this server no longer has; sign the href again"
            }
            Self::Invalid => "the signature does not match this path and expiry",
        })
    }
}

struct Key {
    id: String,
    key: hmac::Key,
}

/// The server's URL-signing keys.
pub struct UrlSigner {
    keys: Vec<Key>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("UrlSigner").field("key_ids", &ids).finish()
    }
}

impl UrlSigner {
    /// Keys from `id:secret` pairs, comma-separated; the first signs.
    /// Secrets must have at least 32 characters.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, secret) = part
                .split_once(':')
                .ok_or("each signing key is `id:secret`")?;
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "signing key id {id:?}: use letters, digits, `-` and `_`"
                ));
            }
            if secret.len() < 32 {
                return Err(format!(
                    "signing key {id}: the secret needs at least 32 characters"
                ));
            }
            keys.push(Key {
                id: id.to_owned(),
                key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            });
        }
        if keys.is_empty() {
            return Err("no signing keys given".into());
        }
        Ok(Self { keys })
    }

    /// A random key of this process alone: signatures die with it and are
    /// not accepted by other processes of a deployment.
    ///
    /// # Panics
    ///
    /// When the operating system's random source fails.
    pub fn ephemeral() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let key =
            hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system random source works");
        Self {
            keys: vec![Key {
                id: "local".into(),
                key,
            }],
        }
    }

    /// Sign `scope` until `expires` (Unix seconds).
    pub fn sign(&self, scope: &Scope<'_>, expires: i64) -> Signature {
        let k = &self.keys[0];
        let tag = hmac::sign(&k.key, scope.message(expires).as_bytes());
        Signature {
            kid: k.id.clone(),
            sig: hex(tag.as_ref()),
        }
    }

    /// Check a signature of `scope` until `expires` at `now` (Unix seconds).
    pub fn verify(
        &self,
        scope: &Scope<'_>,
        expires: i64,
        signature: &Signature,
        now: i64,
    ) -> Result<(), Refusal> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == signature.kid)
            .ok_or(Refusal::UnknownKey)?;
        let raw = unhex(&signature.sig).ok_or(Refusal::Invalid)?;
        hmac::verify(&key.key, scope.message(expires).as_bytes(), &raw)
            .map_err(|_| Refusal::Invalid)?;
        // Checked after the signature, so an expired forgery is "invalid".
        if expires < now {
            return Err(Refusal::Expired);
        }
        Ok(())
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a:0123456789abcdef0123456789abcdef";
    const B: &str = "b:fedcba9876543210fedcba9876543210";

    #[test]
    fn a_signature_holds_only_for_its_scope_and_expiry() {
        let signer = UrlSigner::parse(A).unwrap();
        let scope = Scope::Object {
            source: "s",
            path: "a/b.tif",
        };
        let sig = signer.sign(&scope, 2000);
        assert_eq!(signer.verify(&scope, 2000, &sig, 1000), Ok(()));
        assert_eq!(
            signer.verify(&scope, 2000, &sig, 2001),
            Err(Refusal::Expired)
        );
        assert_eq!(
            signer.verify(&scope, 2001, &sig, 1000),
            Err(Refusal::Invalid)
        );
        let other = Scope::Object {
            source: "s",
            path: "a/c.tif",
        };
        assert_eq!(
            signer.verify(&other, 2000, &sig, 1000),
            Err(Refusal::Invalid)
        );
        let wider = Scope::Collection("s");
        assert_eq!(
            signer.verify(&wider, 2000, &sig, 1000),
            Err(Refusal::Invalid)
        );
        let moved = Scope::Object {
            source: "t",
            path: "a/b.tif",
        };
        assert_eq!(
            signer.verify(&moved, 2000, &sig, 1000),
            Err(Refusal::Invalid)
        );
    }

    #[test]
    fn keys_rotate_without_downtime() {
        let old = UrlSigner::parse(A).unwrap();
        let both = UrlSigner::parse(&format!("{B},{A}")).unwrap();
        let scope = Scope::Collection("c");
        let by_old = old.sign(&scope, 50);
        assert_eq!(both.verify(&scope, 50, &by_old, 10), Ok(()));
        let by_new = both.sign(&scope, 50);
        assert_eq!(by_new.kid, "b");
        assert_eq!(
            old.verify(&scope, 50, &by_new, 10),
            Err(Refusal::UnknownKey)
        );
    }

    #[test]
    fn bad_key_specs_are_refused() {
        assert!(UrlSigner::parse("").is_err());
        assert!(UrlSigner::parse("nocolon").is_err());
        assert!(UrlSigner::parse("a:short").is_err());
        assert!(UrlSigner::parse("a b:0123456789abcdef0123456789abcdef").is_err());
        let tampered = Signature {
            kid: "a".into(),
            sig: "zz".into(),
        };
        let signer = UrlSigner::parse(A).unwrap();
        assert_eq!(
            signer.verify(&Scope::Collection("c"), 9, &tampered, 1),
            Err(Refusal::Invalid)
        );
    }
}
