//! Retries against a scripted HTTP server on a loopback socket: which failures are sent again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pinak_sdk::{Client, Error, Retry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `answers` in turn (status, body), one per connection; counts the requests.
async fn server(answers: Vec<(u16, &'static str)>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        for (status, body) in answers.into_iter().cycle() {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let mut buf = vec![0u8; 65536];
            let _ = sock.read(&mut buf).await;
            count.fetch_add(1, Ordering::SeqCst);
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        }
    });
    (base, seen)
}

fn client(base: &str) -> Client {
    let retry = Retry { max_retries: 3, base: Duration::from_millis(1), max: Duration::from_millis(5) };
    Client::builder(base, "token").retry(retry).build().unwrap()
}

const BUSY: &str = r#"{"detail":"Database unavailable"}"#;
const NOT_READY: &str = r#"{"detail":{"status":"not_ready"}}"#;

#[tokio::test]
async fn a_read_is_retried_on_503_until_it_succeeds() {
    let (base, seen) = server(vec![(503, BUSY), (503, BUSY), (200, "[]")]).await;
    assert!(client(&base).search("q", 3).await.unwrap().is_empty());
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_write_is_not_retried_on_a_503_that_may_have_processed_it() {
    let (base, seen) = server(vec![(503, BUSY), (201, "{}")]).await;
    let err = client(&base).remember("x", &[]).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_write_is_retried_when_the_service_was_not_ready() {
    let (base, seen) = server(vec![(503, NOT_READY), (201, r#"{"id":"1"}"#)]).await;
    assert_eq!(client(&base).remember("x", &[]).await.unwrap()["id"], "1");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retries_end_with_the_last_error() {
    let (base, seen) = server(vec![(503, BUSY)]).await;
    let err = client(&base).health().await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(seen.load(Ordering::SeqCst), 4, "one call and three retries");
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    // A port nothing listens on: bind, note it, close it.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let err = client(&format!("http://127.0.0.1:{port}")).remember("x", &[]).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert_eq!(err.status(), None);
}
