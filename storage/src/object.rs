//! Sources on `object_store`: S3-compatible stores and local mounts.

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Error, ErrorKind};
use crate::source::{
    ByteStream, Entry, EntryKind, IoStats, KeyClass, Level, Source, SourceSettings, bump,
    check_listed_dir, classify, is_hidden, is_zarr_name,
};

/// A source backed by an [`ObjectStore`].
#[derive(Debug)]
pub struct ObjectSource {
    store: Arc<dyn ObjectStore>,
    /// The S3 client, for presigning (and streaming: it has no limit on a
    /// whole request's duration).
    s3: Option<Arc<object_store::aws::AmazonS3>>,
    /// Key prefix of the crawl root inside the store (no trailing slash).
    prefix: String,
    /// URL of the store root, for hrefs: `s3://bucket`, `file:///dir`.
    base: String,
    /// `https` URL of the store root, for alternate hrefs.
    https_base: Option<String>,
    /// A local directory is walked by [`walk_local`], which does not
    /// descend into Zarr stores or hidden directories.
    local_root: Option<std::path::PathBuf>,
    /// Local sources: follow symbolic links out of the root.
    follow_links_outside: bool,
    stats: Arc<IoStats>,
}

impl ObjectSource {
    /// An S3 source from `s3://bucket/prefix`.
    pub fn s3(url: &str, settings: &SourceSettings) -> Result<Self, Error> {
        crate::init_tls();
        let rest = url.strip_prefix("s3://").unwrap_or(url);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::config(format!(
                "{}: no bucket named",
                crate::redact::urls(url)
            )));
        }
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(bucket);
        if let Some(e) = &settings.endpoint {
            builder = builder
                .with_endpoint(e)
                .with_virtual_hosted_style_request(!settings.path_style.unwrap_or(true));
        }
        builder = builder.with_region(settings.region.as_deref().unwrap_or("us-east-1"));
        if let Some(k) = &settings.access_key_id {
            builder = builder.with_access_key_id(k);
        }
        if let Some(k) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(k);
        }
        if settings.access_key_id.is_none() {
            builder = builder.with_skip_signature(true);
        }
        if settings.allow_http == Some(true) {
            builder = builder.with_allow_http(true);
        }
        let built = |b: object_store::aws::AmazonS3Builder| {
            b.build()
                .map_err(|e| Error::config(crate::redact::urls(&format!("{url}: {e}"))))
        };
        let store = built(builder.clone())?;
        // Streams to clients may take long: only silence ends them.
        let streaming = built(
            builder.with_client_options(
                object_store::ClientOptions::new()
                    .with_timeout_disabled()
                    .with_connect_timeout(std::time::Duration::from_secs(15))
                    .with_allow_http(settings.allow_http == Some(true)),
            ),
        )?;
        let signs = settings.access_key_id.is_some();
        let https_base = match &settings.endpoint {
            Some(e) if e.starts_with("https://") => {
                Some(format!("{}/{bucket}", e.trim_end_matches('/')))
            }
            Some(_) => None,
            None => Some(format!("https://{bucket}.s3.amazonaws.com")),
        };
        Ok(Self {
            store: Arc::new(store),
            s3: Some(Arc::new(streaming)).filter(|_| signs),
            prefix: prefix.trim_matches('/').to_owned(),
            base: format!("s3://{bucket}"),
            https_base,
            local_root: None,
            follow_links_outside: false,
            stats: Arc::default(),
        })
    }

    /// A local directory (or FUSE / NFS mount).
    pub fn local(dir: &FsPath, settings: &SourceSettings) -> Result<Self, Error> {
        let dir = dir
            .canonicalize()
            .map_err(|e| Error::config(format!("{}: {e}", dir.display())))?;
        if !dir.is_dir() {
            return Err(Error::config(format!("{}: not a directory", dir.display())));
        }
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| Error::config(format!("{}: {e}", dir.display())))?;
        let base = url::Url::from_directory_path(&dir)
            .map_err(|()| Error::config(format!("{}: not an absolute path", dir.display())))?;
        Ok(Self {
            store: Arc::new(store),
            s3: None,
            prefix: String::new(),
            base: base.as_str().trim_end_matches('/').to_owned(),
            https_base: None,
            local_root: Some(dir.clone()),
            follow_links_outside: settings.follow_links_outside,
            stats: Arc::default(),
        })
    }

    /// The store key of a relative path: the names as they are (an S3
    /// listing gives them so).
    fn key(&self, path: &str) -> Path {
        let full = if self.prefix.is_empty() {
            path.to_owned()
        } else {
            format!("{}/{path}", self.prefix)
        };
        // The local store escapes each part itself on its way to the file
        // system: it too takes the names as they are.
        Path::parse(&full).unwrap_or_else(|_| Path::from(full))
    }

    /// The key text of a relative path in hrefs: S3 keys as they are; local
    /// names escaped (`zo%C3%AB.tif`, `per%25cent.tif`), as hrefs of local
    /// files have always been written.
    fn href_key(&self, path: &str) -> String {
        if self.local_root.is_some() {
            let full = if self.prefix.is_empty() {
                path.to_owned()
            } else {
                format!("{}/{path}", self.prefix)
            };
            Path::from(full).as_ref().to_owned()
        } else {
            self.key(path).as_ref().to_owned()
        }
    }

    /// Every entry under `dir` (`""` for the whole source).
    fn list_tree(&self, dir: &str) -> BoxStream<'_, Result<Entry, Error>> {
        if let Some(root) = &self.local_root {
            bump(&self.stats.lists);
            return walk_local(
                root.clone(),
                dir,
                self.follow_links_outside,
                Arc::clone(&self.stats),
                self.base.clone(),
            );
        }
        let prefix = self.dir_key(dir);
        let state = ListState {
            offset: None,
            inner: None,
            done: false,
        };
        futures::stream::unfold(state, move |mut st| {
            let prefix = prefix.clone();
            async move {
                loop {
                    if st.done {
                        return None;
                    }
                    if st.inner.is_none() {
                        bump(&self.stats.lists);
                        st.inner = Some(match &st.offset {
                            Some(o) => self.store.list_with_offset(prefix.as_ref(), o),
                            None => self.store.list(prefix.as_ref()),
                        });
                    }
                    let next = st.inner.as_mut()?.next().await;
                    let meta = match next {
                        None => return None,
                        Some(Err(e)) => {
                            st.done = true;
                            return Some((Err(Error::request(self.describe(), e)), st));
                        }
                        Some(Ok(m)) => m,
                    };
                    let rel = self.relative(meta.location.as_ref()).to_owned();
                    match classify(&rel) {
                        KeyClass::Hidden => {}
                        KeyClass::Plain => {
                            let entry = Entry {
                                path: rel,
                                size: meta.size,
                                modified: Some(meta.last_modified),
                                etag: meta.e_tag.clone(),
                                kind: EntryKind::File,
                            };
                            return Some((Ok(entry), st));
                        }
                        KeyClass::InZarr(root) => {
                            // S3 lists in key order and everything in `root/`
                            // sorts before `root0`: list again from there
                            // instead of walking the store's chunks.
                            let root = root.to_owned();
                            st.offset = Some(self.key(&format!("{root}0")));
                            st.inner = None;
                            let entry = Entry::zarr_store(root);
                            return Some((Ok(entry), st));
                        }
                    }
                }
            }
        })
        .boxed()
    }

    /// The store key of the directory `dir`; `None` for the bucket's root.
    fn dir_key(&self, dir: &str) -> Option<Path> {
        (!self.prefix.is_empty() || !dir.is_empty()).then(|| self.key(dir))
    }

    fn relative<'a>(&self, key: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(&self.prefix)
                .map_or(key, |k| k.trim_start_matches('/'))
        }
    }

    fn error(&self, path: &str, e: &object_store::Error) -> Error {
        match crate::error::object_store_kind(e) {
            ErrorKind::NotFound => Error::not_found(self.href(path)),
            kind => Error::new(kind, self.href(path), e),
        }
    }

    /// On a local source, refuse a path whose file lies outside the root
    /// through a symbolic link (unless links outside are allowed).
    fn check_local(&self, path: &str) -> Result<(), Error> {
        let Some(root) = self
            .local_root
            .as_ref()
            .filter(|_| !self.follow_links_outside)
        else {
            return Ok(());
        };
        match std::fs::canonicalize(root.join(path)) {
            Ok(real) if real.starts_with(root) => Ok(()),
            Ok(_) => Err(Error::new(
                ErrorKind::InvalidPath,
                self.href(path),
                "a symbolic link that leads out of the source's directory",
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::not_found(self.href(path)))
            }
            Err(e) => Err(Error::new(ErrorKind::Permission, self.href(path), e)),
        }
    }
}

