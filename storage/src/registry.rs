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
    /// Which paths of the source are its assets.
    pub paths: PathFilter,
}

/// Which paths under a source's root are served: the source's `include`
/// and `exclude` globs (as the crawler applies them; a path inside a Zarr
/// store is judged by the store's root), never hidden or temporary files.
#[derive(Debug, Clone, Default)]
pub struct PathFilter {
    include: Option<globset::GlobSet>,
    exclude: Option<globset::GlobSet>,
}

impl PathFilter {
    /// A filter from glob patterns (empty `include`: everything).
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, Error> {
        let set = |patterns: &[String]| -> Result<Option<globset::GlobSet>, Error> {
            if patterns.is_empty() {
                return Ok(None);
            }
            let mut b = globset::GlobSetBuilder::new();
            for p in patterns {
                b.add(
                    globset::Glob::new(p)
                        .map_err(|e| Error::config(format!("bad glob {p:?}: {e}")))?,
                );
            }
            b.build()
                .map(Some)
                .map_err(|e| Error::config(e.to_string()))
        };
        Ok(Self {
            include: set(include)?,
            exclude: set(exclude)?,
        })
    }

    /// Whether `path` is an asset path of the source.
    pub fn admits(&self, path: &str) -> bool {
        let judged = match source::classify(path) {
            source::KeyClass::Hidden => return false,
            source::KeyClass::InZarr(root) => {
                // Inside a store only its own dot-files are not hidden.
                let hidden = path[root.len()..].split('/').any(|seg| {
                    source::is_hidden(seg)
                        && !matches!(seg, ".zarray" | ".zattrs" | ".zgroup" | ".zmetadata")
                });
                if hidden {
                    return false;
                }
                root
            }
            source::KeyClass::Plain => path,
        };
        self.include.as_ref().is_none_or(|g| g.is_match(judged))
            && !self.exclude.as_ref().is_some_and(|g| g.is_match(judged))
    }
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("name", &self.name)
            .field("collection", &self.collection)
            .field("source", &self.source.describe())
            .field("sign", &self.sign)
            .field("public_assets", &self.public_assets)
            .field("paths", &self.paths)
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
            paths: PathFilter::new(&config.include, &config.exclude)?,
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

    /// Every source covering `href`, with the path inside it, the deepest
    /// root first (roots may nest, and two sources may share a root). An
    /// error when the path would leave a source (`..`).
    pub fn candidates(&self, href: &str) -> Result<Vec<(&Registered, String)>, Error> {
        let mut found: Vec<(&Registered, String)> = self
            .sources
            .iter()
            .filter_map(|s| s.source.relative(href).map(|rel| (s, rel)))
            .collect();
        found.sort_by_key(|(_, rel)| rel.len());
        for (_, rel) in &found {
            source::check_relative(rel)?;
        }
        Ok(found)
    }

    /// The source covering `href` with the deepest root, and the path
    /// inside it; `Ok(None)` when no source covers it.
    pub fn resolve(&self, href: &str) -> Result<Option<(&Registered, String)>, Error> {
        Ok(self.candidates(href)?.into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_filters_follow_the_crawl_globs_and_judge_zarr_members_by_their_store() {
        let f = PathFilter::new(&["**/*.zarr".into(), "*.tif".into()], &["old/**".into()]).unwrap();
        assert!(f.admits("a.tif"));
        assert!(f.admits("era.zarr"));
        assert!(f.admits("era.zarr/.zmetadata"));
        assert!(f.admits("era.zarr/t2m/0.0"));
        assert!(f.admits("era.zarr/t2m/.zarray"));
        assert!(!f.admits("era.zarr/.git/config"));
        assert!(f.admits("d/era.zarr/zarr.json"));
        assert!(!f.admits("manifest.json"));
        assert!(!f.admits("old/era.zarr/.zmetadata"));
        let all = PathFilter::default();
        assert!(all.admits("manifest.json"));
        assert!(!all.admits(".env"));
        assert!(!all.admits("d/.secret/x.tif"));
        assert!(!all.admits("x.tif.part"));
        assert!(PathFilter::new(&["[".into()], &[]).is_err());
    }

    #[test]
    fn sources_sharing_a_root_are_all_candidates() {
        let dir = std::env::temp_dir().join(format!("arcolake-registry-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let url = dir.display().to_string();
        let open = |u: &str| source::open(u, &crate::SourceSettings::default()).unwrap();
        let entry = |name: &str, u: &str| Registered {
            name: name.into(),
            collection: name.into(),
            source: open(u),
            sign: SignMode::Proxy,
            public_assets: PublicAssets::Proxy,
            paths: PathFilter::default(),
        };
        let registry = Registry::new(vec![
            entry("a", &url),
            entry("b", &url),
            entry("deep", &format!("{url}/sub")),
        ])
        .unwrap();
        let href = registry.get("a").unwrap().source.href("sub/x.tif");
        let names: Vec<&str> = registry
            .candidates(&href)
            .unwrap()
            .iter()
            .map(|(r, _)| r.name.as_str())
            .collect();
        assert_eq!(names, ["deep", "a", "b"]);
        assert!(Registry::new(vec![entry("..", &url)]).is_err());
        assert!(Registry::new(vec![entry("a b", &url)]).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
