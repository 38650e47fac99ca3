//! The sources file: where the crawler lists and how the server reaches,
//! signs and streams. One file serves both.
//!
//! ```toml
//! [[source]]
//! name = "s2"
//! url = "s3://eo-data/sentinel-2"
//! collection = "sentinel-2-l2a"
//! include = ["**/*.tif"]
//! endpoint = "https://s3.example.org"
//! access_key_id_env = "S2_KEY"          # credentials: from env by name…
//! secret_access_key_env = "S2_SECRET"   # …or literal values (`secret_access_key`)
//!
//! [source.metadata]
//! title = "Sentinel-2 L2A"
//! description = "Surface reflectance"
//! license = "CC-BY-4.0"
//! keywords = ["sentinel-2"]
//!
//! [[source.group]]
//! pattern = '(?P<tile>T\d{2}[A-Z]{3})_(?P<date>\d{8}T\d{6})_(?P<band>B\d{2})\.tif$'
//! id = "{tile}_{date}"
//! asset = "{band}"
//! datetime = "{date}"
//! datetime_format = "%Y%m%dT%H%M%S"
//! properties = { "s2:mgrs_tile" = "{tile}" }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::source::SourceSettings;

/// What happens to items whose files are gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// Remove them from the catalog (default).
    #[default]
    Remove,
    /// Keep them, with `arcolake:missing_since` set.
    Mark,
}

impl std::str::FromStr for OnMissing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "remove" => Ok(Self::Remove),
            "mark" => Ok(Self::Mark),
            other => Err(format!("on-missing must be remove or mark, not {other:?}")),
        }
    }
}

/// A grouping / naming template: a regex with named captures over the
/// path relative to the source root, and templates that use them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupTemplate {
    /// Regex matched against the relative path.
    pub pattern: String,
    /// Item id template, e.g. `{tile}_{date}`.
    pub id: String,
    /// Asset key template, e.g. `{band}`; default `data`.
    pub asset: Option<String>,
    /// Datetime template, e.g. `{date}`.
    pub datetime: Option<String>,
    /// chrono format of the datetime text; RFC 3339 and `%Y%m%d` are tried without it.
    pub datetime_format: Option<String>,
    /// Extra properties from captures.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// Collection metadata a source sets.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CollectionMetadata {
    pub title: Option<String>,
    pub description: Option<String>,
    pub license: Option<String>,
    #[serde(default)]
    pub providers: Vec<Value>,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// `public` (default) or `restricted`: a restricted collection is seen
    /// only by callers an API key or token grants it to.
    pub access: Option<Access>,
}

/// Who may see a collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone (the default).
    #[default]
    Public,
    /// Only callers granted the collection.
    Restricted,
}

/// How `/sign` and `?sign=true` hand out a source's assets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignMode {
    /// The storage's own presigned URL (S3 `SigV4`; the default on S3 with
    /// credentials).
    Presign,
    /// The door's URL with a read-only macaroon (dCache, XRootD/EOS), else
    /// the proxy.
    Macaroon,
    /// An HMAC-signed URL to the server's streaming route (the default
    /// elsewhere).
    Proxy,
}

/// How assets of public collections are offered to clients that do not sign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublicAssets {
    /// An `alternate` href to the streaming route, readable without a
    /// signature (the default).
    #[default]
    Proxy,
    /// An `alternate` href to the streaming route that redirects to a
    /// presigned URL (where the storage can presign; else streamed).
    Presign,
    /// No alternate href: public assets are reachable only by signing.
    None,
}

