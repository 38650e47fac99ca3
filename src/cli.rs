//! Command-line types and one dispatch function per subcommand.
//!
//! Every flag has an environment fallback; secrets (the admin token, the
//! database password inside `DATABASE_URL`) come from the environment only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use catalog::{Database, DbConfig, Store};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing::info;
use url::Url;

/// arcolake: a STAC catalog and ARCO data-lake service.
#[derive(Debug, Parser)]
#[command(name = "arcolake", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the STAC API.
    Serve(ServeArgs),
    /// Crawl storage (S3, dCache/EOS/WebDAV over HTTP, local) and register its files as STAC Items.
    Crawl(CrawlArgs),
    /// Bulk-load Collections and Items from JSON, NDJSON, ItemCollections or static catalogs.
    Load(LoadArgs),
    /// Export collections as stac-geoparquet and as a static STAC catalog.
    Export(ExportArgs),
    /// Apply pending schema migrations and exit.
    Migrate(DbOnlyArgs),
    /// Manage the embedded PostgreSQL cluster.
    Db(DbArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Load the demo catalog from fixtures/ and serve it.
    Demo(DemoArgs),
    /// Manage API keys that grant restricted collections.
    Keys(KeysArgs),
    /// Publish an item's GeoParquet or FlatGeobuf asset as a vector tile
    /// layer (imported into the catalog; publishing again replaces it).
    Publish(PublishArgs),
}

#[derive(Debug, Clone, Args)]
struct PublishArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Sources file (TOML, the one `crawl --config` reads): where the file
    /// lives and how to reach it.
    #[arg(long = "config", env = "ARCOLAKE_SOURCES")]
    sources: PathBuf,
    /// Import even when the file has not changed since it was last
    /// published.
    #[arg(long)]
    force: bool,
    /// Collection of the item.
    collection: String,
    /// The item.
    item: String,
    /// The asset key.
    asset: String,
}

#[derive(Debug, Clone, Args)]
struct KeysArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(Debug, Clone, Subcommand)]
enum KeysAction {
    /// Make a key; it is printed once, as the last line of the output.
    Create {
        /// A restricted collection the key grants (repeatable).
        #[arg(long = "collection", required = true)]
        collections: Vec<String>,
        /// A name to recognise the key by in `keys list`.
        #[arg(long)]
        name: Option<String>,
        /// How long the key works: `90d`, `12h`, `30m`, `3600s` (default: until revoked).
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by its id; it stops working at once.
    Revoke {
        /// The key's id (as `keys list` shows it) or the whole key.
        key_id: String,
    },
}

/// A duration such as `90d`, `12h`, `30m`, `45s` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90d, 12h, 30m or 45s"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        other => {
            return Err(format!(
                "unknown duration unit {other:?}: use s, m, h, d or w"
            ));
        }
    };
    if n == 0 {
        return Err("a duration must be longer than zero".into());
    }
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

