//! Test harness: a real PostGIS per test, the router, fixtures and requests.
//!
//! `TestDb::new()` uses `DATABASE_URL` when set (a server the tests may
//! create databases on); otherwise it starts the embedded cluster, the same
//! code path users get, in a directory shared by all test processes. A
//! template database is migrated once; each test gets its own copy via
//! `CREATE DATABASE ... TEMPLATE`, so tests run in parallel, isolated.
//! If no PostgreSQL can be started or reached, the test fails and says how to
//! provide one; it never passes by skipping.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]
#![allow(clippy::unwrap_used, clippy::missing_panics_doc, reason = "test code")]

pub mod backends;

use std::path::PathBuf;
use std::str::FromStr;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::sync::OnceCell;
use tower::ServiceExt;

/// Admin connection options and the template's name, set up once per process.
struct Shared {
    admin: PgConnectOptions,
    template: String,
}

static SHARED: OnceCell<Shared> = OnceCell::const_new();

fn template_name() -> String {
    // A new template whenever the migrations change.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for m in catalog::migrate::MIGRATOR.iter() {
        for b in m.checksum.iter() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("arcolake_test_tpl_{h:016x}")
}

async fn shared() -> &'static Shared {
    SHARED
        .get_or_init(|| async {
            let admin = match std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
                Some(url) => PgConnectOptions::from_str(&url).expect("DATABASE_URL is not a valid PostgreSQL URL"),
                None => {
                    let dir = std::env::temp_dir().join(format!("arcolake-test-cluster-{}", users_uid()));
                    let cluster = catalog::embedded::Cluster::start(&dir).await.unwrap_or_else(|e| {
                        panic!(
                            "cannot start an embedded PostgreSQL for the tests: {e}\n\
                             Install PostgreSQL and PostGIS (scripts/test does), or set DATABASE_URL \
                             to a PostgreSQL server with PostGIS where the tests may create databases."
                        )
                    });
                    let options = cluster.connect_options_for("postgres");
                    // The cluster stays up for the other test processes;
                    // `arcolake db stop --data-dir <dir>` ends it.
                    std::mem::forget(cluster);
                    options
                }
            };
            let template = template_name();
            let mut conn = admin.connect().await.unwrap_or_else(|e| {
                panic!("cannot connect to the test PostgreSQL ({e}); set DATABASE_URL or install PostgreSQL + PostGIS")
            });
            // One process builds the template; the others wait for it.
            sqlx::query("SELECT pg_advisory_lock(727274)").execute(&mut conn).await.unwrap();
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&template)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            if !exists {
                sqlx::query(&format!("CREATE DATABASE {template}")).execute(&mut conn).await.unwrap();
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(admin.clone().database(&template))
                    .await
                    .unwrap();
                catalog::migrate::run(&pool).await.expect("migrating the template database");
                pool.close().await;
                sqlx::query(&format!("ALTER DATABASE {template} WITH is_template = true")).execute(&mut conn).await.unwrap();
            }
            sqlx::query("SELECT pg_advisory_unlock(727274)").execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            Shared { admin, template }
        })
        .await
}

fn users_uid() -> u32 {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap())
}

/// A fresh, migrated database for one test.
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    pub options: PgConnectOptions,
}

impl TestDb {
    pub async fn new() -> Self {
        let shared = shared().await;
        let name = format!("arcolake_test_{}", uuid_like());
        let mut conn = shared.admin.connect().await.unwrap();
        // CREATE DATABASE ... TEMPLATE fails while another session copies the
        // same template at the same instant; retry briefly.
        let mut attempt = 0;
        loop {
            match sqlx::query(&format!(
                "CREATE DATABASE {name} TEMPLATE {}",
                shared.template
            ))
            .execute(&mut conn)
            .await
            {
                Ok(_) => break,
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot create the test database: {e}"),
            }
        }
        conn.close().await.unwrap();
        let options = shared.admin.clone().database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options.clone())
            .await
            .unwrap();
        Self {
            pool,
            name,
            options,
        }
    }

    /// A URL of this database, for the binary under test.
    #[allow(dead_code, reason = "used by some test crates only")]
    pub fn url(&self) -> String {
        if let Some(base) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            let mut u = url::Url::parse(&base).unwrap();
            u.set_path(&self.name);
            return u.to_string();
        }
        let host = self.options.get_socket().map_or_else(
            || self.options.get_host().to_owned(),
            |s| s.to_string_lossy().into_owned(),
        );
        let host = host.replace('/', "%2F");
        format!(
            "postgresql://{}@{host}:{}/{}",
            self.options.get_username(),
            self.options.get_port(),
            self.name
        )
    }

    /// A store whose exact counts have a budget no stall of a busy test
    /// machine reaches: the tests compare `numberMatched` with what they
    /// wrote. The budget's own fallback is tested in `api_search.rs`.
    pub fn store(&self) -> catalog::Store {
        catalog::Store::new(self.pool.clone(), 10_000)
            .with_count_timeout(std::time::Duration::from_secs(10))
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{}_{n}", std::process::id(), t % 1_000_000_000_000)
}

pub const TOKEN: &str = "test-admin-token";

