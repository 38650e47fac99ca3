//! Schema migrations: the SQL files in `migrations/`, embedded at build time.

use sqlx::PgPool;
use tracing::info;

use crate::{Error, Result};

/// The embedded migrations, for callers that need their checksums.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Make sure PostGIS is installed in the database, creating the extension
/// when this role may. A missing extension names the packages to install.
pub async fn ensure_postgis(pool: &PgPool) -> Result<()> {
    let installed: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis')")
            .fetch_one(pool)
            .await?;
    if installed {
        return Ok(());
    }
    match sqlx::query("CREATE EXTENSION IF NOT EXISTS postgis")
        .execute(pool)
        .await
    {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) => Err(Error::Embedded {
            reason: format!(
                "the PostGIS extension is not available in this database ({}); {}",
                e.message(),
                crate::embedded::postgis_hint()
            ),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Create PostGIS if needed and apply every pending migration.
pub async fn run(pool: &PgPool) -> Result<()> {
    ensure_postgis(pool).await?;
    MIGRATOR.run(pool).await?;
    info!(
        migrations = MIGRATOR.iter().count(),
        "catalog schema is up to date"
    );
    Ok(())
}