/// Where the catalog lives.
#[derive(Debug, Clone, Args)]
struct DatabaseArgs {
    /// PostgreSQL URL; without it, an embedded cluster in the data directory is used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    /// arcolake's data directory (holds the embedded cluster).
    #[arg(long, env = "ARCOLAKE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Most database connections this process opens.
    #[arg(long, env = "ARCOLAKE_MAX_CONNECTIONS", default_value_t = 32)]
    max_connections: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
enum LogFormatArg {
    #[default]
    Pretty,
    Json,
}

#[derive(Debug, Clone, Args)]
struct LogArgs {
    /// Log line format.
    #[arg(long, env = "ARCOLAKE_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Pretty, global = true)]
    log_format: LogFormatArg,
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, env = "ARCOLAKE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Public root URL used in links (default: the request's Host).
    #[arg(long, env = "ARCOLAKE_PUBLIC_URL")]
    public_url: Option<Url>,
    /// A streaming replica of the catalog (PostgreSQL URL): reads go to it
    /// whenever it has replayed the writes they must see, writes to the
    /// primary. A client reads its own writes through the same process, or
    /// through any process when it sends back the `Arcolake-Read-After`
    /// header its write's response carried.
    #[arg(long, env = "ARCOLAKE_READ_DATABASE_URL", hide_env_values = true)]
    read_database_url: Option<String>,
    /// Trust `Forwarded` / `X-Forwarded-*` headers from a reverse proxy.
    #[arg(long, env = "ARCOLAKE_TRUST_PROXY")]
    trust_proxy: bool,
    /// Longest a request may take, in seconds.
    #[arg(long, env = "ARCOLAKE_REQUEST_TIMEOUT", default_value_t = 30)]
    request_timeout: u64,
    /// Largest request body accepted, in MiB.
    #[arg(long, env = "ARCOLAKE_BODY_LIMIT_MB", default_value_t = 64)]
    body_limit_mb: usize,
    /// Most requests handled at once; more wait (up to 10 s), then get 503.
    #[arg(long, env = "ARCOLAKE_MAX_IN_FLIGHT", default_value_t = 512)]
    max_in_flight: usize,
    /// MiB of request bodies all requests in flight may hold together; a
    /// body is charged its Content-Length (the whole body limit when unknown).
    #[arg(long, env = "ARCOLAKE_BODY_MEMORY_MB", default_value_t = 1024)]
    body_memory_mb: usize,
    /// `numberMatched` is exact up to this many matches, estimated above.
    #[arg(long, env = "ARCOLAKE_COUNT_LIMIT", default_value_t = 10_000)]
    count_limit: u64,
    /// Longest an exact count may run, in milliseconds; past it (or above
    /// the count limit) `numberMatched` is the planner's estimate, flagged.
    #[arg(long, env = "ARCOLAKE_COUNT_TIMEOUT_MS", default_value_t = 50)]
    count_timeout_ms: u64,
    /// Queryables overrides: a JSON file keyed by collection id (or `*` for
    /// all), each an object of property → JSON Schema.
    #[arg(long, env = "ARCOLAKE_QUERYABLES")]
    queryables: Option<PathBuf>,
    /// Sources file (TOML, the one `crawl --config` reads): where assets
    /// live, and how to reach, sign and stream them.
    #[arg(long = "config", env = "ARCOLAKE_SOURCES")]
    sources: Option<PathBuf>,
    /// Keys of signed asset URLs, `id:secret` pairs (secrets of 32+
    /// characters), comma-separated; the first signs, all verify (rotation).
    /// Without it each process has a random key of its own.
    #[arg(long, env = "ARCOLAKE_SIGNING_KEYS", hide_env_values = true)]
    signing_keys: Option<String>,
    /// Validity of a signature when the client asks for none, in seconds.
    #[arg(long, env = "ARCOLAKE_SIGN_EXPIRY", default_value_t = 3600)]
    sign_expiry: u64,
    /// Longest validity a client may ask for, in seconds.
    #[arg(long, env = "ARCOLAKE_SIGN_EXPIRY_MAX", default_value_t = 43_200)]
    sign_expiry_max: u64,
    /// Signing requests a second per caller (bursts of --sign-burst).
    #[arg(long, env = "ARCOLAKE_SIGN_RATE", default_value_t = 20.0)]
    sign_rate: f64,
    /// Signing requests a caller may make at once above the rate.
    #[arg(long, env = "ARCOLAKE_SIGN_BURST", default_value_t = 100.0)]
    sign_burst: f64,
    /// Streaming requests a second per caller (bursts of --stream-burst).
    #[arg(long, env = "ARCOLAKE_STREAM_RATE", default_value_t = 500.0)]
    stream_rate: f64,
    /// Streaming requests a caller may make at once above the rate.
    #[arg(long, env = "ARCOLAKE_STREAM_BURST", default_value_t = 2000.0)]
    stream_burst: f64,
    /// Most asset streams in flight; more get 503.
    #[arg(long, env = "ARCOLAKE_MAX_STREAMS", default_value_t = 256)]
    max_streams: usize,
    /// Item properties each footprint tile feature carries besides `id`,
    /// `collection` and `datetime`, comma-separated (numbers, strings and
    /// booleans; an empty value: none).
    #[arg(
        long,
        env = "ARCOLAKE_TILE_PROPERTIES",
        value_delimiter = ',',
        default_value = "eo:cloud_cover,platform,gsd"
    )]
    tile_properties: Vec<String>,
    /// Seconds a tile asked for without the current change stamp may be
    /// cached (with it: a year, immutable).
    #[arg(long, env = "ARCOLAKE_TILE_MAX_AGE", default_value_t = 5)]
    tile_max_age: u32,
    /// MiB of compressed tiles kept in memory (0: none).
    #[arg(long, env = "ARCOLAKE_TILE_CACHE_MB", default_value_t = 256)]
    tile_cache_mb: usize,
    /// An external basemap for the browse page: an XYZ template of raster
    /// tiles (`https://…/{z}/{x}/{y}.png`). Without it the page shows the
    /// world map it embeds, which needs no internet.
    #[arg(long, env = "ARCOLAKE_BASEMAP")]
    basemap: Option<String>,
    /// Attribution of the external basemap, shown on the map.
    #[arg(long, env = "ARCOLAKE_BASEMAP_ATTRIBUTION", default_value = "")]
    basemap_attribution: String,
    #[command(flatten)]
    jwt: JwtArgs,
    /// Print the resolved settings (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
}

/// JWTs of the platform's identity provider.
#[derive(Debug, Clone, Args)]
struct JwtArgs {
    /// JWKS file of the identity provider (RS256/ES256 tokens).
    #[arg(long, env = "ARCOLAKE_JWKS_FILE")]
    jwks_file: Option<PathBuf>,
    /// JWKS URL of the identity provider (fetched at start, again when a
    /// token names an unknown key).
    #[arg(long, env = "ARCOLAKE_JWKS_URL")]
    jwks_url: Option<Url>,
    /// Secret of HS256 tokens.
    #[arg(long, env = "ARCOLAKE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Required `iss` of tokens.
    #[arg(long, env = "ARCOLAKE_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Required `aud` of tokens.
    #[arg(long, env = "ARCOLAKE_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// The claim (a dotted path, e.g. `realm_access.roles`) listing the
    /// collections a token grants, or its roles when --jwt-roles is given.
    #[arg(long, env = "ARCOLAKE_JWT_CLAIM", default_value = "collections")]
    jwt_claim: String,
    /// JSON file mapping role names to collection ids: `{"eo-team": ["s2-l2a"]}`.
    #[arg(long, env = "ARCOLAKE_JWT_ROLES")]
    jwt_roles: Option<PathBuf>,
}

