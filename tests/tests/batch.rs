//! `POST /api/v1/memory/batch`: many adds in one request, all or nothing, with one access row
//! and one audit link per memory, and the same validation as the single-add routes.

use pinak_tests::{TestApi, Token};
use serde_json::{Value, json};

fn items(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"content": format!("batched memory number {i} about pgvector"), "tags": ["batch"]})).collect()
}

#[tokio::test]
async fn batch_writes_every_item_with_access_and_audit_rows() {
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    let admin = Token::admin("t1", "p1").sign();
    // A single add first, so the batch extends an existing chain.
    assert_eq!(api.post(&w, "/add", json!({"content": "before the batch"})).await.0, 201);

    let (s, b) = api.post(&w, "/batch", json!({"layer": "semantic", "items": items(40)})).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!((b["layer"].as_str(), b["count"].as_u64()), (Some("semantic"), Some(40)));
    let ids = b["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 40);
    let (s, row) = api.get(&w, &format!("/semantic/{}", ids[7].as_str().unwrap())).await;
    assert_eq!(s, 200);
    assert_eq!(
        (row["content"].as_str(), row["tags"].clone()),
        (Some("batched memory number 7 about pgvector"), json!(["batch"]))
    );
    assert_eq!(row["embedding_model"], "dummy-sha256-384", "batched rows are embedded");
    assert_eq!((row["tenant"].as_str(), row["client_id"].as_str()), (Some("t1"), Some("client-a")));

    let mut db = api.db().await;
    let (access, audit): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM logs_access WHERE event_type = 'write' AND detail = 'semantic_add'),
                (SELECT count(*) FROM logs_audit WHERE tenant = 't1' AND event_type = 'access:write')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!((access, audit), (41, 41));
    let (s, v) = api.post(&admin, "/maintenance/verify", json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["audit"]["valid"], true);
    assert_eq!(v["audit"]["checked"], 41);

    // Batches of the other document layers take their own add bodies.
    let (s, b) = api.post(&w, "/batch", json!({"layer": "episodic", "items": [{"content": "deployed", "goal": "ship", "salience": 3, "tool_logs": [{"tool": "cargo"}]}]})).await;
    assert_eq!(s, 201, "{b}");
    let (_, e) = api.get(&w, &format!("/episodic/{}", b["ids"][0].as_str().unwrap())).await;
    assert_eq!(
        (e["goal"].as_str(), e["salience"].as_i64(), e["tool_logs"].clone()),
        (Some("ship"), Some(3), json!([{"tool": "cargo"}]))
    );
    let (s, b) = api
        .post(&w, "/batch", json!({"layer": "procedural", "items": [{"skill_name": "release", "steps": ["tag"]}]}))
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = api
        .post(
            &w,
            "/batch",
            json!({"layer": "rag", "items": [{"query": "q", "external_source": "https://x.test", "content": "c"}]}),
        )
        .await;
    assert_eq!(s, 201, "{b}");

    // Search finds batched rows.
    let (s, hits) = api.get(&w, "/search?query=batched%20memory%20number%2012&k=3").await;
    assert_eq!(s, 200);
    assert!(hits.as_array().unwrap().iter().any(|h| h["id"] == ids[12]), "{hits}");
    api.stop().await;
}

#[tokio::test]
async fn a_bad_item_rejects_the_whole_batch_with_its_index() {
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    let mut bad = items(5);
    bad[3] = json!({"tags": ["no content"]});
    let (s, b) = api.post(&w, "/batch", json!({"layer": "semantic", "items": bad})).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "items", 3, "content"]), "{b}");
    assert_eq!(b["detail"][0]["type"], "missing", "{b}");

    // A payload schema violation (salience is 0..10 in the episodic schema) names the item too.
    let (s, b) = api
        .post(
            &w,
            "/batch",
            json!({"layer": "episodic", "items": [{"content": "ok"}, {"content": "bad", "salience": 99}]}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["detail"][0]["loc"].as_array().unwrap()[..3], [json!("body"), json!("items"), json!(1)], "{b}");

    let cases = [
        (json!({"layer": "working", "items": items(1)}), "layer must be one of semantic, episodic, procedural, rag"),
        (json!({"layer": "nope", "items": items(1)}), "layer must be one of semantic, episodic, procedural, rag"),
        (json!({"layer": "semantic", "items": []}), "items must hold 1 to 500 entries, got 0"),
        (json!({"layer": "semantic", "items": items(501)}), "items must hold 1 to 500 entries, got 501"),
    ];
    for (body, msg) in cases {
        let (s, b) = api.post(&w, "/batch", body).await;
        assert_eq!((s, b["detail"][0]["msg"].as_str()), (422, Some(msg)), "{b}");
    }
    let (s, _) = api.post(&w, "/batch", json!({"items": items(1)})).await;
    assert_eq!(s, 422, "layer is required");
    // Nothing of any rejected batch was written.
    assert_eq!(api.count("memories_semantic").await + api.count("memories_episodic").await, 0);
    assert_eq!(api.count("logs_audit").await, 0);

    // Authorisation: a read-only token may not write, whatever the batch holds.
    let reader = Token::new("t1", "p1").set("scopes", json!(["memory.read"])).sign();
    assert_eq!(api.post(&reader, "/batch", json!({"layer": "semantic", "items": items(2)})).await.0, 403);
    assert_eq!(api.count("memories_semantic").await, 0);
    api.stop().await;
}

