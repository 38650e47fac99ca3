//! Bulk loading of STAC JSON from disk: Collections, Items, ItemCollections,
//! NDJSON, and static catalogs (following `child` and `item` links).
//!
//! A load runs in two passes. The *scan* walks every path given: it reads
//! each JSON, GeoJSON and NDJSON document under a directory, follows the
//! `child` and `item` links of Collections and Catalogs (inside the directory
//! of the path given, unless [`LoadOptions::follow_outside`]), and collects
//! every Collection. Each file is visited once, however it is reached. The
//! Collections are written first, so an Item may come before its Collection
//! on the command line. The second pass reads the Items: files are read on a
//! blocking thread, validated on worker threads while the previous batch is
//! written, and upserted by `(collection, id)` in batches of at most
//! [`LoadOptions::batch_size`] documents, each batch in one transaction.
//!
//! Bad input loses nothing else: a document that fails validation is
//! reported with its file and line, and a batch the database refuses is
//! rolled back whole and written again in halves, so that only the items it
//! refuses are left out (and reported) while the others load.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::num::NonZeroUsize;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::model::{CollectionId, CollectionRecord, ItemRecord};
use crate::search::Kind;
use crate::store::WriteCounts;
use crate::store::items::{ItemBatch, OnConflict, count_properties};
use crate::store::staging::{StagedRow, Stager, Staging, encode_row};
use crate::{Error, Result, Store};

/// How a load reads its input.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Most documents, so most items, written per transaction.
    pub batch_size: NonZeroUsize,
    /// The collection of items that name none; an item that names (or is
    /// linked from) another collection is reported as failed.
    pub collection: Option<CollectionId>,
    /// Follow `child` and `item` links, and symbolic links met in a
    /// directory, that lead outside the directory of the path given.
    pub follow_outside: bool,
    /// Load the items of collections whose partition is empty through a
    /// staging table swapped in at the end (see [`crate::store::staging`]);
    /// `false` writes every item through the live partition.
    pub staging: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            batch_size: NonZeroUsize::new(2000).unwrap_or(NonZeroUsize::MIN),
            collection: None,
            follow_outside: false,
            staging: true,
        }
    }
}

/// A document, link or file that was not loaded, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    /// The file, as reached from the paths given.
    pub file: String,
    /// The line (from 1) where the document or link starts, when known.
    pub line: Option<usize>,
    /// Where inside the file's JSON, e.g. `features[3]` or `links[2]`.
    pub pointer: Option<String>,
    /// Why it was not loaded.
    pub reason: String,
}

impl Failure {
    /// `file:line#pointer`, as far as known.
    pub fn place(&self) -> String {
        let line = self.line.map(|l| format!(":{l}")).unwrap_or_default();
        let pointer = self
            .pointer
            .as_ref()
            .map(|p| format!("#{p}"))
            .unwrap_or_default();
        format!("{}{line}{pointer}", self.file)
    }
}

/// How a load went.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadReport {
    /// Collections created or replaced.
    pub collections: u64,
    /// Items newly inserted.
    pub items_inserted: u64,
    /// Items that replaced an existing one.
    pub items_updated: u64,
    /// Documents, links and files that could not be loaded.
    pub failures: Vec<Failure>,
    /// Collections whose items went through a staging table (their
    /// partition was empty when the load began).
    pub staged: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Items written per second.
    pub fn items_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        #[expect(
            clippy::cast_precision_loss,
            reason = "a rate for people; item counts are far below 2^52"
        )]
        let items = (self.items_inserted + self.items_updated) as f64;
        if secs > 0.0 { items / secs } else { 0.0 }
    }
}

/// Documents handed to one validation task, at most.
const LINES_PER_CHUNK: usize = 500;
/// Validation tasks running ahead of the writer.
const VALIDATION_AHEAD: usize = 4;
/// Root documents of a static catalog, read first in their directory.
const ROOT_NAMES: [&str; 2] = ["catalog.json", "collection.json"];

/// Where a document sits, kept cheap to clone while loading.
#[derive(Debug, Clone)]
struct Loc {
    file: Arc<str>,
    line: Option<usize>,
    pointer: Option<String>,
}

impl Loc {
    fn file(file: &Arc<str>) -> Self {
        Self {
            file: Arc::clone(file),
            line: None,
            pointer: None,
        }
    }

    fn at(file: &Arc<str>, line: Option<usize>, pointer: Option<String>) -> Self {
        Self {
            file: Arc::clone(file),
            line,
            pointer,
        }
    }

