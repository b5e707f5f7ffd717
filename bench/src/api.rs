//! The API under test as a child process (the real `pinak-api` binary), its tokens, a
//! loopback embeddings provider, and the HTTP request kinds.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::load::Op;

/// HS256 secret of the benchmark's API processes (loopback only, throwaway stores).
pub const SECRET: &str = "pinak-bench-secret-0123456789-abcdefghijklmnop";
pub const TENANT: &str = "bench";

pub fn token(project: &str) -> String {
    token_for(TENANT, project)
}

/// A read/write agent token for any tenant (the quality benchmark keeps one tenant per
/// conversation).
pub fn token_for(tenant: &str, project: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "sub": "bench-agent", "tenant": tenant, "project_id": project,
        "iss": "pinak-memory", "aud": "pinak-memory-api",
        "iat": now, "exp": now + 86_400, "jti": uuid::Uuid::new_v4().to_string(),
        "scopes": ["memory.read", "memory.write"], "roles": ["agent"], "client_id": "bench-client",
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(128)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

/// Percent-encodes a query-string value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub struct ApiSpec<'a> {
    pub bin: &'a Path,
    pub database_url: &'a str,
    pub schema: &'a str,
    pub migrate: bool,
    pub backend: &'a str,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

pub struct ApiProcess {
    child: Child,
    pub base: String,
    pub log: PathBuf,
    /// Spawn to first 200 on `GET /api/v1/live`.
    pub live_after: Duration,
    spawned: Instant,
}

impl ApiProcess {
    pub async fn spawn(spec: ApiSpec<'_>) -> Result<ApiProcess> {
        let port = free_port()?;
        let log = fs::File::create(&spec.log).with_context(|| format!("creating {}", spec.log.display()))?;
        let mut cmd = Command::new(spec.bin);
        // Only our settings: nothing from the caller's PINAK_* environment leaks in.
        for (k, _) in std::env::vars() {
            if k.starts_with("PINAK_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("PINAK_DATABASE_URL", spec.database_url)
            .env("PINAK_DB_SCHEMA", spec.schema)
            .env("PINAK_MIGRATE", if spec.migrate { "true" } else { "false" })
            .env("PINAK_LISTEN", format!("127.0.0.1:{port}"))
            .env("PINAK_JWT_SECRET", SECRET)
            .env("PINAK_EMBEDDING_BACKEND", spec.backend)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let spawned = Instant::now();
        let child = cmd.spawn().with_context(|| format!("starting {}", spec.bin.display()))?;
        let mut p = ApiProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: spec.log,
            live_after: Duration::ZERO,
            spawned,
        };
        let c = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build()?;
        let url = format!("{}/api/v1/live", p.base);
        loop {
            if let Ok(r) = c.get(&url).send().await
                && r.status().is_success()
            {
                p.live_after = spawned.elapsed();
                return Ok(p);
            }
            p.check_alive()?;
            if spawned.elapsed() > Duration::from_secs(120) {
                bail!("pinak-api did not answer /api/v1/live within 120 s; log: {}", p.log.display());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let tail = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!("pinak-api exited ({status}): {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
        }
        Ok(())
    }

    /// Polls a search until it answers 200; returns the time since spawn.
    pub async fn first_search(&mut self, token: &str, query: &str) -> Result<Duration> {
        let c = client();
        let url = format!("{}/api/v1/memory/search?k=10&query={}", self.base, urlencode(query));
        loop {
            let r = c.get(&url).bearer_auth(token).send().await;
            if let Ok(r) = r {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                if status.is_success() {
                    return Ok(self.spawned.elapsed());
                }
                if status.as_u16() != 503 {
                    bail!("first search answered {status}: {body}");
                }
            }
            self.check_alive()?;
            if self.spawned.elapsed() > Duration::from_secs(120) {
                bail!("no successful search within 120 s; log: {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmHWM, VmRSS) in MiB from /proc/<pid>/status.
    pub fn memory_mib(&self) -> Option<(f64, f64)> {
        let s = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let field = |name: &str| -> Option<f64> {
            let line = s.lines().find(|l| l.starts_with(name))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024.0)
        };
        Some((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// SIGTERM (graceful drain), then SIGKILL after 10 s. Only ever our own child.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback OpenAI-compatible `/v1/embeddings` that answers with the vectors the corpus
/// already holds (the query texts). The API then searches with the real model's vectors while
/// the model's CPU cost stays out of the search measurement. Unknown texts get the dummy
/// encoder's vector, so nothing fails.
pub async fn serve_embeddings(vectors: HashMap<String, Vec<f32>>) -> Result<String> {
    let vectors = Arc::new(vectors);
    let app = axum::Router::new()
        .route(
            "/v1/embeddings",
            axum::routing::post(
                |axum::extract::State(v): axum::extract::State<Arc<HashMap<String, Vec<f32>>>>,
                 axum::Json(body): axum::Json<Value>| async move {
                    let inputs: Vec<String> = match &body["input"] {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap_or_default().to_owned()).collect(),
                        _ => Vec::new(),
                    };
                    let data: Vec<Value> = inputs
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            let e =
                                v.get(t).cloned().unwrap_or_else(|| pinak_api::embedding::DummyEmbedder.embed_one(t));
                            json!({"object": "embedding", "index": i, "embedding": e})
                        })
                        .collect();
                    axum::Json(json!({"object": "list", "data": data, "model": body["model"]}))
                },
            ),
        )
        .with_state(vectors);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/v1/embeddings"))
}

/// Maps a returned id back to a corpus document index (ids are minted by `sql::doc_id`).
fn doc_index(id: &str) -> Option<usize> {
    let u = uuid::Uuid::parse_str(id).ok()?;
    let (hi, lo) = u.as_u64_pair();
    (hi == crate::sql::ID_NAMESPACE).then_some(lo as usize)
}

pub fn recall(found: impl IntoIterator<Item = usize>, truth: &[usize], k: usize) -> f64 {
    let truth = &truth[..truth.len().min(k)];
    if truth.is_empty() {
        return 1.0;
    }
    let hits = found.into_iter().take(k).filter(|i| truth.contains(i)).count();
    hits as f64 / truth.len() as f64
}

/// `GET /api/v1/memory/search?query=...&k=10`; recall@10 of the returned (fused) list.
pub struct ApiSearch {
    pub client: reqwest::Client,
    pub prefix: String,
    pub token: Arc<String>,
    pub queries: Arc<Vec<String>>,
    pub truth: Arc<Vec<Vec<usize>>>,
}

impl ApiSearch {
    pub fn new(base: &str, token: Arc<String>, query_texts: &[String], truth: Arc<Vec<Vec<usize>>>) -> Self {
        ApiSearch {
            client: client(),
            prefix: format!("{base}/api/v1/memory/search?k=10&query="),
            token,
            queries: Arc::new(query_texts.iter().map(|q| urlencode(q)).collect()),
            truth,
        }
    }
}

impl Op for ApiSearch {
    async fn call(&mut self, seq: usize) -> Result<Option<f64>> {
        let q = seq % self.queries.len();
        let r = self
            .client
            .get(format!("{}{}", self.prefix, self.queries[q]))
            .bearer_auth(self.token.as_str())
            .send()
            .await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!("search answered {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        let hits: Vec<Value> = serde_json::from_slice(&body)?;
        let found = hits.iter().filter_map(|h| h["id"].as_str().and_then(doc_index));
        Ok(Some(recall(found, &self.truth[q], 10)))
    }
}

/// `POST /api/v1/memory/add` (semantic layer) with corpus texts.
pub struct ApiIngest {
    pub client: reqwest::Client,
    pub url: String,
    pub token: Arc<String>,
    pub texts: Arc<Vec<String>>,
}

impl Op for ApiIngest {
    async fn call(&mut self, seq: usize) -> Result<Option<f64>> {
        let text = &self.texts[seq % self.texts.len()];
        let r = self
            .client
            .post(&self.url)
            .bearer_auth(self.token.as_str())
            .json(&json!({"content": text, "tags": ["bench"]}))
            .send()
            .await?;
        let status = r.status();
        let body = r.bytes().await?;
        if status.as_u16() != 201 {
            bail!("add answered {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        Ok(None)
    }
}

/// Memories per `POST /api/v1/memory/batch` request in the batch-ingest workload.
pub const BATCH: usize = 100;

/// The `seq`-th batch of the batch-ingest workload: `BATCH` semantic add bodies of corpus
/// texts. The API workload and its in-process ceiling (`sql::SqlBatchIngest`) write the same.
pub fn batch_items(texts: &[String], seq: usize) -> Vec<Value> {
    (0..BATCH).map(|i| json!({"content": texts[(seq * BATCH + i) % texts.len()], "tags": ["bench"]})).collect()
}

/// `POST /api/v1/memory/batch` (semantic layer), `BATCH` corpus texts per request.
pub struct ApiBatchIngest {
    pub client: reqwest::Client,
    pub url: String,
    pub token: Arc<String>,
    pub texts: Arc<Vec<String>>,
}

impl Op for ApiBatchIngest {
    async fn call(&mut self, seq: usize) -> Result<Option<f64>> {
        let items = batch_items(&self.texts, seq);
        let r = self
            .client
            .post(&self.url)
            .bearer_auth(self.token.as_str())
            .json(&json!({"layer": "semantic", "items": items}))
            .send()
            .await?;
        let status = r.status();
        let body = r.bytes().await?;
        if status.as_u16() != 201 {
            bail!("batch answered {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        Ok(None)
    }
}

/// 90 % searches of the main project, 10 % adds to another project of the same store (same
/// table and indexes; the main project's ground truth stays valid).
pub struct ApiMixed {
    pub search: ApiSearch,
    pub add: ApiIngest,
}

impl Op for ApiMixed {
    async fn call(&mut self, seq: usize) -> Result<Option<f64>> {
        if seq % 10 == 9 { self.add.call(seq).await } else { self.search.call(seq).await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencode_keeps_unreserved_only() {
        assert_eq!(urlencode("a b&c=d/é~"), "a%20b%26c%3Dd%2F%C3%A9~");
    }

    #[test]
    fn ids_map_back_to_documents() {
        assert_eq!(doc_index(&crate::sql::doc_id(4242).to_string()), Some(4242));
        assert_eq!(doc_index(&uuid::Uuid::new_v4().to_string()), None);
        assert_eq!(recall([1, 2, 9], &[1, 2, 3, 4], 10), 0.5);
    }
}
