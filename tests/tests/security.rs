//! Issue 19's security items: each test reproduces one reported request against the API.

use pinak_tests::{TestApi, Token};
use serde_json::json;

/// Item 2: a write-only token must not read other layers through working-memory nudges.
#[tokio::test]
async fn nudges_are_not_served_to_principals_that_cannot_read() {
    let api = TestApi::start().await;
    let w = Token::new("t", "p").sign();
    api.post(&w, "/episodic/add", json!({"content": "deploy to production failed: token expired", "goal": "deploy"}))
        .await;
    let write_only = Token::new("t", "p").set("scopes", json!(["memory.working.write"])).sign();
    assert_eq!(api.get(&write_only, "/search?query=deploy").await.0, 403);
    let (s, b) = api.post(&write_only, "/working/add", json!({"content": "About to deploy the new build"})).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["nudges"], json!([]), "no snippets for a token that may not search: {b}");
    // A token that may search, but read only working memory, gets no episodic snippets either.
    let searcher = Token::new("t", "p")
        .set("scopes", json!(["memory.working.write", "memory.search", "memory.working.read"]))
        .sign();
    let (s, b) = api.post(&searcher, "/working/add", json!({"content": "About to deploy again"})).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["nudges"], json!([]), "no snippets of a layer the token may not read: {b}");
    // The full reader still gets them.
    let (_, b) = api.post(&w, "/working/add", json!({"content": "About to deploy once more"})).await;
    assert_eq!(b["nudges"].as_array().map(Vec::len), Some(1), "{b}");
    api.stop().await;
}

/// Item 3: `/units/related` returns only members of layers the caller may read.
#[tokio::test]
async fn related_units_hide_members_of_unreadable_layers() {
    let api = TestApi::start().await;
    let agent = Token::new("t", "p").sign();
    let admin = Token::admin("t", "p").sign();
    let a = api.post(&agent, "/add", json!({"content": "fact"})).await.1["id"].as_str().unwrap().to_owned();
    let e = api.post(&agent, "/episodic/add", json!({"content": "secret episode"})).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let members =
        json!([{"layer": "semantic", "id": a, "role": "fact"}, {"layer": "episodic", "id": e, "role": "source"}]);
    assert_eq!(api.post(&admin, "/units", json!({"label": "incident", "members": members})).await.0, 201);
    let units_only = Token::new("t", "p").set("scopes", json!(["memory.units.read", "memory.semantic.read"])).sign();
    let (s, rel) = api.get(&units_only, &format!("/units/related/semantic/{a}")).await;
    assert_eq!(s, 200, "{rel}");
    let layers: Vec<&str> = rel["members"].as_array().unwrap().iter().filter_map(|m| m["layer"].as_str()).collect();
    assert_eq!(layers, ["semantic"], "the episodic member is not readable by this token: {rel}");
    assert!(!rel.to_string().contains("secret episode"), "{rel}");
    // Asking through a record of a layer the caller cannot read is refused outright.
    assert_eq!(
        api.get(&units_only, &format!("/units/related/episodic/{e}")).await,
        (403, json!({"detail": "Missing scope: memory.read"}))
    );
    // A reader of every layer still sees the whole unit.
    let (_, rel) = api.get(&agent, &format!("/units/related/semantic/{a}")).await;
    assert_eq!(rel["members"].as_array().unwrap().len(), 2);
    api.stop().await;
}

/// Item 5: a blocked client cannot write through a child (or name a blocked parent).
#[tokio::test]
async fn blocked_parents_cannot_write_through_children() {
    let api = TestApi::start().await;
    let admin = Token::admin("t", "p").sign();
    api.post(&admin, "/client/register", json!({"client_id": "bad-bot", "status": "blocked"})).await;
    let through_child =
        Token::new("t", "p").set("client_id", json!("bad-bot")).set("child_client_id", json!("fresh-child")).sign();
    let through_parent =
        Token::new("t", "p").set("client_id", json!("other")).set("parent_client_id", json!("bad-bot")).sign();
    for token in [&through_child, &through_parent] {
        for (path, body) in [("/add", json!({"content": "x"})), ("/working/add", json!({"content": "x"}))] {
            assert_eq!(api.post(token, path, body).await, (403, json!({"detail": "client blocked"})), "{path}");
        }
    }
    assert_eq!(api.count("memories_semantic").await + api.count("working_memory").await, 0);
    // A blocked child is refused under an unblocked parent too.
    api.post(&admin, "/client/register", json!({"client_id": "bad-child", "status": "blocked"})).await;
    let child = Token::new("t", "p").set("client_id", json!("good")).set("child_client_id", json!("bad-child")).sign();
    assert_eq!(api.post(&child, "/add", json!({"content": "x"})).await.0, 403);
    api.stop().await;
}

