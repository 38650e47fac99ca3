//! The storage backends of the test harness: the local `fixtures/ingest`
//! and the S3, WebDAV and XrdHttp servers `scripts/test` starts
//! (`ARCOLAKE_TEST_S3_URL`, `ARCOLAKE_TEST_WEBDAV_URL`,
//! `ARCOLAKE_TEST_XRDHTTP_URL`), each holding a copy of `fixtures/ingest`.
//! Without them only the local source is checked, unless
//! `ARCOLAKE_TEST_REQUIRE_SERVERS` is set.

use std::path::Path;
use std::sync::Arc;

use storage::{Source, SourceSettings};

/// A local source over `dir`.
pub fn local_source(dir: &Path) -> Arc<dyn Source> {
    storage::source::open(dir.to_str().unwrap(), &SourceSettings::default()).unwrap()
}

/// The test servers must all run (`scripts/test` sets this).
pub fn servers_required() -> bool {
    std::env::var("ARCOLAKE_TEST_REQUIRE_SERVERS").is_ok()
}

/// The test server `var` names, opened; `None` (with a message) when it is
/// not configured, a panic when the servers are required.
pub fn server(var: &str) -> Option<Arc<dyn Source>> {
    let Ok(url) = std::env::var(var) else {
        assert!(
            !servers_required(),
            "{var} is not set, but the test servers are required (scripts/test starts them)"
        );
        eprintln!("{var} is not set: its backend is not checked (scripts/test starts it)");
        return None;
    };
    let settings = SourceSettings::default().with_env();
    Some(storage::source::open(&url, &settings).unwrap_or_else(|e| panic!("{var}={url}: {e}")))
}

/// Every backend holding a copy of `fixtures/ingest`, by source name: the
/// local directory, then the test servers that are configured.
pub fn backends() -> Vec<(&'static str, Arc<dyn Source>)> {
    let mut all = vec![("local", local_source(&super::fixture("ingest")))];
    for (var, name) in [
        ("ARCOLAKE_TEST_S3_URL", "s3"),
        ("ARCOLAKE_TEST_WEBDAV_URL", "dav"),
        ("ARCOLAKE_TEST_XRDHTTP_URL", "xrd"),
    ] {
        if let Some(s) = server(var) {
            all.push((name, s));
        }
    }
    all
}