impl JwtArgs {
    async fn verifier(&self) -> anyhow::Result<Option<api::auth::jwt::JwtVerifier>> {
        let roles = match &self.jwt_roles {
            None => std::collections::BTreeMap::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the JWT roles file {}", path.display())
                })?;
                serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{}: must map role names to lists of collection ids",
                        path.display()
                    )
                })?
            }
        };
        let config = api::auth::jwt::JwtConfig {
            jwks_file: self.jwks_file.clone(),
            jwks_url: self.jwks_url.clone(),
            hs256_secret: self.jwt_secret.clone().filter(|s| !s.is_empty()),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            claim: self.jwt_claim.clone(),
            roles,
            ..api::auth::jwt::JwtConfig::default()
        };
        if !config.enabled() {
            return Ok(None);
        }
        storage::init_tls();
        let http = reqwest_client()?;
        Ok(Some(
            api::auth::jwt::JwtVerifier::new(config, http)
                .await
                .context("cannot set up JWT verification")?,
        ))
    }
}

#[derive(Debug, Clone, Args)]
#[expect(clippy::struct_excessive_bools, reason = "command-line switches")]
struct CrawlArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Storage to crawl: `s3://bucket/prefix`, `http(s)://door/path`, `file:///path` or a path.
    #[arg(required_unless_present_any = ["config", "finalize"], conflicts_with = "config")]
    url: Option<String>,
    /// Collection to register items in (created when missing).
    #[arg(long, required_unless_present = "config")]
    collection: Option<String>,
    /// Crawl only shard K of N (K from 0 to N-1): the files of the items
    /// whose id hashes to K. Shards run at once, on any machines, in any
    /// order, and together give the catalog one crawl gives. `auto` reads
    /// the shard from a SLURM job array, a Kubernetes indexed Job or
    /// `ARCOLAKE_SHARD_INDEX` with `ARCOLAKE_SHARD_COUNT`.
    #[arg(long, env = "ARCOLAKE_SHARD", value_name = "K/N|auto")]
    shard: Option<String>,
    /// With `--shard`: shards own the directories D levels below the
    /// source's root instead of items, so each shard lists only the levels
    /// above D and its own directories' trees, not the whole source. A
    /// grouping template's group must then lie within one such directory.
    /// Every shard of a round must use the same depth. Without `--shard`
    /// it has no effect.
    #[arg(
        long,
        env = "ARCOLAKE_SHARD_DEPTH",
        value_name = "D",
        default_value_t = 0
    )]
    shard_depth: u32,
    /// Do not crawl: work out the collections' extents (and publish their
    /// layers) after the shards of a sharded crawl. The last shard of a
    /// round to complete does this too.
    #[arg(long, conflicts_with_all = ["dry_run", "include", "exclude", "force"])]
    finalize: bool,
    /// Only paths matching this glob (repeatable).
    #[arg(long)]
    include: Vec<String>,
    /// Leave out paths matching this glob (repeatable).
    #[arg(long)]
    exclude: Vec<String>,
    /// Concurrent header reads.
    #[arg(long, env = "ARCOLAKE_CRAWL_CONCURRENCY", default_value_t = 16)]
    concurrency: usize,
    /// List and read, but write nothing to the catalog.
    #[arg(long)]
    dry_run: bool,
    /// Write the full JSON report (every error with href and reason) here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Sources file (TOML) describing the platform's sources.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Crawl only this source of the sources file.
    #[arg(long, requires = "config")]
    source: Option<String>,
    /// What happens to items whose files are gone: remove or mark.
    #[arg(long, default_value = "remove")]
    on_missing: ingest::config::OnMissing,
    /// Exit with status 3 when any file failed.
    #[arg(long)]
    fail_on_error: bool,
    /// Force an HTTP source behaviour: webdav, dcache or xrdhttp.
    #[arg(long)]
    kind: Option<String>,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    no_progress: bool,
    /// Read every file again, changed or not (after upgrading arcolake).
    #[arg(long)]
    force: bool,
    /// Remove the items of vanished files even when the listing is empty or
    /// lost more than --max-removal-share of the known files (refused by
    /// default: an unmounted mount point lists as an empty directory).
    #[arg(long)]
    allow_mass_removal: bool,
    /// Local sources: follow symbolic links that lead out of the crawled
    /// directory (by default they are reported and skipped).
    #[arg(long)]
    follow_links_outside: bool,
    /// Largest share (0-1) of known files one complete crawl may remove.
    #[arg(long, env = "ARCOLAKE_MAX_REMOVAL_SHARE", default_value_t = 0.5, value_parser = parse_share)]
    max_removal_share: f64,
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number between 0 and 1")),
    }
}

