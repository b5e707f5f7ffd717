//! The filtered-HNSW trap: a project holding ~1% of a store's vectors must get the same top-10
//! as an exact scan, on both search paths (exact by selectivity, and HNSW with iterative scans),
//! and the path must follow the scope's size.

use std::time::Duration;

use pinak_api::retrieval::search;
use pinak_api::retrieval::vector_path::{self, PathCache, Rule, VectorPath};
use pinak_api::security::tenancy::Scope;
use pinak_api::store::layers::Layer;
use pinak_tests::TestApi;
use sqlx::Row;

const BIG: i64 = 6000;
const SMALL: i64 = 60;

/// Inserts clustered random unit vectors (realistic neighbourhoods, unlike uniform noise).
async fn load(api: &TestApi) {
    let mut db = api.db().await;
    sqlx::query(
        "INSERT INTO memories_semantic (id, tenant, project_id, content, embedding, embedding_model, embedding_dim)
         SELECT gen_random_uuid(), 't', CASE WHEN g <= $2 THEN 'small' ELSE 'big' END, 'row ' || g,
                (SELECT l2_normalize(array_agg((g % 37) * 0.05 * sin(g * 0.1 + d) + random())::vector) FROM generate_series(1, 384) d),
                'synthetic', 384
         FROM generate_series(1, $1 + $2) g",
    )
    .bind(BIG)
    .bind(SMALL)
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::query("ANALYZE memories_semantic").execute(&mut db).await.unwrap();
}

async fn exact_top10(api: &TestApi, q: &pgvector::Vector) -> Vec<String> {
    let mut db = api.db().await;
    sqlx::query("SET enable_indexscan = off").execute(&mut db).await.unwrap();
    sqlx::query("SELECT id::text FROM memories_semantic WHERE tenant = 't' AND project_id = 'small' ORDER BY embedding <-> $1 LIMIT 10")
        .bind(q)
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect()
}