    fn fail(&self, reason: impl Into<String>) -> Failure {
        Failure {
            file: self.file.to_string(),
            line: self.line,
            pointer: self.pointer.clone(),
            reason: reason.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// Reading files

/// How a file holds its documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// One JSON document (an Item, ItemCollection, Collection or Catalog).
    Json,
    /// One document per line.
    Ndjson,
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The format a file name announces, or `None` when it is not a document.
fn format_of_name(path: &Path) -> Option<Format> {
    match extension(path).as_str() {
        "json" | "geojson" => Some(Format::Json),
        "ndjson" | "jsonl" | "geojsonl" => Some(Format::Ndjson),
        _ => None,
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Why the first bytes of a file show it is not JSON or NDJSON, if they do.
fn not_json(head: &[u8]) -> Option<String> {
    const NOT: &str = "not a JSON or NDJSON file";
    if head.starts_with(b"PAR1") {
        return Some(format!(
            "{NOT}: it looks like Parquet (stac-geoparquet?); load reads STAC JSON, NDJSON \
             and static catalogs, so convert it to NDJSON first"
        ));
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some(format!(
            "{NOT}: it looks gzip-compressed; decompress it first"
        ));
    }
    let text = strip_bom(head);
    let first = text.iter().find(|b| !b.is_ascii_whitespace())?;
    if matches!(first, b'{' | b'[') {
        return None;
    }
    let binary =
        text.contains(&0) || std::str::from_utf8(text).is_err_and(|e| e.error_len().is_some());
    if binary {
        return Some(format!("{NOT}: it is binary"));
    }
    let start: String = String::from_utf8_lossy(text)
        .trim_start()
        .chars()
        .take(16)
        .collect();
    Some(format!(
        "{NOT}: a JSON document starts with {{, but this file starts with {start:?}"
    ))
}

/// A whole file, checked to look like JSON.
fn read_json_file(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    if strip_bom(&bytes).iter().all(u8::is_ascii_whitespace) {
        return Err("the file is empty, not a JSON document".into());
    }
    match not_json(&bytes[..bytes.len().min(1024)]) {
        Some(reason) => Err(reason),
        None => Ok(bytes),
    }
}

/// An NDJSON file, checked to look like JSON.
fn open_ndjson(path: &Path) -> Result<BufReader<File>, String> {
    let file = File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut head = Vec::with_capacity(1024);
    reader
        .by_ref()
        .take(1024)
        .read_to_end(&mut head)
        .map_err(|e| format!("cannot read: {e}"))?;
    if let Some(reason) = not_json(&head) {
        return Err(reason);
    }
    let mut file = reader.into_inner();
    std::io::Seek::rewind(&mut file).map_err(|e| format!("cannot read: {e}"))?;
    Ok(BufReader::with_capacity(1 << 20, file))
}

/// `true` when serde rejected the text only for what follows a first
/// complete document: several documents, one per line, in a `.json` file.
fn is_several_documents(e: &serde_json::Error) -> bool {
    e.is_syntax() && e.to_string().starts_with("trailing characters")
}

/// The `type` of a JSON document, read without building the whole value.
#[derive(serde::Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: Option<Value>,
}

/// The line (from 1) where the first non-blank byte of `text` sits.
fn first_line(text: &[u8]) -> usize {
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    // One more piece than there are line breaks before the document.
    text[..start].split(|b| *b == b'\n').count()
}

/// The line (from 1) of each element of the array held by the top-level
/// member `key` of the JSON object in `text`, in order.
fn element_lines(text: &[u8], key: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let (mut depth, mut line, mut i) = (0usize, 1usize, 0usize);
    let mut last_key = (0usize, 0usize);
    let (mut after_colon, mut key_matches, mut in_target, mut expect) =
        (false, false, false, false);
    while i < text.len() {
        let b = text[i];
        if in_target && expect && depth == 2 && !b.is_ascii_whitespace() && b != b']' {
            lines.push(line);
            expect = false;
        }
        match b {
            b'\n' => line += 1,
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    match text[i] {
                        b'\\' => i += 1,
                        b'\n' => line += 1,
                        _ => {}
                    }
                    i += 1;
                }
                if depth == 1 && !after_colon {
                    last_key = (start, i.min(text.len()));
                }
            }
            b':' if depth == 1 => {
                key_matches = &text[last_key.0..last_key.1] == key.as_bytes();
                after_colon = true;
            }
            b',' if depth == 1 => {
                after_colon = false;
                key_matches = false;
            }
            b',' if in_target && depth == 2 => expect = true,
            b'{' | b'[' => {
                depth += 1;
                if depth == 2 && b == b'[' && key_matches && after_colon {
                    in_target = true;
                    expect = true;
                }
            }
            b'}' | b']' => {
                if in_target && depth == 2 {
                    in_target = false;
                    key_matches = false;
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    lines
}

/// `path` without `.` components, for messages.
fn tidy(path: &Path) -> PathBuf {
    let tidy: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if tidy.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        tidy
    }
}

/// `path` with `.` and `..` resolved by name alone (for a path that does
/// not exist, so cannot be canonicalised).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The local path a link's `href` names, relative to the linking document's
/// directory unless absolute. `file://` URLs and relative hrefs are
/// percent-decoded; other URLs are refused.
fn link_path(base: &Path, href: &str) -> Result<PathBuf, String> {
    if href
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("file:"))
    {
        let url = url::Url::parse(href).map_err(|e| format!("is not a valid file URL ({e})"))?;
        return url
            .to_file_path()
            .map_err(|()| "is a file URL on another host; load reads local files only".into());
    }
    if url::Url::parse(href).is_ok_and(|u| u.scheme().len() > 1) {
        return Err("is remote; load reads local files only".into());
    }
    let decoded = percent_encoding::percent_decode_str(href)
        .decode_utf8()
        .map_err(|e| format!("does not decode to UTF-8 ({e})"))?;
    // A file name holding a literal `%` is taken as written when only that exists.
    if decoded != href && !base.join(&*decoded).exists() && base.join(href).exists() {
        return Ok(PathBuf::from(href));
    }
    Ok(PathBuf::from(decoded.as_ref()))
}

// ---------------------------------------------------------------------------
// The scan: find every Collection, and every file holding Items

/// A file holding Items (or an ItemCollection), found by the scan.
#[derive(Debug)]
struct Unit {
    path: PathBuf,
    source: Source,
    format: Format,
    /// NDJSON lines holding the Collections written before the items.
    collection_lines: Vec<usize>,
}

/// What the items of one file share.
#[derive(Debug, Clone)]
struct Source {
    /// The file, as reached from the paths given.
    file: Arc<str>,
    /// The Collection that links the file with an `item` link, if any.
    context: Option<Arc<str>>,
    /// `false` for a file reached only through an `item` link, whose content
    /// the scan did not read (so Collections inside it were not loaded).
    scanned: bool,
}

/// What the scan found.
#[derive(Debug, Default)]
struct Scan {
    collections: Vec<(Loc, Value)>,
    units: Vec<Unit>,
    failures: Vec<Failure>,
}

struct Scanner<'o> {
    options: &'o LoadOptions,
    /// The canonical directory of the path given: links stay inside it.
    root: PathBuf,
    /// Canonical path of every file met → its unit, if it holds items.
    seen: HashMap<PathBuf, Option<usize>>,
    /// Canonical path of every directory walked.
    dirs: HashSet<PathBuf>,
    scan: Scan,
}

/// How the scan reached a file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reached {
    /// Given on the command line, found in a directory, or a `child` link.
    Read,
    /// An `item` link: the file is read once, when loading items.
    ItemLink,
}

fn scan(paths: &[PathBuf], options: &LoadOptions) -> Scan {
    let mut s = Scanner {
        options,
        root: PathBuf::new(),
        seen: HashMap::new(),
        dirs: HashSet::new(),
        scan: Scan::default(),
    };
    for path in paths {
        let file: Arc<str> = path.display().to_string().into();
        let canonical = match path.canonicalize() {
            Ok(c) => c,
            Err(e) => {
                s.fail(&Loc::file(&file), format!("cannot read: {e}"));
                continue;
            }
        };
        if canonical.is_dir() {
            s.root.clone_from(&canonical);
            s.dir(path, &canonical);
        } else {
            s.root = canonical
                .parent()
                .map_or_else(|| canonical.clone(), Path::to_path_buf);
            s.file(path, canonical, None, Reached::Read);
        }
    }
    s.scan
}

impl Scanner<'_> {
    fn fail(&mut self, loc: &Loc, reason: impl Into<String>) {
        let failure = loc.fail(reason);
        warn!(place = failure.place(), reason = failure.reason, "skipped");
        self.scan.failures.push(failure);
    }

    fn inside(&self, canonical: &Path) -> bool {
        self.options.follow_outside || canonical.starts_with(&self.root)
    }

    /// Every document under a directory, root documents of a static catalog first.
    fn dir(&mut self, shown: &Path, canonical: &Path) {
        if !self.dirs.insert(canonical.to_path_buf()) {
            return;
        }
        let mut names: Vec<_> = match std::fs::read_dir(canonical) {
            Ok(rd) => rd.flatten().map(|e| e.file_name()).collect(),
            Err(e) => {
                let file: Arc<str> = shown.display().to_string().into();
                return self.fail(&Loc::file(&file), format!("cannot list: {e}"));
            }
        };
        names.sort_by_key(|n| {
            let root = ROOT_NAMES
                .iter()
                .position(|r| n.as_os_str() == *r)
                .unwrap_or(ROOT_NAMES.len());
            (root, n.clone())
        });
        for name in names {
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let shown = shown.join(&name);
            let entry = canonical.join(&name);
            let document = format_of_name(&entry).is_some();
            let target = match entry.canonicalize() {
                Ok(t) => t,
                Err(e) if document => {
                    let file: Arc<str> = shown.display().to_string().into();
                    self.fail(&Loc::file(&file), format!("cannot read: {e}"));
                    continue;
                }
                Err(_) => continue,
            };
            if !self.inside(&target) && (document || target.is_dir()) {
                let file: Arc<str> = shown.display().to_string().into();
                let reason = format!(
                    "is a symbolic link to {}, outside {}; pass --follow-outside to read it",
                    target.display(),
                    self.root.display()
                );
                self.fail(&Loc::file(&file), reason);
                continue;
            }
            if target.is_dir() {
                self.dir(&shown, &target);
            } else if document {
                self.file(&shown, target, None, Reached::Read);
            } else if extension(&entry) == "parquet" {
                warn!(
                    file = %shown.display(),
                    "not loaded: load reads STAC JSON and NDJSON, not (stac-)geoparquet"
                );
            }
        }
    }

    /// One file: note it, and read Collections and Catalogs at once.
    fn file(&mut self, shown: &Path, canonical: PathBuf, context: Option<&Arc<str>>, how: Reached) {
        if let Some(unit) = self.seen.get(&canonical) {
            if let (Some(i), Some(c)) = (unit, context) {
                let source = &mut self.scan.units[*i].source;
                if source.context.is_none() {
                    source.context = Some(Arc::clone(c));
                }
            }
            return;
        }
        self.seen.insert(canonical.clone(), None);
        let file: Arc<str> = tidy(shown).display().to_string().into();
        let named = format_of_name(shown);
        if how == Reached::ItemLink {
            let format = named.unwrap_or(Format::Json);
            return self.unit(canonical, &file, format, context, None);
        }
        if named == Some(Format::Ndjson) {
            return match self.ndjson_collections(&canonical, &file) {
                Ok(lines) => self.unit(canonical, &file, Format::Ndjson, context, Some(lines)),
                Err(reason) => self.fail(&Loc::file(&file), reason),
            };
        }
        let bytes = match read_json_file(&canonical) {
            Ok(b) => b,
            Err(reason) => return self.fail(&Loc::file(&file), reason),
        };
        let text = strip_bom(&bytes);
        if text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            let loc = Loc::at(&file, Some(first_line(text)), None);
            return self.fail(
                &loc,
                "not a STAC document: a JSON array (expected an Item, ItemCollection, \
                 Collection or Catalog object)",
            );
        }
        let kind = match serde_json::from_slice::<TypeOnly>(text) {
            Ok(t) => t.kind,
            Err(e) if is_several_documents(&e) => {
                // NDJSON under a `.json` name.
                let collections = ndjson_lines_collections(text, &file);
                let lines = collections.iter().filter_map(|(loc, _)| loc.line).collect();
                self.scan.collections.extend(collections);
                return self.unit(canonical, &file, Format::Ndjson, context, Some(lines));
            }
            Err(e) if e.is_data() => {
                let loc = Loc::at(&file, Some(first_line(text)), None);
                return self.fail(
                    &loc,
                    "not a STAC document: expected a JSON object (an Item, ItemCollection, \
                     Collection or Catalog)",
                );
            }
            Err(e) => {
                let loc = Loc::at(&file, Some(e.line()), None);
                return self.fail(&loc, format!("not valid JSON: {e}"));
            }
        };
        match kind.as_ref().and_then(Value::as_str) {
            Some("Feature" | "FeatureCollection") => {
                self.unit(canonical, &file, Format::Json, context, Some(Vec::new()));
            }
            Some(kind @ ("Collection" | "Catalog")) => {
                let kind = kind.to_owned();
                match serde_json::from_slice::<Value>(text) {
                    Ok(value) => {
                        self.container(shown, &canonical, &file, text, &kind, value, context);
                    }
                    Err(e) => {
                        let loc = Loc::at(&file, Some(e.line()), None);
                        self.fail(&loc, format!("not valid JSON: {e}"));
                    }
                }
            }
            Some(other) => {
                let loc = Loc::at(&file, Some(first_line(text)), None);
                self.fail(
                    &loc,
                    format!(
                        "not a STAC document: type {other:?} is none of Feature, \
                         FeatureCollection, Collection, Catalog"
                    ),
                );
            }
            None => {
                let loc = Loc::at(&file, Some(first_line(text)), None);
                self.fail(&loc, "not a STAC document: it has no string `type`");
            }
        }
    }

