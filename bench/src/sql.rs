//! Direct Postgres side: the store schema (created with the API's own migrations), bulk load
//! of the embedded corpus, and the search SQL of `api/src/retrieval/search.rs` run without the
//! service.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use crate::api::{TENANT, recall};
use crate::corpus::Item;
use crate::load::Op;
use pinak_api::retrieval::search::vector_order;
use pinak_api::retrieval::vector_path::{self, Paths, Rule, ScopeStats, VectorPath};
use pinak_api::security::tenancy::Scope;

/// High half of every benchmark row id; the low half is the document index.
pub const ID_NAMESPACE: u64 = 0x7069_6e61_6b62_656e; // "pinakben"
pub const MAIN_PROJECT: &str = "main";
pub const SMALL_PROJECT: &str = "small";
/// `embedding_model` of the loaded rows: the name the local backend records, so an API with
/// the local backend (or the http backend configured with this name) finds nothing to re-embed.
pub const MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

pub fn doc_id(i: usize) -> uuid::Uuid {
    uuid::Uuid::from_u64_pair(ID_NAMESPACE, i as u64)
}

/// Every 100th document belongs to the small project (1 % of rows), the rest to main.
pub fn project_of(i: usize) -> &'static str {
    if i.is_multiple_of(100) { SMALL_PROJECT } else { MAIN_PROJECT }
}

pub async fn connect(url: &str, schema: Option<&str>) -> Result<PgConnection> {
    let mut opts = PgConnectOptions::from_str(url)?.application_name("pinak-bench");
    if let Some(s) = schema {
        opts = opts.options([("search_path", format!("\"{s}\",public").as_str())]);
    }
    PgConnection::connect_with(&opts).await.with_context(|| format!("connecting to {url}"))
}

/// Drops the schemas earlier benchmark runs left behind (this cluster is the benchmark's own).
pub async fn drop_old_schemas(url: &str) -> Result<usize> {
    let mut c = connect(url, None).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'bench\\_%'")
            .fetch_all(&mut c)
            .await?;
    for n in &names {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{n}\" CASCADE"))).execute(&mut c).await?;
    }
    Ok(names.len())
}

/// Drops a store schema and its job-queue schema (`<schema>_worker`, api/src/runtime/jobs.rs).
pub async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    let mut c = connect(url, None).await?;
    for s in [schema.to_owned(), format!("{schema}_worker")] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"))).execute(&mut c).await?;
    }
    Ok(())
}

/// Rows whose vector another model wrote (the API re-embeds rows of a foreign model in the
/// background, api/src/runtime/jobs.rs; a benchmark store must not change under the measurement).
pub async fn foreign_vectors(url: &str, schema: &str) -> Result<i64> {
    let mut c = connect(url, Some(schema)).await?;
    Ok(sqlx::query_scalar("SELECT count(*) FROM memories_semantic WHERE embedding_model IS DISTINCT FROM $1")
        .bind(MODEL)
        .fetch_one(&mut c)
        .await?)
}

pub struct ServerInfo {
    pub version: String,
    pub pgvector: String,
    pub settings: String,
}

pub async fn server_info(url: &str) -> Result<ServerInfo> {
    let mut c = connect(url, None).await?;
    let version: String = sqlx::query_scalar("SELECT split_part(version(), ' on ', 1)").fetch_one(&mut c).await?;
    let pgvector: String = sqlx::query_scalar("SELECT extversion::text FROM pg_extension WHERE extname = 'vector'")
        .fetch_optional(&mut c)
        .await?
        .unwrap_or_default();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT name::text, current_setting(name) FROM pg_settings WHERE name IN ('shared_buffers', 'fsync', 'max_connections', 'synchronous_commit') ORDER BY name",
    )
    .fetch_all(&mut c)
    .await?;
    let settings = rows.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    Ok(ServerInfo { version, pgvector, settings })
}

