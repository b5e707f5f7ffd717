//! Search ranking, in one place.
//!
//! Hybrid search = keyword hits + vector hits, fused by weight (the contract's default 0.5):
//! * keyword: full-text (`tsvector`, all of the query's words, ranked by `ts_rank`) on
//!   semantic, episodic and procedural; a literal, escaped ILIKE over up to 8 words on rag and
//!   working. Keyword score = 1 - i/n by position in that concatenated list.
//! * vector: pgvector L2 distance d on the three vectorised layers, score = 1/(1+d²).
//! * fused = w·vector + (1-w)·keyword; hits merge by id; sort by score; cut to `limit`.
//!
//! Every query is restricted to the caller's scope *before* ranking. The HNSW index cannot
//! apply that filter itself, so a small project would silently lose rows; each layer's vector
//! list therefore takes an exact scan when the scope is small (absolutely or as a share of
//! the table; `vector_path.rs` decides), and otherwise HNSW with relaxed iterative scans
//! (pgvector 0.8) so filtered-out candidates are replaced rather than dropped.
//!
//! The whole search is one SQL statement, one round trip (`hybrid_sql`); only the fusion runs
//! here. The HNSW settings are session settings of every pooled connection (`db.rs`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::LazyLock;

use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::retrieval::vector_path::{Paths, VectorPath};
use crate::runtime::state::AppState;
use crate::security::tenancy::Scope;
use crate::store::layers::Layer;
use crate::store::records::{ROW_JSON, row_json};

pub const DEFAULT_VECTOR_WEIGHT: f64 = 0.5;
const MAX_LIKE_WORDS: usize = 8;
/// Longest search query, in characters (422 beyond).
pub const MAX_QUERY_CHARS: usize = 1000;
/// Longest word of a search query, in characters (422 beyond): an unanchored `ILIKE` costs
/// in proportion to the pattern's length times the text's.
pub const MAX_QUERY_WORD_CHARS: usize = 100;

/// Refuses a search query longer than `MAX_QUERY_CHARS` or with a word longer than
/// `MAX_QUERY_WORD_CHARS`, before any statement runs.
pub fn check_query(query: &str) -> Result<(), crate::web::error::AppError> {
    let refuse =
        |msg: String| Err(crate::web::error::AppError::validation(&["query", "query"], msg, "string_too_long"));
    if query.chars().count() > MAX_QUERY_CHARS {
        return refuse(format!("query should have at most {MAX_QUERY_CHARS} characters"));
    }
    if query.split_whitespace().any(|w| w.chars().count() > MAX_QUERY_WORD_CHARS) {
        return refuse(format!("each word of query should have at most {MAX_QUERY_WORD_CHARS} characters"));
    }
    Ok(())
}

/// A ranked hit: the row (with `type` and `score` added) and its id.
#[derive(Clone, Debug)]
pub struct Hit {
    pub layer: Layer,
    pub id: String,
    pub row: Value,
    pub score: f64,
}

/// Escapes LIKE wildcards so user text only ever matches literally.
pub fn like_patterns(query: &str) -> Vec<String> {
    query
        .split_whitespace()
        .take(MAX_LIKE_WORDS)
        .map(|w| format!("%{}%", w.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")))
        .collect()
}

/// Where a candidate came from: the keyword lists in their fusion order, then the vector
/// lists. Keyword scores are positional over the concatenation of the keyword lists.
const KEYWORD_SOURCES: [Layer; 5] = [Layer::Semantic, Layer::Episodic, Layer::Procedural, Layer::Rag, Layer::Working];

/// Full-text match on a vectorised layer: every word of the query (AND, as the prototype's
/// FTS5), through `plainto_tsquery`, which accepts any text without error. Ranked on the index
/// alone; the row JSON is built only for the survivors of the LIMIT.
fn keyword_fts_cte(name: &str, table: &str, limit: &str) -> String {
    format!(
        "{name} AS (SELECT id, row_number() OVER (ORDER BY rank DESC, at DESC) AS pos FROM (
             SELECT t.id, ts_rank(t.fts, q.tsq) AS rank, t.created_at AS at FROM {table} t, q
             WHERE t.tenant = $1 AND t.project_id = $2 AND t.fts @@ q.tsq
             ORDER BY rank DESC, at DESC LIMIT {limit}) s)"
    )
}

/// Literal word match (any of the first 8 words, in `$4`, wildcards escaped), newest first.
fn keyword_like_cte(name: &str, table: &str, matches: &str, order: &str, limit: &str) -> String {
    format!(
        "{name} AS (SELECT id, row_number() OVER (ORDER BY at DESC) AS pos FROM (
             SELECT id, {order} AS at FROM {table}
             WHERE tenant = $1 AND project_id = $2 AND {matches}
             ORDER BY {order} DESC LIMIT {limit}) s)"
    )
}