struct ListState {
    offset: Option<Path>,
    inner: Option<BoxStream<'static, object_store::Result<object_store::ObjectMeta>>>,
    done: bool,
}

#[async_trait]
impl Source for ObjectSource {
    fn list(&self) -> BoxStream<'_, Result<Entry, Error>> {
        self.list_tree("")
    }

    fn list_under(&self, dir: &str) -> BoxStream<'_, Result<Entry, Error>> {
        if let Err(e) = check_listed_dir(dir) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.list_tree(dir)
    }

    async fn list_level(&self, dir: &str) -> Result<Option<Level>, Error> {
        if !dir.is_empty() {
            check_listed_dir(dir)?;
        }
        bump(&self.stats.lists);
        if let Some(root) = &self.local_root {
            let (root, outside) = (root.clone(), self.follow_links_outside);
            let (stats, base, dir) = (Arc::clone(&self.stats), self.base.clone(), dir.to_owned());
            return tokio::task::spawn_blocking(move || {
                local_level(&root, &dir, outside, &stats, &base)
            })
            .await
            .map_err(|e| Error::request(self.describe(), e))?
            .map(Some);
        }
        let listed = self
            .store
            .list_with_delimiter(self.dir_key(dir).as_ref())
            .await
            .map_err(|e| self.error(dir, &e))?;
        let mut level = Level::default();
        for p in &listed.common_prefixes {
            let rel = self.relative(p.as_ref()).to_owned();
            match p.filename() {
                Some(name) if is_hidden(name) => {}
                Some(name) if is_zarr_name(name) => level.entries.push(Entry::zarr_store(rel)),
                Some(_) => level.dirs.push(rel),
                None => {
                    return Err(Error::request(
                        self.href(dir),
                        "a key with an empty directory name; list the source whole (no --shard-depth)",
                    ));
                }
            }
        }
        for meta in listed.objects {
            let rel = self.relative(meta.location.as_ref()).to_owned();
            if classify(&rel) == KeyClass::Plain {
                level.entries.push(Entry {
                    path: rel,
                    size: meta.size,
                    modified: Some(meta.last_modified),
                    etag: meta.e_tag,
                    kind: EntryKind::File,
                });
            }
        }
        level.dirs.sort();
        Ok(Some(level))
    }

    async fn read_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, Error> {
        self.check_local(path)?;
        let bytes = self
            .store
            .get_range(&self.key(path), range)
            .await
            .map_err(|e| self.error(path, &e))?;
        self.stats.read(bytes.len(), false);
        Ok(bytes)
    }

    async fn read_small(&self, path: &str) -> Result<Option<Bytes>, Error> {
        match self.check_local(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.stats.read(0, true);
                return Ok(None);
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let got = match self.store.get(&self.key(path)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                self.stats.read(0, true);
                return Ok(None);
            }
            Err(e) => return Err(self.error(path, &e)),
        };
        let bytes = got.bytes().await.map_err(|e| self.error(path, &e))?;
        self.stats.read(bytes.len(), true);
        Ok(Some(bytes))
    }

    async fn head(&self, path: &str) -> Result<Option<Entry>, Error> {
        match self.check_local(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        bump(&self.stats.heads);
        match self.store.head(&self.key(path)).await {
            Ok(meta) => Ok(Some(Entry {
                path: path.to_owned(),
                size: meta.size,
                modified: Some(meta.last_modified),
                etag: meta.e_tag,
                kind: EntryKind::File,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(path, &e)),
        }
    }

    async fn child_dirs(&self, dir: &str, max: usize) -> Result<Option<Vec<String>>, Error> {
        bump(&self.stats.lists);
        // One level, by delimiter: a store's chunks are never listed.
        let listed = self
            .store
            .list_with_delimiter(Some(&self.key(dir)))
            .await
            .map_err(|e| self.error(dir, &e))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .filter(|n| !is_hidden(n))
            .take(max)
            .collect();
        names.sort();
        Ok(Some(names))
    }

    async fn stream(&self, path: &str, range: Range<u64>) -> Result<ByteStream, Error> {
        self.check_local(path)?;
        if range.is_empty() {
            return Ok(futures::stream::empty().boxed());
        }
        let store: &dyn ObjectStore = match &self.s3 {
            Some(s3) => s3.as_ref(),
            None => self.store.as_ref(),
        };
        let options = object_store::GetOptions {
            range: Some(range.clone().into()),
            ..object_store::GetOptions::default()
        };
        let got = store
            .get_opts(&self.key(path), options)
            .await
            .map_err(|e| self.error(path, &e))?;
        self.stats.read(0, false);
        let len = range.end - range.start;
        Ok(crate::source::window(
            got.into_stream(),
            0,
            len,
            self.href(path),
        ))
    }

    async fn presign(&self, path: &str, expires: Duration) -> Result<Option<String>, Error> {
        use object_store::signer::Signer as _;
        let Some(s3) = &self.s3 else { return Ok(None) };
        let url = s3
            .signed_url(
                http::Method::GET,
                &self.key(path),
                expires.min(self.presign_limit()),
            )
            .await
            .map_err(|e| self.error(path, &e))?;
        Ok(Some(url.to_string()))
    }

    fn presign_limit(&self) -> Duration {
        // SigV4 presigned URLs live at most seven days.
        if self.s3.is_some() {
            Duration::from_secs(7 * 24 * 3600)
        } else {
            Duration::ZERO
        }
    }

    fn relative(&self, href: &str) -> Option<String> {
        if let Some(root) = &self.local_root {
            // Compared as decoded path components, never as text: `%72oot`,
            // `root%20dir` and `root dir` name the same directory.
            let raw = href.strip_prefix("file:///")?;
            let raw = raw.split(['?', '#']).next().unwrap_or_default();
            // The root itself may be written with a trailing slash.
            let trimmed = raw.strip_suffix('/').unwrap_or(raw);
            let at_root = url::Url::parse(&format!("file:///{trimmed}"))
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .is_some_and(|p| p == *root);
            if at_root {
                return None;
            }
            let stepping = raw.split('/').any(|seg| {
                let seg = percent_encoding::percent_decode_str(seg).decode_utf8_lossy();
                seg.is_empty() || seg == "." || seg == ".." || seg.contains(['\\', '\0'])
            });
            if stepping {
                // Never normalised away: an href with `.`, `..` or empty
                // segments, or backslashes, is refused (the registry's path
                // check says so), whatever directory it would land in.
                return Some("..".to_owned());
            }
            let url = url::Url::parse(href).ok()?;
            let path = url.to_file_path().ok()?;
            let rest = path.strip_prefix(root).ok()?;
            let parts: Option<Vec<&str>> = rest.iter().map(std::ffi::OsStr::to_str).collect();
            let rel = parts?.join("/");
            return (!rel.is_empty()).then_some(rel);
        }
        let key = href.strip_prefix(&self.base)?.strip_prefix('/')?;
        let rel = if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(&self.prefix)?.strip_prefix('/')?
        };
        (!rel.is_empty()).then(|| rel.to_owned())
    }

    fn real_path(&self, path: &str) -> Result<Option<String>, Error> {
        let Some(root) = &self.local_root else {
            return Ok(None);
        };
        let real = match std::fs::canonicalize(root.join(path)) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::new(ErrorKind::Permission, self.href(path), e)),
        };
        let Ok(rest) = real.strip_prefix(root) else {
            return Ok(None);
        };
        let parts: Option<Vec<&str>> = rest.iter().map(std::ffi::OsStr::to_str).collect();
        Ok(parts.map(|p| p.join("/")).filter(|p| p != path))
    }

    fn href(&self, path: &str) -> String {
        format!("{}/{}", self.base, self.href_key(path))
    }

    fn alternate_href(&self, path: &str) -> Option<String> {
        let base = self.https_base.as_ref()?;
        Some(format!("{base}/{}", self.href_key(path)))
    }

    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{}", self.base, self.prefix)
        }
    }

    fn stats(&self) -> Arc<IoStats> {
        Arc::clone(&self.stats)
    }
}