/// The router over a test database, with writes enabled by [`TOKEN`].
pub struct TestApp {
    pub router: Router,
    pub db: TestDb,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_settings(api::ServeConfig {
            admin_token: Some(TOKEN.into()),
            public_url: Some("http://stac.test/api/".parse().unwrap()),
            ..api::ServeConfig::default()
        })
        .await
    }

    pub async fn with_settings(settings: api::ServeConfig) -> Self {
        let db = TestDb::new().await;
        let router = api::app(db.store(), settings);
        Self { router, db }
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn post(&self, uri: &str, body: &Value) -> Reply {
        self.send(
            Request::post(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    pub async fn write(&self, method: &str, uri: &str, body: Option<&Value>) -> Reply {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json");
        if method == "PATCH" {
            builder = builder.header("content-type", "application/merge-patch+json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.send(builder.body(body).unwrap()).await
    }

    /// Create a collection through the API.
    pub async fn collection(&self, id: &str) {
        let r = self
            .write("POST", "/collections", Some(&collection(id)))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }

    /// Write items straight through the store's bulk path.
    pub async fn items(&self, items: Vec<Value>) {
        let records: Vec<catalog::ItemRecord> = items
            .into_iter()
            .map(|v| catalog::ItemRecord::from_value(v, None).unwrap())
            .collect();
        let mut tx = self.db.pool.begin().await.unwrap();
        catalog::Store::write_items(
            &mut tx,
            &records,
            catalog::store::items::OnConflict::Replace,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

pub fn collection(id: &str) -> Value {
    json!({
        "type": "Collection", "stac_version": "1.0.0", "id": id,
        "description": format!("test collection {id}"), "license": "CC0-1.0",
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [["2000-01-01T00:00:00Z", null]]}},
        "links": []
    })
}

/// An item with a square footprint of `size` degrees at (lon, lat).
pub fn item(collection: &str, id: &str, lon: f64, lat: f64, datetime: &str) -> Value {
    let s = 0.1;
    json!({
        "type": "Feature", "stac_version": "1.0.0", "id": id, "collection": collection,
        "geometry": {"type": "Polygon", "coordinates": [[[lon - s, lat - s], [lon + s, lat - s], [lon + s, lat + s], [lon - s, lat + s], [lon - s, lat - s]]]},
        "bbox": [lon - s, lat - s, lon + s, lat + s],
        "properties": {"datetime": datetime, "eo:cloud_cover": 12.5},
        "links": [],
        "assets": {"data": {"href": format!("s3://bucket/{id}.tif"), "type": "image/tiff; application=geotiff"}}
    })
}

pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}

/// Ids of the features of an ItemCollection.
pub fn ids(body: &Value) -> Vec<String> {
    body["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The href of the link with `rel`, as a path+query under the test base URL.
pub fn link(body: &Value, rel: &str) -> Option<Value> {
    body["links"]
        .as_array()?
        .iter()
        .find(|l| l["rel"] == rel)
        .cloned()
}

pub fn local(href: &str) -> String {
    href.strip_prefix("http://stac.test/api")
        .unwrap_or(href)
        .to_owned()
}

/// Crawl `url` into `collection` of `db` (created when missing) with the
/// library, as `arcolake crawl` does, and return the report.
pub async fn crawl(
    db: &TestDb,
    url: &str,
    collection: &str,
    settings: &storage::source::SourceSettings,
    groups: &[ingest::config::GroupTemplate],
    options: ingest::config::CrawlOptions,
) -> ingest::CrawlReport {
    let store = db.store();
    let src = storage::source::open(url, settings).unwrap();
    let cid = catalog::CollectionId::new(collection).unwrap();
    ingest::crawl::ensure_collection(&store, &cid, None, url)
        .await
        .unwrap();
    let job = ingest::crawl::CrawlJob {
        store,
        source: src,
        collection: cid,
        namer: ingest::build::Namer::new(groups).unwrap(),
        include: Vec::new(),
        exclude: Vec::new(),
        options: ingest::config::CrawlOptions {
            progress: false,
            ..options
        },
        secrets: settings.secrets(),
    };
    ingest::crawl(&job).await.unwrap()
}

/// The items of `collection` in `db`, by id.
pub async fn collection_items(
    db: &TestDb,
    collection: &str,
) -> std::collections::BTreeMap<String, Value> {
    let rows: Vec<(String, Value)> =
        sqlx::query_as("SELECT id, content FROM items WHERE collection = $1")
            .bind(collection)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    rows.into_iter().collect()
}

/// The README's grouping template: Sentinel-2 band files of one tile and
/// time become one item with an asset per band.
pub fn s2_group() -> ingest::config::GroupTemplate {
    ingest::config::GroupTemplate {
        pattern: r"(?P<tile>T\d{2}[A-Z]{3})_(?P<date>\d{8}T\d{6})_(?P<band>B\d{2})\.tif$".into(),
        id: "{tile}_{date}".into(),
        asset: Some("{band}".into()),
        datetime: Some("{date}".into()),
        datetime_format: Some("%Y%m%dT%H%M%S".into()),
        properties: [("s2:mgrs_tile".to_owned(), "{tile}".to_owned())].into(),
    }
}

/// An MVT feature property value as JSON (strings, doubles, integers).
pub fn mvt_value(v: &geozero::mvt::tile::Value) -> Value {
    match (
        &v.string_value,
        v.double_value,
        v.int_value,
        v.sint_value,
        v.uint_value,
    ) {
        (Some(s), ..) => json!(s),
        (None, Some(d), ..) => json!(d),
        (None, None, Some(i), ..) | (None, None, None, Some(i), _) => json!(i),
        (None, None, None, None, Some(u)) => json!(u),
        _ => Value::Null,
    }
}
