//! Tenants and projects never see each other's data: reads, lists, search, context, updates,
//! deletes, quarantine, units and issues, on every layer. The intruder holds a valid admin
//! token of another tenant (or another project of the same tenant) and knows the record ids.

use pinak_tests::{TestApi, Token};
use serde_json::{Value, json};

struct Seeded {
    ids: Vec<(&'static str, String)>,
}

async fn seed(api: &TestApi, token: &str) -> Seeded {
    let mut ids = Vec::new();
    let adds: [(&str, &str, Value); 5] = [
        ("semantic", "/add", json!({"content": "zebra secret plan"})),
        ("episodic", "/episodic/add", json!({"content": "zebra episode", "goal": "zebra goal"})),
        ("procedural", "/procedural/add", json!({"skill_name": "zebra skill", "steps": ["zebra"]})),
        ("rag", "/rag/add", json!({"query": "zebra", "external_source": "zebra.test", "content": "zebra snippet"})),
        ("working", "/working/add", json!({"content": "zebra working note"})),
    ];
    for (layer, path, body) in adds {
        let (s, b) = api.post(token, path, body).await;
        assert_eq!(s, 201, "{b}");
        ids.push((layer, b["id"].as_str().unwrap().to_owned()));
    }
    api.post(token, "/session/add", json!({"session_id": "zebra-session", "content": "zebra line"})).await;
    api.post(token, "/event", json!({"event_type": "zebra", "payload": {}})).await;
    api.post(token, "/client/issues", json!({"error_code": "zebra_issue", "message": "zebra"})).await;
    api.post(token, "/quarantine/propose/semantic", json!({"content": "zebra proposal"})).await;
    Seeded { ids }
}

fn mentions_zebra(v: &Value) -> bool {
    v.to_string().to_lowercase().contains("zebra")
}

async fn assert_sealed(api: &TestApi, seeded: &Seeded, intruder: &str, intruder_admin: &str) {
    for (layer, id) in &seeded.ids {
        let (s, b) = api.get(intruder, &format!("/{layer}/{id}")).await;
        assert_eq!((s, b["detail"].as_str()), (404, Some("Memory not found")), "read {layer}");
        if *layer != "working" {
            let (s, _) = api.put(intruder_admin, &format!("/{layer}/{id}"), json!({"content": "pwned"})).await;
            assert!(s == 404 || (s == 400 && *layer == "procedural"), "update {layer}: {s}");
            let (s, _) = api.delete(intruder_admin, &format!("/{layer}/{id}")).await;
            assert_eq!(s, 404, "delete {layer}");
        }
        let (s, _) = api.get(intruder, &format!("/units/related/{layer}/{id}")).await;
        assert_eq!(s, 404);
    }
    // First, before the intruder's own searches for "zebra" land in its own access log.
    for path in [
        "/access/list",
        "/search?query=zebra&k=100",
        "/retrieve_context?query=zebra",
        "/rag/search?query=zebra",
        "/events",
        "/session/list?session_id=zebra-session",
        "/working/list",
        "/client/issues",
        "/agent/list",
    ] {
        let (s, b) = api.get(intruder, path).await;
        assert_eq!(s, 200, "{path}");
        assert!(!mentions_zebra(&b), "{path} leaked: {b}");
    }
    let (s, b) = api.get(intruder_admin, "/quarantine/list").await;
    assert_eq!(s, 200);
    assert!(!mentions_zebra(&b), "quarantine leaked: {b}");
    // A unit cannot adopt another scope's record.
    let (sid_layer, sid) = &seeded.ids[0];
    let (s, b) = api
        .post(
            intruder_admin,
            "/units",
            json!({"label": "steal", "members": [{"layer": sid_layer, "id": sid, "role": "x"}]}),
        )
        .await;
    assert_eq!((s, b["detail"].as_str()), (400, Some("Member not found in this tenant/project")));
}

#[tokio::test]
async fn other_tenants_and_projects_see_nothing() {
    let api = TestApi::start().await;
    let owner = Token::new("acme", "alpha").sign();
    let seeded = seed(&api, &owner).await;
    // The same zebra vector exists in the owner's scope: vector search must still not cross.
    for (tenant, project) in [("globex", "alpha"), ("acme", "beta")] {
        let intruder = Token::new(tenant, project).sign();
        let intruder_admin = Token::admin(tenant, project).sign();
        api.post(&intruder, "/add", json!({"content": "unrelated content for ranking"})).await;
        assert_sealed(&api, &seeded, &intruder, &intruder_admin).await;
    }
    // Quarantine review across scopes is a 404 and leaves the item pending.
    let (_, items) = api.get(&Token::admin("acme", "alpha").sign(), "/quarantine/list").await;
    let item = items[0]["id"].as_str().unwrap().to_owned();
    let (s, b) =
        api.post(&Token::admin("globex", "alpha").sign(), &format!("/quarantine/approve/{item}"), json!({})).await;
    assert_eq!((s, b["detail"].as_str()), (404, Some("Quarantine item not found")));
    // The owner still sees everything, untouched.
    for (layer, id) in &seeded.ids {
        let (s, row) = api.get(&owner, &format!("/{layer}/{id}")).await;
        assert_eq!(s, 200);
        assert!(mentions_zebra(&row), "{layer} intact");
    }
    let (_, hits) = api.get(&owner, "/search?query=zebra&k=20").await;
    assert!(hits.as_array().unwrap().len() >= 5);
    api.stop().await;
}