/// What one entry of a local walk is.
enum Local {
    /// A directory to descend into.
    Dir(String),
    /// A file or a Zarr store.
    Entry(Entry),
    /// Hidden, not a regular file, unreadable, or a symbolic link out of
    /// the root (reported as unplaced).
    Skip,
}

/// Classify one entry of a walk of `root` (followed links included).
fn local_entry(
    e: &walkdir::DirEntry,
    root: &std::path::Path,
    outside: bool,
    stats: &IoStats,
    base: &str,
) -> Local {
    let Some(rel) = e.path().strip_prefix(root).ok().and_then(|p| p.to_str()) else {
        return Local::Skip;
    };
    let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
    if e.file_name().to_str().is_none_or(is_hidden) {
        return Local::Skip;
    }
    if e.path_is_symlink()
        && !outside
        && !std::fs::canonicalize(e.path()).is_ok_and(|t| t.starts_with(root))
    {
        stats.unplaced(
            format!("{base}/{rel}"),
            "a symbolic link that leads out of the crawled directory; not followed \
             (--follow-links-outside allows it)"
                .into(),
        );
        return Local::Skip;
    }
    if e.file_type().is_dir() {
        if e.path_is_symlink() && leads_to_an_ancestor(e.path()) {
            // A loop: the walk from the root skips it too (walkdir sees
            // the ancestor), but a walk from below the target would not.
            return Local::Skip;
        }
        if !is_zarr_name(&rel) {
            return Local::Dir(rel);
        }
        return Local::Entry(Entry::zarr_store(rel));
    }
    let Ok(meta) = e.metadata() else {
        return Local::Skip;
    };
    if !meta.is_file() {
        return Local::Skip;
    }
    Local::Entry(Entry {
        path: rel,
        size: meta.len(),
        modified: meta
            .modified()
            .ok()
            .map(chrono::DateTime::<chrono::Utc>::from),
        etag: None,
        kind: EntryKind::File,
    })
}