#[derive(Debug, Clone, Args)]
struct LoadArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Files or directories: JSON, GeoJSON, NDJSON, ItemCollections, static
    /// catalogs. Every such file under a directory is loaded, and the
    /// `child` and `item` links of Collections and Catalogs are followed;
    /// Collections are written before any Item.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Most items written per transaction. A batch the database refuses is
    /// rolled back and written again in parts, so only the refused items are
    /// left out.
    #[arg(long, env = "ARCOLAKE_LOAD_BATCH", default_value = "2000")]
    batch_size: std::num::NonZeroUsize,
    /// Collection of the items that name none (ItemCollections and NDJSON
    /// written without a `collection` field). It must exist or be among the
    /// documents loaded. An item that names, or is linked from, another
    /// collection is not loaded and is reported as failed.
    #[arg(long, env = "ARCOLAKE_LOAD_COLLECTION", value_name = "ID")]
    collection: Option<String>,
    /// Follow `child` and `item` links (and symbolic links in directories)
    /// that lead outside the directory of the path given; without it, each
    /// such link is reported as failed.
    #[arg(long, env = "ARCOLAKE_LOAD_FOLLOW_OUTSIDE")]
    follow_outside: bool,
    /// Write every item through its collection's live, indexed partition.
    /// Without it, items of a collection whose partition is empty go to a
    /// staging table by COPY and are swapped in, indexed, at the end.
    #[arg(long)]
    no_staging: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ExportFormat {
    /// stac-geoparquet files under OUT/geoparquet/<collection>/.
    Geoparquet,
    /// A static catalog: OUT/catalog.json, OUT/<collection>/collection.json, items beside.
    Static,
}

#[derive(Debug, Clone, Args)]
struct ExportArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Directory to write into (created when missing; an earlier export's
    /// files are replaced).
    out: PathBuf,
    /// What to write (repeatable, or comma-separated): geoparquet, static.
    #[arg(long, value_delimiter = ',', default_values = ["geoparquet", "static"])]
    format: Vec<ExportFormat>,
    /// Only this collection (repeatable); default: every public collection.
    #[arg(long)]
    collection: Vec<String>,
    /// Export restricted collections too (an export is for publishing, so
    /// they are left out by default).
    #[arg(long)]
    include_restricted: bool,
    /// Items read and written per page (and per Arrow record batch).
    /// Larger pages hold more in memory at once and are no faster.
    #[arg(long, default_value_t = 2_000)]
    page: usize,
    /// The static catalog's id.
    #[arg(long, default_value = "arcolake")]
    catalog_id: String,
    /// The static catalog's description.
    #[arg(long, default_value = "A catalog exported by arcolake")]
    catalog_description: String,
    /// Jobs at once, each with its own reader and writer (default: the
    /// number of CPUs). A collection larger than a quarter of a job's share
    /// (and of at least 10,000 items) is split by id into ranges, which the
    /// jobs take as they finish others.
    #[arg(long)]
    jobs: Option<usize>,
    /// The parquet files' compression: zstd, zstd:LEVEL (1-22), snappy,
    /// lz4, gzip or none.
    #[arg(long, default_value = catalog::export::DEFAULT_COMPRESSION, value_parser = catalog::export::parse_compression)]
    compression: catalog::export::Compression,
}

#[derive(Debug, Clone, Args)]
struct DbOnlyArgs {
    #[command(flatten)]
    db: DatabaseArgs,
}

#[derive(Debug, Clone, Args)]
struct DbArgs {
    #[command(subcommand)]
    action: DbAction,
    /// arcolake's data directory (holds the embedded cluster).
    #[arg(long, env = "ARCOLAKE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Subcommand)]
enum DbAction {
    /// Start the embedded cluster and keep it running until `db stop`.
    Start,
    /// Stop the embedded cluster.
    Stop {
        /// Stop even while arcolake processes use it.
        #[arg(long)]
        force: bool,
    },
    /// Show whether the embedded cluster runs, and who uses it.
    Status,
}

#[derive(Debug, Clone, Args)]
struct DemoArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// Directory of demo STAC documents to load before serving.
    #[arg(long, env = "ARCOLAKE_DEMO_DATA")]
    fixtures: Option<PathBuf>,
}

fn default_data_dir() -> PathBuf {
    let is_root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if is_root {
        return PathBuf::from("/var/lib/arcolake");
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("arcolake");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".local/share/arcolake");
    }
    PathBuf::from(".arcolake")
}

impl DatabaseArgs {
    fn config(&self, migrate: bool) -> DbConfig {
        DbConfig {
            database_url: self.database_url.clone().filter(|u| !u.is_empty()),
            data_dir: self.data_dir.clone().unwrap_or_else(default_data_dir),
            max_connections: self.max_connections.max(2),
            migrate,
            statement_timeout: None,
        }
    }
}

