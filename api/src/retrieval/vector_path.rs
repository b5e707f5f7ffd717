//! Which path a scope's vector search takes on each vectorised layer: an exact scan of the
//! scope's rows, or the HNSW index with relaxed iterative scans.
//!
//! The HNSW index covers a whole table (every tenant and project), so a filtered query walks
//! the graph until enough of the scope's rows turn up: its cost grows as the scope's share of
//! the table shrinks, and its recall falls. An exact scan costs the scope's size and is always
//! right. So a scope is searched exactly when it holds at most
//! `max(PINAK_EXACT_SEARCH_MAX_ROWS, PINAK_EXACT_SEARCH_MAX_FRACTION x the table's rows)`
//! vectors (at 1M rows, a 1 % project: exact 110 q/s at recall 1.0 against HNSW 26 q/s at
//! 0.94; docs/performance.md).
//!
//! Sizes are counted once per scope and kept in this pod for `PINAK_SCOPE_SIZE_TTL_SECS`, so
//! a search pays no count. The keyword list reuses them as its collection size (`N` of its
//! IDF, keyword.rs). The choice is only a cost decision: both paths return the scope's
//! rows, so a stale size never returns another scope's data or a wrong result set, at worst
//! a slower plan (or HNSW's recall) until the entry expires.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgConnection;

use crate::security::tenancy::Scope;
use crate::store::layers::Layer;

/// How one layer's vector list is ranked for a scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VectorPath {
    /// Every row of the scope ranked by distance (no index can serve `l2_distance()`).
    Exact,
    /// The layer's HNSW index over the full-precision vectors (`vector_l2_ops`), relaxed
    /// iterative scan.
    Hnsw,
    /// The layer's HNSW index over half-precision copies (`halfvec_l2_ops` on
    /// `embedding::halfvec(384)`, what migrations/0004 builds), relaxed iterative scan.
    HnswHalf,
}

/// The paths of `Layer::VECTOR_LAYERS`, in that order.
pub type Paths = [VectorPath; 3];

/// The threshold rule (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    pub max_rows: i64,
    pub max_fraction: f64,
}

/// Entries kept before the cache is emptied; a pod serves far fewer active scopes.
const MAX_ENTRIES: usize = 10_000;

/// One statement: per layer, the table's row estimate (`pg_class.reltuples`, kept by
/// autovacuum; -1 before the first ANALYZE) turned into the exact-path limit, the scope's
/// rows counted on the scope index up to one past that limit, and the form of the layer's
/// HNSW index `<table>_hnsw` (half precision or not: a store's index may be rebuilt either
/// way, and a query must use the indexed expression). $1 tenant, $2 project, $3 `max_rows`,
/// $4 `max_fraction`.
static MEASURE_SQL: LazyLock<String> = LazyLock::new(|| {
    let columns: Vec<String> = Layer::VECTOR_LAYERS
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let table = layer.table();
            format!(
                "l{i} AS (SELECT greatest($3::int8, ($4::float8 * greatest((SELECT reltuples FROM pg_class WHERE oid = to_regclass('{table}')), 0))::int8) AS lim),
                 n{i} AS (SELECT count(*) AS n FROM (SELECT 1 FROM {table} t
                          WHERE t.tenant = $1 AND t.project_id = $2 ORDER BY t.created_at DESC LIMIT (SELECT lim + 1 FROM l{i})) s)"
            )
        })
        .collect();
    let picks: Vec<String> = Layer::VECTOR_LAYERS
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            format!(
                "(SELECT n FROM n{i}) <= (SELECT lim FROM l{i}), coalesce(pg_get_indexdef(to_regclass('{}_hnsw')) LIKE '%halfvec_l2_ops%', false), (SELECT n FROM n{i})",
                layer.table()
            )
        })
        .collect();
    format!("WITH {} SELECT {}", columns.join(",\n"), picks.join(", "))
});

/// What a scope's measurement yields: each vectorised layer's path, and its row count (exact
/// up to the rule's limit, then a lower bound: the count stops one past it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopeStats {
    pub paths: Paths,
    pub rows: [i64; 3],
}

/// Counts the scope's rows and applies `rule` (one round trip).
pub async fn measure(conn: &mut PgConnection, scope: &Scope, rule: Rule) -> Result<Paths, sqlx::Error> {
    Ok(measure_stats(conn, scope, rule).await?.paths)
}

/// `measure`, with the counts.
pub async fn measure_stats(conn: &mut PgConnection, scope: &Scope, rule: Rule) -> Result<ScopeStats, sqlx::Error> {
    type Row = (bool, bool, i64, bool, bool, i64, bool, bool, i64);
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(MEASURE_SQL.as_str()))
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(rule.max_rows)
        .bind(rule.max_fraction)
        .fetch_one(conn)
        .await?;
    let path = |exact: bool, half: bool| match (exact, half) {
        (true, _) => VectorPath::Exact,
        (false, true) => VectorPath::HnswHalf,
        (false, false) => VectorPath::Hnsw,
    };
    Ok(ScopeStats { paths: [path(row.0, row.1), path(row.3, row.4), path(row.6, row.7)], rows: [row.2, row.5, row.8] })
}

/// The pod's cache of measured paths, keyed by scope.
pub struct PathCache {
    rule: Rule,
    ttl: Duration,
    entries: Mutex<HashMap<(String, String), (Instant, ScopeStats)>>,
}

impl PathCache {
    pub fn new(rule: Rule, ttl: Duration) -> Self {
        Self { rule, ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// The scope's paths: cached, or measured on `conn` and cached.
    pub async fn paths(&self, conn: &mut PgConnection, scope: &Scope) -> Result<Paths, sqlx::Error> {
        Ok(self.stats(conn, scope).await?.paths)
    }

    /// The scope's paths and row counts: cached, or measured on `conn` and cached.
    pub async fn stats(&self, conn: &mut PgConnection, scope: &Scope) -> Result<ScopeStats, sqlx::Error> {
        let key = (scope.tenant.clone(), scope.project.clone());
        if let Some((at, stats)) = self.lock().get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(*stats);
        }
        let stats = measure_stats(conn, scope, self.rule).await?;
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), stats));
        Ok(stats)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (Instant, ScopeStats)>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts).
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
