//! `Idempotency-Key` on the write routes, on the real Postgres: a retry gets the first answer
//! and writes nothing, concurrent retries make one row, another request under the same key is
//! a 422, keys belong to their tenant and project, and an expired key is pruned by its job.

use pinak_tests::{TestApi, Token, response};
use serde_json::{Value, json};

async fn post_with_key(api: &TestApi, token: &str, path: &str, key: &str, body: &Value) -> (u16, Value, bool) {
    let resp = reqwest::Client::new()
        .post(api.mem(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    let (s, b) = response(resp).await;
    (s, b, replayed)
}

#[tokio::test]
async fn a_retry_gets_the_first_answer_and_writes_nothing() {
    let api = TestApi::start().await;
    let token = Token::new("t1", "p1").sign();
    let body = json!({"content": "deploys freeze on Fridays"});
    let (s1, first, r1) = post_with_key(&api, &token, "/add", "k-1", &body).await;
    let (s2, second, r2) = post_with_key(&api, &token, "/add", "k-1", &body).await;
    assert_eq!((s1, r1), (201, false), "{first}");
    assert_eq!((s2, r2), (201, true), "{second}");
    assert_eq!(first, second);
    assert_eq!(api.count("memories_semantic").await, 1);

    // The same key with another body, path or method: 422, nothing written.
    let (s, b, _) = post_with_key(&api, &token, "/add", "k-1", &json!({"content": "other"})).await;
    assert_eq!(s, 422, "{b}");
    assert!(b.to_string().contains("used with another request"), "{b}");
    let (s, _, _) = post_with_key(&api, &token, "/event", "k-1", &json!({"event_type": "e", "payload": {}})).await;
    assert_eq!(s, 422);
    assert_eq!(api.count("logs_events").await, 0);

    // A key belongs to its tenant and project: elsewhere it is a new request.
    let (s, _, replayed) = post_with_key(&api, &Token::new("t2", "p1").sign(), "/add", "k-1", &body).await;
    assert_eq!((s, replayed), (201, false));
    let (s, _, replayed) = post_with_key(&api, &Token::new("t1", "p2").sign(), "/add", "k-1", &body).await;
    assert_eq!((s, replayed), (201, false));
    assert_eq!(api.count("memories_semantic").await, 3);

    // A refused request is answered the same way again; a bad key is refused.
    let (s, _, _) = post_with_key(&api, &token, "/add", "k-2", &json!({"content": ""})).await;
    let (s2, _, replayed) = post_with_key(&api, &token, "/add", "k-2", &json!({"content": ""})).await;
    assert_eq!((s, s2, replayed), (422, 422, true));
    for bad in ["", &"x".repeat(256), "a b"] {
        let (s, b, _) = post_with_key(&api, &token, "/add", bad, &body).await;
        assert_eq!(s, 422, "{bad:?}: {b}");
    }
    assert_eq!(api.count("memories_semantic").await, 3);
    api.stop().await;
}

#[tokio::test]
async fn concurrent_retries_with_one_key_make_one_row() {
    let api = TestApi::builder().env("PINAK_DB_POOL_SIZE", "8").start().await;
    let token = Token::new("t1", "p1").sign();
    let body = json!({"content": "one write, many retries", "goal": "g"});
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (url, token, body) = (api.mem("/episodic/add"), token.clone(), body.clone());
        set.spawn(async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "burst")
                .json(&body)
                .send()
                .await
                .unwrap();
            let replayed = resp.headers().get("idempotent-replayed").is_some();
            let (s, b) = response(resp).await;
            (s, b, replayed)
        });
    }
    let answers = set.join_all().await;
    let mut ids = std::collections::HashSet::new();
    for (s, b, _) in &answers {
        assert_eq!(*s, 201, "{b}");
        ids.insert(b["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every retry got the first answer");
    assert_eq!(answers.iter().filter(|a| !a.2).count(), 1, "exactly one request ran");
    assert_eq!(api.count("memories_episodic").await, 1);
    api.stop().await;
}