const RAG_MATCH: &str = "(query ILIKE ANY($4) OR content ILIKE ANY($4) OR external_source ILIKE ANY($4))";
const WORKING_MATCH: &str = "(expires_at IS NULL OR expires_at > now()) AND value ILIKE ANY($4)";

/// Nearest rows of one layer within the scope (`$5` the query vector), by the scope's path
/// (`vector_path`): ranked exactly by `l2_distance()`, which no index serves, so Postgres
/// reads the scope's rows through the scope index; or through the HNSW index
/// (`vector_order`) with the session's relaxed iterative scan (see `db.rs`), so rows removed
/// by the scope filter are replaced rather than dropped. The limit is a literal, so even a
/// generic plan costs the HNSW branch for `k` rows.
fn vector_cte(name: &str, table: &str, per_list: i64, path: VectorPath) -> String {
    let order = vector_order(path, "$5");
    format!(
        "{name} AS (SELECT id, dist, row_number() OVER (ORDER BY dist) AS pos FROM (
             SELECT t.id, l2_distance(t.embedding, $5) AS dist FROM {table} t
             WHERE t.tenant = $1 AND t.project_id = $2 AND t.embedding IS NOT NULL
             ORDER BY {order} LIMIT {per_list}) s)"
    )
}

/// The sort expression of a path, against the query vector `param`. An HNSW index serves
/// only the expression it was built on: `embedding <-> v` for a full-precision graph,
/// `embedding::halfvec(384) <-> v::halfvec(384)` for a half-precision one (migrations/0004).
/// A half-precision walk compares half-precision values; the returned distances and the
/// order within each list use the full-precision column.
pub fn vector_order(path: VectorPath, param: &str) -> String {
    match path {
        VectorPath::Exact => format!("l2_distance(t.embedding, {param})"),
        VectorPath::Hnsw => format!("t.embedding <-> {param}"),
        VectorPath::HnswHalf => format!("t.embedding::halfvec(384) <-> {param}::halfvec(384)"),
    }
}

/// The whole hybrid search as one statement (one round trip): five keyword lists of at most
/// `per_list` rows and, given the vector paths, three vector lists. Rows: (source, position,
/// distance, row JSON), where source indexes `KEYWORD_SOURCES` and then
/// `Layer::VECTOR_LAYERS`. Parameters: $1 tenant, $2 project, $3 query text, $4 LIKE
/// patterns, and with vectors $5 the query vector.
pub fn hybrid_sql(paths: Option<Paths>, per_list: i64) -> String {
    let limit = per_list.to_string();
    let mut ctes = vec!["q AS (SELECT plainto_tsquery('simple', $3) AS tsq)".to_owned()];
    let mut lists: Vec<(String, Layer, bool)> = Vec::new();
    for (i, layer) in KEYWORD_SOURCES.into_iter().enumerate() {
        let name = format!("k{i}");
        ctes.push(match layer {
            Layer::Rag => keyword_like_cte(&name, layer.table(), RAG_MATCH, "created_at", &limit),
            Layer::Working => keyword_like_cte(&name, layer.table(), WORKING_MATCH, "updated_at", &limit),
            _ => keyword_fts_cte(&name, layer.table(), &limit),
        });
        lists.push((name, layer, false));
    }
    for (i, (layer, path)) in paths.iter().flat_map(|p| Layer::VECTOR_LAYERS.into_iter().zip(*p)).enumerate() {
        let name = format!("v{i}");
        ctes.push(vector_cte(&name, layer.table(), per_list, path));
        lists.push((name, layer, true));
    }
    let selects: Vec<String> = lists
        .iter()
        .enumerate()
        .map(|(src, (name, layer, is_vector))| {
            let dist = if *is_vector { format!("{name}.dist") } else { "NULL::float8".into() };
            format!(
                "SELECT {src}::int4, {name}.pos, {dist}, {} FROM {name} JOIN {} t USING (id)",
                row_json(*layer),
                layer.table()
            )
        })
        .collect();
    format!("WITH {} {}", ctes.join(",\n"), selects.join("\nUNION ALL "))
}

static RAG_LIKE_SQL: LazyLock<String> = LazyLock::new(|| {
    let table = Layer::Rag.table();
    format!(
        "WITH {} SELECT {ROW_JSON} FROM k JOIN {table} t USING (id) ORDER BY k.pos",
        keyword_like_cte("k", table, RAG_MATCH, "created_at", "$5")
    )
});

