//! Embeddings from an OpenAI-compatible provider: `POST {url}` with
//! `{"model": …, "input": [texts]}`, answered by `{"data": [{"embedding": […], "index": i}]}`.

use std::error::Error as _;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Client, StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::EmbeddingError;
use crate::security::secret_file::SecretValue;

/// First retry delay; each later one doubles it.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Upper bound of one retry delay, so a large `max_retries` cannot stall a caller for minutes.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How much of a provider's error body is quoted in our error message.
const BODY_EXCERPT_CHARS: usize = 300;

#[derive(Clone)]
pub struct HttpEmbedderConfig {
    /// Full endpoint, e.g. `https://host/v1/embeddings`.
    pub url: String,
    pub model: String,
    pub api_key: Option<String>,
    /// A file holding the key instead, re-read while running (`PINAK_EMBEDDING_API_KEY_FILE`).
    pub api_key_file: Option<PathBuf>,
    /// Limit for one attempt, connection and body included.
    pub timeout: Duration,
    /// Attempts after the first one, for transient failures only.
    pub max_retries: u32,
}

// Hand-written so that logging a config never prints the key.
impl fmt::Debug for HttpEmbedderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpEmbedderConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("api_key_file", &self.api_key_file)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

pub struct HttpEmbedder {
    client: Client,
    url: Url,
    model: String,
    key: Option<Arc<SecretValue<ApiKey>>>,
    max_retries: u32,
}

/// The provider's key and the `Authorization` header made from it.
struct ApiKey {
    raw: String,
    header: HeaderValue,
}

impl ApiKey {
    fn parse(raw: &str) -> Result<ApiKey, String> {
        let mut header = HeaderValue::from_str(&format!("Bearer {raw}"))
            .map_err(|_| "the embedding API key is not a valid HTTP header value".to_owned())?;
        // Keeps the header out of reqwest's and hyper's debug output.
        header.set_sensitive(true);
        Ok(ApiKey { raw: raw.to_owned(), header })
    }
}

#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: &'a [String],
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    index: usize,
}

/// One failed attempt, and whether sending the same request again could succeed.
struct Failure {
    retryable: bool,
    message: String,
}

impl HttpEmbedder {
    pub fn new(cfg: HttpEmbedderConfig) -> Result<Self, EmbeddingError> {
        let url = parse_url(&cfg.url)?;
        let key = match (cfg.api_key, cfg.api_key_file) {
            (_, Some(path)) => Some(
                SecretValue::watch("PINAK_EMBEDDING_API_KEY_FILE", path, ApiKey::parse)
                    .map_err(|e| EmbeddingError::Provider(e.to_string()))?,
            ),
            (Some(raw), None) => Some(SecretValue::fixed(ApiKey::parse(&raw).map_err(EmbeddingError::Provider)?)),
            (None, None) => None,
        };
        let client = Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| EmbeddingError::Provider(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client, url, model: cfg.model, key, max_retries: cfg.max_retries })
    }

    pub fn model_name(&self) -> &str {
        &self.model
    }

    /// Embeds `texts` in one request, retrying transient failures with exponential backoff.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        // Providers reject an empty `input`, and there is nothing to ask for.
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut attempt = 0;
        loop {
            match self.attempt(texts).await {
                Ok(vectors) => return Ok(vectors),
                Err(f) if f.retryable && attempt < self.max_retries => {
                    tracing::warn!(attempt, error = %f.message, "embedding request failed, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(f) => {
                    let (n, most) = (attempt + 1, self.max_retries + 1);
                    let message = format!("{} (attempt {n} of {most})", f.message);
                    return Err(EmbeddingError::Provider(message));
                }
            }
        }
    }

    async fn attempt(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Failure> {
        let mut request =
            self.client.post(self.url.clone()).json(&EmbeddingsRequest { model: &self.model, input: texts });
        // Read once per attempt: a key rotated in its file serves the next attempt.
        let key = self.key.as_ref().map(|k| k.get());
        if let Some(key) = &key {
            request = request.header(AUTHORIZATION, key.header.clone());
        }
        let response = request.send().await.map_err(transport_failure)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_failure)?;
        if !status.is_success() {
            let excerpt = redact(&String::from_utf8_lossy(&body), key.as_ref().map(|k| k.raw.as_str()));
            return Err(Failure {
                retryable: is_retryable_status(status),
                message: format!("provider answered {status}: {}", truncate(&excerpt)),
            });
        }
        parse_embeddings(&body, texts.len()).map_err(|message| Failure { retryable: false, message })
    }
}

fn parse_url(url: &str) -> Result<Url, EmbeddingError> {
    let invalid =
        |reason: String| EmbeddingError::Provider(format!("invalid embedding provider url {url:?}: {reason}"));
    let parsed = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    // "host:8080/v1/embeddings" parses with "host" as its scheme; catch it here rather
    // than as a confusing error on every request.
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(invalid(format!("scheme {other:?} is not http or https"))),
    }
}

