//! `GET /memory/export` and `POST /memory/import` on the real Postgres: a round trip copies
//! every layer, vectors included; a bad file imports nothing and names its line; a taken id
//! is a 409; only admins may move a project, and only their own.

use pinak_tests::{TestApi, Token, response};
use serde_json::{Value, json};

async fn export(api: &TestApi, token: &str) -> String {
    let (s, body) = api.get(token, "/export").await;
    assert_eq!(s, 200, "{body}");
    match body {
        Value::String(text) => text,
        Value::Null => String::new(),
        // A one-line export parses as JSON.
        other => format!("{other}\n"),
    }
}

async fn import(api: &TestApi, token: &str, query: &str, text: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(api.mem(&format!("/import{query}")))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(text.to_owned())
        .send()
        .await
        .unwrap();
    response(resp).await
}

/// The export's rows without their ids, sorted: what a copy must reproduce.
fn rows_without_ids(text: &str) -> Vec<String> {
    let mut rows: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["row"].as_object_mut().unwrap().remove("id");
            v.to_string()
        })
        .collect();
    rows.sort();
    rows
}

async fn fill(api: &TestApi, token: &str) {
    for (path, body) in [
        ("/add", json!({"content": "the deploy key rotates on Mondays", "tags": ["ops"]})),
        ("/episodic/add", json!({"content": "rolled back release 42", "goal": "ship", "salience": 3})),
        ("/procedural/add", json!({"skill_name": "rotate", "trigger": "monday", "steps": ["a", "b"]})),
        ("/rag/add", json!({"query": "keys", "external_source": "wiki", "content": "key rotation page"})),
        ("/working/add", json!({"content": "current ticket OPS-7", "ttl_seconds": 3600})),
        ("/session/add", json!({"session_id": "s1", "content": "hello", "role": "user"})),
        ("/event", json!({"event_type": "deploy", "payload": {"n": 1}})),
    ] {
        let (s, b) = api.post(token, path, body).await;
        assert!(s == 201, "{path}: {s} {b}");
    }
}

#[tokio::test]
async fn export_then_import_copies_every_layer() {
    let api = TestApi::start().await;
    fill(&api, &Token::new("t1", "p1").sign()).await;
    let source = export(&api, &Token::admin("t1", "p1").sign()).await;
    let layers: Vec<String> = source
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["layer"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(layers, ["semantic", "episodic", "procedural", "rag", "working", "session", "event"], "{source}");
    for line in source.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        for hidden in ["tenant", "project_id", "fts"] {
            assert!(v["row"].get(hidden).is_none(), "{hidden} travels: {line}");
        }
    }
    let first: Value = serde_json::from_str(source.lines().next().unwrap()).unwrap();
    assert!(first["row"]["embedding"].as_str().is_some_and(|v| v.starts_with('[')), "vectors travel");

    // A copy beside the source: fresh ids, the same records.
    let admin2 = Token::admin("t1", "p2").sign();
    let (s, body) = import(&api, &admin2, "?new_ids=true", &source).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["imported"], 7);
    assert_eq!(body["layers"]["semantic"], 1);
    let copy = export(&api, &admin2).await;
    assert_eq!(rows_without_ids(&copy), rows_without_ids(&source));
    // The copy is searchable (full text recomputed, vector carried).
    let (s, hits) = api.get(&Token::new("t1", "p2").sign(), "/search?query=deploy%20key&k=3").await;
    assert_eq!(s, 200);
    assert!(hits.as_array().unwrap().iter().any(|h| h["content"] == "the deploy key rotates on Mondays"), "{hits}");

    // Keeping ids that are taken refuses the whole file.
    let (s, body) = import(&api, &Token::admin("t2", "p1").sign(), "", &source).await;
    assert_eq!(s, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().starts_with("line 1: a record with id"), "{body}");
    assert_eq!(export(&api, &Token::admin("t2", "p1").sign()).await, "", "nothing of t1 reaches t2");
    api.stop().await;
}