/// Creates `schema` with the API's migrations (the same code path `pinak-api` runs at start).
pub async fn migrate(url: &str, schema: &str) -> Result<()> {
    let opts = PgConnectOptions::from_str(url)?
        .options([("search_path", format!("\"{schema}\",public").as_str()), ("timezone", "UTC")]);
    let pool = PgPoolOptions::new().max_connections(1).connect_with(opts).await?;
    pinak_api::store::db::migrate(&pool, schema).await?;
    pool.close().await;
    Ok(())
}

fn copy_escape(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

pub struct LoadStats {
    pub rows: usize,
    pub copy: Duration,
    pub index: Duration,
    pub analyze: Duration,
}

/// Loads the documents into `memories_semantic` with COPY (the real vectors; the API would
/// compute its own), rebuilding the HNSW index from the migration afterwards.
pub async fn load_docs(url: &str, schema: &str, docs: &[Item]) -> Result<LoadStats> {
    let mut c = connect(url, Some(schema)).await?;
    // The migration's index, rebuilt as defined after the load (faster than per-row inserts).
    let index_def: String =
        sqlx::query_scalar("SELECT pg_get_indexdef('memories_semantic_hnsw'::regclass)").fetch_one(&mut c).await?;
    sqlx::query("DROP INDEX memories_semantic_hnsw").execute(&mut c).await?;
    let t = Instant::now();
    let mut copy = c
        .copy_in_raw(
            "COPY memories_semantic (id, tenant, project_id, content, tags, agent_id, client_id, client_name, embedding, embedding_model, embedding_dim) FROM STDIN",
        )
        .await?;
    let mut buf = String::with_capacity(4 << 20);
    for (i, d) in docs.iter().enumerate() {
        buf.push_str(&format!("{}\t{TENANT}\t{}\t", doc_id(i), project_of(i)));
        copy_escape(&d.text, &mut buf);
        buf.push_str("\t[\"bench\"]\tbench-agent\tbench-client\tpinak-bench\t[");
        for (j, x) in d.vector.iter().enumerate() {
            if j > 0 {
                buf.push(',');
            }
            buf.push_str(&x.to_string());
        }
        buf.push_str("]\t");
        buf.push_str(MODEL);
        buf.push_str("\t384\n");
        if buf.len() > (2 << 20) {
            copy.send(buf.as_bytes()).await?;
            buf.clear();
        }
    }
    copy.send(buf.as_bytes()).await?;
    let rows = copy.finish().await? as usize;
    let copy_time = t.elapsed();
    set_build_memory(&mut c, docs.len()).await?;
    let t = Instant::now();
    sqlx::query(sqlx::AssertSqlSafe(index_def)).execute(&mut c).await?;
    let index = t.elapsed();
    let t = Instant::now();
    sqlx::query("VACUUM ANALYZE memories_semantic").execute(&mut c).await?;
    Ok(LoadStats { rows, copy: copy_time, index, analyze: t.elapsed() })
}

/// VACUUM ANALYZE of the store's semantic table (merges GIN pending lists, drops dead rows).
pub async fn vacuum_semantic(url: &str, schema: &str) -> Result<()> {
    let mut c = connect(url, Some(schema)).await?;
    sqlx::query("VACUUM ANALYZE memories_semantic").execute(&mut c).await?;
    Ok(())
}

/// The graph of 100k x 384 needs ~200 MB (1M: ~2 GB); below that pgvector builds far slower.
async fn set_build_memory(c: &mut PgConnection, rows: usize) -> Result<()> {
    let mem = if rows > 200_000 { "4GB" } else { "1GB" };
    sqlx::query(sqlx::AssertSqlSafe(format!("SET maintenance_work_mem = '{mem}'"))).execute(c).await?;
    Ok(())
}

/// An HNSW index tried on `tune`, a copy of the store's vectors: pgvector's build options and
/// the vector type (`halfvec` stores 2 bytes a dimension instead of 4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IndexVariant {
    pub m: u32,
    pub ef_construction: u32,
    pub half: bool,
}

