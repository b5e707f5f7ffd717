//! Every row of the contract's authentication failure matrix, plus token attacks.

use pinak_tests::{TestApi, Token};
use serde_json::json;

async fn detail(api: &TestApi, req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let _ = api;
    pinak_tests::response(req.send().await.unwrap()).await
}

#[tokio::test]
async fn failure_matrix() {
    let api = TestApi::start().await;
    let url = api.mem("/search?query=x");
    let c = &api.client;

    let (s, b) = detail(&api, c.get(&url)).await;
    assert_eq!((s, b["detail"].as_str()), (401, Some("Missing bearer token")));
    let (s, b) = detail(&api, c.get(&url).header("Authorization", "Basic abc")).await;
    assert_eq!((s, b["detail"].as_str()), (401, Some("Missing bearer token")));

    let bad_sig = Token::new("t1", "p1").secret("another-secret-that-is-long-enough-0123456789").sign();
    let (s, b) = detail(&api, c.get(&url).bearer_auth(bad_sig)).await;
    assert_eq!((s, b["detail"].as_str()), (401, Some("Invalid token")));
    let (s, b) = detail(&api, c.get(&url).bearer_auth("not.a.jwt")).await;
    assert_eq!((s, b["detail"].as_str()), (401, Some("Invalid token")));
    for claim in ["iss", "aud"] {
        let t = Token::new("t1", "p1").set(claim, json!("wrong")).sign();
        let (s, b) = detail(&api, c.get(&url).bearer_auth(t)).await;
        assert_eq!((s, b["detail"].as_str()), (401, Some("Invalid token")), "wrong {claim}");
    }
    for claim in ["exp", "iss", "aud", "jti"] {
        let t = Token::new("t1", "p1").unset(claim).sign();
        let (s, b) = detail(&api, c.get(&url).bearer_auth(t)).await;
        assert_eq!((s, b["detail"].as_str()), (401, Some("Invalid token")), "missing {claim}");
    }
    let expired = Token::new("t1", "p1").set("exp", json!(chrono::Utc::now().timestamp() - 3600)).sign();
    let (s, b) = detail(&api, c.get(&url).bearer_auth(expired)).await;
    assert_eq!((s, b["detail"].as_str()), (401, Some("Token expired")));
    let not_yet = Token::new("t1", "p1").set("nbf", json!(chrono::Utc::now().timestamp() + 3600)).sign();
    let (s, _) = detail(&api, c.get(&url).bearer_auth(not_yet)).await;
    assert_eq!(s, 401);
    for jti in [json!(42), json!(""), json!("x".repeat(257))] {
        let t = Token::new("t1", "p1").set("jti", jti.clone()).sign();
        let (s, b) = detail(&api, c.get(&url).bearer_auth(t)).await;
        assert_eq!((s, b["detail"].as_str()), (401, Some("Invalid token id")), "jti {jti}");
    }
    for claim in ["tenant", "project_id"] {
        let t = Token::new("t1", "p1").unset(claim).sign();
        let (s, b) = detail(&api, c.get(&url).bearer_auth(t)).await;
        assert_eq!((s, b["detail"].as_str()), (403, Some("Tenant or project missing in token")));
    }
    // Aliases are accepted.
    let alias = Token::new("t1", "p1")
        .unset("tenant")
        .unset("project_id")
        .set("tenant_id", json!("t1"))
        .set("project", json!("p1"))
        .sign();
    assert_eq!(detail(&api, c.get(&url).bearer_auth(alias)).await.0, 200);

    let ok = Token::new("t1", "p1").sign();
    let (s, b) = detail(&api, c.get(&url).bearer_auth(&ok).header("X-Pinak-Client-Id", "someone-else")).await;
    assert_eq!((s, b["detail"].as_str()), (403, Some("Client identity header does not match token")));
    assert_eq!(detail(&api, c.get(&url).bearer_auth(&ok).header("X-Pinak-Client-Id", "client-a")).await.0, 200);
    let (s, b) = detail(&api, c.get(&url).bearer_auth(&ok).header("X-Pinak-Parent-Client-Id", "p")).await;
    assert_eq!(
        (s, b["detail"].as_str()),
        (403, Some("Client identity header does not match token")),
        "parent claim absent never matches"
    );
    let (s, b) = detail(
        &api,
        c.get(&url).bearer_auth(&ok).header("X-Pinak-Child-Id", "a").header("X-Pinak-Child-Client-Id", "b"),
    )
    .await;
    assert_eq!((s, b["detail"].as_str()), (403, Some("Conflicting child identity headers")));

    let read_only = Token::new("t1", "p1").set("scopes", json!(["memory.read"])).sign();
    let (s, b) = api.post(&read_only, "/add", json!({"content": "x"})).await;
    assert_eq!((s, b["detail"].as_str()), (403, Some("Missing scope: memory.write")));
    let scope_no_role = Token::new("t1", "p1").set("scopes", json!(["memory.read", "memory.admin"])).sign();
    let (s, b) = api.get(&scope_no_role, "/quarantine/list").await;
    assert_eq!((s, b["detail"].as_str()), (403, Some("Missing role: admin")));
    // Validation runs before the scope check (as in the prototype): bad body + no scope = 422.
    let (s, _) = api.post(&read_only, "/add", json!({"tags": "nope"})).await;
    assert_eq!(s, 422);
    api.stop().await;
}