    fn unit(
        &mut self,
        canonical: PathBuf,
        file: &Arc<str>,
        format: Format,
        context: Option<&Arc<str>>,
        collection_lines: Option<Vec<usize>>,
    ) {
        self.seen
            .insert(canonical.clone(), Some(self.scan.units.len()));
        self.scan.units.push(Unit {
            path: canonical,
            source: Source {
                file: Arc::clone(file),
                context: context.cloned(),
                scanned: collection_lines.is_some(),
            },
            format,
            collection_lines: collection_lines.unwrap_or_default(),
        });
    }

    /// Collections on the lines of an NDJSON file; returns their lines.
    /// Lines that are not JSON are left for the item pass, which reports them.
    fn ndjson_collections(&mut self, path: &Path, file: &Arc<str>) -> Result<Vec<usize>, String> {
        let mut reader = open_ndjson(path)?;
        let mut buf = Vec::new();
        let mut line = 0;
        let mut lines = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => return Ok(lines),
                Ok(_) => line += 1,
                Err(e) => return Err(format!("cannot read line {}: {e}", line + 1)),
            }
            if let Some(value) = collection_line(&buf, line) {
                self.scan
                    .collections
                    .push((Loc::at(file, Some(line), None), value));
                lines.push(line);
            }
        }
    }

    /// A Collection or Catalog: keep a Collection, follow `child` and `item` links.
    #[expect(clippy::too_many_arguments, reason = "one document, as reached")]
    fn container(
        &mut self,
        shown: &Path,
        canonical: &Path,
        file: &Arc<str>,
        text: &[u8],
        kind: &str,
        value: Value,
        context: Option<&Arc<str>>,
    ) {
        let links = value
            .get("links")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let own: Option<Arc<str>> = if kind == "Collection" {
            value.get("id").and_then(Value::as_str).map(Arc::from)
        } else {
            context.cloned()
        };
        if kind == "Collection" {
            let loc = Loc::at(file, Some(first_line(text)), None);
            self.scan.collections.push((loc, value));
        }
        let mut starts = element_lines(text, "links");
        if starts.len() != links.len() {
            starts.clear();
        }
        let base = canonical.parent().unwrap_or(canonical);
        let shown_base = shown.parent().unwrap_or_else(|| Path::new(""));
        for (i, link) in links.iter().enumerate() {
            let rel = link.get("rel").and_then(Value::as_str).unwrap_or_default();
            if rel != "child" && rel != "item" {
                continue;
            }
            let loc = Loc::at(file, starts.get(i).copied(), Some(format!("links[{i}]")));
            let Some(href) = link.get("href").and_then(Value::as_str) else {
                self.fail(&loc, format!("the {rel} link has no string href"));
                continue;
            };
            let relative = match link_path(base, href) {
                Ok(p) => p,
                Err(reason) => {
                    self.fail(&loc, format!("{rel} link {href} {reason}"));
                    continue;
                }
            };
            let joined = base.join(&relative);
            let target = joined.canonicalize();
            let lands = target
                .as_ref()
                .map_or_else(|_| lexical(&joined), Clone::clone);
            if !self.inside(&lands) {
                let reason = format!(
                    "{rel} link {href} leads outside {} (to {}); pass --follow-outside to follow it",
                    self.root.display(),
                    lands.display()
                );
                self.fail(&loc, reason);
                continue;
            }
            let target = match target {
                Ok(t) if t.is_dir() => {
                    self.fail(&loc, format!("{rel} link {href} names a directory"));
                    continue;
                }
                Ok(t) => t,
                Err(e) => {
                    self.fail(
                        &loc,
                        format!("{rel} link {href}: {}: {e}", joined.display()),
                    );
                    continue;
                }
            };
            let how = if rel == "item" {
                Reached::ItemLink
            } else {
                Reached::Read
            };
            self.file(&shown_base.join(&relative), target, own.as_ref(), how);
        }
    }
}