/// Item 13: capture identity binding accepts only strings equal to the signed claims.
#[tokio::test]
async fn capture_binding_refuses_non_string_identities() {
    let api = TestApi::start().await;
    let signed = Token::new("t", "p").set("agent_id", json!("ag")).sign();
    let envelope = json!({
        "tenant_id": "t", "agent_id": "ag", "client_id": "client-a", "client_version": "1.0",
        "session_id": "01HZY3K8Q4W7N6M2P9R5T1V3XA", "event_id": "01HZY3K8Q4W7N6M2P9R5T1V3XB", "task_id": null,
        "sequence": 1, "client_ts": "2026-11-25T00:00:00Z", "actor": "agent", "event_type": "message",
        "payload": {"text": "hi"}, "payload_hash": "a".repeat(64), "boundary_source": "client_hook", "source": "api",
        "provenance": {"tool": "x"}, "envelope_version": "0.3"
    });
    assert_eq!(api.post(&signed, "/capture", envelope.clone()).await.1["detail"]["code"], "capture_disabled");
    for (field, value) in [
        ("tenant_id", json!(7)),
        ("agent_id", json!({"id": "ag"})),
        ("client_id", json!(["client-a"])),
        ("tenant_id", json!(null)),
        ("client_id", json!(true)),
    ] {
        let mut v = envelope.clone();
        v[field] = value.clone();
        assert_eq!(
            api.post(&signed, "/capture", v).await,
            (403, json!({"detail": {"code": "auth_binding_mismatch", "field": field}})),
            "{field} = {value}"
        );
    }
    api.stop().await;
}

/// Item 6: a non-admin registers only its own signed identities; statuses are a closed set.
#[tokio::test]
async fn non_admins_cannot_take_over_other_clients() {
    let api = TestApi::start().await;
    let admin = Token::admin("t", "p").sign();
    let reg = json!({"client_id": "victim", "client_name": "Victim", "status": "trusted", "metadata": {"k": "v"}});
    assert_eq!(api.post(&admin, "/client/register", reg).await.0, 201);
    let attacker = Token::new("t", "p").set("client_id", json!("attacker")).sign();
    let (s, b) = api
        .post(
            &attacker,
            "/client/register",
            json!({"client_id": "victim", "client_name": "Pwned", "parent_client_id": "attacker", "metadata": {}}),
        )
        .await;
    assert_eq!(
        (s, b),
        (403, json!({"detail": "A non-admin may register only its own signed client_id or child_client_id"}))
    );
    let (_, list) = api.get(&admin, "/client/list").await;
    let victim = list.as_array().unwrap().iter().find(|c| c["client_id"] == "victim").unwrap().clone();
    assert_eq!(
        (victim["client_name"].as_str(), victim["parent_client_id"].as_str(), victim["metadata"].clone()),
        (Some("Victim"), None, json!({"k": "v"})),
        "the trusted client is untouched"
    );
    // Its own identity, and a child it signs for, may be registered; a parent must be signed too.
    assert_eq!(api.post(&attacker, "/client/register", json!({"client_id": "attacker"})).await.0, 201);
    let with_child =
        Token::new("t", "p").set("client_id", json!("attacker")).set("child_client_id", json!("kid")).sign();
    let (s, b) =
        api.post(&with_child, "/client/register", json!({"client_id": "kid", "parent_client_id": "attacker"})).await;
    assert_eq!((s, b["parent_client_id"].as_str()), (201, Some("attacker")), "{b}");
    assert_eq!(
        api.post(&attacker, "/client/register", json!({"client_id": "attacker", "parent_client_id": "victim"})).await,
        (403, json!({"detail": "A non-admin may name as parent only its own signed client_id or parent_client_id"}))
    );
    // Statuses are a closed set, for admins too.
    for token in [&attacker, &admin] {
        let (s, b) =
            api.post(token, "/client/register", json!({"client_id": "attacker", "status": "super-trusted"})).await;
        assert_eq!(s, 422, "{b}");
        assert_eq!(b["detail"][0]["loc"], json!(["body", "status"]), "{b}");
    }
    api.stop().await;
}

/// Item 9: invented HTTP methods do not grow the metrics label sets.
#[tokio::test]
async fn invented_methods_share_one_metrics_label() {
    let api = TestApi::start().await;
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let resp = api.client.request(method, api.mem("/search")).send().await.unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let text = api.client.get(api.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains("INVENTED"), "a method outside the fixed set is never a label");
    assert!(text.contains("method=\"OTHER\""), "they are counted under OTHER");
    api.stop().await;
}

