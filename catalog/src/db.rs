//! Opening the catalog database: a `DATABASE_URL`, or the embedded cluster.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tracing::info;

use crate::embedded::Cluster;
use crate::{Result, migrate};

/// Where the catalog lives and how to reach it.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// A PostgreSQL URL; `None` means the embedded cluster in `data_dir`.
    pub database_url: Option<String>,
    /// arcolake's data directory (the embedded cluster lives in it).
    pub data_dir: PathBuf,
    /// Upper bound on pooled connections.
    pub max_connections: u32,
    /// Apply pending migrations when opening.
    pub migrate: bool,
    /// Cancel any statement running longer than this (server side, so an
    /// abandoned request's query stops too). `None`: no limit.
    pub statement_timeout: Option<Duration>,
}

/// An open catalog database: the pool, and the embedded cluster lease if any.
#[derive(Debug)]
pub struct Database {
    /// The connection pool.
    pub pool: PgPool,
    cluster: Option<Cluster>,
}

impl Database {
    /// Connect (starting the embedded cluster when no URL is given) and,
    /// if configured, migrate.
    pub async fn open(config: &DbConfig) -> Result<Self> {
        let (options, cluster) = match &config.database_url {
            Some(url) => (PgConnectOptions::from_str(url)?, None),
            None => {
                let cluster = Cluster::start(&config.data_dir).await?;
                info!(url = %cluster.url(), "using the embedded PostgreSQL cluster");
                (cluster.connect_options(), Some(cluster))
            }
        };
        let pool = pool_options(config)
            .min_connections(1)
            .connect_with(session(options, config))
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            Err(e) => {
                if let Some(cluster) = cluster {
                    let _ = cluster.release();
                }
                return Err(e.into());
            }
        };
        let db = Self { pool, cluster };
        if config.migrate {
            migrate::run(&db.pool).await?;
        }
        Ok(db)
    }

    /// A pool on a read replica of the catalog at `url`, with the same
    /// settings; no migrations (a standby takes them from its primary).
    /// It connects when first used, so a replica that is down when the
    /// server starts is used once it answers.
    pub fn open_replica(url: &str, config: &DbConfig) -> Result<PgPool> {
        Ok(pool_options(config)
            .connect_lazy_with(session(PgConnectOptions::from_str(url)?, config)))
    }

    /// A libpq URL of the embedded cluster, when one is used.
    pub fn embedded_url(&self) -> Option<String> {
        self.cluster.as_ref().map(Cluster::url)
    }

    /// Close the pool and release the embedded cluster (stopping it when
    /// this process started it and nobody else uses it).
    pub async fn close(self) -> Result<()> {
        self.pool.close().await;
        if let Some(cluster) = self.cluster {
            tokio::task::spawn_blocking(move || cluster.release())
                .await
                .map_err(|e| crate::Error::embedded(format!("release task failed: {e}")))??;
        }
        Ok(())
    }
}

/// Every arcolake connection's session settings.
fn session(options: PgConnectOptions, config: &DbConfig) -> PgConnectOptions {
    // Requests are many and short: parallel workers for one query only
    // steal the cores other requests need.
    // A first page whose plan sorts every match also counts them in a
    // window, which holds those rows: 16 MB keeps a few thousand items
    // in memory instead of a temporary file.
    let mut settings = vec![
        ("max_parallel_workers_per_gather", "0".to_owned()),
        ("timezone", "UTC".to_owned()),
        ("work_mem", "16MB".to_owned()),
    ];
    if let Some(t) = config.statement_timeout {
        settings.push(("statement_timeout", format!("{}ms", t.as_millis().max(1))));
    }
    options.application_name("arcolake").options(settings)
}

/// The pool's limits.
fn pool_options(config: &DbConfig) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(10))
}