/// The Collections on the lines of NDJSON text held in memory.
fn ndjson_lines_collections(text: &[u8], file: &Arc<str>) -> Vec<(Loc, Value)> {
    text.split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(i, l)| {
            collection_line(l, i + 1).map(|v| (Loc::at(file, Some(i + 1), None), v))
        })
        .collect()
}

/// The Collection on one NDJSON line, if the line holds one. Lines are
/// looked at only when they could name the type (most Items cannot).
fn collection_line(line: &[u8], number: usize) -> Option<Value> {
    let line = if number == 1 { strip_bom(line) } else { line };
    let text = std::str::from_utf8(line).ok()?;
    if !text.contains("Collection") && !text.contains("\\u") {
        return None;
    }
    let kind = serde_json::from_str::<TypeOnly>(text).ok()?.kind?;
    if kind.as_str() != Some("Collection") {
        return None;
    }
    serde_json::from_str(text).ok()
}

// ---------------------------------------------------------------------------
// The item pass: read, validate, write

/// One document for a validation task.
enum Work {
    /// An NDJSON line, parsed on the worker.
    Line {
        source: Arc<Source>,
        line: usize,
        text: Vec<u8>,
    },
    /// A parsed Item (a whole file, or a feature of an ItemCollection).
    Value {
        source: Arc<Source>,
        line: Option<usize>,
        pointer: Option<String>,
        value: Value,
    },
    /// A file or document that could not be read.
    Failed(Failure),
}

/// Documents for one validation task; `ends_batch` when the last of them
/// closes a batch.
struct Chunk {
    work: Vec<Work>,
    ends_batch: bool,
}

/// Cuts the documents into chunks, and chunks into batches of at most
/// `batch_size` documents.
struct Reader {
    tx: mpsc::Sender<Chunk>,
    batch_size: usize,
    chunk: Vec<Work>,
    in_batch: usize,
    /// Bytes of the files read so far (for the progress line).
    read: Arc<AtomicU64>,
}

impl Reader {
    fn push(&mut self, work: Work) -> bool {
        if !matches!(work, Work::Failed(_)) {
            self.in_batch += 1;
        }
        self.chunk.push(work);
        if self.in_batch >= self.batch_size {
            self.in_batch = 0;
            return self.send(true);
        }
        self.chunk.len() < LINES_PER_CHUNK || self.send(false)
    }

    fn send(&mut self, ends_batch: bool) -> bool {
        let work = std::mem::take(&mut self.chunk);
        self.tx.blocking_send(Chunk { work, ends_batch }).is_ok()
    }

    fn finish(&mut self) {
        if !self.chunk.is_empty() {
            self.send(true);
        }
    }

    fn fail(&mut self, source: &Source, line: Option<usize>, reason: impl Into<String>) -> bool {
        self.push(Work::Failed(Loc::at(&source.file, line, None).fail(reason)))
    }

    fn unit(&mut self, unit: Unit) -> bool {
        let source = Arc::new(unit.source);
        match unit.format {
            Format::Ndjson => match open_ndjson(&unit.path) {
                Ok(reader) => self.lines(&source, reader, &unit.collection_lines),
                Err(reason) => self.fail(&source, None, reason),
            },
            Format::Json => match read_json_file(&unit.path) {
                Ok(bytes) => {
                    self.read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    self.json(&source, &bytes)
                }
                Err(reason) => self.fail(&source, None, reason),
            },
        }
    }

    /// The lines of NDJSON text, but the `skip`ped ones (in order).
    fn lines(&mut self, source: &Arc<Source>, mut reader: impl BufRead, skip: &[usize]) -> bool {
        let mut line = 0;
        let mut skip = skip.iter().peekable();
        loop {
            let mut text = Vec::new();
            match reader.read_until(b'\n', &mut text) {
                Ok(0) => return true,
                Ok(n) => {
                    line += 1;
                    self.read.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => return self.fail(source, Some(line + 1), format!("cannot read: {e}")),
            }
            if skip.next_if_eq(&&line).is_some() || text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if line == 1 && text.starts_with(b"\xEF\xBB\xBF") {
                text.drain(..3);
            }
            let work = Work::Line {
                source: Arc::clone(source),
                line,
                text,
            };
            if !self.push(work) {
                return false;
            }
        }
    }

    fn json(&mut self, source: &Arc<Source>, bytes: &[u8]) -> bool {
        let text = strip_bom(bytes);
        let mut value: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) if is_several_documents(&e) => return self.lines(source, text, &[]),
            Err(e) => return self.fail(source, Some(e.line()), format!("not valid JSON: {e}")),
        };
        let line = Some(first_line(text));
        match value.get("type").and_then(Value::as_str) {
            Some("Feature") => self.push(Work::Value {
                source: Arc::clone(source),
                line,
                pointer: None,
                value,
            }),
            Some("FeatureCollection") => {
                let Some(Value::Array(features)) = value.get_mut("features").map(Value::take)
                else {
                    return self.fail(source, line, "a FeatureCollection without a features array");
                };
                let mut lines = element_lines(text, "features");
                if lines.len() != features.len() {
                    lines.clear();
                }
                for (i, feature) in features.into_iter().enumerate() {
                    let work = Work::Value {
                        source: Arc::clone(source),
                        line: lines.get(i).copied(),
                        pointer: Some(format!("features[{i}]")),
                        value: feature,
                    };
                    if !self.push(work) {
                        return false;
                    }
                }
                true
            }
            Some(kind @ ("Collection" | "Catalog")) => {
                let reason = format!(
                    "reached through an item link, but this is a {kind}; link it with rel \"child\""
                );
                self.fail(source, line, reason)
            }
            other => self.fail(
                source,
                line,
                format!("not a STAC Item or ItemCollection: type {other:?}"),
            ),
        }
    }
}

