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
//! apply that filter itself, so a small project would silently lose rows; the vector path
//! therefore picks, per layer, an exact scan when the scope holds at most
//! `PINAK_EXACT_SEARCH_MAX_ROWS` vectors, and otherwise HNSW with relaxed iterative scans
//! (pgvector 0.8) so filtered-out candidates are replaced rather than dropped.

use std::collections::HashMap;

use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::layers::Layer;
use crate::records::ROW_JSON;
use crate::state::AppState;
use crate::tenancy::Scope;

pub const DEFAULT_VECTOR_WEIGHT: f64 = 0.5;
const MAX_LIKE_WORDS: usize = 8;

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

/// Full-text match: every word of the query (AND, as the prototype's FTS5), through
/// `plainto_tsquery`, which accepts any text without error. Rows are ranked on the index
/// alone; their JSON is built only for the survivors of the LIMIT.
async fn keyword_fts(conn: &mut PgConnection, layer: Layer, scope: &Scope, query: &str, limit: i64) -> Result<Vec<Value>, sqlx::Error> {
    let sql = format!(
        "WITH q AS (SELECT plainto_tsquery('simple', $3) AS tsq),
              hits AS (SELECT t.id, ts_rank(t.fts, q.tsq) AS rank, t.created_at FROM {table} t, q
                       WHERE t.tenant = $1 AND t.project_id = $2 AND t.fts @@ q.tsq
                       ORDER BY rank DESC, t.created_at DESC LIMIT $4)
         SELECT {ROW_JSON} FROM hits JOIN {table} t USING (id) ORDER BY hits.rank DESC, hits.created_at DESC",
        table = layer.table()
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(&scope.tenant).bind(&scope.project).bind(query).bind(limit).fetch_all(conn).await
}

/// Literal word match (any of the first 8 words, wildcards escaped) on one layer, newest first.
/// `matches` is the layer's condition over `$3` (the patterns), and `order` its recency column.
async fn like_search(conn: &mut PgConnection, layer: Layer, matches: &str, order: &str, scope: &Scope, query: &str, limit: i64) -> Result<Vec<Value>, sqlx::Error> {
    let patterns = like_patterns(query);
    if patterns.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "WITH hits AS (SELECT id, {order} AS at FROM {table} WHERE tenant = $1 AND project_id = $2 AND {matches} ORDER BY {order} DESC LIMIT $4)
         SELECT {ROW_JSON} FROM hits JOIN {table} t USING (id) ORDER BY hits.at DESC",
        table = layer.table()
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(&scope.tenant).bind(&scope.project).bind(&patterns).bind(limit).fetch_all(conn).await
}

/// Rag snippets by literal word match, newest first (also `GET /rag/search`).
pub async fn rag_like(conn: &mut PgConnection, scope: &Scope, query: &str, limit: i64) -> Result<Vec<Value>, sqlx::Error> {
    let matches = "(query ILIKE ANY($3) OR content ILIKE ANY($3) OR external_source ILIKE ANY($3))";
    like_search(conn, Layer::Rag, matches, "created_at", scope, query, limit).await
}

/// Unexpired working notes by literal word match, newest first.
async fn working_like(conn: &mut PgConnection, scope: &Scope, query: &str, limit: i64) -> Result<Vec<Value>, sqlx::Error> {
    let matches = "(expires_at IS NULL OR expires_at > now()) AND value ILIKE ANY($3)";
    like_search(conn, Layer::Working, matches, "updated_at", scope, query, limit).await
}

/// Nearest rows of one layer within the scope, exact or HNSW by the scope's size.
/// Returns (row, L2 distance), nearest first.
pub async fn vector_layer(conn: &mut PgConnection, state: &AppState, layer: Layer, scope: &Scope, query: &[f32], k: i64) -> Result<Vec<(Value, f64)>, sqlx::Error> {
    let table = layer.table();
    let max_exact = state.config.exact_search_max_rows;
    let in_scope: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM (SELECT 1 FROM {table} WHERE tenant = $1 AND project_id = $2 AND embedding IS NOT NULL LIMIT $3) s"
    )))
    .bind(&scope.tenant)
    .bind(&scope.project)
    .bind(max_exact + 1)
    .fetch_one(&mut *conn)
    .await?;
    if in_scope == 0 {
        return Ok(Vec::new());
    }
    let exact = in_scope <= max_exact;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    if exact {
        // No index scans: the scope's rows come from a bitmap scan and are ranked exactly.
        sqlx::query("SET LOCAL enable_indexscan = off").execute(&mut *tx).await?;
    } else {
        sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL hnsw.ef_search = {}", state.config.hnsw_ef_search.clamp(1, 1000)))).execute(&mut *tx).await?;
        sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order").execute(&mut *tx).await?;
    }
    // Rank on (id, distance) only; build the row JSON for the k survivors.
    let sql = format!(
        "WITH s AS (SELECT t.id, t.embedding <-> $3 AS dist FROM {table} t
                    WHERE t.tenant = $1 AND t.project_id = $2 AND t.embedding IS NOT NULL
                    ORDER BY t.embedding <-> $3 LIMIT $4)
         SELECT {ROW_JSON} AS row, s.dist FROM s JOIN {table} t USING (id) ORDER BY s.dist"
    );
    let rows: Vec<(Value, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(pgvector::Vector::from(query.to_vec()))
        .bind(k)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

fn id_of(row: &Value) -> String {
    row["id"].as_str().unwrap_or_default().to_owned()
}

/// Hybrid search across the five searchable layers; see the module comment for the ranking.
pub async fn hybrid(state: &AppState, scope: &Scope, query: &str, limit: i64, weight: f64) -> Result<Vec<Hit>, crate::error::AppError> {
    let limit = limit.clamp(1, 100);
    let mut conn = state.pool.acquire().await?;
    let mut keyword: Vec<(Layer, Value)> = Vec::new();
    for layer in Layer::VECTOR_LAYERS {
        keyword.extend(keyword_fts(&mut conn, layer, scope, query, 2 * limit).await?.into_iter().map(|r| (layer, r)));
    }
    keyword.extend(rag_like(&mut conn, scope, query, 2 * limit).await?.into_iter().map(|r| (Layer::Rag, r)));
    keyword.extend(working_like(&mut conn, scope, query, 2 * limit).await?.into_iter().map(|r| (Layer::Working, r)));

    let mut vector: Vec<(Layer, Value, f64)> = Vec::new();
    if let Some(qv) = state.embedder.embed_one(query).await? {
        for layer in Layer::VECTOR_LAYERS {
            for (row, d) in vector_layer(&mut conn, state, layer, scope, &qv, 2 * limit).await? {
                let score = if d.is_finite() { 1.0 / (1.0 + d * d) } else { 0.1 };
                vector.push((layer, row, score));
            }
        }
    }
    Ok(fuse(keyword, vector, weight, limit as usize))
}

/// Weighted fusion of the keyword list (positional scores) and vector scores.
pub fn fuse(keyword: Vec<(Layer, Value)>, vector: Vec<(Layer, Value, f64)>, weight: f64, limit: usize) -> Vec<Hit> {
    let n = keyword.len().max(1) as f64;
    let mut order: Vec<String> = Vec::new();
    let mut hits: HashMap<String, (Layer, Value, f64, f64)> = HashMap::new();
    for (i, (layer, row)) in keyword.into_iter().enumerate() {
        let id = id_of(&row);
        if !hits.contains_key(&id) {
            order.push(id.clone());
            hits.insert(id, (layer, row, 1.0 - i as f64 / n, 0.0));
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
