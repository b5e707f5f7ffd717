//! Database unavailability, without mocks: a small TCP forwarder sits between the API and the
//! real Postgres. Cutting it (live connections closed, new ones refused) or stalling it (every
//! byte held, sockets left open: a network partition or a frozen host) must turn memory routes
//! and readiness into 503 while liveness stays 200, and the service must recover by itself,
//! without a restart, once the database is reachable again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinak_tests::proxy::Proxy;
use pinak_tests::{TestApi, Token, database_url};
use serde_json::{Value, json};

/// `postgres://user@host:port/db` -> (`host:port`, a function giving the same URL at another address).
fn split_url(url: &str) -> (String, impl Fn(SocketAddr) -> String + '_) {
    let (scheme, rest) = url.split_once("://").expect("database URL has a scheme");
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
    let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:5432") };
    let at = if userinfo.is_empty() { String::new() } else { format!("{userinfo}@") };
    (hostport, move |addr: SocketAddr| format!("{scheme}://{at}{addr}/{tail}"))
}

// ------------------------------------------------------------------ helpers ---

async fn call(
    api: &TestApi,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, Duration) {
    let started = Instant::now();
    let mut rb = api.client.request(method.clone(), api.url(path)).timeout(Duration::from_secs(40));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp =
        rb.send().await.unwrap_or_else(|e| panic!("{method} {path}: no response (panic or dropped connection?): {e}"));
    let (status, body) = pinak_tests::response(resp).await;
    (status, body, started.elapsed())
}