/// What every validation task checks items against.
struct Rules {
    /// Collections in the catalog, after this load's were written.
    known: HashSet<String>,
    /// `--collection`: the collection of items that name none.
    collection: Option<CollectionId>,
    /// Collections whose items go to a staging table, as COPY rows.
    staged: HashSet<String>,
}

/// What a validation task hands back.
struct Validated {
    batch: ItemBatch,
    /// The items of `batch`, kept to write again in parts if the batch fails.
    records: Vec<(Loc, ItemRecord)>,
    /// Items of staged collections, as rows to COPY.
    staged: Vec<(Loc, String, StagedRow)>,
    /// Their property kinds, per collection.
    staged_properties:
        HashMap<String, std::collections::BTreeMap<String, std::collections::BTreeMap<Kind, u64>>>,
    failures: Vec<Failure>,
    ends_batch: bool,
}

fn validate(chunk: Chunk, rules: &Rules) -> Validated {
    let mut out = Validated {
        batch: ItemBatch::new(),
        records: Vec::new(),
        staged: Vec::new(),
        staged_properties: HashMap::new(),
        failures: Vec::new(),
        ends_batch: chunk.ends_batch,
    };
    for work in chunk.work {
        match work {
            Work::Failed(f) => out.failures.push(f),
            Work::Value {
                source,
                line,
                pointer,
                value,
            } => {
                let loc = Loc::at(&source.file, line, pointer);
                accept(loc, value, &source, rules, &mut out);
            }
            Work::Line { source, line, text } => {
                let loc = Loc::at(&source.file, Some(line), None);
                match serde_json::from_slice::<Value>(&text) {
                    Ok(v) => match v.get("type").and_then(Value::as_str) {
                        Some("Feature") => accept(loc, v, &source, rules, &mut out),
                        // Written with the other Collections, before any item.
                        Some("Collection") if source.scanned => {}
                        Some("Collection") => out.failures.push(loc.fail(
                            "a Collection in a file reached only through an item link is not \
                             loaded; give the file on the command line",
                        )),
                        other => out.failures.push(loc.fail(format!(
                            "expected an Item or a Collection on this NDJSON line, got type {other:?}"
                        ))),
                    },
                    Err(e) => out.failures.push(loc.fail(format!("not valid JSON: {e}"))),
                }
            }
        }
    }
    out
}

fn accept(loc: Loc, value: Value, source: &Source, rules: &Rules, out: &mut Validated) {
    match item_record(value, source.context.as_deref(), rules) {
        Ok(record) if rules.staged.contains(record.collection.as_str()) => {
            match encode_row(&record) {
                Ok(row) => {
                    let collection = record.collection.as_str();
                    let seen = match out.staged_properties.get_mut(collection) {
                        Some(seen) => seen,
                        None => out
                            .staged_properties
                            .entry(collection.to_owned())
                            .or_default(),
                    };
                    count_properties(seen, record.content.get("properties"));
                    out.staged.push((loc, collection.to_owned(), row));
                }
                Err(reason) => out.failures.push(loc.fail(reason)),
            }
        }
        Ok(record) if rules.known.contains(record.collection.as_str()) => {
            out.batch.push(&record);
            out.records.push((loc, record));
        }
        Ok(record) => out.failures.push(loc.fail(format!(
            "collection {} not found: it is neither in the catalog nor among the documents \
             loaded",
            record.collection
        ))),
        Err(reason) => out.failures.push(loc.fail(reason)),
    }
}

/// Validate an item for the collection it names, else the one that links
/// it, else `--collection`.
fn item_record(value: Value, linked: Option<&str>, rules: &Rules) -> Result<ItemRecord, String> {
    let own = value
        .get("collection")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let record = match (&rules.collection, own.as_deref(), linked) {
        (Some(given), Some(c), _) | (Some(given), None, Some(c)) if c != given.as_str() => {
            let how = if own.is_some() {
                "names"
            } else {
                "is linked from"
            };
            return Err(format!(
                "the item {how} collection {c:?}, not {:?} as given with --collection",
                given.as_str()
            ));
        }
        (Some(given), _, _) => ItemRecord::from_value(value, Some(given)),
        (None, Some(_), _) => ItemRecord::from_value(value, None),
        (None, None, Some(c)) => {
            let id = CollectionId::new(c).map_err(|e| format!("collection: {e}"))?;
            ItemRecord::from_value(value, Some(&id))
        }
        (None, None, None) => {
            return Err(
                "the item has no `collection`, and no collection was given for items \
                        without one (--collection ID)"
                    .into(),
            );
        }
    };
    record.map_err(|e| e.to_string())
}

/// An error that no part of the input caused: the load stops. Anything
/// not known to come from the input counts as such.
fn is_fatal(e: &Error) -> bool {
    match e {
        Error::Database(sqlx::Error::Database(db)) => db.code().is_none_or(|code| {
            // Connection, resources, operator intervention, system errors.
            ["08", "53", "57", "58"].iter().any(|c| code.starts_with(c))
        }),
        Error::InvalidDocument { .. }
        | Error::InvalidInput { .. }
        | Error::CollectionNotFound { .. }
        | Error::ItemExists { .. }
        | Error::ItemNotFound { .. } => false,
        _ => true,
    }
}

/// Why the database refused an item, for the report.
fn refusal(e: &Error) -> String {
    match e {
        Error::Database(sqlx::Error::Database(db)) => {
            format!("the database refused the item: {}", db.message())
        }
        other => other.to_string(),
    }
}

/// Validation tasks ahead, one writer behind.
struct Writer<'a> {
    store: &'a Store,
    pending: VecDeque<tokio::task::JoinHandle<Validated>>,
    batch: ItemBatch,
    records: Vec<(Loc, ItemRecord)>,
    report: LoadReport,
    last_log: Instant,
    wrote_items: bool,
    /// Collections the load wrote items to.
    touched: HashSet<String>,
    progress: Progress,
    /// Owns the staging tables, when some collection is staged.
    stager: Option<Stager>,
    /// Staged collections: their staging table and rows not sent yet.
    stagings: HashMap<String, (Staging, Vec<(Loc, StagedRow)>)>,
    /// Rows sent to staging tables (for the progress line).
    staged_rows: u64,
    /// Rows per COPY.
    batch_size: usize,
    /// Rows of staged collections not sent yet.
    pending_rows: usize,
    /// The staging table being swapped in.
    finishing: Option<String>,
}

