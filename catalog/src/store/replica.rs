//! Reads from a streaming replica, writes to the primary, and a client
//! reads its own writes.
//!
//! Every read of the API (search, items, collections, tiles, aggregations,
//! queryables) asks [`Store::reader`] for a pool. It is the replica's when
//! the replica has replayed the primary's WAL up to the newest write the
//! read must see, else the primary's. The newest write a read must see is
//! the later of
//!
//! - the newest write **this process** made (its LSN is taken from the
//!   primary after each request that wrote), so that a client of one
//!   process always reads what it wrote through it; and
//! - the LSN a request carries in `Arcolake-Read-After` (every response to
//!   a request that wrote gives it), so that a client behind a load
//!   balancer that sends it back reads its writes from any process.
//!
//! A background task ([`Store::watch_replica`]) asks the replica for its
//! replay position every 20 ms; a replica that does not answer is skipped
//! until it answers again. Lookups of one thing by id (an item, a
//! collection, a registered search) that the replica does not have are
//! asked of the primary too, so a write made through another process
//! without the header is found as soon as it is committed.
//!
//! Reads after a write of the same request (the document a PUT answers
//! with) go to the primary. Access control (API keys, the policy, which
//! collections are restricted) is always read from the primary: a revoked
//! key or a newly restricted collection must stop being served at once, not
//! once the replica catches up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;

use super::Store;
use crate::Result;

/// A lookup of one thing (`$body`, an `Option`, run with `$pool` bound to
/// a pool): on the reader, and when a replica did not have it, on the
/// primary (a write through another process may not have reached the
/// replica yet). A macro, not a function taking an async closure, so that
/// the handlers' futures stay `Send`.
macro_rules! lookup {
    ($store:expr, |$pool:ident| $body:expr) => {{
        let store = $store;
        let $pool = store.reader();
        let found = $body;
        match (&found, store.primary_if_replica($pool)) {
            (None, Some($pool)) => $body,
            _ => found,
        }
    }};
}
pub(crate) use lookup;

/// The header a write's response carries and a later request sends back.
pub const READ_AFTER_HEADER: &str = "arcolake-read-after";

/// How often the replica's replay position is asked for.
const POLL: Duration = Duration::from_millis(20);

tokio::task_local! {
    /// Per request: the LSN its reads must see (from its header), and
    /// whether it wrote.
    static REQUEST: RequestMarks;
}

/// What one request's reads must see, and whether it wrote.
#[derive(Debug, Default)]
struct RequestMarks {
    read_after: u64,
    wrote: AtomicBool,
}

/// A read replica and how far it has replayed.
#[derive(Debug)]
pub(crate) struct Replica {
    pool: PgPool,
    /// The replica's replay LSN (`u64::MAX` for a server that is not in
    /// recovery, e.g. a logical replica: it is taken as caught up).
    replayed: AtomicU64,
    /// The newest write of this process.
    written: AtomicU64,
    /// Whether the replica answered its last poll.
    up: AtomicBool,
    /// Reads sent to the replica and to the primary.
    reads_here: AtomicU64,
    reads_on_primary: AtomicU64,
}

/// Reads sent to the replica and to the primary so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Served by the replica.
    pub replica: u64,
    /// Served by the primary (no replica, or one behind or down).
    pub primary: u64,
}

impl Store {
    /// The same store, reading from `pool` (a streaming replica of this
    /// store's database) whenever it is recent enough.
    /// [`Store::watch_replica`] must run for it to be used.
    #[must_use]
    pub fn with_replica(mut self, pool: PgPool) -> Self {
        self.replica = Some(Arc::new(Replica {
            pool,
            replayed: AtomicU64::new(0),
            written: AtomicU64::new(0),
            up: AtomicBool::new(false),
            reads_here: AtomicU64::new(0),
            reads_on_primary: AtomicU64::new(0),
        }));
        self
    }

    /// Whether reads may go to a replica.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// The pool a read runs on: the replica's when it has replayed every
    /// write the read must see, else the primary's.
    pub(crate) fn reader(&self) -> &PgPool {
        let Some(r) = &self.replica else {
            return &self.pool;
        };
        let (read_after, wrote) = REQUEST
            .try_with(|m| (m.read_after, m.wrote.load(Ordering::Acquire)))
            .unwrap_or((0, false));
        let needed = r.written.load(Ordering::Acquire).max(read_after);
        if !wrote && r.up.load(Ordering::Acquire) && r.replayed.load(Ordering::Acquire) >= needed {
            r.reads_here.fetch_add(1, Ordering::Relaxed);
            &r.pool
        } else {
            r.reads_on_primary.fetch_add(1, Ordering::Relaxed);
            &self.pool
        }
    }

