//! Who may see what: collection visibility and the service's API keys.
//!
//! A collection is public unless its document says
//! `"arcolake:access": "restricted"`. A [`Visibility`] names the restricted
//! collections a caller was granted; every read of the store takes one, and
//! a restricted collection outside it does not exist for that caller: it is
//! not listed, not searched, not counted.
//!
//! API keys are `alk_<id>_<secret>`: the id is public (listed, revoked by),
//! the secret is stored only as its SHA-256 and compared in constant time.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::{Error, Result, Store};

/// The restricted collections a caller may see, besides every public one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Visibility {
    all: bool,
    granted: Vec<String>,
}

impl Visibility {
    /// Public collections only: a caller without credentials.
    pub fn public() -> Self {
        Self::default()
    }

    /// Every collection: the operator.
    pub fn all() -> Self {
        Self {
            all: true,
            granted: Vec::new(),
        }
    }

    /// Public collections and these restricted ones.
    pub fn granted(collections: impl IntoIterator<Item = String>) -> Self {
        let mut granted: Vec<String> = collections.into_iter().collect();
        granted.sort_unstable();
        granted.dedup();
        Self {
            all: false,
            granted,
        }
    }

    /// `true` for the operator's visibility.
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// The restricted collections granted.
    pub fn grants(&self) -> &[String] {
        &self.granted
    }

    /// Whether a collection with this restriction flag is visible.
    pub fn sees(&self, id: &str, restricted: bool) -> bool {
        self.all || !restricted || self.granted.iter().any(|g| g == id)
    }

    /// ` AND <column> is a visible collection` (nothing for the operator).
    /// With `hidden` (the restricted collections this visibility does not
    /// see, read on the primary), the condition names them; without it, the
    /// query reads the restriction flags itself.
    pub(crate) fn push_condition_with(
        &self,
        qb: &mut QueryBuilder<'_, Postgres>,
        column: &str,
        hidden: Option<&[String]>,
    ) {
        match hidden {
            Some(h) if !self.all => {
                qb.push(format!(" AND {column} <> ALL("))
                    .push_bind(h.to_vec())
                    .push(")");
            }
            _ => self.push_condition(qb, column),
        }
    }

    /// ` AND <column> is a visible collection` (nothing for the operator).
    pub(crate) fn push_condition(&self, qb: &mut QueryBuilder<'_, Postgres>, column: &str) {
        if self.all {
            return;
        }
        qb.push(format!(
            " AND {column} NOT IN (SELECT id FROM collections WHERE restricted AND id <> ALL("
        ))
        .push_bind(self.granted.clone())
        .push("))");
    }
}

/// An API key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The public id.
    pub id: String,
    /// The operator's name for it.
    pub name: Option<String>,
    /// The collections it grants.
    pub collections: Vec<String>,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked: Option<DateTime<Utc>>,
}

/// The prefix of every API key.
pub const KEY_PREFIX: &str = "alk_";

/// Split a presented key into its id and secret; `None` for text that is
/// not an API key of ours.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 12 && !secret.is_empty()).then_some((id, secret))
}

fn random_hex(n: usize) -> String {
    let mut out = String::new();
    while out.len() < n {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(n);
    out
}

impl Store {
    /// Create a key granting `collections`; returns it whole, the only time
    /// its secret is seen. Every collection must exist.
    pub async fn create_api_key(
        &self,
        name: Option<&str>,
        collections: &[String],
        expires: Option<DateTime<Utc>>,
    ) -> Result<(ApiKey, String)> {
        self.wrote();
        if collections.is_empty() {
            return Err(Error::invalid_input(
                "a key must grant at least one collection",
            ));
        }
        for c in collections {
            if !self.collection_exists(c).await? {
                return Err(Error::invalid_input(format!("no collection {c:?}")));
            }
        }
        let id = random_hex(12);
        // Two v4 UUIDs: 244 random bits.
        let secret = random_hex(64);
        let row = sqlx::query(
            "INSERT INTO api_keys (id, name, secret_hash, collections, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING created_at",
        )
        .bind(&id)
        .bind(name)
        .bind(Sha256::digest(secret.as_bytes()).to_vec())
        .bind(collections)
        .bind(expires)
        .fetch_one(self.pool())
        .await?;
        let key = ApiKey {
            id: id.clone(),
            name: name.map(str::to_owned),
            collections: collections.to_vec(),
            created: row.get(0),
            expires,
            revoked: None,
        };
        Ok((key, format!("{KEY_PREFIX}{id}_{secret}")))
    }

    /// Every key, newest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(
            "SELECT id, name, collections, created_at, expires_at, revoked_at \
             FROM api_keys ORDER BY created_at DESC, id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| ApiKey {
                id: r.get(0),
                name: r.get(1),
                collections: r.get(2),
                created: r.get(3),
                expires: r.get(4),
                revoked: r.get(5),
            })
            .collect())
    }

    /// Revoke a key by its id (or the whole key); `false` when no such key
    /// is active.
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        self.wrote();
        let id = split_key(id).map_or(id, |(id, _)| id);
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The collections a presented key grants; `None` when it is not a
    /// valid, unrevoked, unexpired key. Read on every request, so a revoked
    /// key stops working at once.
    pub async fn api_key_grants(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some((id, secret)) = split_key(key) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT secret_hash, collections FROM api_keys \
             WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: Vec<u8> = row.get(0);
        let presented = Sha256::digest(secret.as_bytes());
        // Constant time: every byte is compared whatever the first mismatch.
        let same = stored.len() == presented.len()
            && stored
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        Ok(same.then(|| row.get(1)))
    }

    /// The restricted collections `visibility` does not see: read on every
    /// call (never cached), so a collection restricted a moment ago, by
    /// this process or another, is hidden at once. Empty for the operator,
    /// and cheap when nothing is restricted (a partial index).
    pub async fn hidden_collections(&self, visibility: &Visibility) -> Result<Vec<String>> {
        if visibility.is_all() {
            return Ok(Vec::new());
        }
        let restricted: Vec<String> =
            sqlx::query_scalar("SELECT id FROM collections WHERE restricted")
                .fetch_all(self.pool())
                .await?;
        Ok(restricted
            .into_iter()
            .filter(|c| !visibility.sees(c, true))
            .collect())
    }

    /// Whether collection `id` is restricted; `None` when it does not exist.
    pub async fn collection_restricted(&self, id: &str) -> Result<Option<bool>> {
        Ok(
            sqlx::query_scalar("SELECT restricted FROM collections WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Whether `id` exists and `visibility` sees it.
    pub async fn collection_visible(&self, id: &str, visibility: &Visibility) -> Result<bool> {
        let restricted = self.collection_restricted(id).await?;
        Ok(restricted.is_some_and(|r| visibility.sees(id, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_id_and_secret() {
        assert_eq!(
            split_key("alk_0123456789ab_s3cr3t"),
            Some(("0123456789ab", "s3cr3t"))
        );
        assert_eq!(split_key("alk_short_s"), None);
        assert_eq!(split_key("Bearer x"), None);
        assert_eq!(split_key("alk_0123456789ab_"), None);
    }

    #[test]
    fn visibility_sees_public_and_granted() {
        let v = Visibility::granted(["b".to_owned(), "a".to_owned(), "a".to_owned()]);
        assert_eq!(v.grants(), ["a", "b"]);
        assert!(v.sees("x", false));
        assert!(v.sees("a", true));
        assert!(!v.sees("x", true));
        assert!(Visibility::all().sees("x", true));
        assert!(!Visibility::public().sees("a", true));
    }
}
