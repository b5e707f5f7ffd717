//! HttpEmbedder end to end over real HTTP. No embeddings provider exists on this machine,
//! so each test starts a stand-in on 127.0.0.1: a tiny axum server speaking the OpenAI
//! `/v1/embeddings` wire format, scripted to fail in the way the test needs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use pinak_api::embedding::{EmbeddingError, HttpEmbedder, HttpEmbedderConfig};
use serde_json::{Value, json};

const KEY: &str = "sk-test-key-0123456789";

/// What the stand-in does with the request numbered `n` (0-based).
type Script = fn(n: usize, headers: &HeaderMap, body: &Value) -> Response;

struct Provider {
    script: Script,
    /// How long the first request waits before it is answered.
    first_delay: Duration,
    requests: AtomicUsize,
}

async fn handle(State(p): State<Arc<Provider>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let n = p.requests.fetch_add(1, Ordering::SeqCst);
    if n == 0 {
        tokio::time::sleep(p.first_delay).await;
    }
    (p.script)(n, &headers, &body)
}

async fn start(script: Script) -> (String, Arc<Provider>) {
    start_delayed(Duration::ZERO, script).await
}

/// Starts the stand-in and returns its endpoint url and the provider, for its request count.
async fn start_delayed(first_delay: Duration, script: Script) -> (String, Arc<Provider>) {
    let provider = Arc::new(Provider { script, first_delay, requests: AtomicUsize::new(0) });
    let app = Router::new().route("/v1/embeddings", post(handle)).with_state(provider.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/embeddings", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, provider)
}

fn embedder(url: String, timeout: Duration, max_retries: u32) -> HttpEmbedder {
    HttpEmbedder::new(HttpEmbedderConfig {
        url,
        model: "text-embedding-test".into(),
        api_key: Some(KEY.into()),
        api_key_file: None,
        timeout,
        max_retries,
    })
    .unwrap()
}

/// An OpenAI-style answer with `[i, len(text)]` per input, listed in reverse order so the
/// client has to sort by `index`.
fn embeddings_response(body: &Value) -> Response {
    let inputs = body["input"].as_array().cloned().unwrap_or_default();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, text)| {
            let len = text.as_str().unwrap_or_default().len();
            json!({"object": "embedding", "index": i, "embedding": [i as f32, len as f32]})
        })
        .collect();
    Json(json!({"object": "list", "data": data, "model": body["model"]})).into_response()
}

fn texts() -> Vec<String> {
    vec!["a".into(), "bb".into(), "ccc".into()]
}

#[tokio::test]
async fn retries_a_503_then_returns_vectors_in_input_order() {
    let (url, provider) = start(|n, headers, body| {
        assert_eq!(headers["authorization"], format!("Bearer {KEY}"));
        assert_eq!(body["model"], "text-embedding-test");
        assert_eq!(body["input"], json!(["a", "bb", "ccc"]));
        match n {
            0 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            _ => embeddings_response(body),
        }
    })
    .await;
    let got = embedder(url, Duration::from_secs(5), 2).embed(&texts()).await.unwrap();
    assert_eq!(got, [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]);
    assert_eq!(provider.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn does_not_retry_a_client_error_nor_leak_the_key() {
    // Like some real providers, the stand-in quotes the rejected key back.
    let (url, provider) = start(|_, _, _| {
        let message = format!("Incorrect API key provided: {KEY}");
        (StatusCode::UNAUTHORIZED, Json(json!({"error": {"message": message}}))).into_response()
    })
    .await;
    let err = embedder(url, Duration::from_secs(5), 3).embed(&texts()).await.unwrap_err();
    assert!(matches!(err, EmbeddingError::Provider(_)), "{err}");
    let message = err.to_string();
    assert!(message.contains("401"), "{message}");
    assert!(!message.contains(KEY), "{message}");
    assert_eq!(provider.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn gives_up_after_max_retries() {
    let (url, provider) = start(|_, _, _| StatusCode::TOO_MANY_REQUESTS.into_response()).await;
    let err = embedder(url, Duration::from_secs(5), 2).embed(&texts()).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("429") && message.contains("attempt 3 of 3"), "{message}");
    assert_eq!(provider.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_a_timeout() {
    // The first answer comes later than the client's timeout.
    let (url, provider) = start_delayed(Duration::from_millis(600), |_, _, body| embeddings_response(body)).await;
    let got = embedder(url, Duration::from_millis(300), 1).embed(&texts()).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(provider.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_empty_batch_sends_nothing() {
    let (url, provider) = start(|_, _, body| embeddings_response(body)).await;
    assert!(embedder(url, Duration::from_secs(5), 0).embed(&[]).await.unwrap().is_empty());
    assert_eq!(provider.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_key_rotated_in_its_file_serves_the_next_request() {
    const NEW_KEY: &str = "sk-test-key-rotated-9876543210";
    // Accepts only the new key, so the test sees which one each request carried.
    let (url, provider) = start(|_, headers, body| match headers["authorization"].to_str().unwrap() {
        h if h == format!("Bearer {NEW_KEY}") => embeddings_response(body),
        _ => StatusCode::UNAUTHORIZED.into_response(),
    })
    .await;
    let dir = std::env::temp_dir().join(format!("pinak-embedding-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("embedding-api-key");
    std::fs::write(&file, format!("{KEY}\n")).unwrap();
    let embedder = HttpEmbedder::new(HttpEmbedderConfig {
        url,
        model: "text-embedding-test".into(),
        api_key: None,
        api_key_file: Some(file.clone()),
        timeout: Duration::from_secs(5),
        max_retries: 0,
    })
    .unwrap();
    let err = embedder.embed(&texts()).await.unwrap_err();
    assert!(err.to_string().contains("401"), "the old key was accepted: {err}");

    std::fs::write(&file, NEW_KEY).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match embedder.embed(&texts()).await {
            Ok(vectors) => break assert_eq!(vectors.len(), 3),
            Err(e) if tokio::time::Instant::now() > deadline => panic!("the rotated key was never used: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(provider.requests.load(Ordering::SeqCst) >= 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
