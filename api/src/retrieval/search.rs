//! Search, in one place: which lists run, as one statement, and their fusion.
//!
//! A search runs up to two legs, each restricted to the caller's scope *before* ranking:
//! * keyword (`keyword.rs`): full-text match with OR semantics and BM25-style scores on all
//!   five searchable layers, from their GIN indexes;
//! * vector: pgvector L2 distance on the three vectorised layers. The HNSW index cannot apply
//!   the scope filter itself, so a small project would silently lose rows; each layer's vector
//!   list therefore takes an exact scan when the scope is small (absolutely or as a share of
//!   the table; `vector_path.rs` decides), and otherwise HNSW with relaxed iterative scans
//!   (pgvector 0.8) so filtered-out candidates are replaced rather than dropped.
//!
//! `fusion.rs` merges the lists (reciprocal-rank fusion by default). `mode=keyword|vector`
//! runs one leg. The whole search is one SQL statement (`hybrid_sql`), after a small one that
//! parses the query into terms (`keyword::lexemes`, keyword leg only); only the choice of
//! the selecting terms (`keyword::plan`) and the fusion run here. The HNSW settings and the
//! text-search configuration are session settings of every pooled connection (`db.rs`).

use std::sync::LazyLock;

use serde_json::Value;
use sqlx::PgConnection;

pub use crate::retrieval::fusion::{DEFAULT_VECTOR_WEIGHT, Fusion, Hit, Mode, SearchOptions};
use crate::retrieval::keyword::{self, Common};
use crate::retrieval::vector_path::{Paths, VectorPath};
use crate::runtime::state::AppState;
use crate::security::tenancy::Scope;
use crate::store::layers::Layer;
use crate::store::records::{ROW_JSON, row_json};

/// Longest search query, in characters (422 beyond).
pub const MAX_QUERY_CHARS: usize = 1000;
/// Longest word of a search query, in characters (422 beyond): no lexeme is longer, and a
/// bound keeps the query's parsing cheap.
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

/// The layers with a keyword list, in statement order (the first three are
/// `Layer::VECTOR_LAYERS`, whose scope sizes the vector-path cache knows).
pub const KEYWORD_SOURCES: [Layer; 5] =
    [Layer::Semantic, Layer::Episodic, Layer::Procedural, Layer::Rag, Layer::Working];

/// A layer's extra row condition and recency column for its keyword list.
fn keyword_shape(layer: Layer) -> (&'static str, &'static str) {
    match layer {
        Layer::Working => (" AND (t.expires_at IS NULL OR t.expires_at > now())", "updated_at"),
        _ => ("", "created_at"),
    }
}

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

/// The whole search as one statement: with `keyword`, five keyword lists of
/// at most `per_list` rows; given the vector paths, three vector lists. Rows: (source,
/// position, value, row JSON), where source indexes `KEYWORD_SOURCES` and then
/// `Layer::VECTOR_LAYERS`, and value is the BM25 score of a keyword hit or the L2 distance of
/// a vector hit. Parameters: $1 tenant, $2 project, $3 the query's terms and $6 their selecting
/// disjunction (`keyword::plan`), $4 the keyword layers' scope sizes (int8[5], 0 when
/// unknown), $5 the query vector (NULL without vectors).
pub fn hybrid_sql(keyword: bool, paths: Option<Paths>, per_list: i64) -> String {
    let limit = per_list.to_string();
    let mut ctes = Vec::new();
    // (CTE, layer, is a vector list, source number)
    let mut lists: Vec<(String, Layer, bool, usize)> = Vec::new();
    if keyword {
        ctes.push(keyword::TERMS_CTE.to_owned());
        for (i, layer) in KEYWORD_SOURCES.into_iter().enumerate() {
            let name = format!("k{i}");
            let (filter, at) = keyword_shape(layer);
            let rows = format!("$4[{}]::float8", i + 1);
            ctes.push(keyword::layer_ctes(&name, layer.table(), filter, at, &rows, &limit));
            lists.push((name, layer, false, i));
        }
    }
    for (i, (layer, path)) in paths.iter().flat_map(|p| Layer::VECTOR_LAYERS.into_iter().zip(*p)).enumerate() {
        let name = format!("v{i}");
        ctes.push(vector_cte(&name, layer.table(), per_list, path));
        lists.push((name, layer, true, KEYWORD_SOURCES.len() + i));
    }
    let selects: Vec<String> = lists
        .iter()
        .map(|(name, layer, is_vector, src)| {
            let value = if *is_vector { format!("{name}.dist") } else { format!("{name}.score") };
            format!(
                "SELECT {src}::int4, {name}.pos, {value}::float8, {} FROM {name} JOIN {} t USING (id)",
                row_json(*layer),
                layer.table()
            )
        })
        .collect();
    format!("WITH {} {}", ctes.join(",\n"), selects.join("\nUNION ALL "))
}