/// One configured source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name, for `--source`.
    pub name: String,
    /// Storage URL.
    pub url: String,
    /// Target collection id.
    pub collection: String,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub metadata: CollectionMetadata,
    #[serde(default)]
    pub group: Vec<GroupTemplate>,
    pub concurrency: Option<usize>,
    pub on_missing: Option<OnMissing>,
    /// How signed URLs are made (default: `presign` on S3 with
    /// credentials, `proxy` elsewhere).
    pub sign: Option<SignMode>,
    /// How assets of public collections are offered to every client.
    #[serde(default)]
    pub public_assets: PublicAssets,
    /// After each crawl, publish the source's GeoParquet and FlatGeobuf
    /// files as vector tile layers (files unchanged since their last
    /// publication are skipped).
    #[serde(default)]
    pub publish: bool,
    /// With `--shard`: the depth of the directories shards own for this
    /// source (`--shard-depth` for it alone; 0 owns by item).
    pub shard_depth: Option<u32>,
    /// `webdav`, `dcache` or `xrdhttp` to force an HTTP behaviour.
    pub kind: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: Option<bool>,
    pub allow_http: Option<bool>,
    pub access_key_id: Option<String>,
    pub access_key_id_env: Option<String>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_env: Option<String>,
    pub bearer_token: Option<String>,
    pub bearer_token_env: Option<String>,
    pub authz_token: Option<String>,
    pub authz_token_env: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
}

/// A sources file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesFile {
    #[serde(default)]
    pub source: Vec<SourceConfig>,
}

impl SourcesFile {
    /// Read and check a sources file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // toml's own message quotes the offending line, which may hold a
        // literal secret: say where, and what, but never show the line.
        let file: Self = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(l) => format!("{} line {l}: {}", path.display(), e.message()),
                None => format!("{}: {}", path.display(), e.message()),
            }
        })?;
        if file.source.is_empty() {
            return Err(format!("{}: no [[source]] entries", path.display()));
        }
        for s in &file.source {
            for g in &s.group {
                regex::Regex::new(&g.pattern).map_err(|e| {
                    format!(
                        "{}: source {}: bad group pattern: {e}",
                        path.display(),
                        s.name
                    )
                })?;
            }
        }
        Ok(file)
    }
}

impl SourceConfig {
    /// Credentials and endpoint settings, env-named values resolved, then
    /// the standard environment variables for what is still unset.
    pub fn settings(&self) -> Result<SourceSettings, String> {
        let env = |name: &Option<String>| -> Result<Option<String>, String> {
            match name {
                Some(n) => std::env::var(n).map(Some).map_err(|_| {
                    format!("source {}: environment variable {n} is not set", self.name)
                }),
                None => Ok(None),
            }
        };
        Ok(SourceSettings {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone().or(env(&self.access_key_id_env)?),
            secret_access_key: self
                .secret_access_key
                .clone()
                .or(env(&self.secret_access_key_env)?),
            path_style: self.path_style,
            allow_http: self.allow_http,
            bearer_token: self.bearer_token.clone().or(env(&self.bearer_token_env)?),
            authz_token: self.authz_token.clone().or(env(&self.authz_token_env)?),
            username: self.username.clone(),
            password: self.password.clone().or(env(&self.password_env)?),
            kind: self.kind.clone(),
            concurrency: self.concurrency.unwrap_or(0),
            follow_links_outside: false,
        }
        .with_env())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn sources_file_parses_and_resolves_env_credentials() {
        let dir = tempfile_dir();
        let path = dir.join("sources.toml");
        std::fs::write(
            &path,
            r#"
[[source]]
name = "s2"
url = "s3://bucket/prefix"
collection = "s2"
secret_access_key_env = "ARCOLAKE_TEST_SECRET_FOR_CONFIG"
[source.metadata]
title = "S2"
[[source.group]]
pattern = '(?P<tile>T\w{5})_(?P<band>B\d\d)\.tif$'
id = "{tile}"
asset = "{band}"
"#,
        )
        .unwrap();
        let file = SourcesFile::load(&path).unwrap();
        assert_eq!(file.source[0].group.len(), 1);
        let err = file.source[0].settings().unwrap_err();
        assert!(err.contains("ARCOLAKE_TEST_SECRET_FOR_CONFIG"), "{err}");
        std::fs::write(
            &path,
            "[[source]]\nname='x'\nurl='/'\ncollection='c'\nbogus=1\n",
        )
        .unwrap();
        assert!(SourcesFile::load(&path).unwrap_err().contains("bogus"));
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("arcolake-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
