//! The foundation on real parts: pgvector works, migrations build HNSW and GIN indexes in
//! the store's own schema, the service serves liveness/health, and the Vault dev server is real.

use pinak_tests::{TestApi, vault_client};
use serde_json::json;

#[tokio::test]
async fn migration_creates_store_schema_with_hnsw_and_fts_indexes() {
    let api = TestApi::start().await;
    let mut db = api.db().await;
    let ext: String = sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(ext, "0.8.5");
    // Catalog joins, not pg_indexes: its pg_get_indexdef() can trip over objects that a
    // parallel test is creating or dropping in another schema.
    let by_method = "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam
                     WHERE c.relkind = 'i' AND n.nspname = $1 AND a.amname = $2 ORDER BY 1";
    let hnsw: Vec<String> =
        sqlx::query_scalar(by_method).bind(&api.schema).bind("hnsw").fetch_all(&mut db).await.unwrap();
    assert_eq!(hnsw, vec!["memories_episodic_hnsw", "memories_procedural_hnsw", "memories_semantic_hnsw"]);
    let gin: Vec<String> =
        sqlx::query_scalar(by_method).bind(&api.schema).bind("gin").fetch_all(&mut db).await.unwrap();
    assert_eq!(gin.len(), 5, "one full-text index per searchable layer: {gin:?}");
    // No pending lists (migrations/0005): every full-text query would read them.
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam
         WHERE c.relkind = 'i' AND n.nspname = $1 AND a.amname = 'gin' AND NOT coalesce('fastupdate=off' = ANY(c.reloptions), false)",
    )
    .bind(&api.schema)
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(pending, Vec::<String>::new(), "GIN indexes with fastupdate on");
    // Every timestamp column is timestamptz.
    let naive: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND data_type = 'timestamp without time zone'",
    )
    .bind(&api.schema)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(naive, 0);
    // Tables live in the store schema, not in public.
    let public_tables: i64 = sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'memories_semantic'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(public_tables, 0);
    api.stop().await;
}

#[tokio::test]
async fn second_start_on_same_schema_reuses_it() {
    let api = TestApi::start().await;
    let schema = api.schema.clone();
    api.stop().await;
    let again = TestApi::builder().env("PINAK_DB_SCHEMA", &schema).start().await;
    let applied: i64 = {
        let mut db = again.db().await;
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&mut db).await.unwrap()
    };
    assert_eq!(applied, pinak_api::store::db::MIGRATOR.iter().count() as i64, "migrations are applied once");
    again.stop().await;
}

#[tokio::test]
async fn live_root_and_health_answer() {
    let api = TestApi::start().await;
    let live: serde_json::Value = api.client.get(api.url("/api/v1/live")).send().await.unwrap().json().await.unwrap();
    assert_eq!(live, json!({"status": "alive"}));
    let root: serde_json::Value = api.client.get(api.url("/")).send().await.unwrap().json().await.unwrap();
    assert_eq!(root, json!({"status": "Memory service is running"}));
    let resp = api.client.get(api.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let health: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        health,
        json!({"status": "ok", "embedding_backend": "dummy", "vector_enabled": true, "embedding_model": null})
    );
    api.stop().await;
}

#[tokio::test]
async fn vault_dev_server_round_trips_a_kv_secret() {
    let client = vault_client();
    let path = format!("pinak-test/{}", uuid::Uuid::new_v4().simple());
    let secret = std::collections::HashMap::from([("jwt_secret".to_string(), "s3cr3t-value".to_string())]);
    vaultrs::kv2::set(&client, "secret", &path, &secret).await.expect("write kv v2");
    let read: std::collections::HashMap<String, String> =
        vaultrs::kv2::read(&client, "secret", &path).await.expect("read kv v2");
    assert_eq!(read["jwt_secret"], "s3cr3t-value");
}
