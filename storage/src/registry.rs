//! Which configured source an asset href belongs to, and how it is signed.
//!
//! The server reads the same sources file as the crawler: each source's
//! root tells which hrefs it covers, its credentials how to reach them, its
//! `sign` and `public_assets` settings how to hand them out. An href no
//! source covers cannot be signed or streamed.

use std::sync::Arc;

use crate::error::Error;
use crate::source::{self, Source};
use crate::sources::{PublicAssets, SignMode, SourceConfig, SourcesFile};

/// One source the server can reach.
pub struct Registered {
    /// The source's name in the sources file; the first segment of its
    /// streaming route.
    pub name: String,
    /// The collection its items belong to.
    pub collection: String,
    /// The backend.
    pub source: Arc<dyn Source>,
    /// How signed URLs are made.
    pub sign: SignMode,
    /// How public assets are offered.
    pub public_assets: PublicAssets,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("name", &self.name)
            .field("collection", &self.collection)
            .field("source", &self.source.describe())
            .field("sign", &self.sign)
            .field("public_assets", &self.public_assets)
            .finish()
    }
}

/// Every source the server can reach.
#[derive(Debug, Default)]
pub struct Registry {
    sources: Vec<Registered>,
}

impl Registry {
    /// Open every source of a sources file.
    pub fn open(file: &SourcesFile) -> Result<Self, Error> {
        let mut sources = Vec::with_capacity(file.source.len());
        for config in &file.source {
            sources.push(Self::open_one(config)?);
        }
        Self::new(sources)
    }

    fn open_one(config: &SourceConfig) -> Result<Registered, Error> {
        let settings = config.settings().map_err(Error::config)?;
        let source = source::open(&config.url, &settings)?;
        let sign = config.sign.unwrap_or(if source.presign_limit().is_zero() {
            SignMode::Proxy
        } else {
            SignMode::Presign
        });
        Ok(Registered {
            name: config.name.clone(),
            collection: config.collection.clone(),
            source,
            sign,
            public_assets: config.public_assets,
        })
    }

    /// A registry of sources already opened; names must be unique and safe
    /// as a path segment.
    pub fn new(sources: Vec<Registered>) -> Result<Self, Error> {
        for (i, s) in sources.iter().enumerate() {
            let safe = s
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !safe || s.name.is_empty() || s.name == "." || s.name == ".." {
                return Err(Error::config(format!(
                    "source name {:?}: use letters, digits, `-`, `_` or `.`",
                    s.name
                )));
            }
            if sources[..i].iter().any(|o| o.name == s.name) {
                return Err(Error::config(format!(
                    "source name {:?} is used twice",
                    s.name
                )));
            }
        }
        Ok(Self { sources })
    }

    /// No sources: nothing can be signed or streamed.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The source named `name`.
    pub fn get(&self, name: &str) -> Option<&Registered> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// Every source.
    pub fn iter(&self) -> impl Iterator<Item = &Registered> {
        self.sources.iter()
    }

    /// The source covering `href` and the path inside it: the source with
    /// the deepest root when roots nest. `Ok(None)` when no source covers
    /// it; an error when the path would leave the source (`..`).
    pub fn resolve(&self, href: &str) -> Result<Option<(&Registered, String)>, Error> {
        let best = self
            .sources
            .iter()
            .filter_map(|s| s.source.relative(href).map(|rel| (s, rel)))
            .min_by_key(|(_, rel)| rel.len());
        match best {
            Some((s, rel)) => {
                source::check_relative(&rel)?;
                Ok(Some((s, rel)))
            }
            None => Ok(None),
        }
    }
}