static RAG_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {ROW_JSON} FROM {} t WHERE t.tenant = $1 AND t.project_id = $2 AND t.fts @@ $3::text::tsquery
         ORDER BY t.created_at DESC LIMIT $4",
        Layer::Rag.table()
    )
});

/// Rag snippets matching the query's selecting terms (the keyword leg's match, from the GIN
/// index), newest first (`GET /rag/search`).
pub async fn rag_matches(
    conn: &mut PgConnection,
    scope: &Scope,
    query: &str,
    limit: i64,
    common: &Common,
) -> Result<Vec<Value>, sqlx::Error> {
    let lexemes = keyword::lexemes(conn, query).await?;
    let Some(any) = keyword::plan(&lexemes, common, 0).any else { return Ok(Vec::new()) };
    sqlx::query_scalar(sqlx::AssertSqlSafe(RAG_SQL.as_str()))
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(any)
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Ranked candidates before fusion, each list in its own order.
#[derive(Default)]
pub struct Candidates {
    /// (layer, row, BM25 score), each layer best first.
    pub keyword: Vec<(Layer, Value, f64)>,
    /// (layer, row, L2 distance), each layer nearest first.
    pub vector: Vec<(Layer, Value, f64)>,
    /// Lists the statement ran: 1 (one leg) or 2.
    pub legs: usize,
}

/// Runs the search statement: with `keyword` (the scope sizes of `KEYWORD_SOURCES`, 0 when
/// unknown, and the common lexemes; the query's terms are parsed first), `per_list` rows at most from each keyword list; with a query vector, from each
/// vector list along `paths`.
pub async fn candidates(
    conn: &mut PgConnection,
    scope: &Scope,
    query: &str,
    keyword: Option<([i64; 5], &Common)>,
    vector: Option<(&[f32], Paths)>,
    per_list: i64,
) -> Result<Candidates, sqlx::Error> {
    // The limit and the paths are part of the text, so each combination is its own prepared
    // statement (per connection): clients use a handful of limits, and there are 8 paths.
    let sql = hybrid_sql(keyword.is_some(), vector.map(|(_, paths)| paths), per_list);
    let (sizes, terms) = match keyword {
        Some((sizes, common)) => {
            let lexemes = keyword::lexemes(conn, query).await?;
            (sizes, keyword::plan(&lexemes, common, sizes.iter().copied().max().unwrap_or(0)))
        }
        None => ([0; 5], keyword::Terms::default()),
    };
    let mut rows = sqlx::query_as::<_, (i32, i64, Option<f64>, Value)>(sqlx::AssertSqlSafe(sql))
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(&terms.each)
        .bind(sizes.to_vec())
        .bind(vector.map(|(v, _)| pgvector::Vector::from(v.to_vec())))
        .bind(&terms.any)
        .fetch_all(conn)
        .await?;
    rows.sort_by_key(|r| (r.0, r.1));
    let mut out =
        Candidates { legs: usize::from(keyword.is_some()) + usize::from(vector.is_some()), ..Default::default() };
    for (src, _, value, row) in rows {
        let src = src as usize;
        let value = value.unwrap_or(f64::NAN);
        match KEYWORD_SOURCES.get(src) {
            Some(layer) => out.keyword.push((*layer, row, value)),
            None => out.vector.push((Layer::VECTOR_LAYERS[src - KEYWORD_SOURCES.len()], row, value)),
        }
    }
    Ok(out)
}

/// Search across the five searchable layers; see the module comment for the ranking.
pub async fn hybrid(
    state: &AppState,
    scope: &Scope,
    query: &str,
    limit: i64,
    options: SearchOptions,
) -> Result<Vec<Hit>, crate::web::error::AppError> {
    let limit = limit.clamp(1, 100);
    let qv = if options.mode.vector() { state.embedder.embed_one(query).await? } else { None };
    // Refused before any connection is taken.
    if qv.is_none() && options.mode == Mode::Vector {
        return Err(crate::web::error::AppError::validation(
            &["query", "mode"],
            "mode=vector needs an embedding backend, and this store has none (PINAK_EMBEDDING_BACKEND=none)",
            "value_error",
        ));
    }
    let mut conn = state.pool.acquire().await?;
    let stats = state.vector_paths.stats(&mut conn, scope).await?;
    // The common lexemes serve only the keyword lists.
    let common = if options.mode.keyword() { Some(state.common_terms.get(&mut conn).await?) } else { None };
    let keyword = common.as_deref().map(|common| {
        let [s, e, p] = stats.rows;
        ([s, e, p, 0, 0], common)
    });
    let vector = qv.as_deref().map(|v| (v, stats.paths));
    let found = candidates(&mut conn, scope, query, keyword, vector, 2 * limit).await?;
    Ok(rank(found, options.fusion, limit as usize))
}

/// The final ranking of a search's candidates (`fusion.rs`).
pub fn rank(found: Candidates, fusion: Fusion, limit: usize) -> Vec<Hit> {
    crate::retrieval::fusion::fuse(found.keyword, found.vector, fusion, found.legs, limit)
}