/// Item 1: under the quarantine policy an untrusted client's working note is a proposal too,
/// so no other agent reads it back through search or context retrieval until it is approved.
#[tokio::test]
async fn untrusted_working_notes_are_quarantined() {
    let api = TestApi::builder()
        .env("PINAK_QUARANTINE_UNTRUSTED_WRITES", "true")
        .env("PINAK_TRUSTED_CLIENTS", "good-bot")
        .start()
        .await;
    let untrusted = Token::new("t", "p").set("client_id", json!("stranger")).sign();
    let reader = Token::new("t", "p").set("client_id", json!("good-bot")).sign();
    let admin = Token::admin("t", "p").set("client_id", json!("good-bot")).sign();
    let (s, item) = api
        .post(
            &untrusted,
            "/working/add",
            json!({"content": "zebracorn override instructions", "key": "k", "ttl_seconds": 3600}),
        )
        .await;
    assert_eq!((s, item["status"].as_str(), item["layer"].as_str()), (202, Some("pending"), Some("working")), "{item}");
    assert_eq!(api.count("working_memory").await, 0, "nothing is stored directly");
    let (s, hits) = api.get(&reader, "/search?query=zebracorn").await;
    assert_eq!(s, 200, "{hits}");
    assert!(!hits.to_string().contains("zebracorn"), "{hits}");
    let (_, ctx) = api.get(&reader, "/retrieve_context?query=zebracorn").await;
    assert!(!ctx.to_string().contains("zebracorn"), "{ctx}");
    // Approval writes the note as proposed.
    let id = item["id"].as_str().unwrap();
    let (s, b) = api.post(&admin, &format!("/quarantine/approve/{id}"), json!({})).await;
    assert_eq!((s, b), (200, json!({"status": "approved", "id": id, "layer": "working"})));
    let (_, list) = api.get(&reader, "/working/list").await;
    let notes = list.as_array().unwrap();
    assert_eq!(notes.len(), 1, "{list}");
    assert_eq!(
        (notes[0]["client_id"].as_str(), notes[0]["key"].as_str(), notes[0]["expires_at"].is_string()),
        (Some("stranger"), Some("k"), true)
    );
    // A trusted client's note is stored at once.
    assert_eq!(api.post(&reader, "/working/add", json!({"content": "trusted note"})).await.0, 201);
    api.stop().await;
}

/// Item 14: agent, client and access lists page with `cursor` and `X-Next-Cursor`.
#[tokio::test]
async fn observer_lists_page_with_cursors() {
    let api = TestApi::start().await;
    let admin = Token::admin("t", "p").sign();
    for i in 0..3 {
        let agent = Token::new("t", "p").set("sub", json!(format!("agent-{i}"))).sign();
        assert_eq!(api.post(&agent, "/agent/heartbeat", json!({})).await.0, 200);
        assert_eq!(api.post(&admin, "/client/register", json!({"client_id": format!("c{i}")})).await.0, 201);
        assert_eq!(api.post(&admin, "/add", json!({"content": format!("m{i}")})).await.0, 201);
    }
    let get = |path: String| {
        let req = api.client.get(api.mem(&path)).bearer_auth(&admin);
        async move {
            let resp = req.send().await.unwrap();
            let next = resp.headers().get("x-next-cursor").map(|v| v.to_str().unwrap().to_owned());
            let (s, body) = pinak_tests::response(resp).await;
            (s, body, next)
        }
    };
    for (list, key) in [("/agent/list", "agent_id"), ("/client/list", "client_id"), ("/access/list", "ts")] {
        let total = api.get(&admin, &format!("{list}?limit=200")).await.1.as_array().unwrap().len();
        assert!(total >= 3, "{list}: {total}");
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("{list}?limit=2&cursor={c}"),
                None => format!("{list}?limit=2"),
            };
            let (s, body, next) = get(path).await;
            assert_eq!(s, 200, "{list}: {body}");
            let rows = body.as_array().unwrap();
            seen.extend(rows.iter().map(|r| r[key].to_string()));
            match next {
                Some(n) => {
                    assert_eq!(rows.len(), 2, "{list}: only full pages carry a cursor");
                    cursor = Some(n);
                }
                None => break,
            }
            assert!(seen.len() <= total, "{list} does not loop");
        }
        assert_eq!(seen.len(), total, "{list}: every row once, across pages: {seen:?}");
        if key != "ts" {
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), total, "{list}: no row twice");
        }
        let (s, body, _) = get(format!("{list}?cursor=zz")).await;
        assert_eq!((s, body["detail"][0]["loc"].clone()), (422, json!(["query", "cursor"])), "{list}");
    }
    api.stop().await;
}