impl ServeArgs {
    /// Everything `serve` needs that takes work to set up: the sources, the
    /// signing keys and the JWT verifier.
    async fn services(&self, config: &mut api::ServeConfig) -> anyhow::Result<()> {
        if let Some(path) = &self.sources {
            let file = storage::sources::SourcesFile::load(path).map_err(anyhow::Error::msg)?;
            let registry = storage::Registry::open(&file)
                .with_context(|| format!("cannot open the sources of {}", path.display()))?;
            config.registry = std::sync::Arc::new(registry);
        }
        if let Some(keys) = self
            .signing_keys
            .as_deref()
            .filter(|k| !k.trim().is_empty())
        {
            let signer = storage::signing::UrlSigner::parse(keys)
                .map_err(|e| anyhow::anyhow!("ARCOLAKE_SIGNING_KEYS: {e}"))?;
            config.signer = std::sync::Arc::new(signer);
        } else if !config.registry.is_empty() {
            tracing::warn!(
                "no signing keys given (ARCOLAKE_SIGNING_KEYS): signed URLs work only on this \
                 process and die with it"
            );
        }
        config.jwt = self.jwt.verifier().await?;
        config.basemap = self
            .basemap
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(|u| api::routes::browse::Basemap::new(u.trim(), &self.basemap_attribution))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--basemap: {e}"))?;
        Ok(())
    }