/// 429 and 5xx are the provider saying "not now"; any other status would fail again.
fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Connection failures, timeouts and connections dropped mid-exchange are transient, and
/// an embeddings request is idempotent, so these are safe to send again.
fn transport_failure(e: reqwest::Error) -> Failure {
    let retryable = e.is_connect() || e.is_timeout() || e.is_request() || e.is_body();
    // The key travels in a header, never in the url; dropping the url is for brevity.
    Failure { retryable, message: error_chain(&e.without_url()) }
}

/// reqwest's own message is generic ("error sending request"); the cause says what happened.
fn error_chain(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// 100 ms, 200 ms, 400 ms, … up to `BACKOFF_MAX`.
fn backoff(attempt: u32) -> Duration {
    BACKOFF_BASE.saturating_mul(2u32.saturating_pow(attempt)).min(BACKOFF_MAX)
}

/// Some providers echo the key they rejected; it must not reach our logs or callers.
fn redact(text: &str, key: Option<&str>) -> String {
    match key {
        Some(key) if !key.is_empty() => text.replace(key, "[redacted]"),
        _ => text.to_owned(),
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(BODY_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Vectors in input order, checking that the response has exactly one per input.
fn parse_embeddings(body: &[u8], inputs: usize) -> Result<Vec<Vec<f32>>, String> {
    let response: EmbeddingsResponse =
        serde_json::from_slice(body).map_err(|e| format!("provider sent a malformed embeddings response: {e}"))?;
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; inputs];
    for item in response.data {
        let slot = slots
            .get_mut(item.index)
            .ok_or_else(|| format!("provider sent index {} for {inputs} inputs", item.index))?;
        if slot.replace(item.embedding).is_some() {
            return Err(format!("provider sent index {} twice", item.index));
        }
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| format!("provider sent no embedding for input {i}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_embeddings_by_index() {
        let body = br#"{"object":"list","data":[
            {"object":"embedding","embedding":[2.0,2.5],"index":1},
            {"object":"embedding","embedding":[1.0,1.5],"index":0}],
            "model":"m","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
        assert_eq!(parse_embeddings(body, 2).unwrap(), [[1.0, 1.5], [2.0, 2.5]]);
    }

    #[test]
    fn rejects_responses_that_do_not_cover_every_input() {
        let missing = br#"{"data":[{"embedding":[1.0],"index":0}]}"#;
        let repeated = br#"{"data":[{"embedding":[1.0],"index":0},{"embedding":[1.0],"index":0}]}"#;
        let out_of_range = br#"{"data":[{"embedding":[1.0],"index":0},{"embedding":[1.0],"index":2}]}"#;
        assert!(parse_embeddings(missing, 2).unwrap_err().contains("no embedding for input 1"));
        assert!(parse_embeddings(repeated, 2).unwrap_err().contains("twice"));
        assert!(parse_embeddings(out_of_range, 2).unwrap_err().contains("index 2"));
        assert!(parse_embeddings(b"<html>oops</html>", 1).unwrap_err().contains("malformed"));
    }

    #[test]
    fn retries_only_rate_limits_and_server_errors() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [200, 400, 401, 403, 404, 413, 422] {
            assert!(!is_retryable_status(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[tokio::test]
    async fn connection_refused_is_retryable() {
        // A port that was just free: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = Client::new().get(format!("http://127.0.0.1:{port}/")).send().await.unwrap_err();
        assert!(transport_failure(err).retryable);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(40), BACKOFF_MAX);
    }

    #[test]
    fn key_never_appears_in_messages_or_debug_output() {
        let key = "sk-secret-123";
        let echoed = format!(r#"{{"error":"Incorrect API key provided: {key}"}}"#);
        assert!(!redact(&echoed, Some(key)).contains(key));

        let cfg = HttpEmbedderConfig {
            url: "http://127.0.0.1:1/v1/embeddings".into(),
            model: "m".into(),
            api_key: Some(key.into()),
            api_key_file: None,
            timeout: Duration::from_secs(1),
            max_retries: 0,
        };
        assert!(!format!("{cfg:?}").contains(key));
    }

    #[test]
    fn truncates_long_bodies_on_a_char_boundary() {
        let long = "é".repeat(BODY_EXCERPT_CHARS + 10);
        assert_eq!(truncate(&long).chars().count(), BODY_EXCERPT_CHARS + 1);
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn accepts_only_http_urls() {
        assert!(parse_url("http://127.0.0.1:8080/v1/embeddings").is_ok());
        assert!(parse_url("https://api.example.com/v1/embeddings").is_ok());
        for bad in ["not a url", "localhost:8080/v1/embeddings", "ftp://host/v1/embeddings"] {
            assert!(matches!(parse_url(bad), Err(EmbeddingError::Provider(_))), "{bad}");
        }
    }
}
