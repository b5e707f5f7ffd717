//! The memory routes over real HTTP on real Postgres: shapes, status codes, atomicity.

use pinak_tests::{TestApi, Token};
use serde_json::{Value, json};

#[tokio::test]
async fn semantic_add_read_update_delete() {
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    let admin = Token::admin("t1", "p1").sign();
    let (s, m) = api.post(&w, "/add", json!({"content": "Postgres stores the memories", "tags": ["db"]})).await;
    assert_eq!(s, 201, "{m}");
    for key in ["id", "content", "tags", "tenant", "project_id", "created_at", "client_id", "client_name", "agent_id"] {
        assert!(m.get(key).is_some(), "MemoryRead has {key}: {m}");
    }
    assert_eq!(m["tags"], json!(["db"]));
    assert_eq!(m["client_id"], "client-a");
    assert!(m["created_at"].as_str().unwrap().ends_with("+00:00") || m["created_at"].as_str().unwrap().ends_with('Z'));
    let id = m["id"].as_str().unwrap();

    let (s, row) = api.get(&w, &format!("/semantic/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(row["content"], "Postgres stores the memories");
    assert!(row.get("embedding").is_none() && row.get("fts").is_none());
    assert_eq!(row["embedding_model"], "dummy-sha256-384");

    // Non-admin cannot edit; admin can; unknown fields are refused; system fields dropped.
    assert_eq!(api.put(&w, &format!("/semantic/{id}"), json!({"content": "x"})).await.0, 403);
    let (s, b) = api.put(&admin, &format!("/semantic/{id}"), json!({"goal": "x"})).await;
    assert_eq!((s, b["detail"].as_str()), (400, Some("Unsupported update field")));
    let (s, b) = api.put(&admin, &format!("/semantic/{id}"), json!({"id": "other", "tenant": "evil"})).await;
    assert_eq!((s, b["detail"].as_str()), (404, Some("Memory not found")));
    let (s, _) = api.put(&admin, &format!("/semantic/{id}"), json!({"content": 42})).await;
    assert_eq!(s, 400);

    let mut db = api.db().await;
    let before: String = sqlx::query_scalar("SELECT embedding::text FROM memories_semantic WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let (s, b) = api
        .put(&admin, &format!("/semantic/{id}"), json!({"content": "Rust talks to Postgres", "tenant": "ignored"}))
        .await;
    assert_eq!((s, &b), (200, &json!({"status": "updated", "id": id})));
    let after: String = sqlx::query_scalar("SELECT embedding::text FROM memories_semantic WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_ne!(before, after, "updating content re-embeds in the same transaction");
    let (_, row) = api.get(&w, &format!("/semantic/{id}")).await;
    assert_eq!((row["content"].as_str(), row["tenant"].as_str()), (Some("Rust talks to Postgres"), Some("t1")));

    assert_eq!(api.delete(&w, &format!("/semantic/{id}")).await.0, 403);
    assert_eq!(api.delete(&admin, &format!("/semantic/{id}")).await.0, 204);
    let (s, b) = api.get(&w, &format!("/semantic/{id}")).await;
    assert_eq!((s, b["detail"].as_str()), (404, Some("Memory not found")));
    assert_eq!(api.delete(&admin, &format!("/semantic/{id}")).await.0, 404);
    api.stop().await;
}

#[tokio::test]
async fn every_layer_add_and_shapes() {
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    let (s, e) = api.post(&w, "/episodic/add", json!({"content": "deployed v2", "goal": "ship", "plan": ["build", "push"], "salience": 7, "tool_logs": [{"tool": "cargo"}], "embedding_id": 5, "tags": ["ignored"]})).await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e.as_object().unwrap().keys().cloned().collect::<Vec<_>>().len(), 5, "{e}");
    assert_eq!(e["goal"], "ship");
    let (_, row) = api.get(&w, &format!("/episodic/{}", e["id"].as_str().unwrap())).await;
    assert_eq!(row["plan"], json!(["build", "push"]));
    assert_eq!(row["tool_logs"], json!([{"tool": "cargo"}]));
    assert_eq!(row["salience"], 7);

    let (s, p) = api.post(&w, "/procedural/add", json!({"skill_name": "release", "steps": ["tag", "publish"]})).await;
    assert_eq!((s, p["skill_name"].as_str()), (201, Some("release")));
    let (s, r) = api.post(&w, "/rag/add", json!({"query": "what is pgvector", "external_source": "https://example.test", "content": "vector similarity for Postgres"})).await;
    assert_eq!((s, r["query"].as_str()), (201, Some("what is pgvector")));
    let (s, wk) = api.post(&w, "/working/add", json!({"content": "current focus: tests"})).await;
    assert_eq!(s, 201, "{wk}");
    assert_eq!(wk["nudges"], json!([]));
    assert_eq!(wk["content"], "current focus: tests");
    let (s, se) = api.post(&w, "/session/add", json!({"session_id": "s1", "content": "hello"})).await;
    assert_eq!(s, 201);
    assert!(se["id"].is_string() && se["ts"].is_string());
    let (s, ev) =
        api.post(&w, "/event", json!({"event_type": "top", "payload": {"event_type": "inner", "n": 1}})).await;
    assert_eq!(s, 201, "{ev}");
    let (_, events) = api.get(&w, "/events").await;
    assert_eq!(events[0]["event_type"], "inner", "payload event_type overrides, as in the prototype");
    assert!(events[0]["payload"].is_string(), "events payload is a JSON string");

    // Validation: invalid direct writes are 422 and write nothing.
    for (path, body) in [
        ("/add", json!({"content": ""})),
        ("/add", json!({"tags": ["x"]})),
        ("/episodic/add", json!({"content": "x", "salience": 11})),
        ("/procedural/add", json!({"skill_name": "x"})),
        ("/rag/add", json!({"query": "q", "external_source": "", "content": "c"})),
        ("/event", json!({"event_type": "x", "payload": [1]})),
        ("/session/add", json!({"session_id": "", "content": "x"})),
    ] {
        let (s, b) = api.post(&w, path, body.clone()).await;
        assert_eq!(s, 422, "{path} {body} -> {b}");
        assert!(b["detail"].is_array(), "FastAPI-shaped detail: {b}");
    }
    assert_eq!(api.count("memories_semantic").await, 0);
    assert_eq!(api.count("memories_episodic").await, 1);
    api.stop().await;
}

#[tokio::test]
async fn ttl_rows_are_hidden_after_expiry_and_limits_page_with_cursor() {
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    assert_eq!(api.post(&w, "/working/add", json!({"content": "stale", "expires_at": past})).await.0, 201);
    assert_eq!(api.post(&w, "/working/add", json!({"content": "fresh", "ttl_seconds": 600})).await.0, 201);
    assert_eq!(api.post(&w, "/working/add", json!({"content": "x", "ttl_seconds": 0})).await.0, 422);
    let (_, list) = api.get(&w, "/working/list").await;
    let values: Vec<&str> = list.as_array().unwrap().iter().map(|r| r["value"].as_str().unwrap()).collect();
    assert_eq!(values, vec!["fresh"]);

    for i in 0..5 {
        api.post(&w, "/session/add", json!({"session_id": "s", "content": format!("line {i}")})).await;
    }
    let resp = api.client.get(api.mem("/session/list?session_id=s&limit=2")).bearer_auth(&w).send().await.unwrap();
    let cursor = resp.headers().get("x-next-cursor").unwrap().to_str().unwrap().to_owned();
    let first: Value = resp.json().await.unwrap();
    assert_eq!(first.as_array().unwrap().len(), 2);
    let (_, second) = api.get(&w, &format!("/session/list?session_id=s&limit=2&cursor={cursor}")).await;
    let contents: Vec<&str> = first
        .as_array()
        .unwrap()
        .iter()
        .chain(second.as_array().unwrap())
        .map(|r| r["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, vec!["line 0", "line 1", "line 2", "line 3"], "oldest first, no overlap");
    assert_eq!(api.get(&w, "/session/list?session_id=s&cursor=zz").await.0, 422);
    assert_eq!(api.get(&w, "/events?limit=201").await.0, 422);
    assert_eq!(api.get(&w, "/search?query=x&k=0").await.0, 422);
    assert_eq!(api.get(&w, "/search").await.0, 422);
    api.stop().await;
}

#[tokio::test]
async fn search_finds_by_keyword_and_vector_and_context_groups_layers() {
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    api.post(&w, "/add", json!({"content": "the deploy pipeline uses cargo nextest"})).await;
    api.post(&w, "/episodic/add", json!({"content": "nextest flaked on CI", "goal": "green build"})).await;
    api.post(
        &w,
        "/rag/add",
        json!({"query": "nextest docs", "external_source": "nexte.st", "content": "partitioning tests"}),
    )
    .await;
    api.post(&w, "/add", json!({"content": "unrelated gardening note"})).await;
    let (s, hits) = api.get(&w, "/search?query=nextest&k=10").await;
    assert_eq!(s, 200, "{hits}");
    let hits = hits.as_array().unwrap();
    let types: Vec<&str> = hits.iter().map(|h| h["metadata"]["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"semantic") && types.contains(&"episodic") && types.contains(&"rag"), "{types:?}");
    assert_eq!(hits[0]["content"], "the deploy pipeline uses cargo nextest", "semantic keyword hit ranks first");
    for h in hits {
        let d = h["distance"].as_f64().unwrap();
        assert!((1.0 - h["metadata"]["score"].as_f64().unwrap() - d).abs() < 1e-9);
    }
    // The exact text of a stored memory is its own nearest vector (dummy embeddings are hashes).
    let (_, hits) = api.get(&w, "/search?query=unrelated%20gardening%20note&k=1").await;
    assert_eq!(hits[0]["content"], "unrelated gardening note");

    let (s, ctx) = api.get(&w, "/retrieve_context?query=nextest&limit=2").await;
    assert_eq!(s, 200);
    let total: usize = ["semantic", "episodic", "procedural", "rag", "working"]
        .iter()
        .map(|l| ctx[*l].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 2, "limit is honoured: {ctx}");
    let (_, rag) = api.get(&w, "/rag/search?query=partitioning").await;
    assert_eq!(rag[0]["type"], "rag");
    // Hostile search text is matched literally and never errors.
    for q in ["%_\\", "' OR 1=1 --", "a & b | !c", "\"unterminated", "::*", "日本語 テキスト", "(((", "<->"] {
        let (s, _) = api.get(&w, &format!("/search?query={}", urlencode(q))).await;
        assert_eq!(s, 200, "query {q}");
        let (s, _) = api.get(&w, &format!("/rag/search?query={}", urlencode(q))).await;
        assert_eq!(s, 200, "rag query {q}");
    }
    api.stop().await;
}

pub fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test]
async fn schemas_and_layer_errors() {
    let api = TestApi::start().await;
    let r = Token::new("t1", "p1").sign();
    let (s, all) = api.get(&r, "/schema").await;
    assert_eq!(s, 200);
    assert_eq!(all["schemas"].as_object().unwrap().len(), 5);
    let (s, sem) = api.get(&r, "/schema/semantic").await;
    assert_eq!((s, sem["required"].clone()), (200, json!(["content"])));
    assert_eq!(api.get(&r, "/schema/..evil").await, (400, json!({"detail": "Invalid layer name"})));
    assert_eq!(api.get(&r, "/schema/nope").await, (404, json!({"detail": "Schema not found"})));
    assert_eq!(api.get(&r, "/agent/x").await, (400, json!({"detail": "Unsupported layer"})));
    assert_eq!(api.get(&r, "/semantic/not-a-uuid").await, (404, json!({"detail": "Memory not found"})));
    api.stop().await;
}

#[tokio::test]
async fn body_cap_and_request_ids() {
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    let big = "x".repeat(1_048_577);
    let resp = api
        .client
        .post(api.mem("/add"))
        .bearer_auth(&w)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let id = resp.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"detail": "Request body too large"}));
    let resp = api.client.get(api.url("/api/v1/live")).header("x-request-id", "mine").send().await.unwrap();
    assert_ne!(resp.headers().get("x-request-id").unwrap(), "mine", "caller ids are ignored");
    assert_eq!(api.count("memories_semantic").await, 0);
    api.stop().await;
}

/// `records::row_json` names the columns of the vectorised layers instead of rendering the
/// whole row; it must produce exactly the generic `ROW_JSON` (every column but the vector and
/// the tsvector), or a migration added a column it does not know.
#[tokio::test]
async fn named_row_json_equals_the_generic_row_json() {
    use pinak_api::store::layers::Layer;
    use pinak_api::store::records::{ROW_JSON, row_json};
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    assert_eq!(api.post(&w, "/add", json!({"content": "c", "tags": ["x"]})).await.0, 201);
    assert_eq!(
        api.post(
            &w,
            "/episodic/add",
            json!({"content": "c", "goal": "g", "plan": ["a"], "salience": 2, "tool_logs": [{"t": 1}]})
        )
        .await
        .0,
        201
    );
    assert_eq!(
        api.post(&w, "/procedural/add", json!({"skill_name": "s", "steps": ["a"], "code_snippet": "x"})).await.0,
        201
    );
    let mut db = api.db().await;
    for layer in Layer::VECTOR_LAYERS {
        assert_ne!(row_json(layer), ROW_JSON, "{layer:?} uses the named form");
        let (named, generic): (serde_json::Value, serde_json::Value) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {}, {ROW_JSON} FROM {} t",
            row_json(layer),
            layer.table()
        )))
        .fetch_one(&mut db)
        .await
        .unwrap();
        assert_eq!(named, generic, "{layer:?}");
    }
    assert_eq!(row_json(Layer::Rag), ROW_JSON);
    api.stop().await;
}
