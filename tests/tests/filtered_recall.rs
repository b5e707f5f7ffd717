//! The filtered-HNSW trap: a project holding ~1% of a store's vectors must get the same top-10
//! as an exact scan, on both search paths (exact by selectivity, and HNSW with iterative scans).

use pinak_api::layers::Layer;
use pinak_api::search;
use pinak_api::tenancy::Scope;
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

async fn recall(api: &TestApi) -> f64 {
    let scope = Scope::new("t", "small");
    let mut db = api.db().await;
    let queries: Vec<pgvector::Vector> = sqlx::query_scalar("SELECT embedding FROM memories_semantic WHERE project_id = 'big' ORDER BY id LIMIT 20")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let mut found = 0;
    for q in &queries {
        let exact = exact_top10(api, q).await;
        let mut conn = api.state.pool.acquire().await.unwrap();
        let cands = search::candidates(&mut conn, &scope, "", Some(&q.to_vec()), 10, api.state.config.exact_search_max_rows).await.unwrap();
        let got: Vec<String> = cands.vector.iter().filter(|(l, ..)| *l == Layer::Semantic).map(|(_, row, _)| row["id"].as_str().unwrap().to_owned()).collect();
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
    let exact_path = recall(&api).await;
    assert!(exact_path >= 0.999, "exact path recall {exact_path}");
    let schema = api.schema.clone();
    api.stop().await;
    // HNSW path forced: relaxed iterative scans must keep recall high under a 1% filter.
    let api = TestApi::builder().env("PINAK_DB_SCHEMA", &schema).env("PINAK_EXACT_SEARCH_MAX_ROWS", "0").start().await;
    let hnsw_path = recall(&api).await;
    eprintln!("recall@10 within a 1% project: exact path {exact_path:.3}, hnsw+iterative path {hnsw_path:.3}");
    assert!(hnsw_path >= 0.9, "hnsw path recall {hnsw_path}");
    api.stop().await;
}

/// The path is chosen inside the one search statement: the HNSW branch runs for the large
/// project and is skipped for the small one, and no plan reads the table sequentially, with
/// custom plans and with the generic plan Postgres switches a prepared statement to.
#[tokio::test]
async fn the_search_path_follows_the_scope_size_in_every_plan() {
    let api = TestApi::start().await;
    load(&api).await;
    let mut conn = api.state.pool.acquire().await.unwrap();
    let q: String = sqlx::query_scalar("SELECT embedding::text FROM memories_semantic WHERE project_id = 'big' ORDER BY id LIMIT 1").fetch_one(&mut *conn).await.unwrap();
    let prepare = format!("PREPARE s(text, text, text, text[], vector) AS {}", search::hybrid_sql(true, 10, 1000));
    sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(&mut *conn).await.unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET plan_cache_mode = {mode}"))).execute(&mut *conn).await.unwrap();
        for (project, hnsw_runs) in [("big", true), ("small", false)] {
            let execute = format!("EXPLAIN (ANALYZE, COSTS OFF) EXECUTE s('t', '{project}', 'row', '{{}}', '{q}')");
            let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(execute)).fetch_all(&mut *conn).await.unwrap();
            let plan_text = plan.join("\n");
            let timing: Vec<&str> = plan.iter().filter(|l| l.contains(" Time:")).map(|l| l.trim()).collect();
            eprintln!("{mode}, {project}: {}", timing.join(", "));
            // (A custom plan for the small project may not even contain the HNSW node.)
            let ran = plan.iter().any(|l| l.contains("memories_semantic_hnsw") && !l.contains("never executed"));
            assert_eq!(ran, hnsw_runs, "{mode}, {project}:\n{plan_text}");
            let seq = plan.iter().find(|l| l.contains("Seq Scan on memories_semantic") && !l.contains("never executed"));
            assert!(seq.is_none(), "{mode}, {project}: {seq:?}\n{plan_text}");
        }
    }
    let iterative: String = sqlx::query_scalar("SHOW hnsw.iterative_scan").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(iterative, "relaxed_order", "pool connections carry the HNSW session settings");
    drop(conn);
    api.stop().await;
}