impl IndexVariant {
    pub fn label(&self) -> String {
        format!(
            "{} m={} ef_construction={}",
            if self.half { "halfvec" } else { "vector" },
            self.m,
            self.ef_construction
        )
    }

    /// The column of `tune` and the type queries cast to.
    fn column(&self) -> (&'static str, &'static str) {
        if self.half { ("h", "halfvec(384)") } else { ("v", "vector(384)") }
    }
}

/// Copies the store's vectors into `tune`: scope, `v` (vector) and `h` (halfvec).
pub async fn create_tune_table(url: &str, schema: &str) -> Result<()> {
    let mut c = connect(url, Some(schema)).await?;
    sqlx::query("DROP TABLE IF EXISTS tune").execute(&mut c).await?;
    sqlx::query("CREATE TABLE tune AS SELECT id, tenant, project_id, embedding AS v, embedding::halfvec(384) AS h FROM memories_semantic").execute(&mut c).await?;
    sqlx::query("VACUUM ANALYZE tune").execute(&mut c).await?;
    Ok(())
}

/// Replaces `tune`'s index by the variant's: its build time and size in bytes.
pub async fn build_variant(url: &str, schema: &str, rows: usize, v: IndexVariant) -> Result<(Duration, i64)> {
    let mut c = connect(url, Some(schema)).await?;
    sqlx::query("DROP INDEX IF EXISTS tune_hnsw").execute(&mut c).await?;
    set_build_memory(&mut c, rows).await?;
    let (column, _) = v.column();
    let ops = if v.half { "halfvec_l2_ops" } else { "vector_l2_ops" };
    let sql = format!(
        "CREATE INDEX tune_hnsw ON tune USING hnsw ({column} {ops}) WITH (m = {}, ef_construction = {})",
        v.m, v.ef_construction
    );
    let t = Instant::now();
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await?;
    let took = t.elapsed();
    let size: i64 = sqlx::query_scalar("SELECT pg_relation_size('tune_hnsw')").fetch_one(&mut c).await?;
    Ok((took, size))
}

/// How a direct-SQL search runs. The session settings are set once per connection, so each
/// request is exactly one round trip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// The API's whole search statement (`search::hybrid_sql`: five keyword lists and three
    /// vector lists, path chosen by scope size) and its fusion, with the API's session
    /// settings, but no HTTP, auth or access log: the ceiling for the API.
    Hybrid { ef: u32, rule: Rule },
    /// pgvector alone: one layer's nearest 20 through HNSW with relaxed iterative scans.
    HnswIterative(u32),
    /// HNSW at pgvector defaults (ef_search 40, no iterative scan): the filtered-search trap.
    HnswDefault,
    /// No index scans: the scope's rows ranked exactly.
    Exact,
    /// pgvector alone on `tune` with one index variant (iterative scan, ids only).
    Variant { ef: u32, index: IndexVariant },
}

impl Kind {
    pub fn label(&self) -> String {
        match self {
            Kind::Hybrid { ef, .. } => format!("SQL: the API's search statement + fusion (ef_search={ef})"),
            Kind::HnswIterative(ef) => {
                format!("SQL: pgvector HNSW alone, one layer, iterative relaxed_order, ef_search={ef}")
            }
            Kind::HnswDefault => "SQL: pgvector HNSW alone, defaults (ef_search=40, no iterative scan)".into(),
            Kind::Exact => "SQL: exact scan of the scope (index scans off)".into(),
            Kind::Variant { ef, index } => {
                format!("SQL: pgvector HNSW alone on a copy, {}, ef_search={ef}", index.label())
            }
        }
    }