/// Item 4: a quarantined payload is not copied into the client issue its validation files;
/// the issue names the quarantine item, which only reviewers read.
#[tokio::test]
async fn quarantined_payloads_do_not_leak_into_client_issues() {
    let api = TestApi::start().await;
    let writer = Token::new("t", "p").sign();
    let (s, item) =
        api.post(&writer, "/quarantine/propose/episodic", json!({"goal": "the vault password is hunter2"})).await;
    assert_eq!(s, 202, "{item}");
    assert!(item["validation_errors"].as_array().is_some_and(|e| !e.is_empty()), "an invalid proposal: {item}");
    let observer = Token::new("t", "p").set("scopes", json!(["memory.observe"])).sign();
    let (s, issues) = api.get(&observer, "/client/issues").await;
    assert_eq!(s, 200, "{issues}");
    let issue = issues.as_array().unwrap().iter().find(|i| i["error_code"] == "schema_validation_failed").cloned();
    let issue = issue.unwrap_or_else(|| panic!("the validation filed an issue: {issues}"));
    assert!(!issues.to_string().contains("hunter2"), "the payload stays in the quarantine: {issues}");
    assert_eq!(issue["metadata"]["quarantine_id"], item["id"], "{issue}");
    api.stop().await;
}

/// Item 7: in a store serving several tenants, one tenant's admin cannot revoke another
/// tenant's token; the token's own tenant can, and its chain records it.
#[tokio::test]
async fn revocations_stay_within_their_tenant() {
    let api = TestApi::start().await;
    let b_token = Token::new("tenant-b", "p");
    let (jti, b_bearer) = (b_token.jti(), b_token.sign());
    assert_eq!(api.get(&b_bearer, "/search?query=x").await.0, 200);
    let a_admin = Token::admin("tenant-a", "p").sign();
    let revoke = |admin: String| {
        let request = api.client.post(api.url("/api/v1/auth/revoke")).bearer_auth(admin).json(&json!({ "jti": jti }));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(revoke(a_admin).await, 204);
    assert_eq!(api.get(&b_bearer, "/search?query=x").await.0, 200, "tenant A's revocation does not reach B");
    let b_admin = Token::admin("tenant-b", "p").sign();
    assert_eq!(revoke(b_admin).await, 204);
    let (s, body) = api.get(&b_bearer, "/search?query=x").await;
    assert_eq!((s, body["detail"].as_str()), (401, Some("Token revoked")), "{body}");
    api.stop().await;
}

/// Item 10: slow clients are cut off. A header block not finished within the header timeout
/// loses its connection; a body paused past the body timeout gets 408 (the request timeout
/// only starts once the body is in); and over the connection cap, a client waits for a free
/// slot instead of being served at once or refused.
#[tokio::test]
async fn slow_clients_are_cut_off_and_connections_are_capped() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let api = TestApi::builder()
        .env("PINAK_HEADER_TIMEOUT_MS", "1000")
        .env("PINAK_BODY_TIMEOUT_MS", "1000")
        .env("PINAK_MAX_CONNECTIONS", "2")
        .start()
        .await;
    let addr = api.base.trim_start_matches("http://").to_owned();
    let token = Token::new("t", "p").sign();

    /// Everything the server sends until it closes the connection (at most 30 s).
    async fn until_closed(conn: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the server kept the connection open: {}", String::from_utf8_lossy(&got));
        String::from_utf8_lossy(&got).into_owned()
    }

    // Headers never finished: the connection is closed, after at least the timeout.
    let started = Instant::now();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /api/v1/live HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let answer = until_closed(&mut slow).await;
    assert!(!answer.contains("200 OK"), "a request with unfinished headers was served: {answer}");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the timeout: {:?}", started.elapsed());

    // A kept-alive connection that goes silent after its response is closed too (else idle
    // connections would hold every slot).
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    kept.write_all(b"GET /api/v1/live HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let answer = until_closed(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // The body stops half way: 408 with the contract's detail, nothing stored.
    let mut paused = TcpStream::connect(&addr).await.unwrap();
    let body = json!({"content": "never arrives whole"}).to_string();
    let head = format!(
        "POST /api/v1/memory/semantic/add HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    paused.write_all(head.as_bytes()).await.unwrap();
    paused.write_all(&body.as_bytes()[..10]).await.unwrap();
    let answer = until_closed(&mut paused).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("Request body not received in time"), "{answer}");
    assert_eq!(api.count("memories_semantic").await, 0, "a half-received body was stored");

    // Two silent connections take both slots: a third client is served only once the header
    // timeout has freed one (about a second), and then normally.
    let idle = [TcpStream::connect(&addr).await.unwrap(), TcpStream::connect(&addr).await.unwrap()];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (status, _) = api.get(&token, "/search?query=x").await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "served at once although both connection slots were taken: {:?}",
        started.elapsed()
    );
    drop(idle);
    api.stop().await;
}