    fn config(&self) -> api::ServeConfig {
        api::ServeConfig {
            listen: self.listen,
            public_url: self.public_url.clone(),
            trust_proxy: self.trust_proxy,
            admin_token: std::env::var("ARCOLAKE_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty()),
            request_timeout: Duration::from_secs(self.request_timeout.max(1)),
            body_limit: self.body_limit_mb.max(1) << 20,
            max_in_flight: self.max_in_flight.max(1),
            body_memory: self.body_memory_mb.max(1) << 20,
            sign_expiry: Duration::from_secs(self.sign_expiry.max(1)),
            sign_expiry_max: Duration::from_secs(self.sign_expiry_max.max(1)),
            limits: api::limits::Limits::new(
                api::limits::Rate {
                    per_second: self.sign_rate,
                    burst: self.sign_burst.max(1.0),
                },
                api::limits::Rate {
                    per_second: self.stream_rate,
                    burst: self.stream_burst.max(1.0),
                },
                self.max_streams,
            ),
            tiles: std::sync::Arc::new(api::tile_cache::TileCache::new(self.tile_cache_mb << 20)),
            tile_properties: self
                .tile_properties
                .iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
            tile_max_age: self.tile_max_age,
            ..api::ServeConfig::default()
        }
    }
}

impl Cli {
    /// Whether the command churns through memory in large batches that the
    /// allocator should keep rather than hand back to the system between
    /// them (see `main`).
    pub fn keeps_freed_memory(&self) -> bool {
        matches!(self.command, Command::Export(_))
    }
}

/// Run the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    api::telemetry::init(match cli.log.log_format {
        LogFormatArg::Pretty => api::telemetry::LogFormat::Pretty,
        LogFormatArg::Json => api::telemetry::LogFormat::Json,
    });
    match cli.command {
        Command::Serve(args) => serve(&args, None).await,
        Command::Demo(args) => {
            let fixtures = args.fixtures.clone().unwrap_or_else(demo_fixtures);
            serve(&args.serve, Some(fixtures)).await
        }
        Command::Load(args) => interruptible(load(&args)).await,
        Command::Export(args) => interruptible(export(&args)).await,
        Command::Migrate(args) => interruptible(migrate(&args)).await,
        Command::Db(args) => db(&args).await,
        Command::Openapi => {
            #[expect(clippy::print_stdout, reason = "the document is the command's output")]
            {
                print!("{}", api::openapi_json());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Crawl(args) => interruptible(crawl(&args)).await,
        Command::Keys(args) => interruptible(keys(&args)).await,
        Command::Publish(args) => interruptible(publish(&args)).await,
    }
}

async fn publish(args: &PublishArgs) -> anyhow::Result<ExitCode> {
    let file = storage::sources::SourcesFile::load(&args.sources).map_err(anyhow::Error::msg)?;
    let registry = storage::Registry::open(&file)
        .with_context(|| format!("cannot open the sources of {}", args.sources.display()))?;
    let database = open(&args.db, true).await?;
    let store = Store::new(database.pool.clone(), 0);
    let result = ingest::publish::publish(
        &store,
        &registry,
        (&args.collection, &args.item, &args.asset),
        args.force,
    )
    .await;
    database.close().await.context("closing the catalog")?;
    let done = result.with_context(|| {
        format!(
            "cannot publish asset {:?} of {}/{}",
            args.asset, args.collection, args.item
        )
    })?;
    #[expect(clippy::print_stdout, reason = "the command's report")]
    if done.unchanged {
        println!(
            "unchanged since the last publication (stamp {}); --force imports it again",
            done.stamp
        );
    } else {
        println!(
            "published {} features ({} without geometry left out), stamp {}",
            done.features, done.skipped, done.stamp
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn reqwest_client() -> anyhow::Result<api::auth::jwt::HttpClient> {
    api::auth::jwt::HttpClient::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build an HTTP client")
}

#[expect(clippy::print_stdout, reason = "the keys command reports on stdout")]
async fn keys(args: &KeysArgs) -> anyhow::Result<ExitCode> {
    let database = open(&args.db, true).await?;
    let store = Store::new(database.pool.clone(), 0);
    let result = match &args.action {
        KeysAction::Create {
            collections,
            name,
            expires_in,
        } => {
            let expires = expires_in
                .map(|d| chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or_default());
            let (key, secret) = store
                .create_api_key(name.as_deref(), collections, expires)
                .await
                .context("cannot create the key")?;
            println!("key id:      {}", key.id);
            println!("collections: {}", key.collections.join(", "));
            println!(
                "expires:     {}",
                key.expires
                    .map_or_else(|| "never (until revoked)".to_owned(), |t| t.to_rfc3339())
            );
            println!("The key is shown this once; keep it secret:");
            println!("{secret}");
            ExitCode::SUCCESS
        }
        KeysAction::List => {
            let keys = store.list_api_keys().await?;
            let now = chrono::Utc::now();
            println!(
                "{:<14}{:<10}{:<22}{:<26}COLLECTIONS",
                "ID", "STATE", "NAME", "EXPIRES"
            );
            for k in keys {
                let state = if k.revoked.is_some() {
                    "revoked"
                } else if k.expires.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<14}{:<10}{:<22}{:<26}{}",
                    k.id,
                    state,
                    k.name.as_deref().unwrap_or("-"),
                    k.expires.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339()),
                    k.collections.join(",")
                );
            }
            ExitCode::SUCCESS
        }
        KeysAction::Revoke { key_id } => {
            if store.revoke_api_key(key_id).await? {
                let id = catalog::access::split_key(key_id).map_or(key_id.as_str(), |(id, _)| id);
                println!("revoked {id}");
                ExitCode::SUCCESS
            } else {
                let id = catalog::access::split_key(key_id).map_or(key_id.as_str(), |(id, _)| id);
                eprintln!("no active key {id}");
                ExitCode::from(1)
            }
        }
    };
    database.close().await.context("closing the catalog")?;
    Ok(result)
}

/// Run a command until it ends or Ctrl-C/SIGTERM arrives. On a signal the
/// command is dropped: open transactions roll back (a crawl's committed
/// chunks and its crawl state stay consistent), and the embedded cluster's
/// lease is given up, stopping the cluster when this process started it and
/// no other process uses it.
async fn interruptible(
    command: impl Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    tokio::select! {
        result = command => result,
        () = api::shutdown_signal() => {
            tracing::warn!("interrupted; stopping");
            Ok(ExitCode::from(130))
        }
    }
}

/// The demo's data lake: the real files of `fixtures/ingest`, crawled into
/// the collection `demo-lake` and served as a local source of that name (when
/// no sources file is given), so the demo's assets can be signed and streamed.
async fn demo_lake(store: &Store, dir: &std::path::Path, config: &mut api::ServeConfig) {
    const LAKE: &str = "demo-lake";
    let url = dir.display().to_string();
    let crawled = async {
        let source = storage::source::open(&url, &storage::SourceSettings::default())?;
        let collection = catalog::CollectionId::new(LAKE).map_err(anyhow::Error::msg)?;
        ingest::crawl::ensure_collection(store, &collection, None, &url).await?;
        let job = ingest::crawl::CrawlJob {
            store: store.clone(),
            source: std::sync::Arc::clone(&source),
            collection,
            namer: ingest::build::Namer::new(&[]).map_err(anyhow::Error::msg)?,
            include: Vec::new(),
            exclude: vec!["corrupt/**".into()],
            options: ingest::CrawlOptions {
                progress: false,
                ..ingest::CrawlOptions::default()
            },
            secrets: Vec::new(),
        };
        let report = ingest::crawl(&job).await?;
        anyhow::Ok((source, report.items_written))
    };
    let source = match crawled.await {
        Ok((source, items)) => {
            info!(items, collection = LAKE, "demo lake crawled from {url}");
            source
        }
        Err(e) => {
            tracing::warn!(error = %e, "the demo lake could not be crawled; serving without it");
            return;
        }
    };
    if !config.registry.is_empty() {
        return;
    }
    let registered = storage::Registered {
        name: LAKE.into(),
        collection: LAKE.into(),
        source,
        sign: storage::sources::SignMode::Proxy,
        public_assets: storage::sources::PublicAssets::Proxy,
        paths: storage::PathFilter::new(&[], &["corrupt/**".into()]).unwrap_or_default(),
    };
    match storage::Registry::new(vec![registered]) {
        Ok(r) => config.registry = std::sync::Arc::new(r),
        Err(e) => tracing::warn!(error = %e, "the demo lake cannot be streamed"),
    }
}

fn demo_fixtures() -> PathBuf {
    let built_in = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/stac");
    if built_in.is_dir() {
        built_in
    } else {
        PathBuf::from("fixtures/stac")
    }
}

async fn open(db: &DatabaseArgs, migrate: bool) -> anyhow::Result<Database> {
    let config = db.config(migrate);
    Database::open(&config)
        .await
        .with_context(|| match &config.database_url {
            Some(_) => "could not open the catalog database at DATABASE_URL".to_owned(),
            None => format!(
                "could not open the embedded catalog in {}",
                config.data_dir.display()
            ),
        })
}

/// Forget superseded change stamps every ten minutes (each collection
/// keeps its newest). On a read-only replica this fails, harmlessly: the
/// primary's server prunes.
async fn prune_stamps(store: Store) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        every.tick().await;
        match store.prune_stamps().await {
            Ok(0) => {}
            Ok(rows) => info!(rows, "pruned superseded change stamps"),
            Err(e) => tracing::debug!(error = %e, "change stamps not pruned"),
        }
    }
}