/// Rag snippets by literal word match, newest first (`GET /rag/search`). Parameters as in
/// the hybrid statement, with `$5` the limit; `$3` (the text) is unused here.
pub async fn rag_like(
    conn: &mut PgConnection,
    scope: &Scope,
    query: &str,
    limit: i64,
) -> Result<Vec<Value>, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(RAG_LIKE_SQL.as_str()))
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(query)
        .bind(like_patterns(query))
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Ranked candidates before fusion, each list in its own order.
#[derive(Default)]
pub struct Candidates {
    /// (layer, row), in fusion order.
    pub keyword: Vec<(Layer, Value)>,
    /// (layer, row, L2 distance), each layer nearest first.
    pub vector: Vec<(Layer, Value, f64)>,
}

/// Runs the hybrid statement: `per_list` rows at most from each keyword list and, with a
/// query vector, from each vector list along `paths`.
pub async fn candidates(
    conn: &mut PgConnection,
    scope: &Scope,
    query: &str,
    vector: Option<(&[f32], Paths)>,
    per_list: i64,
) -> Result<Candidates, sqlx::Error> {
    // The limit and the paths are part of the text, so each combination is its own prepared
    // statement (per connection): clients use a handful of limits, and there are 8 paths.
    let sql = hybrid_sql(vector.map(|(_, paths)| paths), per_list);
    let mut q = sqlx::query_as::<_, (i32, i64, Option<f64>, Value)>(sqlx::AssertSqlSafe(sql))
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(query)
        .bind(like_patterns(query));
    if let Some((v, _)) = vector {
        q = q.bind(pgvector::Vector::from(v.to_vec()));
    }
    let mut rows = q.fetch_all(conn).await?;
    rows.sort_by_key(|r| (r.0, r.1));
    let mut out = Candidates::default();
    for (src, _, dist, row) in rows {
        let src = src as usize;
        match KEYWORD_SOURCES.get(src) {
            Some(layer) => out.keyword.push((*layer, row)),
            None => out.vector.push((Layer::VECTOR_LAYERS[src - KEYWORD_SOURCES.len()], row, dist.unwrap_or(f64::NAN))),
        }
    }
    Ok(out)
}

fn id_of(row: &Value) -> String {
    row["id"].as_str().unwrap_or_default().to_owned()
}

/// Hybrid search across the five searchable layers; see the module comment for the ranking.
pub async fn hybrid(
    state: &AppState,
    scope: &Scope,
    query: &str,
    limit: i64,
    weight: f64,
) -> Result<Vec<Hit>, crate::web::error::AppError> {
    let limit = limit.clamp(1, 100);
    let qv = state.embedder.embed_one(query).await?;
    let mut conn = state.pool.acquire().await?;
    let vector = match qv.as_deref() {
        Some(v) => Some((v, state.vector_paths.paths(&mut conn, scope).await?)),
        None => None,
    };
    let found = candidates(&mut conn, scope, query, vector, 2 * limit).await?;
    Ok(rank(found, weight, limit as usize))
}

/// The final ranking of a search's candidates: vector score 1/(1+d²), then `fuse`.
pub fn rank(found: Candidates, weight: f64, limit: usize) -> Vec<Hit> {
    let vector = found
        .vector
        .into_iter()
        .map(|(layer, row, d)| (layer, row, if d.is_finite() { 1.0 / (1.0 + d * d) } else { 0.1 }))
        .collect();
    fuse(found.keyword, vector, weight, limit)
}

/// Weighted fusion of the keyword list (positional scores) and vector scores.
pub fn fuse(keyword: Vec<(Layer, Value)>, vector: Vec<(Layer, Value, f64)>, weight: f64, limit: usize) -> Vec<Hit> {
    let n = keyword.len().max(1) as f64;
    let mut order: Vec<String> = Vec::new();
    let mut hits: HashMap<String, (Layer, Value, f64, f64)> = HashMap::new();
    for (i, (layer, row)) in keyword.into_iter().enumerate() {
        let id = id_of(&row);
        if let Entry::Vacant(slot) = hits.entry(id.clone()) {
            order.push(id);
            slot.insert((layer, row, 1.0 - i as f64 / n, 0.0));
        }
    }
    for (layer, row, score) in vector {
        let id = id_of(&row);
        match hits.get_mut(&id) {
            Some(h) => h.3 = h.3.max(score),
            None => {
                order.push(id.clone());
                hits.insert(id, (layer, row, 0.0, score));
            }
        }
    }
    let mut out: Vec<Hit> = order
        .into_iter()
        .filter_map(|id| hits.remove(&id).map(|h| (id, h)))
        .map(|(id, (layer, mut row, kw, vec))| {
            let score = weight * vec + (1.0 - weight) * kw;
            row["type"] = json!(layer.name());
            row["score"] = json!(score);
            Hit { layer, id, row, score }
        })
        .collect();
    // Stable sort: equal scores keep keyword order.
    out.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal));
    out.truncate(limit);
    out
}
