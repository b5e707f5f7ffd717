//! Client registry, blocked clients, quarantine, audit chain, units and issues over HTTP.

use pinak_tests::{TestApi, Token};
use serde_json::json;

#[tokio::test]
async fn registry_status_transitions_follow_the_admin_rule() {
    let api = TestApi::start().await;
    let agent = Token::new("t", "p").set("client_id", json!("bot")).sign();
    let admin = Token::admin("t", "p").sign();
    let reg = |status: &str| json!({"client_id": "bot", "client_name": "Bot", "status": status});
    let (s, b) = api.post(&agent, "/client/register", reg("registered")).await;
    assert_eq!((s, b["status"].as_str()), (201, Some("registered")));
    assert_eq!(
        api.post(&agent, "/client/register", reg("trusted")).await,
        (403, json!({"detail": "Missing role: admin"}))
    );
    assert_eq!(api.post(&agent, "/client/register", reg("blocked")).await.0, 403);
    assert_eq!(api.post(&admin, "/client/register", reg("trusted")).await.1["status"], "trusted");
    // A non-admin re-registration keeps a privileged status (the MCP bridge does this on every call).
    let (s, b) = api.post(&agent, "/client/register", reg("registered")).await;
    assert_eq!((s, b["status"].as_str()), (201, Some("trusted")));
    assert_eq!(api.post(&admin, "/client/register", reg("blocked")).await.1["status"], "blocked");
    assert_eq!(api.post(&agent, "/client/register", reg("registered")).await.1["status"], "blocked");
    assert_eq!(api.post(&admin, "/client/register", reg("registered")).await.1["status"], "registered");
    let (_, list) = api.get(&agent, "/client/list").await;
    assert_eq!(list.as_array().unwrap().iter().filter(|c| c["client_id"] == "bot").count(), 1);
    api.stop().await;
}

#[tokio::test]
async fn blocked_client_cannot_write_and_an_issue_is_filed() {
    let api = TestApi::start().await;
    let admin = Token::admin("t", "p").sign();
    api.post(&admin, "/client/register", json!({"client_id": "bad-bot", "status": "blocked"})).await;
    let bad = Token::new("t", "p").set("client_id", json!("bad-bot")).sign();
    for (path, body) in [
        ("/add", json!({"content": "x"})),
        ("/quarantine/propose/semantic", json!({"content": "x"})),
        ("/working/add", json!({"content": "x"})),
    ] {
        assert_eq!(api.post(&bad, path, body).await, (403, json!({"detail": "client blocked"})), "{path}");
    }
    assert_eq!(
        api.count("memories_semantic").await + api.count("memory_quarantine").await + api.count("working_memory").await,
        0
    );
    let (_, issues) = api.get(&admin, "/client/issues").await;
    assert!(
        issues.as_array().unwrap().iter().any(|i| i["error_code"] == "client_blocked" && i["client_id"] == "bad-bot")
    );
    api.stop().await;
}