#[tokio::test]
async fn a_bad_file_imports_nothing_and_names_its_line() {
    let api = TestApi::start().await;
    let admin = Token::admin("t1", "p3").sign();
    let good = r#"{"layer":"semantic","row":{"content":"fine"}}"#;
    for (bad, line_2) in [
        ("{not json", "line 2: not JSON"),
        (r#"{"layer":"dreams","row":{}}"#, "line 2: unknown layer `dreams`"),
        (r#"{"layer":"semantic","row":{"content":"x","tenant":"t9"}}"#, "line 2: `tenant` is not a column"),
        (r#"{"layer":"semantic","row":{"content":"x","colour":"red"}}"#, "line 2: `colour` is not a column"),
        (r#"{"layer":"semantic","row":{"tags":[]}}"#, "line 2: null value in column \"content\""),
        (r#"{"layer":"semantic","row":{"content":"x","created_at":"the day after"}}"#, "line 2: invalid input syntax"),
        (r#"{"layer":"semantic","row":{"content":"x","embedding":"[1,2]"}}"#, "line 2: expected 384 dimensions"),
        (
            r#"{"layer":"event","row":{"event_type":"x","payload":{},"id":"not-a-uuid"}}"#,
            "line 2: invalid input syntax for type uuid",
        ),
    ] {
        let (s, body) = import(&api, &admin, "", &format!("{good}\n{bad}\n")).await;
        assert_eq!(s, 422, "{bad}: {body}");
        let msg = body["detail"][0]["msg"].as_str().unwrap_or_default();
        assert!(msg.starts_with(line_2), "{bad}: {body}");
    }
    assert_eq!(api.count("memories_semantic").await, 0, "nothing is half-imported");
    assert_eq!(api.count("logs_events").await, 0);

    let (s, _) = import(&api, &admin, "?new_ids=maybe", good).await;
    assert_eq!(s, 422);
    let (s, body) = import(&api, &admin, "", &format!("\n{good}\n\n")).await;
    assert_eq!((s, &body["imported"]), (200, &json!(1)), "blank lines are skipped: {body}");
    api.stop().await;
}

#[tokio::test]
async fn only_admins_move_a_project() {
    let api = TestApi::start().await;
    let agent = Token::new("t1", "p1").sign();
    fill(&api, &agent).await;
    let (s, _) = api.get(&agent, "/export").await;
    assert_eq!(s, 403);
    let (s, _) = import(&api, &agent, "", r#"{"layer":"semantic","row":{"content":"x"}}"#).await;
    assert_eq!(s, 403);
    assert_eq!(api.count("memories_semantic").await, 1);
    // The export was logged as a read of the project.
    let mut db = api.db().await;
    let admin = Token::admin("t1", "p1").sign();
    export(&api, &admin).await;
    let logged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM logs_access WHERE detail = 'export' AND result_count = 7")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(logged, 1);
    api.stop().await;
}

#[tokio::test]
async fn imported_rows_are_logged_and_chained() {
    let api = TestApi::start().await;
    let admin = Token::admin("t1", "p1").sign();
    let (s, body) = import(&api, &admin, "", "\n\n").await;
    assert_eq!(s, 422, "an empty import is refused: {body}");
    let file = "{\"layer\":\"semantic\",\"row\":{\"content\":\"a\"}}\n{\"layer\":\"event\",\"row\":{\"event_type\":\"e\",\"payload\":{}}}\n";
    let (s, body) = import(&api, &admin, "", file).await;
    assert_eq!(s, 200, "{body}");
    let mut db = api.db().await;
    let logged: Vec<(String, String)> = sqlx::query_as(
        "SELECT target_layer, memory_id FROM logs_access WHERE event_type = 'write' AND detail = 'import' ORDER BY target_layer",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM logs_events UNION ALL SELECT id::text FROM memories_semantic ORDER BY 1",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut logged_ids: Vec<String> = logged.iter().map(|(_, id)| id.clone()).collect();
    logged_ids.sort();
    assert_eq!((logged.len(), logged_ids), (2, ids));
    let (s, verify) = api.post(&admin, "/maintenance/verify", Value::Null).await;
    assert_eq!((s, &verify["audit"]["valid"]), (200, &json!(true)), "{verify}");
    api.stop().await;
}