/// How far a load is: bytes of its files read, of all, since when.
struct Progress {
    started: Instant,
    total_bytes: u64,
    read: Arc<AtomicU64>,
}

impl Progress {
    /// The share of the files' bytes read (0–1) and the seconds still to go
    /// at the rate so far, once there is a rate.
    fn done(&self) -> (f64, Option<f64>) {
        let read = self.read.load(Ordering::Relaxed);
        #[expect(clippy::cast_precision_loss, reason = "a share of byte counts")]
        let share = if self.total_bytes == 0 {
            1.0
        } else {
            (read as f64 / self.total_bytes as f64).min(1.0)
        };
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = (share > 0.0).then(|| elapsed * (1.0 - share) / share);
        (share, eta)
    }
}

impl Writer<'_> {
    async fn take(&mut self, chunk: Chunk, rules: &Arc<Rules>) -> Result<()> {
        let rules = Arc::clone(rules);
        self.pending
            .push_back(tokio::task::spawn_blocking(move || validate(chunk, &rules)));
        while self.pending.len() > VALIDATION_AHEAD {
            self.collect_one().await?;
        }
        Ok(())
    }

    async fn collect_one(&mut self) -> Result<()> {
        let Some(task) = self.pending.pop_front() else {
            return Ok(());
        };
        let v = task
            .await
            .map_err(|e| Error::embedded(format!("validation task failed: {e}")))?;
        self.report.failures.extend(v.failures);
        self.batch.append(v.batch);
        self.records.extend(v.records);
        for (collection, props) in v.staged_properties {
            self.staging(&collection).await?.0.note(props);
        }
        for (loc, collection, row) in v.staged {
            let (staging, pending) = self.staging(&collection).await?;
            pending.push((loc, staging.admit(row)));
            let full = pending.len() >= self.batch_size;
            self.pending_rows += 1;
            if full {
                self.send_staged(&collection).await?;
            } else if self.pending_rows > 4 * self.batch_size {
                // Many collections, each short of a batch: memory stays
                // bounded by sending the fullest.
                let fullest = self
                    .stagings
                    .iter()
                    .max_by_key(|(_, (_, p))| p.len())
                    .map(|(c, _)| c.clone());
                if let Some(c) = fullest {
                    self.send_staged(&c).await?;
                }
            }
        }
        if v.ends_batch {
            self.flush().await?;
        }
        Ok(())
    }

    /// The staging table of a staged collection, made on its first item.
    async fn staging(&mut self, collection: &str) -> Result<&mut (Staging, Vec<(Loc, StagedRow)>)> {
        if !self.stagings.contains_key(collection) {
            let stager = self
                .stager
                .as_mut()
                .ok_or_else(|| Error::embedded("a staged item without a stager"))?;
            let staging = stager.stage(collection).await?;
            self.touched.insert(collection.to_owned());
            self.stagings
                .insert(collection.to_owned(), (staging, Vec::new()));
        }
        self.stagings
            .get_mut(collection)
            .ok_or_else(|| Error::embedded("staging table vanished"))
    }

    /// Write a staged collection's pending rows.
    async fn send_staged(&mut self, collection: &str) -> Result<()> {
        let Some((staging, pending)) = self.stagings.get_mut(collection) else {
            return Ok(());
        };
        let rows = std::mem::take(pending);
        self.pending_rows -= rows.len();
        let Some(stager) = self.stager.as_mut() else {
            return Ok(());
        };
        let (counts, failures) = write_isolating(stager, staging, rows).await?;
        if staging.is_staged() {
            // Counted for the report when the staging table is swapped in.
            self.staged_rows += counts.inserted;
            self.wrote_items |= counts.inserted > 0;
        } else {
            self.count(counts);
        }
        self.report.failures.extend(failures);
        self.log_progress();
        Ok(())
    }

    /// Send what is left to the staging tables, then swap each in.
    async fn finish_staging(&mut self) -> Result<()> {
        let collections: Vec<String> = self.stagings.keys().cloned().collect();
        for collection in collections {
            self.send_staged(&collection).await?;
            let (Some(stager), Some((staging, _))) =
                (self.stager.as_mut(), self.stagings.remove(&collection))
            else {
                continue;
            };
            let Some(table) = staging.table().map(str::to_owned) else {
                continue;
            };
            info!(
                collection,
                "building the indexes of the loaded items and swapping them in"
            );
            // Still dropped by `abandon` should this fail.
            self.finishing = Some(table);
            let done = stager.finish(self.store, staging).await?;
            self.finishing = None;
            let written = done.counts.inserted + done.counts.updated;
            self.staged_rows = self.staged_rows.saturating_sub(written);
            self.count(done.counts);
            if done.swapped {
                self.report.staged.push(collection);
            }
        }
        Ok(())
    }

    /// After an error: drop the staging tables (best effort).
    async fn abandon(&mut self) {
        if let Some(stager) = self.stager.as_mut() {
            let tables: Vec<String> = self
                .stagings
                .values()
                .filter_map(|(s, _)| s.table().map(str::to_owned))
                .chain(self.finishing.take())
                .collect();
            stager.abandon(tables.into_iter()).await;
        }
    }

    fn log_progress(&mut self) {
        if self.last_log.elapsed() <= Duration::from_secs(5) {
            return;
        }
        self.last_log = Instant::now();
        let items = self.report.items_inserted + self.report.items_updated + self.staged_rows;
        let (share, eta) = self.progress.done();
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let rate = items as f64 / self.progress.started.elapsed().as_secs_f64().max(1e-3);
        info!(
            items,
            items_per_second = format!("{rate:.0}"),
            read = format!("{:.1} %", share * 100.0),
            eta_seconds = eta.map(|s| format!("{s:.0}")),
            "loading"
        );
    }

    async fn drain(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            self.collect_one().await?;
        }
        self.flush().await?;
        self.finish_staging().await
    }

    /// Write the batch in one transaction. If the database refuses it, the
    /// transaction is rolled back whole and the batch written again in
    /// halves, down to the single items it refuses.
    async fn flush(&mut self) -> Result<()> {
        if self.records.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let mut records = std::mem::take(&mut self.records);
        self.touched
            .extend(batch.collections().into_iter().map(str::to_owned));
        match self.write(&batch).await? {
            Ok(counts) => self.count(counts),
            Err(e) if records.len() == 1 => {
                let (loc, _) = &records[0];
                self.report.failures.push(loc.fail(refusal(&e)));
            }
            Err(e) => {
                debug!(error = %e, items = records.len(), "batch refused; writing it in parts");
                let second = records.split_off(records.len() / 2);
                self.isolate(vec![second, records]).await?;
                return Ok(());
            }
        }
        // Items hold parsed JSON; free it off the writer's thread.
        tokio::task::spawn_blocking(move || drop(records));
        self.log_progress();
        Ok(())
    }

    /// Write each part (the last first) in its own transaction, halving the
    /// parts the database refuses.
    async fn isolate(&mut self, mut parts: Vec<Vec<(Loc, ItemRecord)>>) -> Result<()> {
        while let Some(mut part) = parts.pop() {
            let mut batch = ItemBatch::new();
            for (_, record) in &part {
                batch.push(record);
            }
            match self.write(&batch).await? {
                Ok(counts) => self.count(counts),
                Err(e) if part.len() == 1 => {
                    let (loc, _) = &part[0];
                    self.report.failures.push(loc.fail(refusal(&e)));
                }
                Err(_) => {
                    let second = part.split_off(part.len() / 2);
                    parts.push(second);
                    parts.push(part);
                }
            }
        }
        Ok(())
    }

    fn count(&mut self, c: WriteCounts) {
        self.report.items_inserted += c.inserted;
        self.report.items_updated += c.updated;
        self.wrote_items = true;
        debug!(inserted = c.inserted, updated = c.updated, "batch written");
    }

    /// One transaction: `Ok(Err(_))` when the database refused the batch
    /// (and nothing of it was kept), `Err(_)` when the load cannot go on.
    async fn write(&self, batch: &ItemBatch) -> Result<Result<WriteCounts>> {
        let mut tx = self.store.pool().begin().await?;
        // A crash loses at most the last batches of a re-runnable load; no
        // need to wait for each commit's flush to disk.
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        match Store::write_batch(&mut tx, batch, OnConflict::Replace).await {
            Ok(c) => {
                tx.commit().await?;
                Ok(Ok(c))
            }
            Err(e) if is_fatal(&e) => Err(e),
            Err(e) => {
                tx.rollback().await?;
                Ok(Err(e))
            }
        }
    }
}