async fn serve(args: &ServeArgs, demo: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut config = args.config();
    if args.print_config {
        let shown = serde_json::json!({
            "listen": config.listen.to_string(),
            "public_url": config.public_url.as_ref().map(Url::as_str),
            "trust_proxy": config.trust_proxy,
            "admin_token": config.admin_token.as_ref().map(|_| "<redacted>"),
            "request_timeout_s": config.request_timeout.as_secs(),
            "body_limit_bytes": config.body_limit,
            "max_in_flight": config.max_in_flight,
            "body_memory_bytes": config.body_memory,
            "count_limit": args.count_limit,
            "count_timeout_ms": args.count_timeout_ms,
            "database_url": args.db.database_url.as_ref().map(|_| "<redacted>"),
            "read_database_url": args.read_database_url.as_ref().map(|_| "<redacted>"),
            "data_dir": args.db.data_dir.clone().unwrap_or_else(default_data_dir),
            "max_connections": args.db.max_connections,
            "sources": args.sources,
            "signing_keys": args.signing_keys.as_ref().map(|_| "<redacted>"),
            "sign_expiry_s": config.sign_expiry.as_secs(),
            "sign_expiry_max_s": config.sign_expiry_max.as_secs(),
            "sign_rate": args.sign_rate,
            "stream_rate": args.stream_rate,
            "max_streams": args.max_streams,
            "tile_properties": args.tile_properties,
            "tile_max_age_s": args.tile_max_age,
            "tile_cache_mb": args.tile_cache_mb,
            "basemap": args.basemap,
            "jwks_file": args.jwt.jwks_file,
            "jwks_url": args.jwt.jwks_url.as_ref().map(Url::as_str),
            "jwt_secret": args.jwt.jwt_secret.as_ref().map(|_| "<redacted>"),
            "jwt_claim": args.jwt.jwt_claim,
        });
        #[expect(clippy::print_stdout, reason = "--print-config prints to stdout")]
        {
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let overrides = match &args.queryables {
        None => serde_json::Map::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the queryables file {}", path.display()))?;
            let doc: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            catalog::store::parse_overrides(&doc)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
    };
    args.services(&mut config).await?;
    let mut db_config = args.db.config(true);
    db_config.statement_timeout = Some(config.request_timeout);
    let database = Database::open(&db_config)
        .await
        .context("could not open the catalog database")?;
    let mut store = Store::new(database.pool.clone(), args.count_limit)
        .with_count_timeout(Duration::from_millis(args.count_timeout_ms.max(1)))
        .with_queryables(overrides);
    if let Some(url) = &args.read_database_url {
        let replica = Database::open_replica(url, &db_config)
            .context("--read-database-url is not a PostgreSQL URL")?;
        store = store.with_replica(replica);
    }
    if let Some(dir) = demo {
        match catalog::load::load_paths(&store, vec![dir.clone()], 2000).await {
            Ok(report) => {
                info!(
                    collections = report.collections,
                    items = report.items_inserted + report.items_updated,
                    "demo catalog loaded"
                );
            }
            Err(e) => {
                database.close().await.context("closing the catalog")?;
                return Err(anyhow::Error::new(e)
                    .context(format!("loading demo data from {}", dir.display())));
            }
        }
        if let Some(lake) = dir
            .parent()
            .map(|p| p.join("ingest"))
            .filter(|p| p.is_dir())
        {
            demo_lake(&store, &lake, &mut config).await;
        }
    }
    let pruner = tokio::spawn(prune_stamps(store.clone()));
    let watcher = tokio::spawn(store.clone().watch_replica());
    let result = api::serve(store, config).await;
    pruner.abort();
    watcher.abort();
    database.close().await.context("closing the catalog")?;
    result.context("serving")?;
    Ok(ExitCode::SUCCESS)
}

impl CrawlArgs {
    fn to_request(&self) -> anyhow::Result<ingest::run::CrawlRequest> {
        let shard = self
            .shard
            .as_deref()
            .map(|spec| ingest::shard::resolve(spec, |name| std::env::var(name).ok()))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--shard: {e}"))?
            .map(|s| s.with_depth(self.shard_depth));
        Ok(ingest::run::CrawlRequest {
            url: self.url.clone(),
            collection: self.collection.clone(),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            config: self.config.clone(),
            source: self.source.clone(),
            kind: self.kind.clone(),
            options: ingest::CrawlOptions {
                concurrency: self.concurrency.max(1),
                dry_run: self.dry_run,
                report: self.report.clone(),
                on_missing: self.on_missing,
                progress: !self.no_progress,
                force: self.force,
                allow_mass_removal: self.allow_mass_removal,
                max_removal_share: self.max_removal_share,
                shard,
            },
            fail_on_error: self.fail_on_error,
            follow_links_outside: self.follow_links_outside,
        })
    }
}

async fn crawl(args: &CrawlArgs) -> anyhow::Result<ExitCode> {
    let request = args.to_request()?;
    if args.finalize {
        let done = ingest::run::finalize(&args.db.config(true), &request)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        #[expect(clippy::print_stdout, reason = "the summary is the command's output")]
        {
            println!("{}", serde_json::json!({ "finalized": done }));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let run = ingest::run::run(&args.db.config(true), &request)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for r in &run.reports {
        let mut summary = serde_json::to_value(r)?;
        if let Some(o) = summary.as_object_mut() {
            o.insert("errors".into(), r.errors.len().into());
            o.insert("warnings".into(), r.warnings.len().into());
            o.insert(
                "first_errors".into(),
                serde_json::to_value(r.errors.iter().take(20).collect::<Vec<_>>())?,
            );
        }
        #[expect(clippy::print_stdout, reason = "the summary is the command's output")]
        {
            println!("{summary}");
        }
    }
    Ok(ExitCode::from(run.outcome.exit_code()))
}

async fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let options = catalog::export::ExportOptions {
        collections: args.collection.clone(),
        geoparquet: args.format.contains(&ExportFormat::Geoparquet),
        static_catalog: args.format.contains(&ExportFormat::Static),
        include_restricted: args.include_restricted,
        page: args.page.max(1),
        catalog_id: args.catalog_id.clone(),
        catalog_description: args.catalog_description.clone(),
        jobs: args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        }),
        compression: args.compression,
        ..catalog::export::ExportOptions::default()
    };
    let database = open(&args.db, true).await?;
    let store = Store::new(database.pool.clone(), 0);
    let result = catalog::export::export(&store, &args.out, &options).await;
    database.close().await.context("closing the catalog")?;
    let report = result.context("exporting")?;
    info!(
        collections = report.collections,
        items = report.items,
        seconds = format!("{:.2}", report.seconds),
        items_per_second = format!("{:.0}", report.items_per_second),
        "export finished"
    );
    #[expect(clippy::print_stdout, reason = "the report is the command's output")]
    {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}

async fn load(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let collection = args
        .collection
        .as_deref()
        .map(catalog::CollectionId::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--collection: {e}"))?;
    let options = catalog::load::LoadOptions {
        batch_size: args.batch_size,
        collection,
        follow_outside: args.follow_outside,
        staging: !args.no_staging,
    };
    let database = open(&args.db, true).await?;
    let store = Store::new(database.pool.clone(), 0);
    let result = catalog::load::load(&store, args.paths.clone(), &options).await;
    database.close().await.context("closing the catalog")?;
    let report = result.context("loading")?;
    info!(
        collections = report.collections,
        inserted = report.items_inserted,
        updated = report.items_updated,
        failed = report.failures.len(),
        seconds = format!("{:.2}", report.elapsed.as_secs_f64()),
        items_per_second = format!("{:.0}", report.items_per_second()),
        "load finished"
    );
    let failures: Vec<_> = report
        .failures
        .iter()
        .map(|f| {
            serde_json::json!({
                "place": f.place(),
                "file": f.file,
                "line": f.line,
                "pointer": f.pointer,
                "reason": f.reason,
            })
        })
        .collect();
    #[expect(clippy::print_stdout, reason = "the report is the command's output")]
    {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "collections": report.collections,
                "items_inserted": report.items_inserted,
                "items_updated": report.items_updated,
                "failed": report.failures.len(),
                "seconds": report.elapsed.as_secs_f64(),
                "items_per_second": report.items_per_second().round(),
                "staged_collections": report.staged,
                "failures": failures,
            }))?
        );
    }
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

