//! Queryables from the store: the properties items carry, cached briefly.
//!
//! Searches with a filter or a sort need the queryables of the searched
//! collections on every request; reading them from `item_properties` each
//! time would cost a round trip, so they are cached for a few seconds, with
//! the titles the collections' summaries give. A name the cache does not
//! know triggers one fresh read before it is refused, so a property written
//! a moment ago is never a 400.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sqlx::Row;

use super::Store;
use crate::Result;
use crate::access::Visibility;
use crate::search::queryables::summary_titles;
use crate::search::{Kind, Queryables};

/// How long the cache is trusted.
const FRESH_FOR: Duration = Duration::from_secs(10);

/// Collection → property → the kinds its items hold.
type Kinds = HashMap<String, BTreeMap<String, Vec<Kind>>>;

/// What the store knows of the properties: kinds, and titles from the
/// collections' summaries (collection → property → title).
#[derive(Debug, Default)]
struct Seen {
    kinds: Kinds,
    titles: BTreeMap<String, BTreeMap<String, String>>,
}

/// The cache and the operator's overrides, shared by clones of a store.
#[derive(Debug, Default)]
pub(super) struct QueryablesCache {
    seen: Mutex<Option<(Instant, Arc<Seen>)>>,
    /// Collection id (or `*` for all) → property → JSON Schema.
    overrides: Map<String, Value>,
}

impl QueryablesCache {
    pub(super) fn with_overrides(overrides: Map<String, Value>) -> Self {
        Self {
            seen: Mutex::new(None),
            overrides,
        }
    }
}

/// Operator overrides: `{"*": {...}, "collection-id": {...}}`, each a map of
/// property → JSON Schema or a queryables document with `properties`.
pub fn parse_overrides(doc: &Value) -> std::result::Result<Map<String, Value>, String> {
    let Value::Object(scopes) = doc else {
        return Err(
            "the queryables file must be a JSON object keyed by collection id or \"*\"".into(),
        );
    };
    let mut out = Map::new();
    for (scope, entry) in scopes {
        let props = entry.get("properties").unwrap_or(entry);
        let Value::Object(props) = props else {
            return Err(format!(
                "queryables for {scope:?} must be an object of property schemas"
            ));
        };
        for (name, schema) in props {
            if Kind::from_schema(schema).is_none() {
                return Err(format!(
                    "queryable {name:?} for {scope:?} has no JSON Schema type this server can compare"
                ));
            }
        }
        out.insert(scope.clone(), Value::Object(props.clone()));
    }
    Ok(out)
}

impl Store {
    async fn seen(&self, fresh: bool) -> Result<Arc<Seen>> {
        if !fresh
            && let Ok(guard) = self.queryables.seen.lock()
            && let Some((at, seen)) = guard.as_ref()
            && at.elapsed() < FRESH_FOR
        {
            return Ok(seen.clone());
        }
        let rows =
            sqlx::query("SELECT collection, name, kind FROM item_properties ORDER BY 1, 2, 3")
                .fetch_all(self.reader())
                .await?;
        let mut kinds: Kinds = HashMap::new();
        for row in rows {
            let Some(kind) = Kind::parse(row.get::<&str, _>(2)) else {
                continue;
            };
            kinds
                .entry(row.get(0))
                .or_default()
                .entry(row.get(1))
                .or_default()
                .push(kind);
        }
        let summaries = sqlx::query(
            "SELECT id, content->'summaries' FROM collections \
             WHERE jsonb_typeof(content->'summaries') = 'object' ORDER BY id",
        )
        .fetch_all(self.reader())
        .await?;
        let titles = summaries
            .iter()
            .map(|row| {
                let summaries: Value = row.get(1);
                (row.get::<String, _>(0), summary_titles(&summaries))
            })
            .filter(|(_, t)| !t.is_empty())
            .collect();
        let seen = Arc::new(Seen { kinds, titles });
        if let Ok(mut guard) = self.queryables.seen.lock() {
            *guard = Some((Instant::now(), seen.clone()));
        }
        Ok(seen)
    }

    /// The queryables of `collections` (all collections `visibility` sees
    /// when empty; those it does not see count as empty): the union of what
    /// their items carry, with the operator's overrides.
    pub async fn queryables(
        &self,
        collections: &[String],
        visibility: &Visibility,
    ) -> Result<Queryables> {
        let seen = self.seen(false).await?;
        let hidden: HashSet<String> = self
            .hidden_collections(visibility)
            .await?
            .into_iter()
            .collect();
        Ok(self.queryables_of(&seen, collections, &hidden))
    }

    /// The queryables a search of `collections` may name: theirs, and
    /// those of every other visible collection (which match nothing in
    /// these). `fresh` bypasses the cache.
    pub async fn search_queryables(
        &self,
        collections: &[String],
        visibility: &Visibility,
        fresh: bool,
    ) -> Result<Queryables> {
        let seen = self.seen(fresh).await?;
        let hidden: HashSet<String> = self
            .hidden_collections(visibility)
            .await?
            .into_iter()
            .collect();
        let mut q = self.queryables_of(&seen, collections, &hidden);
        if !collections.is_empty() {
            q.fill_from(&self.queryables_of(&seen, &[], &hidden));
        }
        Ok(q)
    }

    fn queryables_of(
        &self,
        seen: &Seen,
        collections: &[String],
        hidden: &HashSet<String>,
    ) -> Queryables {
        let visible = |c: &String| !hidden.contains(c);
        let mut merged: BTreeMap<String, Vec<Kind>> = BTreeMap::new();
        let mut add = |props: &BTreeMap<String, Vec<Kind>>| {
            for (name, kinds) in props {
                let entry = merged.entry(name.clone()).or_default();
                for k in kinds {
                    if !entry.contains(k) {
                        entry.push(*k);
                    }
                }
            }
        };
        if collections.is_empty() {
            seen.kinds
                .iter()
                .filter(|(c, _)| visible(c))
                .for_each(|(_, props)| add(props));
        } else {
            collections
                .iter()
                .filter(|c| visible(c))
                .filter_map(|c| seen.kinds.get(c))
                .for_each(&mut add);
        }
        let mut q = Queryables::from_seen(&merged);
        // The first collection (in the order asked, or by id) that titles a
        // property decides its title.
        let mut titles: BTreeMap<String, String> = BTreeMap::new();
        let mut take = |t: &BTreeMap<String, String>| {
            for (name, title) in t {
                titles.entry(name.clone()).or_insert_with(|| title.clone());
            }
        };
        if collections.is_empty() {
            seen.titles
                .iter()
                .filter(|(c, _)| visible(c))
                .for_each(|(_, t)| take(t));
        } else {
            collections
                .iter()
                .filter(|c| visible(c))
                .filter_map(|c| seen.titles.get(c))
                .for_each(&mut take);
        }
        q.apply_titles(&titles);
        if let Some(Value::Object(all)) = self.queryables.overrides.get("*") {
            q.apply_overrides(all);
        }
        for c in collections.iter().filter(|c| visible(c)) {
            if let Some(Value::Object(one)) = self.queryables.overrides.get(c) {
                q.apply_overrides(one);
            }
        }
        q
    }
}
