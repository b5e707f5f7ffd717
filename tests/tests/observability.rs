//! Heartbeats, agent and access lists, client summary, metrics, capture validation, nudges.

use pinak_tests::{TestApi, Token};
use serde_json::{Value, json};

#[tokio::test]
async fn heartbeat_upserts_and_lists() {
    let api = TestApi::start().await;
    let read_only = Token::new("t", "p").set("scopes", json!(["memory.read"])).sign();
    let (s, a) = api.post(&read_only, "/agent/heartbeat", json!({"hostname": "h1", "pid": 42, "meta": {"v": 1}})).await;
    assert_eq!(s, 200, "heartbeat needs only read: {a}");
    assert_eq!(
        (a["agent_id"].as_str(), a["status"].as_str(), a["pid"].as_str(), a["client_name"].as_str()),
        (Some("agent-1"), Some("active"), Some("42"), Some("unknown"))
    );
    let first_seen = a["last_seen"].as_str().unwrap().to_owned();
    let (_, a) = api.post(&read_only, "/agent/heartbeat", json!({"status": "idle"})).await;
    assert_eq!(a["status"], "idle");
    assert!(a["last_seen"].as_str().unwrap() >= first_seen.as_str());
    let (_, list) = api.get(&read_only, "/agent/list").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "upsert on (agent, client name, tenant, project)");
    api.stop().await;
}

#[tokio::test]
async fn access_log_records_reads_and_writes_with_truncated_queries() {
    let api = TestApi::start().await;
    let w = Token::new("t", "p").sign();
    api.post(&w, "/add", json!({"content": "x"})).await;
    // 400 characters in words of 3 (a word may hold at most 100).
    let long = "qq ".repeat(133) + "q";
    api.get(&w, &format!("/search?query={long}")).await;
    let (_, rows) = api.get(&w, "/access/list").await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows[0]["detail"], "search_memory");
    assert_eq!(rows[0]["query"].as_str().unwrap().len(), 256);
    assert_eq!(rows[1]["event_type"], "write");
    assert_eq!(rows[1]["target_layer"], "semantic");
    assert!(rows[0].get("tenant").is_none() && rows[0].get("id").is_none());
    api.stop().await;
}

#[tokio::test]
async fn client_summary_counts_self_and_children() {
    let api = TestApi::start().await;
    let parent = Token::new("t", "p").set("client_id", json!("parent")).sign();
    let child = Token::new("t", "p").set("client_id", json!("kid")).sign();
    api.post(&parent, "/client/register", json!({"client_id": "parent", "client_name": "Parent"})).await;
    let parent_of_kid =
        Token::new("t", "p").set("client_id", json!("parent")).set("child_client_id", json!("kid")).sign();
    api.post(&parent_of_kid, "/client/register", json!({"client_id": "kid", "parent_client_id": "parent"})).await;
    api.post(&parent, "/add", json!({"content": "a"})).await;
    api.post(&parent, "/add", json!({"content": "b"})).await;
    api.post(&child, "/episodic/add", json!({"content": "c"})).await;
    api.post(&child, "/quarantine/propose/semantic", json!({"content": "d"})).await;
    let (s, sum) = api.get(&parent, "/client/summary").await;
    assert_eq!(s, 200, "{sum}");
    assert_eq!(
        (sum["client"]["client_id"].as_str(), sum["client"]["status"].as_str()),
        (Some("parent"), Some("registered"))
    );
    assert_eq!(sum["summary"]["counts"]["semantic"], 2);
    assert_eq!(sum["summary"]["total"], 2);
    assert_eq!(sum["children"][0]["client_id"], "kid");
    assert_eq!(sum["children"][0]["counts"]["episodic"], 1);
    assert_eq!(sum["children"][0]["pending_quarantine"], 1);
    assert_eq!((sum["combined"]["total"].as_i64(), sum["combined"]["pending_quarantine"].as_i64()), (Some(3), Some(1)));
    let (_, alone) = api.get(&parent, "/client/summary?include_children=false").await;
    assert_eq!(alone["children"], json!([]));
    api.stop().await;
}