/// Fresh statistics, so that the planner picks the indexes at once, and a
/// visibility map, so that counts are index-only scans; both now rather
/// than whenever autovacuum gets round to it. Only the partitions written
/// are vacuumed and analysed, unless the load wrote a tenth or more of the
/// catalog: then all of `items`, with the parent's own statistics, which
/// autovacuum never gathers (and which a small load hardly moves). A load
/// into a catalog of many large collections thus costs its own
/// collections' passes, not a sample of every partition.
async fn refresh_statistics(store: &Store, touched: &HashSet<String>, written: u64) -> Result<()> {
    let rows: f64 = sqlx::query_scalar(
        "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::float8 FROM pg_class c \
         JOIN pg_inherits i ON i.inhrelid = c.oid WHERE i.inhparent = 'items'::regclass",
    )
    .fetch_one(store.pool())
    .await?;
    #[expect(clippy::cast_precision_loss, reason = "a share")]
    let share = written as f64 / rows.max(1.0);
    if share >= 0.1 {
        sqlx::query("VACUUM (ANALYZE) items")
            .execute(store.pool())
            .await?;
        return Ok(());
    }
    let mut collections: Vec<&String> = touched.iter().collect();
    collections.sort();
    for collection in collections {
        let partition: Option<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'items'::regclass AND c.relname = items_partition_name($1)",
        )
        .bind(collection)
        .fetch_optional(store.pool())
        .await?;
        if let Some(partition) = partition {
            sqlx::query(&format!("VACUUM (ANALYZE) {partition}"))
                .execute(store.pool())
                .await?;
        }
    }
    Ok(())
}

/// Write rows of a staged collection; when the database refuses them,
/// again in halves, down to the single rows it refuses. Returns what was
/// written and the rows refused.
async fn write_isolating(
    stager: &mut Stager,
    staging: &mut Staging,
    rows: Vec<(Loc, StagedRow)>,
) -> Result<(WriteCounts, Vec<Failure>)> {
    let mut written = WriteCounts::default();
    let mut failures = Vec::new();
    let mut parts = vec![rows];
    while let Some(mut part) = parts.pop() {
        if part.is_empty() {
            continue;
        }
        let refs: Vec<&StagedRow> = part.iter().map(|(_, r)| r).collect();
        match stager.write(staging, &refs).await {
            Ok(c) => {
                written.inserted += c.inserted;
                written.updated += c.updated;
            }
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) if part.len() == 1 => {
                staging.forget(&part[0].1.bytes);
                failures.push(part[0].0.fail(refusal(&e)));
            }
            Err(e) => {
                debug!(error = %e, rows = part.len(), "rows refused; writing them in parts");
                let second = part.split_off(part.len() / 2);
                parts.push(second);
                parts.push(part);
            }
        }
    }
    Ok((written, failures))
}

/// Write the Collections the scan found; returns the ids now in the catalog.
async fn write_collections(
    store: &Store,
    collections: Vec<(Loc, Value)>,
    report: &mut LoadReport,
) -> Result<HashSet<String>> {
    let mut known: HashSet<String> = store
        .list_collections(&crate::access::Visibility::all())
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    if collections.is_empty() {
        return Ok(known);
    }
    let mut conn = store.pool().acquire().await?;
    for (loc, value) in collections {
        let record = match CollectionRecord::from_value(value) {
            Ok(r) => r,
            Err(e) => {
                report.failures.push(loc.fail(e.to_string()));
                continue;
            }
        };
        match Store::upsert_collection(&mut conn, &record).await {
            Ok(_) => {
                known.insert(record.id.as_str().to_owned());
                report.collections += 1;
            }
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => report.failures.push(loc.fail(refusal(&e))),
        }
    }
    Ok(known)
}

/// Load every path (files or directories) into the store, with default
/// options and this batch size.
pub async fn load_paths(
    store: &Store,
    paths: Vec<PathBuf>,
    batch_size: usize,
) -> Result<LoadReport> {
    let options = LoadOptions {
        batch_size: NonZeroUsize::new(batch_size).unwrap_or(NonZeroUsize::MIN),
        ..LoadOptions::default()
    };
    load(store, paths, &options).await
}