async fn recall(api: &TestApi, path: VectorPath) -> f64 {
    let scope = Scope::new("t", "small");
    let mut db = api.db().await;
    let queries: Vec<pgvector::Vector> =
        sqlx::query_scalar("SELECT embedding FROM memories_semantic WHERE project_id = 'big' ORDER BY id LIMIT 20")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let mut found = 0;
    for q in &queries {
        let exact = exact_top10(api, q).await;
        let mut conn = api.state.pool.acquire().await.unwrap();
        let paths = api.state.vector_paths.paths(&mut conn, &scope).await.unwrap();
        assert_eq!(paths[0], path, "the configured rule picks the path");
        let cands = search::candidates(&mut conn, &scope, "", None, Some((&q.to_vec(), paths)), 10).await.unwrap();
        let got: Vec<String> = cands
            .vector
            .iter()
            .filter(|(l, ..)| *l == Layer::Semantic)
            .map(|(_, row, _)| row["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(got.len(), 10, "the filter never silently drops rows");
        found += exact.iter().filter(|id| got.contains(id)).count();
    }
    found as f64 / (queries.len() * 10) as f64
}

#[tokio::test]
async fn small_project_recall_matches_exact_on_both_paths() {
    // Exact path (the project is under the selectivity threshold).
    let api = TestApi::start().await;
    load(&api).await;
    let exact_path = recall(&api, VectorPath::Exact).await;
    assert!(exact_path >= 0.999, "exact path recall {exact_path}");
    let schema = api.schema.clone();
    api.stop().await;
    // HNSW path forced: relaxed iterative scans must keep recall high under a 1% filter.
    let api = TestApi::builder()
        .env("PINAK_DB_SCHEMA", &schema)
        .env("PINAK_EXACT_SEARCH_MAX_ROWS", "0")
        .env("PINAK_EXACT_SEARCH_MAX_FRACTION", "0")
        .start()
        .await;
    let hnsw_path = recall(&api, VectorPath::HnswHalf).await;
    eprintln!("recall@10 within a 1% project: exact path {exact_path:.3}, hnsw+iterative path {hnsw_path:.3}");
    assert!(hnsw_path >= 0.9, "hnsw path recall {hnsw_path}");
    api.stop().await;
}

/// Each path's statement runs the plan it names: the HNSW index for the large project only
/// (whichever form the index has: the half-precision graph the migrations build, or a
/// full-precision one), and no plan reads the table sequentially. Checked with custom plans
/// and with what Postgres's default plan cache mode (`auto`) runs once it has weighed the
/// generic plan (after 5 executions): under a generic plan the exact path would read the
/// whole table, so this guards that the custom plan stays the cheaper choice.
#[tokio::test]
async fn each_path_runs_its_plan_under_custom_and_cached_plans() {
    let api = TestApi::start().await;
    load(&api).await;
    let mut conn = api.state.pool.acquire().await.unwrap();
    let q: String = sqlx::query_scalar(
        "SELECT embedding::text FROM memories_semantic WHERE project_id = 'big' ORDER BY id LIMIT 1",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let rule = Rule {
        max_rows: api.state.config.exact_search_max_rows,
        max_fraction: api.state.config.exact_search_max_fraction,
    };
    for (form, hnsw) in [("halfvec", VectorPath::HnswHalf), ("vector", VectorPath::Hnsw)] {
        if form == "vector" {
            sqlx::raw_sql(
                "DROP INDEX memories_semantic_hnsw;
                 CREATE INDEX memories_semantic_hnsw ON memories_semantic USING hnsw (embedding vector_l2_ops)",
            )
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        for (project, path) in [("big", hnsw), ("small", VectorPath::Exact)] {
            let paths = vector_path::measure(&mut conn, &Scope::new("t", project), rule).await.unwrap();
            assert_eq!(paths[0], path, "{form} index, {project}");
            let name = format!("s_{form}_{project}");
            let prepare = format!(
                "PREPARE {name}(text, text, text[], int8[], vector, text) AS {}",
                search::hybrid_sql(true, Some(paths), 10)
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(&mut *conn).await.unwrap();
            // The keyword terms as `keyword::plan` gives them for the query "row".
            let execute =
                format!("EXECUTE {name}('t', '{project}', ARRAY['''row'':*'], '{{0,0,0,0,0}}', '{q}', '''row'':*')");
            for mode in ["force_custom_plan", "auto"] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET plan_cache_mode = {mode}")))
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                for _ in 0..8 {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(execute.clone())).execute(&mut *conn).await.unwrap();
                }
                let explain = format!("EXPLAIN (ANALYZE, COSTS OFF) {execute}");
                let plan: Vec<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(explain)).fetch_all(&mut *conn).await.unwrap();
                let plan_text = plan.join("\n");
                let timing: Vec<&str> = plan.iter().filter(|l| l.contains(" Time:")).map(|l| l.trim()).collect();
                eprintln!("{form} index, {mode}, {project}: {}", timing.join(", "));
                let ran = plan.iter().any(|l| l.contains("memories_semantic_hnsw") && !l.contains("never executed"));
                assert_eq!(ran, path == hnsw, "{form} index, {mode}, {project}:\n{plan_text}");
                let seq =
                    plan.iter().find(|l| l.contains("Seq Scan on memories_semantic") && !l.contains("never executed"));
                assert!(seq.is_none(), "{form} index, {mode}, {project}: {seq:?}\n{plan_text}");
            }
        }
    }
    let iterative: String = sqlx::query_scalar("SHOW hnsw.iterative_scan").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(iterative, "relaxed_order", "pool connections carry the HNSW session settings");
    drop(conn);
    api.stop().await;
}

/// The rule: exact when the scope holds at most max(max_rows, max_fraction x the table's
/// rows) vectors; and a pod reuses a measured path until its TTL runs out.
#[tokio::test]
async fn the_path_follows_the_scope_size_and_its_share_of_the_table() {
    let api = TestApi::start().await;
    load(&api).await; // 6,060 rows (ANALYZEd): 'big' 6,000, 'small' 60 (1 %)
    let mut conn = api.state.pool.acquire().await.unwrap();
    let (exact, hnsw) = (VectorPath::Exact, VectorPath::HnswHalf);
    let cases = [
        ((2000, 0.02), exact, hnsw), // the defaults
        ((0, 0.02), exact, hnsw),    // 60 <= 121 (2 % of 6,060)
        ((0, 0.0), hnsw, hnsw),
        ((0, 0.5), exact, hnsw), // 6,000 > 3,030
        ((0, 1.0), exact, exact),
        ((6000, 0.0), exact, exact), // at the limit: exact
        ((5999, 0.0), exact, hnsw),
        ((59, 0.0), hnsw, hnsw),
    ];
    for ((max_rows, max_fraction), small, big) in cases {
        let rule = Rule { max_rows, max_fraction };
        let got = [
            vector_path::measure(&mut conn, &Scope::new("t", "small"), rule).await.unwrap(),
            vector_path::measure(&mut conn, &Scope::new("t", "big"), rule).await.unwrap(),
        ];
        assert_eq!((got[0][0], got[1][0]), (small, big), "{rule:?}");
        // The other vectorised layers are empty: any scope of them is exact.
        assert_eq!(&got[1][1..], &[exact, exact], "{rule:?}");
    }
    // A new project is exact; once it outgrows the limit, a pod that measured it keeps the
    // cached path until the TTL ends, and a fresh measurement switches to HNSW.
    let rule = Rule { max_rows: 100, max_fraction: 0.0 };
    let grow = Scope::new("t", "grow");
    let cached = PathCache::new(rule, Duration::from_secs(3600));
    let uncached = PathCache::new(rule, Duration::ZERO);
    assert_eq!(cached.paths(&mut conn, &grow).await.unwrap()[0], exact);
    sqlx::query(
        "INSERT INTO memories_semantic (id, tenant, project_id, content, embedding)
         SELECT gen_random_uuid(), 't', 'grow', 'row', embedding FROM memories_semantic WHERE project_id = 'big' LIMIT 101",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    assert_eq!(cached.paths(&mut conn, &grow).await.unwrap()[0], exact, "within the TTL");
    assert_eq!(uncached.paths(&mut conn, &grow).await.unwrap()[0], hnsw, "measured again");
    drop(conn);
    api.stop().await;
}