    fn settings(&self) -> Vec<String> {
        match self {
            // `tune` has no other index: without this, small copies are scanned sequentially.
            Kind::Variant { ef, .. } => {
                [Kind::HnswIterative(*ef).settings(), vec!["SET enable_seqscan = off".into()]].concat()
            }
            Kind::Hybrid { ef, .. } => {
                [Kind::HnswIterative(*ef).settings(), vec!["SET default_text_search_config = english".into()]].concat()
            }
            Kind::HnswIterative(ef) => {
                vec![format!("SET hnsw.ef_search = {ef}"), "SET hnsw.iterative_scan = relaxed_order".into()]
            }
            Kind::HnswDefault => vec!["RESET hnsw.ef_search".into(), "SET hnsw.iterative_scan = off".into()],
            Kind::Exact => vec!["SET enable_indexscan = off".into()],
        }
    }

    fn sql(&self, paths: Option<Paths>) -> String {
        match self {
            Kind::Hybrid { .. } => pinak_api::retrieval::search::hybrid_sql(true, paths, 20),
            Kind::Variant { index, .. } => {
                let (column, ty) = index.column();
                format!(
                    "SELECT jsonb_build_object('id', t.id) AS row, (t.{column} <-> $3::{ty})::float8 AS dist FROM tune t
                     WHERE t.tenant = $1 AND t.project_id = $2 ORDER BY t.{column} <-> $3::{ty} LIMIT $4"
                )
            }
            // The HNSW kinds sort by the indexed expression, as the API does; the exact scan
            // by the full-precision distance (the recall baseline).
            _ => format!(
                "SELECT {} AS row, s.dist FROM (
                     SELECT t.id, l2_distance(t.embedding, $3) AS dist FROM memories_semantic t
                     WHERE t.tenant = $1 AND t.project_id = $2 AND t.embedding IS NOT NULL
                     ORDER BY {} LIMIT $4) s
                 JOIN memories_semantic t ON t.id = s.id
                 ORDER BY s.dist",
                pinak_api::store::records::row_json(pinak_api::store::layers::Layer::Semantic),
                // The bench store's index is what the migrations build (half precision).
                vector_order(if *self == Kind::Exact { VectorPath::Exact } else { VectorPath::HnswHalf }, "$3"),
            ),
        }
    }
}

pub struct SqlSearch {
    conn: PgConnection,
    /// The vector paths the API's rule picks for this scope and its sizes (hybrid only),
    /// measured once as the API's cache keeps them.
    stats: Option<ScopeStats>,
    /// The store's common lexemes, read once as the API's cache keeps them.
    common: pinak_api::retrieval::keyword::Common,
    sql: Arc<String>,
    project: &'static str,
    vectors: Arc<Vec<Vec<f32>>>,
    texts: Arc<Vec<String>>,
    truth: Arc<Vec<Vec<usize>>>,
}

pub struct Shared {
    pub vectors: Arc<Vec<Vec<f32>>>,
    pub texts: Arc<Vec<String>>,
}

fn doc_of(row: &Value) -> Option<usize> {
    let u = uuid::Uuid::parse_str(row["id"].as_str()?).ok()?;
    Some(u.as_u64_pair().1 as usize)
}

impl SqlSearch {
    pub async fn open(
        url: &str,
        schema: &str,
        kind: Kind,
        project: &'static str,
        shared: &Shared,
        truth: Arc<Vec<Vec<usize>>>,
    ) -> Result<Self> {
        let mut conn = connect(url, Some(schema)).await?;
        for s in kind.settings() {
            sqlx::query(sqlx::AssertSqlSafe(s)).execute(&mut conn).await?;
        }
        let stats = match kind {
            Kind::Hybrid { rule, .. } => {
                Some(vector_path::measure_stats(&mut conn, &Scope::new(TENANT, project), rule).await?)
            }
            _ => None,
        };
        let sql = Arc::new(kind.sql(stats.map(|s| s.paths)));
        let common = match kind {
            Kind::Hybrid { .. } => {
                let cache = pinak_api::retrieval::keyword::CommonTerms::default();
                std::sync::Arc::unwrap_or_clone(cache.get(&mut conn).await?)
            }
            _ => Default::default(),
        };
        Ok(SqlSearch {
            conn,
            stats,
            common,
            sql,
            project,
            vectors: shared.vectors.clone(),
            texts: shared.texts.clone(),
            truth,
        })
    }