#[tokio::test]
async fn algorithm_attacks_are_rejected() {
    let api = TestApi::start().await;
    let url = api.mem("/search?query=x");
    let claims = Token::new("t1", "p1").sign();
    let payload = claims.split('.').nth(1).unwrap().to_owned();
    // alg: none with no signature.
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    for forged in [format!("{none_header}.{payload}."), format!("{none_header}.{payload}")] {
        let (s, b) = pinak_tests::response(api.client.get(&url).bearer_auth(forged).send().await.unwrap()).await;
        assert_eq!((s, b["detail"].as_str()), (401, Some("Invalid token")));
    }
    // RS256 header over an HMAC signature (key confusion).
    let rs_header = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9";
    let sig = claims.split('.').nth(2).unwrap();
    let (s, _) = pinak_tests::response(
        api.client.get(&url).bearer_auth(format!("{rs_header}.{payload}.{sig}")).send().await.unwrap(),
    )
    .await;
    assert_eq!(s, 401);
    api.stop().await;
}

#[tokio::test]
async fn revoked_token_is_refused_after_revoke_endpoint() {
    let api = TestApi::start().await;
    let victim = Token::new("t1", "p1");
    let token = victim.sign();
    assert_eq!(api.get(&token, "/search?query=x").await.0, 200);
    let admin = Token::admin("t1", "p1").sign();
    let resp = api
        .client
        .post(api.url("/api/v1/auth/revoke"))
        .bearer_auth(&admin)
        .json(&json!({"jti": victim.jti()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (s, b) = api.get(&token, "/search?query=x").await;
    assert_eq!((s, b["detail"].as_str()), (401, Some("Token revoked")));
    // Non-admins cannot revoke.
    let resp = api
        .client
        .post(api.url("/api/v1/auth/revoke"))
        .bearer_auth(Token::new("t1", "p1").sign())
        .json(&json!({"jti": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    api.stop().await;
}

#[tokio::test]
async fn pinned_tenant_refuses_others() {
    let api = TestApi::builder().env("PINAK_TENANT", "acme").start().await;
    assert_eq!(api.get(&Token::new("acme", "p").sign(), "/search?query=x").await.0, 200);
    let (s, b) = api.get(&Token::new("other", "p").sign(), "/search?query=x").await;
    assert_eq!((s, b["detail"].as_str()), (403, Some("Tenant not served by this store")));
    api.stop().await;
}