#[tokio::test]
async fn untrusted_batches_go_to_quarantine_atomically() {
    let api = TestApi::builder()
        .env("PINAK_QUARANTINE_UNTRUSTED_WRITES", "true")
        .env("PINAK_TRUSTED_CLIENTS", "good-bot")
        .start()
        .await;
    let w = Token::new("t1", "p1").sign();
    let (s, b) = api.post(&w, "/batch", json!({"layer": "semantic", "items": items(3)})).await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["quarantined"].as_array().unwrap().len(), 3);
    assert_eq!(api.count("memories_semantic").await, 0);
    assert_eq!(api.count("memory_quarantine").await, 3);
    let trusted = Token::new("t1", "p1").set("client_id", json!("good-bot")).sign();
    assert_eq!(api.post(&trusted, "/batch", json!({"layer": "semantic", "items": items(3)})).await.0, 201);
    assert_eq!(api.count("memories_semantic").await, 3);
    api.stop().await;
}

/// Batches are written with a binary COPY, single adds with INSERT: the stored rows must be
/// the same, column for column (vectors, JSON, NULLs and defaults included).
#[tokio::test]
async fn batched_rows_equal_the_rows_single_adds_write() {
    let api = TestApi::start().await;
    let single = Token::new("t1", "single").sign();
    let batch = Token::new("t1", "batch").sign();
    let cases = [
        (
            "semantic",
            "/add",
            json!([
                {"content": "naïve café — 日本語, a tab\t, a bell \u{7} and \"quotes\"", "tags": ["ü", "two words", ""]},
                {"content": "no tags at all"},
            ]),
        ),
        (
            "episodic",
            "/episodic/add",
            json!([
                {"content": "deployed", "goal": "ship", "outcome": "shipped", "plan": ["a", "b — ü"], "tool_logs": [{"tool": "cargo", "args": [1, 2.5, null]}], "salience": 5},
                {"content": "minimal episode"},
            ]),
        ),
        (
            "procedural",
            "/procedural/add",
            json!([
                {"skill_name": "release", "trigger": "tag pushed", "steps": ["build", "publish"], "description": "ship it", "code_snippet": "fn main() {}\n"},
                {"skill_name": "bare", "steps": []},
            ]),
        ),
        (
            "rag",
            "/rag/add",
            json!([
                {"query": "what is HNSW", "external_source": "https://example.test/hnsw", "content": "a graph index"},
                {"query": "ç", "external_source": "local", "content": "ünïcödé"},
            ]),
        ),
    ];
    for (layer, route, payloads) in cases {
        for payload in payloads.as_array().unwrap() {
            let (s, b) = api.post(&single, route, payload.clone()).await;
            assert_eq!(s, 201, "{layer} {payload}: {b}");
        }
        let (s, b) = api.post(&batch, "/batch", json!({"layer": layer, "items": payloads})).await;
        assert_eq!(s, 201, "{layer}: {b}");

        let table = format!("memories_{layer}");
        let sql = format!(
            "SELECT (to_jsonb(t) - 'id' - 'project_id' - 'created_at')::text AS row FROM {table} t WHERE project_id = $1 ORDER BY row"
        );
        let mut db = api.db().await;
        let mut rows = Vec::new();
        for project in ["single", "batch"] {
            rows.push(
                sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(project)
                    .fetch_all(&mut db)
                    .await
                    .unwrap(),
            );
        }
        let (singles, batched) = (&rows[0], &rows[1]);
        assert_eq!(singles.len(), 2, "{layer}");
        assert_eq!(singles, batched, "{layer}: COPY and INSERT stored different rows");
    }
    api.stop().await;
}
