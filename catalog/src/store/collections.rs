//! Collections in the store.

use super::replica::lookup;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::{Store, StoredCollection, UNIQUE_VIOLATION, is_code};
use crate::access::Visibility;
use crate::model::{CollectionId, CollectionRecord};
use crate::{Error, Result};

fn stored(row: &sqlx::postgres::PgRow) -> StoredCollection {
    StoredCollection {
        id: row.get(0),
        content: row.get(1),
        links: row.get(2),
    }
}

impl Store {
    /// The collections `visibility` sees, ordered by id.
    pub async fn list_collections(&self, visibility: &Visibility) -> Result<Vec<StoredCollection>> {
        let hidden = self.hidden_on_primary(visibility).await?;
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT id, content::text, links::text FROM collections WHERE true",
        );
        visibility.push_condition_with(&mut qb, "id", hidden.as_deref());
        qb.push(" ORDER BY id");
        let rows = qb.build().fetch_all(self.reader()).await?;
        Ok(rows.iter().map(stored).collect())
    }

    /// One collection, if `visibility` sees it.
    pub async fn get_collection(
        &self,
        id: &CollectionId,
        visibility: &Visibility,
    ) -> Result<StoredCollection> {
        let hidden = self.hidden_on_primary(visibility).await?;
        lookup!(self, |pool| {
            let mut qb = QueryBuilder::<Postgres>::new(
                "SELECT id, content::text, links::text FROM collections WHERE id = ",
            );
            qb.push_bind(id.as_str());
            visibility.push_condition_with(&mut qb, "id", hidden.as_deref());
            qb.build().fetch_optional(pool).await?.map(|r| stored(&r))
        })
        .ok_or_else(|| Error::CollectionNotFound { id: id.clone() })
    }

    /// The collection as a JSON value (for merge patches), read on the
    /// primary: what is read here is written back.
    pub async fn collection_value(&self, id: &CollectionId) -> Result<serde_json::Value> {
        let row = sqlx::query("SELECT content, links FROM collections WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::CollectionNotFound { id: id.clone() })?;
        let mut content: serde_json::Value = row.get(0);
        let links: Option<serde_json::Value> = row.get(1);
        if let (serde_json::Value::Object(map), Some(links)) = (&mut content, links) {
            map.insert("links".into(), links);
        }
        Ok(content)
    }

    /// `true` when the collection exists.
    pub async fn collection_exists(&self, id: &str) -> Result<bool> {
        let found: Option<i32> = lookup!(self, |pool| {
            sqlx::query_scalar("SELECT 1 FROM collections WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }

    /// `CollectionNotFound` unless the collection exists and `visibility`
    /// sees it.
    pub async fn require_collection(
        &self,
        id: &CollectionId,
        visibility: &Visibility,
    ) -> Result<()> {
        if self.collection_visible(id.as_str(), visibility).await? {
            Ok(())
        } else {
            Err(Error::CollectionNotFound { id: id.clone() })
        }
    }

    /// Create a collection (and its items partition); `CollectionExists` if taken.
    pub async fn create_collection(&self, record: &CollectionRecord) -> Result<()> {
        self.wrote();
        sqlx::query("INSERT INTO collections (id, content, links) VALUES ($1, $2, $3)")
            .bind(record.id.as_str())
            .bind(&record.content)
            .bind(&record.links)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_code(&e, UNIQUE_VIOLATION) {
                    Error::CollectionExists {
                        id: record.id.clone(),
                    }
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    /// Replace an existing collection; `CollectionNotFound` if it does not exist.
    pub async fn replace_collection(&self, record: &CollectionRecord) -> Result<()> {
        self.wrote();
        let done = sqlx::query(
            "UPDATE collections SET content = $2, links = $3, updated_at = now() WHERE id = $1",
        )
        .bind(record.id.as_str())
        .bind(&record.content)
        .bind(&record.links)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::CollectionNotFound {
                id: record.id.clone(),
            });
        }
        Ok(())
    }

    /// Create or replace a collection within `conn`. Returns `true` if created.
    pub async fn upsert_collection(
        conn: &mut PgConnection,
        record: &CollectionRecord,
    ) -> Result<bool> {
        let created: bool = sqlx::query_scalar(
            "INSERT INTO collections (id, content, links) VALUES ($1, $2, $3) \
             ON CONFLICT ON CONSTRAINT collections_pkey \
             DO UPDATE SET content = EXCLUDED.content, links = EXCLUDED.links, updated_at = now() \
             RETURNING (xmax = 0)",
        )
        .bind(record.id.as_str())
        .bind(&record.content)
        .bind(&record.links)
        .fetch_one(conn)
        .await?;
        Ok(created)
    }

    /// Delete a collection and all its items (its partition is dropped).
    pub async fn delete_collection(&self, id: &CollectionId) -> Result<()> {
        self.wrote();
        let done = sqlx::query("DELETE FROM collections WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::CollectionNotFound { id: id.clone() });
        }
        Ok(())
    }
}