async fn migrate(args: &DbOnlyArgs) -> anyhow::Result<ExitCode> {
    let database = open(&args.db, true).await?;
    info!("migrations applied");
    database.close().await.context("closing the catalog")?;
    Ok(ExitCode::SUCCESS)
}

async fn db(args: &DbArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    match args.action {
        DbAction::Start => {
            let started = catalog::embedded::start_manual(&dir)
                .await
                .context("starting the embedded cluster")?;
            info!(started, data_dir = %dir.display(), "embedded cluster is running");
        }
        DbAction::Stop { force } => {
            let was_running =
                catalog::embedded::stop(&dir, force).context("stopping the embedded cluster")?;
            if !was_running {
                info!("embedded cluster was not running");
            }
        }
        DbAction::Status => {
            let status = catalog::embedded::status(&dir)
                .await
                .context("reading the embedded cluster's status")?;
            #[expect(clippy::print_stdout, reason = "the status is the command's output")]
            {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "data_dir": dir,
                        "initialised": status.initialised,
                        "running": status.running,
                        "pid": status.pid,
                        "owner": status.owner,
                        "leases": status.leases,
                        "url": status.url,
                    }))?
                );
            }
            if !status.running {
                return Ok(ExitCode::from(3));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn unknown_subcommand_is_rejected() {
        assert!(Cli::try_parse_from(["arcolake", "frobnicate"]).is_err());
        assert!(Cli::try_parse_from(["arcolake", "serve", "--listen", "not-an-address"]).is_err());
    }
}