/// Load every path (files or directories) into the store.
///
/// Fails only when the load cannot go on (the database is unreachable, or
/// the collection of [`LoadOptions::collection`] does not exist); bad
/// documents are in the report.
pub async fn load(store: &Store, paths: Vec<PathBuf>, options: &LoadOptions) -> Result<LoadReport> {
    let started = Instant::now();
    let scan_options = options.clone();
    let found = tokio::task::spawn_blocking(move || scan(&paths, &scan_options))
        .await
        .map_err(|e| Error::embedded(format!("reader task failed: {e}")))?;
    let mut report = LoadReport {
        failures: found.failures,
        ..LoadReport::default()
    };
    let known = write_collections(store, found.collections, &mut report).await?;
    if let Some(id) = &options.collection
        && !known.contains(id.as_str())
    {
        return Err(Error::CollectionNotFound { id: id.clone() });
    }
    info!(
        collections = report.collections,
        files = found.units.len(),
        "collections written; loading items"
    );
    let stager = if options.staging {
        Some(Stager::begin(store).await?)
    } else {
        None
    };
    let rules = Arc::new(Rules {
        staged: stager
            .as_ref()
            .map(|s| s.stageable().intersection(&known).cloned().collect())
            .unwrap_or_default(),
        known,
        collection: options.collection.clone(),
    });

    let (tx, mut rx) = mpsc::channel::<Chunk>(VALIDATION_AHEAD * 2);
    let batch_size = options.batch_size.get();
    let units = found.units;
    let read = Arc::new(AtomicU64::new(0));
    let progress = Progress {
        started,
        total_bytes: units
            .iter()
            .filter_map(|u| std::fs::metadata(&u.path).ok())
            .map(|m| m.len())
            .sum(),
        read: Arc::clone(&read),
    };
    let reader = tokio::task::spawn_blocking(move || {
        let mut r = Reader {
            tx,
            batch_size,
            chunk: Vec::new(),
            in_batch: 0,
            read,
        };
        for unit in units {
            if !r.unit(unit) {
                return;
            }
        }
        r.finish();
    });
    let mut w = Writer {
        store,
        pending: VecDeque::new(),
        batch: ItemBatch::new(),
        records: Vec::new(),
        report,
        last_log: Instant::now(),
        wrote_items: false,
        touched: HashSet::new(),
        progress,
        stager: stager.filter(|_| !rules.staged.is_empty()),
        stagings: HashMap::new(),
        staged_rows: 0,
        batch_size,
        pending_rows: 0,
        finishing: None,
    };
    let written = async {
        while let Some(chunk) = rx.recv().await {
            w.take(chunk, &rules).await?;
        }
        w.drain().await
    }
    .await;
    if let Err(e) = written {
        w.abandon().await;
        return Err(e);
    }
    reader
        .await
        .map_err(|e| Error::embedded(format!("reader task failed: {e}")))?;
    if w.wrote_items {
        let written = w.report.items_inserted + w.report.items_updated;
        refresh_statistics(store, &w.touched, written).await?;
    }
    let mut report = w.report;
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_the_share_of_bytes_read_and_the_time_left() {
        let progress = Progress {
            started: Instant::now().checked_sub(Duration::from_secs(10)).unwrap(),
            total_bytes: 400,
            read: Arc::new(AtomicU64::new(0)),
        };
        let (share, eta) = progress.done();
        assert!(share.abs() < 1e-9 && eta.is_none(), "{share} {eta:?}");
        progress.read.store(100, Ordering::Relaxed);
        let (share, eta) = progress.done();
        assert!((share - 0.25).abs() < 1e-9);
        // A quarter in about ten seconds: about thirty to go.
        assert!((eta.unwrap() - 30.0).abs() < 1.0, "{eta:?}");
        let empty = Progress {
            total_bytes: 0,
            ..progress
        };
        assert!((empty.done().0 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn element_lines_finds_each_feature_of_a_pretty_printed_collection() {
        let text = br#"{
  "type": "FeatureCollection",
  "note": "features: [not this]",
  "links": [{"rel": "x", "href": "y"}],
  "features": [
    {"type": "Feature", "links": [1, 2]},
    {
      "type": "Feature"
    },
    "x", 3
  ]
}"#;
        assert_eq!(element_lines(text, "features"), [6, 7, 10, 10]);
        assert_eq!(element_lines(text, "links"), [4]);
        assert!(element_lines(b"{\"features\": []}", "features").is_empty());
        assert!(element_lines(b"[1, 2]", "features").is_empty());
    }

    #[test]
    fn binary_and_parquet_files_are_named_as_such() {
        let parquet = not_json(b"PAR1\x15\x04\x15").unwrap();
        assert!(parquet.contains("Parquet"), "{parquet}");
        assert!(not_json(b"\x00\x01\x02binary").unwrap().contains("binary"));
        assert!(not_json(b"id,name\n1,a").unwrap().contains("\"id,name"));
        assert!(not_json(b"\xEF\xBB\xBF {\"type\": 1}").is_none());
        assert!(not_json(b"\n[1]").is_none());
    }

    #[test]
    fn hrefs_are_percent_decoded_and_remote_ones_refused() {
        let base = Path::new("/data/catalog");
        assert_eq!(
            link_path(base, "./my%20items/a%2Bb.json").unwrap(),
            PathBuf::from("./my items/a+b.json")
        );
        assert_eq!(
            link_path(base, "file:///data/with%20space/x.json").unwrap(),
            PathBuf::from("/data/with space/x.json")
        );
        assert!(link_path(base, "https://example.com/x.json").is_err());
        assert!(link_path(base, "file://elsewhere/x.json").is_err());
        assert_eq!(
            lexical(Path::new("/data/catalog/../../etc/x.json")),
            PathBuf::from("/etc/x.json")
        );
    }

    #[test]
    fn items_go_to_their_own_collection_else_the_linking_one_else_the_given_one() {
        let rules = |given: Option<&str>| Rules {
            known: HashSet::new(),
            collection: given.map(|c| CollectionId::new(c).unwrap()),
            staged: HashSet::new(),
        };
        let item = |collection: Option<&str>| {
            let mut v = serde_json::json!({
                "type": "Feature", "stac_version": "1.0.0", "id": "x", "geometry": null,
                "properties": {"datetime": "2024-01-01T00:00:00Z"}, "assets": {}
            });
            if let Some(c) = collection {
                v["collection"] = c.into();
            }
            v
        };
        let c = |r: Result<ItemRecord, String>| r.map(|r| r.collection.as_str().to_owned());
        assert_eq!(
            c(item_record(item(None), None, &rules(Some("g")))),
            Ok("g".into())
        );
        assert_eq!(
            c(item_record(item(Some("g")), None, &rules(Some("g")))),
            Ok("g".into())
        );
        assert!(
            c(item_record(item(Some("o")), None, &rules(Some("g"))))
                .unwrap_err()
                .contains("\"o\"")
        );
        assert!(
            c(item_record(item(None), Some("l"), &rules(Some("g"))))
                .unwrap_err()
                .contains("linked")
        );
        assert_eq!(
            c(item_record(item(None), Some("l"), &rules(None))),
            Ok("l".into())
        );
        assert_eq!(
            c(item_record(item(Some("o")), Some("l"), &rules(None))),
            Ok("o".into())
        );
        assert!(
            c(item_record(item(None), None, &rules(None)))
                .unwrap_err()
                .contains("--collection")
        );
    }
}