#[tokio::test]
async fn metrics_json_and_prometheus() {
    let api = TestApi::start().await;
    let w = Token::new("t", "p").sign();
    api.post(&w, "/add", json!({"content": "x"})).await;
    api.get(&w, "/search?query=x").await;
    assert_eq!(
        pinak_tests::response(api.client.get(api.url("/api/v1/metrics")).send().await.unwrap()).await,
        (401, json!({"detail": "Missing bearer token"}))
    );
    assert_eq!(
        pinak_tests::response(api.client.get(api.url("/api/v1/metrics")).bearer_auth(&w).send().await.unwrap()).await.0,
        403
    );
    let (s, m) = pinak_tests::response(
        api.client.get(api.url("/api/v1/metrics")).bearer_auth(Token::admin("t", "p").sign()).send().await.unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!((m["verification"].as_str(), m["vectors"].as_i64()), (Some("ready"), Some(1)));
    assert!(m["access_rows"].as_i64().unwrap() >= 2);
    let add = &m["requests"]["POST /api/v1/memory/add 2xx"];
    assert!(add["count"].as_u64().unwrap() >= 1 && add["duration_seconds_sum"].as_f64().unwrap() > 0.0, "{m}");
    assert!(!m.to_string().contains(&w), "labels never carry tokens");
    let text = api.client.get(api.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains("pinak_http_requests_total{method=\"POST\",route=\"/api/v1/memory/add\",status=\"201\"}"),
        "{text}"
    );
    assert!(text.contains("pinak_http_request_duration_seconds_bucket"));
    assert!(text.contains("pinak_embedding_duration_seconds_bucket{le="), "embedding latency is recorded");
    assert!(text.contains("pinak_db_pool_connections"));
    assert!(!text.contains("query=x"), "no raw queries in labels");
    api.stop().await;
}

fn envelope(tenant: &str) -> Value {
    json!({
        "tenant_id": tenant, "agent_id": "ag", "client_id": "client-a", "client_version": "1.0",
        "session_id": "01HZY3K8Q4W7N6M2P9R5T1V3XA", "event_id": "01HZY3K8Q4W7N6M2P9R5T1V3XB", "task_id": null,
        "sequence": 1, "client_ts": "2026-11-25T00:00:00Z", "actor": "agent", "event_type": "message",
        "payload": {"text": "hi"}, "payload_hash": "a".repeat(64), "boundary_source": "client_hook", "source": "api",
        "provenance": {"tool": "x"}, "envelope_version": "0.3"
    })
}

#[tokio::test]
async fn capture_validates_then_is_always_disabled() {
    let api = TestApi::start().await;
    let signed = Token::new("t", "p").set("agent_id", json!("ag")).sign();
    let unsigned = Token::new("t", "p").sign();
    let (s, b) = api.post(&unsigned, "/capture/session", json!({})).await;
    assert_eq!(
        (s, b["detail"]["code"].as_str(), b["detail"]["missing_claims"].clone()),
        (403, Some("auth_claim_missing"), json!(["agent_id"]))
    );
    let (s, b) = api.post(&signed, "/capture/session", json!({"client_session_ref": "r1"})).await;
    assert_eq!((s, b["detail"]["code"].as_str()), (503, Some("capture_disabled")));
    assert_eq!(api.post(&signed, "/capture/session", json!({"nope": 1})).await.1["detail"]["code"], "schema_violation");
    assert_eq!(api.post(&signed, "/capture", envelope("t")).await.1["detail"]["code"], "capture_disabled");
    assert_eq!(api.post(&signed, "/capture", envelope("other")).await.1["detail"]["code"], "auth_binding_mismatch");
    let mut v = envelope("t");
    v["envelope_version"] = json!("0.2");
    assert_eq!(api.post(&signed, "/capture", v).await.0, 400);
    let mut v = envelope("t");
    v["actor"] = json!("robot");
    assert_eq!(api.post(&signed, "/capture", v).await.1["detail"]["code"], "unknown_enum_value");
    let mut v = envelope("t");
    v["privacy_class"] = json!("public");
    assert_eq!(api.post(&signed, "/capture", v).await.1["detail"]["code"], "client_assigned_service_field");
    let mut v = envelope("t");
    v["payload"] = json!({"nested": {"chain_of_thought": "secret reasoning"}});
    let (s, b) = api.post(&signed, "/capture", v).await;
    assert_eq!((s, b["detail"]["code"].as_str()), (422, Some("schema_violation")));
    assert!(!b.to_string().contains("secret reasoning"), "error bodies never echo payload content");
    let mut v = envelope("t");
    v["payload"] = json!({"blob": "x".repeat(300_000)});
    assert_eq!(api.post(&signed, "/capture", v).await.1["detail"]["code"], "event_too_large");
    assert_eq!(api.count("logs_access").await + api.count("logs_audit").await, 0, "capture writes nothing anywhere");
    api.stop().await;
}

#[tokio::test]
async fn working_notes_about_risky_topics_get_nudges() {
    let api = TestApi::start().await;
    let w = Token::new("t", "p").sign();
    api.post(&w, "/episodic/add", json!({"content": "deploy to production failed: token expired", "goal": "deploy"}))
        .await;
    let (s, b) = api.post(&w, "/working/add", json!({"content": "About to deploy the new build"})).await;
    assert_eq!(s, 201);
    let nudges = b["nudges"].as_array().unwrap();
    assert_eq!(nudges.len(), 1, "{b}");
    assert_eq!(
        (nudges[0]["type"].as_str(), nudges[0]["strength"].as_str(), nudges[0]["layer"].as_str()),
        (Some("proactive_nudge"), Some("HIGH"), Some("episodic"))
    );
    assert!(nudges[0]["message"].as_str().unwrap().starts_with("Collision with episodic: deploy to production failed"));
    api.stop().await;
}