    /// With a replica, the restricted collections `visibility` does not
    /// see, read on the primary, for reads that may run on the replica.
    /// `None` without a replica: the reads then check the flags themselves.
    pub(crate) async fn hidden_on_primary(
        &self,
        visibility: &crate::access::Visibility,
    ) -> Result<Option<Vec<String>>> {
        if self.replica.is_none() || visibility.is_all() {
            return Ok(None);
        }
        self.hidden_collections(visibility).await.map(Some)
    }

    /// The primary, when a read on [`Store::reader`] found nothing and the
    /// reader was a replica (see the module's notes); `None` otherwise.
    pub(crate) fn primary_if_replica<'a>(&'a self, used: &PgPool) -> Option<&'a PgPool> {
        self.replica
            .as_ref()
            .filter(|r| std::ptr::eq(used, &raw const r.pool))
            .map(|_| &self.pool)
    }

    /// Note that the current request wrote (called by every write).
    pub(crate) fn wrote(&self) {
        if self.replica.is_some() {
            let _ = REQUEST.try_with(|m| m.wrote.store(true, Ordering::Release));
        }
    }

    /// Run one request's work with its `Arcolake-Read-After` LSN; returns
    /// its output and, when it wrote, the primary's LSN after the write (to
    /// send back in the header). Without a replica, just runs it.
    pub async fn request_scope<F: Future>(
        &self,
        read_after: u64,
        work: F,
    ) -> (F::Output, Option<u64>) {
        let Some(r) = &self.replica else {
            return (work.await, None);
        };
        let marks = RequestMarks {
            read_after,
            wrote: AtomicBool::new(false),
        };
        let (output, wrote) = REQUEST
            .scope(marks, async {
                let output = work.await;
                (output, REQUEST.with(|m| m.wrote.load(Ordering::Acquire)))
            })
            .await;
        if !wrote {
            return (output, None);
        }
        match sqlx::query_scalar::<_, i64>("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
            .fetch_one(&self.pool)
            .await
        {
            Ok(lsn) => {
                let lsn = u64::try_from(lsn).unwrap_or(0);
                r.written.fetch_max(lsn, Ordering::AcqRel);
                (output, Some(lsn))
            }
            Err(e) => {
                // Without the LSN the next reads may miss this write for as
                // long as the replica lags; the replica is not given up.
                tracing::warn!(error = %e, "could not read the primary's WAL position after a write");
                (output, None)
            }
        }
    }

    /// Reads served so far by the replica and by the primary.
    pub fn read_counts(&self) -> ReadCounts {
        self.replica
            .as_ref()
            .map_or_else(ReadCounts::default, |r| ReadCounts {
                replica: r.reads_here.load(Ordering::Relaxed),
                primary: r.reads_on_primary.load(Ordering::Relaxed),
            })
    }

    /// Keep the replica's replay position current (runs until dropped).
    /// Without a replica, returns at once.
    pub async fn watch_replica(self) {
        let Some(r) = self.replica.clone() else {
            return;
        };
        let mut warned = false;
        loop {
            let polled: std::result::Result<Option<i64>, sqlx::Error> =
                sqlx::query_scalar("SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint")
                    .fetch_one(&r.pool)
                    .await;
            match polled {
                Ok(lsn) => {
                    let lsn = lsn.map_or(u64::MAX, |l| u64::try_from(l).unwrap_or(0));
                    r.replayed.store(lsn, Ordering::Release);
                    if !r.up.swap(true, Ordering::AcqRel) {
                        tracing::info!("the read replica answers: reads go to it");
                    }
                    if lsn == u64::MAX && !warned {
                        warned = true;
                        tracing::warn!(
                            "the read database is not a streaming standby (not in recovery): \
                             reads go to it without waiting for it to catch up"
                        );
                    }
                }
                Err(e) => {
                    if r.up.swap(false, Ordering::AcqRel) {
                        tracing::warn!(error = %e, "the read replica does not answer: reads go to the primary");
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Parse an `Arcolake-Read-After` value (a decimal LSN).
    pub fn parse_read_after(value: &str) -> Result<u64> {
        value.trim().parse().map_err(|_| crate::Error::InvalidInput {
            reason: format!(
                "{READ_AFTER_HEADER}: {value:?} is not a WAL position (the whole number an earlier response gave)"
            ),
        })
    }
}