/// Whether the directory link at `path` leads to one of the directories
/// that hold it (or to its own parent).
fn leads_to_an_ancestor(path: &std::path::Path) -> bool {
    let (Ok(target), Some(Ok(parent))) = (
        std::fs::canonicalize(path),
        path.parent().map(std::fs::canonicalize),
    ) else {
        return false;
    };
    parent.starts_with(&target)
}

/// Walk the tree of `dir` under the local `root` on a blocking thread,
/// entries handed over through a bounded channel. Hidden directories and
/// Zarr stores are not descended into (a store is one entry); symbolic
/// links are followed within the root (loops skipped); a link that leads
/// out of it is reported and not followed unless `outside` allows it.
fn walk_local(
    root: std::path::PathBuf,
    dir: &str,
    outside: bool,
    stats: Arc<IoStats>,
    base: String,
) -> BoxStream<'static, Result<Entry, Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Entry, Error>>(1024);
    let start = root.join(dir);
    let what = start.display().to_string();
    let walker = tokio::task::spawn_blocking(move || {
        let mut it = walkdir::WalkDir::new(&start)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_str().is_none_or(is_hidden));
        while let Some(next) = it.next() {
            let e = match next {
                Ok(e) => e,
                Err(err) if err.loop_ancestor().is_some() => continue,
                Err(err) => {
                    let _ = tx.blocking_send(Err(Error::request(start.display().to_string(), err)));
                    return;
                }
            };
            if e.depth() == 0 {
                continue;
            }
            let entry = match local_entry(&e, &root, outside, &stats, &base) {
                Local::Dir(_) => continue,
                Local::Skip => {
                    if e.file_type().is_dir() {
                        it.skip_current_dir();
                    }
                    continue;
                }
                Local::Entry(entry) => {
                    if entry.kind == EntryKind::ZarrStore {
                        it.skip_current_dir();
                    }
                    entry
                }
            };
            if tx.blocking_send(Ok(entry)).is_err() {
                return;
            }
        }
    });
    // A walker that panicked closed the channel as a finished one does:
    // its end is an error, so a crawl never takes the listing as complete.
    futures::stream::unfold((rx, Some(walker)), move |(mut rx, walker)| {
        let what = what.clone();
        async move {
            if let Some(e) = rx.recv().await {
                return Some((e, (rx, walker)));
            }
            match walker?.await {
                Ok(()) => None,
                Err(e) => Some((Err(Error::request(what, e)), (rx, None))),
            }
        }
    })
    .boxed()
}

/// One level of the local directory `dir` under `root`.
fn local_level(
    root: &std::path::Path,
    dir: &str,
    outside: bool,
    stats: &IoStats,
    base: &str,
) -> Result<Level, Error> {
    let start = root.join(dir);
    let mut level = Level::default();
    for next in walkdir::WalkDir::new(&start)
        .follow_links(true)
        .min_depth(1)
        .max_depth(1)
        .sort_by_file_name()
    {
        let e = match next {
            Ok(e) => e,
            Err(err) if err.loop_ancestor().is_some() => continue,
            Err(err) => return Err(Error::request(start.display().to_string(), err)),
        };
        match local_entry(&e, root, outside, stats, base) {
            Local::Dir(rel) => level.dirs.push(rel),
            Local::Entry(entry) => level.entries.push(entry),
            Local::Skip => {}
        }
    }
    Ok(level)
}