/// Polls `path` until it answers `want`, or fails after `within`.
async fn wait_for_status(api: &TestApi, path: &str, want: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (s, body, _) = call(api, reqwest::Method::GET, path, None, None).await;
        if s == want {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{path} still {s} {body} after {within:?} (waiting for {want})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The two shapes of "database unavailable": the handler's, or the readiness gate's.
fn is_unavailable_body(body: &Value) -> bool {
    body == &json!({"detail": "Database unavailable"}) || body["detail"]["status"] == "not_ready"
}

const UP_WITHIN: Duration = Duration::from_secs(15);

/// Starts the API through a proxy and proves the happy path through it.
async fn api_behind_proxy(extra: &[(&str, &str)]) -> (Arc<Proxy>, TestApi, String) {
    let url = database_url();
    let (upstream, at) = split_url(&url);
    let proxy = Proxy::start(upstream).await;
    let mut builder = TestApi::builder().env("PINAK_DATABASE_URL", &at(proxy.addr));
    for (k, v) in extra {
        builder = builder.env(k, v);
    }
    let api = builder.start().await; // runs migrations through the proxy
    let token = Token::new("t1", "p1").sign();
    let (s, m, _) = call(
        &api,
        reqwest::Method::POST,
        "/api/v1/memory/add",
        Some(&token),
        Some(json!({"content": "before the outage"})),
    )
    .await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(call(&api, reqwest::Method::GET, "/api/v1/health", None, None).await.0, 200);
    (proxy, api, token)
}

/// While the database is away: memory routes 503, health 503, liveness 200, nothing written.
async fn assert_outage(api: &TestApi, token: &str, admin: &str) {
    use reqwest::Method;
    let down_after = wait_for_status(api, "/api/v1/health", 503, UP_WITHIN).await;
    eprintln!("health turned 503 after {down_after:?}");
    let (s, body, _) = call(api, Method::GET, "/api/v1/health", None, None).await;
    assert_eq!((s, body["detail"]["status"].as_str()), (503, Some("not_ready")), "{body}");
    for path in ["/api/v1/live", "/"] {
        assert_eq!(call(api, Method::GET, path, None, None).await.0, 200, "{path} stays up while the database is down");
    }
    let requests: [(Method, &str, Option<Value>); 7] = [
        (Method::POST, "/api/v1/memory/add", Some(json!({"content": "during the outage"}))),
        (Method::POST, "/api/v1/memory/event", Some(json!({"event_type": "x", "payload": {}}))),
        (Method::GET, "/api/v1/memory/search?query=outage", None),
        (Method::GET, "/api/v1/memory/events", None),
        (Method::GET, "/api/v1/memory/semantic/00000000-0000-0000-0000-000000000000", None),
        (Method::GET, "/api/v1/memory/schema", None),
        (Method::POST, "/api/v1/memory/maintenance/verify", None),
    ];
    for (m, path, body) in requests {
        let (s, b, took) =
            call(api, m.clone(), path, Some(if path.contains("maintenance") { admin } else { token }), body).await;
        assert!(s == 503 && is_unavailable_body(&b), "{m} {path} during the outage: {s} {b}");
        assert!(took < Duration::from_secs(2), "{m} {path}: the readiness gate answers at once, took {took:?}");
    }
    // Outside the readiness gate, authentication itself needs the database: 503, not 401/500.
    let (s, b, _) = call(api, Method::GET, "/api/v1/metrics", Some(admin), None).await;
    assert_eq!(s, 503, "admin metrics during the outage: {b}");
}

/// After the database returns: ready again by itself, and a write and a read go through.
async fn assert_recovery(api: &TestApi, token: &str, rows_before: i64) {
    use reqwest::Method;
    let up_after = wait_for_status(api, "/api/v1/health", 200, UP_WITHIN).await;
    eprintln!("health back to 200 after {up_after:?}");
    assert_eq!(api.count("memories_semantic").await, rows_before, "nothing was written while the database was away");
    assert_eq!(api.count("logs_events").await, 0, "nothing was written while the database was away");
    let (s, m, _) =
        call(api, Method::POST, "/api/v1/memory/add", Some(token), Some(json!({"content": "after the outage"}))).await;
    assert_eq!(s, 201, "first write after recovery: {m}");
    let id = m["id"].as_str().unwrap();
    let (s, row, _) = call(api, Method::GET, &format!("/api/v1/memory/semantic/{id}"), Some(token), None).await;
    assert_eq!((s, row["content"].as_str()), (200, Some("after the outage")), "{row}");
    let (s, hits, _) = call(api, Method::GET, "/api/v1/memory/search?query=outage&k=5", Some(token), None).await;
    assert_eq!(s, 200, "{hits}");
    assert_eq!(api.count("memories_semantic").await, rows_before + 1);
}

// -------------------------------------------------------------------- tests ---

#[tokio::test]
async fn cut_database_gives_503_and_recovers_without_restart() {
    let started = Instant::now();
    let (proxy, api, token) = api_behind_proxy(&[]).await;
    let admin = Token::admin("t1", "p1").sign();
    let rows = api.count("memories_semantic").await;

    proxy.cut();
    // The first request after the cut still passes the readiness gate; the handler's own
    // database error must be a 503 (pool timeout / connection refused), never a 500.
    let (s, b, took) =
        call(&api, reqwest::Method::POST, "/api/v1/memory/add", Some(&token), Some(json!({"content": "lost"}))).await;
    assert!(s == 503 && is_unavailable_body(&b), "write right after the cut: {s} {b}");
    eprintln!("first request after the cut: {s} in {took:?}");
    assert_outage(&api, &token, &admin).await;

    proxy.restore().await;
    assert_recovery(&api, &token, rows).await;

    // A second outage is handled the same way: recovery is not a one-off.
    proxy.cut();
    wait_for_status(&api, "/api/v1/health", 503, UP_WITHIN).await;
    proxy.restore().await;
    assert_recovery(&api, &token, rows + 1).await;
    eprintln!("cut scenario took {:?}", started.elapsed());
    api.stop().await;
}

#[tokio::test]
async fn stalled_database_gives_503_and_recovers_without_restart() {
    let started = Instant::now();
    // Requests stuck on a silent connection end at the request timeout, not never.
    let (proxy, api, token) = api_behind_proxy(&[("PINAK_REQUEST_TIMEOUT_MS", "10000")]).await;
    let admin = Token::admin("t1", "p1").sign();
    let rows = api.count("memories_semantic").await;

    proxy.stall();
    let (s, b, took) =
        call(&api, reqwest::Method::POST, "/api/v1/memory/add", Some(&token), Some(json!({"content": "lost"}))).await;
    assert!(
        s == 503 && (is_unavailable_body(&b) || b == json!({"detail": "Request timed out"})),
        "write right after the stall: {s} {b}"
    );
    eprintln!("first request after the stall: {s} in {took:?}");
    assert_outage(&api, &token, &admin).await;

    proxy.restore().await;
    assert_recovery(&api, &token, rows).await;
    eprintln!("stall scenario took {:?}", started.elapsed());
    api.stop().await;
}
