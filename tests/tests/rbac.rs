//! Finer scopes grant exactly one action; umbrella scopes keep the contract's behaviour.

use pinak_tests::{TestApi, Token};
use serde_json::json;

fn token(scopes: &[&str], roles: &[&str]) -> String {
    Token::new("t", "p").set("scopes", json!(scopes)).set("roles", json!(roles)).sign()
}

#[tokio::test]
async fn fine_scopes_grant_one_action_each() {
    let api = TestApi::start().await;
    let ingest = token(&["memory.episodic.write"], &[]);
    let (s, e) = api.post(&ingest, "/episodic/add", json!({"content": "only episodes"})).await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(
        api.post(&ingest, "/add", json!({"content": "x"})).await,
        (403, json!({"detail": "Missing scope: memory.write"}))
    );
    assert_eq!(api.get(&ingest, "/search?query=x").await, (403, json!({"detail": "Missing scope: memory.read"})));

    let sem_reader = token(&["memory.semantic.read"], &[]);
    let s_id = api.post(&Token::new("t", "p").sign(), "/add", json!({"content": "fact"})).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(api.get(&sem_reader, &format!("/semantic/{s_id}")).await.0, 200);
    let e_id = e["id"].as_str().unwrap();
    assert_eq!(api.get(&sem_reader, &format!("/episodic/{e_id}")).await.0, 403);

    let proposer = token(&["memory.quarantine.propose"], &[]);
    let (s, item) = api.post(&proposer, "/quarantine/propose/semantic", json!({"content": "please review"})).await;
    assert_eq!(s, 202);
    let reviewer_no_role = token(&["memory.quarantine.review"], &[]);
    assert_eq!(api.get(&reviewer_no_role, "/quarantine/list").await, (403, json!({"detail": "Missing role: admin"})));
    let reviewer = token(&["memory.quarantine.review"], &["admin"]);
    assert_eq!(api.get(&reviewer, "/quarantine/list").await.0, 200);
    let id = item["id"].as_str().unwrap();
    assert_eq!(api.post(&reviewer, &format!("/quarantine/approve/{id}"), json!({})).await.0, 200);
    // A reviewer is not an editor.
    assert_eq!(
        api.put(&reviewer, &format!("/semantic/{s_id}"), json!({"content": "y"})).await,
        (403, json!({"detail": "Missing scope: memory.admin"}))
    );
    assert_eq!(api.delete(&token(&["memory.semantic.admin"], &["admin"]), &format!("/semantic/{s_id}")).await.0, 204);

    let auditor = token(&["memory.audit"], &["admin"]);
    assert_eq!(api.post(&auditor, "/maintenance/verify", json!({})).await.0, 200);
    assert_eq!(
        api.post(
            &auditor,
            "/units",
            json!({"label": "x", "members": [{"layer": "semantic", "id": s_id, "role": "r"}]})
        )
        .await,
        (403, json!({"detail": "Missing scope: memory.admin"}))
    );
    api.stop().await;
}