    /// The plan Postgres picks for this path (first vector scan node), for the report.
    pub async fn plan(&mut self) -> Result<String> {
        if let Some(ScopeStats { paths, .. }) = self.stats {
            return Ok(format!("one statement (search.rs); vector paths of semantic, episodic, procedural: {paths:?}"));
        }
        let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {}", self.sql)))
            .bind(TENANT)
            .bind(self.project)
            .bind(pgvector::Vector::from(self.vectors[0].clone()))
            .bind(20i64)
            .fetch_all(&mut self.conn)
            .await?;
        let scan =
            lines.iter().map(|l| l.trim().trim_start_matches("-> ").trim()).find(|l| l.contains("Scan")).unwrap_or("?");
        Ok(scan.split("  ").next().unwrap_or(scan).to_owned())
    }
}

impl Op for SqlSearch {
    async fn call(&mut self, seq: usize) -> Result<Option<f64>> {
        let q = seq % self.vectors.len();
        // k = 2 x limit, as the API asks each list for (limit 10).
        if let Some(stats) = self.stats {
            let scope = Scope::new(TENANT, self.project);
            let [s, e, p] = stats.rows;
            let found = pinak_api::retrieval::search::candidates(
                &mut self.conn,
                &scope,
                &self.texts[q],
                Some(([s, e, p, 0, 0], &self.common)),
                Some((&self.vectors[q], stats.paths)),
                20,
            )
            .await?;
            let hits = pinak_api::retrieval::search::rank(found, Default::default(), 10);
            return Ok(Some(recall(hits.iter().filter_map(|h| doc_of(&h.row)), &self.truth[q], 10)));
        }
        let rows: Vec<(Value, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(self.sql.clone()))
            .bind(TENANT)
            .bind(self.project)
            .bind(pgvector::Vector::from(self.vectors[q].clone()))
            .bind(20i64)
            .fetch_all(&mut self.conn)
            .await?;
        Ok(Some(recall(rows.iter().filter_map(|(r, _)| doc_of(r)), &self.truth[q], 10)))
    }
}

/// The API's batch write run in-process: dummy embeddings and `records::copy_documents` of
/// `api::BATCH` rows in one transaction, without HTTP, auth, or access and audit rows: the
/// ceiling for `POST /batch`.
pub struct SqlBatchIngest {
    conn: PgConnection,
    texts: Arc<Vec<String>>,
}

impl SqlBatchIngest {
    pub async fn open(url: &str, schema: &str, texts: Arc<Vec<String>>) -> Result<Self> {
        Ok(SqlBatchIngest { conn: connect(url, Some(schema)).await?, texts })
    }
}

impl Op for SqlBatchIngest {
    async fn call(&mut self, seq: usize) -> Result<Option<f64>> {
        use pinak_api::embedding::DummyEmbedder;
        let payloads = crate::api::batch_items(&self.texts, seq);
        // The dummy backend embeds the semantic layer's text: its content.
        let embeddings: Vec<_> = payloads
            .iter()
            .map(|p| {
                Some(pinak_api::store::records::Embedding {
                    vector: DummyEmbedder.embed_one(p["content"].as_str().unwrap_or_default()),
                    model: DummyEmbedder::MODEL_NAME.into(),
                })
            })
            .collect();
        let actor = pinak_api::governance::actor::Actor {
            agent_id: "bench-agent".into(),
            client_id: "bench-client".into(),
            client_name: None,
            parent_client_id: None,
            child_client_id: None,
        };
        let mut tx = self.conn.begin().await?;
        pinak_api::store::records::copy_documents(
            &mut tx,
            pinak_api::store::layers::Layer::Semantic,
            &Scope::new(TENANT, "ceiling"),
            &actor,
            &payloads,
            &embeddings,
        )
        .await?;
        tx.commit().await?;
        Ok(None)
    }
}