#[tokio::test]
async fn quarantine_propose_review_and_policy() {
    let api = TestApi::start().await;
    let agent = Token::new("t", "p").sign();
    let admin = Token::admin("t", "p").sign();
    assert_eq!(
        api.post(&agent, "/quarantine/propose/working", json!({"content": "x"})).await,
        (400, json!({"detail": "Unsupported quarantine layer"}))
    );
    let (s, item) = api
        .post(&agent, "/quarantine/propose/episodic", json!({"content": "learned to retry", "goal": "stability"}))
        .await;
    assert_eq!((s, item["status"].as_str()), (202, Some("pending")), "{item}");
    assert_eq!(item["validation_errors"], json!([]));
    let (s, bad) = api.post(&agent, "/quarantine/propose/semantic", json!({"content": "", "extra": 1})).await;
    assert_eq!(s, 202, "invalid proposals are queued with their errors");
    assert!(!bad["validation_errors"].as_array().unwrap().is_empty());
    assert_eq!(api.get(&agent, "/quarantine/list").await.0, 403);
    let (_, pending) = api.get(&admin, "/quarantine/list").await;
    assert_eq!(pending.as_array().unwrap().len(), 2);

    let id = item["id"].as_str().unwrap();
    let (s, b) = api.post(&admin, &format!("/quarantine/approve/{id}"), json!({})).await;
    assert_eq!((s, b), (200, json!({"status": "approved", "id": id, "layer": "episodic"})));
    assert_eq!(
        api.post(&admin, &format!("/quarantine/approve/{id}"), json!({})).await.1,
        json!({"detail": "Quarantine item not found"}),
        "reviewed once"
    );
    let mut db = api.db().await;
    let client: String =
        sqlx::query_scalar("SELECT client_id FROM memories_episodic WHERE content = 'learned to retry'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(client, "client-a", "approved memory is attributed to the proposer");
    let bad_id = bad["id"].as_str().unwrap();
    let (s, b) = api.post(&admin, &format!("/quarantine/approve/{bad_id}"), json!({})).await;
    assert_eq!(s, 400);
    assert!(b["detail"].as_str().unwrap().starts_with("Invalid quarantined payload: "));
    assert_eq!(api.post(&admin, &format!("/quarantine/reject/{bad_id}"), json!({})).await.1["status"], "rejected");
    let (_, rejected) = api.get(&admin, "/quarantine/list?status_filter=rejected").await;
    assert_eq!(rejected.as_array().unwrap().len(), 1);
    let (_, issues) = api.get(&agent, "/client/issues").await;
    assert!(issues.as_array().unwrap().iter().any(|i| i["error_code"] == "schema_validation_failed"));
    api.stop().await;

    // Store policy: untrusted direct writes become proposals; trusted ones auto-approve.
    let api = TestApi::builder()
        .env("PINAK_QUARANTINE_UNTRUSTED_WRITES", "true")
        .env("PINAK_QUARANTINE_AUTO_APPROVE", "true")
        .env("PINAK_TRUSTED_CLIENTS", "good-bot")
        .start()
        .await;
    let (s, b) = api.post(&Token::new("t", "p").sign(), "/add", json!({"content": "gated"})).await;
    assert_eq!((s, b["status"].as_str()), (202, Some("pending")));
    assert_eq!(api.count("memories_semantic").await, 0);
    let good = Token::new("t", "p").set("client_id", json!("good-bot")).sign();
    assert_eq!(api.post(&good, "/add", json!({"content": "trusted write"})).await.0, 201);
    let (s, b) = api.post(&good, "/quarantine/propose/semantic", json!({"content": "auto"})).await;
    assert_eq!((s, b["status"].as_str(), b["auto_approved"].as_bool()), (202, Some("approved"), Some(true)));
    assert_eq!(api.count("memories_semantic").await, 2);
    api.stop().await;
}

#[tokio::test]
async fn audit_chain_verifies_and_detects_tampering() {
    let api = TestApi::start().await;
    let agent = Token::new("t", "p").sign();
    let admin = Token::admin("t", "p").sign();
    for i in 0..5 {
        api.post(&agent, "/add", json!({"content": format!("m{i}")})).await;
    }
    let (s, b) = api.post(&admin, "/maintenance/verify", json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["audit"]["valid"], true);
    assert!(b["audit"]["checked"].as_i64().unwrap() >= 5);
    assert_eq!(b["audit"]["head_hash"].as_str().unwrap().len(), 64);
    assert_eq!(api.post(&agent, "/maintenance/verify", json!({})).await.0, 403);
    let mut db = api.db().await;
    let victim: i64 = sqlx::query_scalar("SELECT id FROM logs_audit WHERE tenant = 't' ORDER BY seq OFFSET 2 LIMIT 1")
        .fetch_one(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE logs_audit SET payload = payload || '{\"status\": \"forged\"}' WHERE id = $1")
        .bind(victim)
        .execute(&mut db)
        .await
        .unwrap();
    let (s, b) = api.post(&admin, "/maintenance/verify", json!({})).await;
    assert_eq!(s, 409);
    assert_eq!(b["detail"]["audit"]["valid"], false);
    assert_eq!(b["detail"]["audit"]["first_bad_id"], victim);
    api.stop().await;
}

#[tokio::test]
async fn concurrent_writers_keep_one_chain() {
    let api = TestApi::start().await;
    let agent = Token::new("t", "p").sign();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (client, url, agent) = (api.client.clone(), api.mem("/add"), agent.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(agent)
                .json(&json!({"content": format!("c{i}")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let (s, b) = api.post(&Token::admin("t", "p").sign(), "/maintenance/verify", json!({})).await;
    assert_eq!((s, b["audit"]["valid"].as_bool()), (200, Some(true)), "{b}");
    api.stop().await;
}

#[tokio::test]
async fn units_and_issue_resolution() {
    let api = TestApi::start().await;
    let agent = Token::new("t", "p").sign();
    let admin = Token::admin("t", "p").sign();
    let a = api.post(&agent, "/add", json!({"content": "fact"})).await.1["id"].as_str().unwrap().to_owned();
    let e = api.post(&agent, "/episodic/add", json!({"content": "episode"})).await.1["id"].as_str().unwrap().to_owned();
    let members =
        json!([{"layer": "semantic", "id": a, "role": "fact"}, {"layer": "episodic", "id": e, "role": "source"}]);
    assert_eq!(
        api.post(&admin, "/units", json!({"label": "x"})).await,
        (400, json!({"detail": "Expected label and members"}))
    );
    assert_eq!(
        api.post(&admin, "/units", json!({"label": "x", "members": [{"layer": "semantic", "id": a, "role": ""}]}))
            .await
            .1["detail"],
        "Member role must be 1-64 characters"
    );
    assert_eq!(
        api.post(&admin, "/units", json!({"label": "x", "members": [{"layer": "nope", "id": a, "role": "r"}]})).await.1
            ["detail"],
        "Invalid member layer or ID"
    );
    assert_eq!(api.post(&admin, "/units", json!({"label": "x", "members": [{"layer": "semantic", "id": a, "role": "r"}, {"layer": "semantic", "id": a, "role": "r"}]})).await.1["detail"], "Duplicate member");
    let (s, unit) = api.post(&admin, "/units", json!({"label": "incident", "members": members})).await;
    assert_eq!(s, 201, "{unit}");
    assert_eq!(unit["members"], members);
    assert_eq!(
        api.post(&admin, "/units", json!({"label": "again", "members": [{"layer": "semantic", "id": a, "role": "r"}]}))
            .await
            .1["detail"],
        "Member already belongs to a unit"
    );
    assert_eq!(api.count("memory_units").await, 1, "failed creations are rolled back whole");
    let (s, rel) = api.get(&agent, &format!("/units/related/episodic/{e}")).await;
    assert_eq!(s, 200);
    assert_eq!(rel["members"].as_array().unwrap().len(), 2);
    assert_eq!(rel["members"][0]["record"]["content"], "fact");
    api.delete(&admin, &format!("/semantic/{a}")).await;
    let (_, rel) = api.get(&agent, &format!("/units/related/episodic/{e}")).await;
    assert_eq!(rel["members"].as_array().unwrap().len(), 1, "dangling members are filtered");

    let (s, issue) = api.post(&agent, "/client/issues", json!({"error_code": "tool_failed", "message": "boom"})).await;
    assert_eq!((s, issue["status"].as_str()), (201, Some("open")));
    let id = issue["id"].as_str().unwrap();
    assert_eq!(api.post(&agent, &format!("/client/issues/{id}/resolve"), json!({})).await.0, 403);
    let (s, r) = api.post(&admin, &format!("/client/issues/{id}/resolve"), json!({"resolution": "fixed"})).await;
    assert_eq!((s, r["status"].as_str(), r["resolution"].as_str()), (200, Some("resolved"), Some("fixed")));
    assert_eq!(
        api.post(&admin, &format!("/client/issues/{id}/resolve"), json!({})).await,
        (404, json!({"detail": "Issue not found"}))
    );
    assert_eq!(api.post(&admin, "/client/issues/not-a-uuid/resolve", json!({})).await.0, 404);
    api.stop().await;
}

#[tokio::test]
async fn exported_head_detects_a_truncated_tail() {
    let api = TestApi::builder()
        .env("PINAK_AUDIT_SIGNING_KEY", "audit-signing-key-0123456789-abcdefghijklmnop")
        .start()
        .await;
    let agent = Token::new("t", "p").sign();
    let admin = Token::admin("t", "p").sign();
    for i in 0..4 {
        api.post(&agent, "/add", json!({"content": format!("m{i}")})).await;
    }
    let (s, head) = api.get(&admin, "/maintenance/audit/head").await;
    assert_eq!(s, 200, "{head}");
    let signed = head["signature"].as_str().unwrap().to_owned();
    let plain = json!({"seq": head["seq"], "head_hash": head["head_hash"]});
    assert_eq!(api.post(&admin, "/maintenance/verify", json!({"anchor": signed})).await.0, 200);
    assert_eq!(api.post(&admin, "/maintenance/verify", json!({"anchor": plain})).await.0, 200);
    let forged = format!("{}x", &signed[..signed.len() - 1]);
    assert_eq!(
        api.post(&admin, "/maintenance/verify", json!({"anchor": forged})).await,
        (400, json!({"detail": "Invalid anchor: bad signature"}))
    );
    // Delete the tail: the chain that is left still links up, but no longer reaches the anchor.
    let mut db = api.db().await;
    sqlx::query(
        "DELETE FROM logs_audit WHERE tenant = 't' AND seq >= (SELECT max(seq) - 1 FROM logs_audit WHERE tenant = 't')",
    )
    .execute(&mut db)
    .await
    .unwrap();
    assert_eq!(
        api.post(&admin, "/maintenance/verify", json!({})).await.0,
        200,
        "without an anchor a cut tail is invisible"
    );
    let (s, b) = api.post(&admin, "/maintenance/verify", json!({"anchor": signed})).await;
    assert_eq!(s, 409);
    assert_eq!(
        (b["detail"]["audit"]["valid"].as_bool(), b["detail"]["audit"]["truncated"].as_bool()),
        (Some(false), Some(true))
    );
    api.stop().await;
}

#[tokio::test]
async fn revocation_is_seen_by_another_api_process() {
    let a = TestApi::start().await;
    let b = TestApi::builder().env("PINAK_DB_SCHEMA", &a.schema).start().await;
    let victim = Token::new("t", "p");
    let token = victim.sign();
    assert_eq!(b.get(&token, "/search?query=x").await.0, 200);
    let resp = a
        .client
        .post(a.url("/api/v1/auth/revoke"))
        .bearer_auth(Token::admin("t", "p").sign())
        .json(&json!({"jti": victim.jti()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        b.get(&token, "/search?query=x").await,
        (401, json!({"detail": "Token revoked"})),
        "the next request on any replica"
    );
    a.stop().await;
    b.stop().await;
}

/// Links are hashed by PostgreSQL (migrations/0003) and verified in Rust (audit::chain_hash):
/// both must agree on every byte, including escapes and non-ASCII text in payloads, and
/// concurrent searches (async-committed read entries) and writes must keep one chain.
#[tokio::test]
async fn sql_hashing_agrees_with_rust_verification_under_mixed_load() {
    let api = TestApi::start().await;
    let odd = Token::new("t", "p")
        .set("client_id", json!("clïent \"quoted\" \\ back\u{1}slash ✓"))
        .set("sub", json!("agënt\n2"))
        .sign();
    let admin = Token::admin("t", "p").sign();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (client, odd) = (api.client.clone(), odd.clone());
        let (add, search) = (api.mem("/add"), api.mem(&format!("/search?query=m{i}&k=3")));
        tasks.push(tokio::spawn(async move {
            let a = client
                .post(add)
                .bearer_auth(&odd)
                .json(&json!({"content": format!("m{i} ünïcode")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            let s = client.get(search).bearer_auth(&odd).send().await.unwrap().status().as_u16();
            (a, s)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), (201, 200));
    }
    let (s, b) = api.post(&admin, "/maintenance/verify", json!({})).await;
    assert_eq!((s, b["audit"]["valid"].as_bool()), (200, Some(true)), "{b}");
    assert_eq!(b["audit"]["checked"], 32, "one write and one read link per task: {b}");
    let mut db = api.db().await;
    let stored: String =
        sqlx::query_scalar("SELECT payload->>'client_id' FROM logs_audit WHERE tenant = 't' ORDER BY seq LIMIT 1")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(stored, "clïent \"quoted\" \\ back\u{1}slash ✓");
    api.stop().await;
}
