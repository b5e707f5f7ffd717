//! Shared test harness. Every integration test gets its own store: a fresh schema on the
//! shared Postgres that `scripts/test` started (migrations applied by the real startup path),
//! and a real `pinak-api` serving it over HTTP on an ephemeral loopback port. Tests never share
//! data, so they run in parallel. Vault tests get the OpenBao dev server `scripts/test` started
//! and isolate themselves under a unique KV path.

pub mod keypair;
pub mod load;
pub mod operator;
pub mod proxy;
pub mod service;

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header, encode};
use pinak_api::runtime::config::Config;
use pinak_api::runtime::lifecycle;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

pub const SECRET: &str = "pinak-test-secret-0123456789-abcdefghijklmnop";

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test (it starts Postgres and OpenBao)")
    })
}

/// The project venv's Python (scripts/stack.sh install): it has the MCP client library, pytest
/// and the Python SDK.
pub fn venv_python() -> String {
    let tools =
        std::env::var("PINAK_TOOLS_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools").into());
    format!("{tools}/venv/bin/python")
}

/// Admin URL of the shared test cluster.
pub fn database_url() -> String {
    required_env("PINAK_TEST_DATABASE_URL")
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A running API on a fresh store schema.
pub struct TestApi {
    pub base: String,
    pub schema: String,
    pub client: reqwest::Client,
    pub state: pinak_api::runtime::state::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub struct ApiBuilder {
    vars: HashMap<String, String>,
}

impl ApiBuilder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.vars.insert(key.into(), value.into());
        self
    }

    pub async fn start(self) -> TestApi {
        let schema = self.vars.get("PINAK_DB_SCHEMA").cloned().unwrap();
        let cfg = Config::from_lookup(|k| self.vars.get(k).cloned()).expect("test config is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let state = lifecycle::prepare(cfg).await.expect("pinak-api starts against the test database");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        let task = tokio::spawn(async move {
            lifecycle::serve(serve_state, listener, async move {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        TestApi {
            base: format!("http://{addr}"),
            schema,
            client: reqwest::Client::new(),
            state,
            shutdown: Some(tx),
            task: Some(task),
        }
    }
}

impl TestApi {
    /// Defaults: dummy embeddings, migrations on, a fresh schema.
    pub fn builder() -> ApiBuilder {
        let mut vars = HashMap::new();
        vars.insert("PINAK_DATABASE_URL".into(), database_url());
        vars.insert("PINAK_DB_SCHEMA".into(), unique("t"));
        vars.insert("PINAK_JWT_SECRET".into(), SECRET.into());
        vars.insert("PINAK_EMBEDDING_BACKEND".into(), "dummy".into());
        vars.insert("PINAK_DB_POOL_SIZE".into(), "4".into());
        ApiBuilder { vars }
    }

    pub async fn start() -> TestApi {
        Self::builder().start().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `/api/v1/memory` + path.
    pub fn mem(&self, path: &str) -> String {
        self.url(&format!("/api/v1/memory{path}"))
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        response(self.client.get(self.mem(path)).bearer_auth(token).send().await.expect("request")).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        response(self.client.post(self.mem(path)).bearer_auth(token).json(&body).send().await.expect("request")).await
    }

    pub async fn put(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        response(self.client.put(self.mem(path)).bearer_auth(token).json(&body).send().await.expect("request")).await
    }

    pub async fn delete(&self, token: &str, path: &str) -> (u16, Value) {
        response(self.client.delete(self.mem(path)).bearer_auth(token).send().await.expect("request")).await
    }

    /// A direct connection to this store's schema, for assertions on what was (not) written.
    pub async fn db(&self) -> PgConnection {
        let mut c = PgConnection::connect(&database_url()).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!("SET search_path TO \"{}\", public", self.schema)))
            .execute(&mut c)
            .await
            .unwrap();
        c
    }

    pub async fn count(&self, table: &str) -> i64 {
        let mut c = self.db().await;
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut c)
            .await
            .unwrap()
    }

    pub async fn stop(mut self) {
        self.shutdown_now().await;
    }

    async fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn response(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, body)
}

/// Token builder: claims default to a read+write agent of `tenant`/`project`.
pub struct Token {
    claims: serde_json::Map<String, Value>,
    secret: String,
}

impl Token {
    pub fn new(tenant: &str, project: &str) -> Self {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "sub": "agent-1", "tenant": tenant, "project_id": project,
            "iss": "pinak-memory", "aud": "pinak-memory-api",
            "iat": now, "exp": now + 600, "jti": uuid::Uuid::new_v4().to_string(),
            "scopes": ["memory.read", "memory.write"], "roles": ["agent"], "client_id": "client-a",
        });
        Token { claims: claims.as_object().unwrap().clone(), secret: SECRET.into() }
    }
    pub fn admin(tenant: &str, project: &str) -> Self {
        Self::new(tenant, project)
            .set("scopes", json!(["memory.read", "memory.write", "memory.admin"]))
            .set("roles", json!(["admin"]))
    }
    pub fn set(mut self, k: &str, v: Value) -> Self {
        self.claims.insert(k.into(), v);
        self
    }
    pub fn unset(mut self, k: &str) -> Self {
        self.claims.remove(k);
        self
    }
    pub fn secret(mut self, s: &str) -> Self {
        self.secret = s.into();
        self
    }
    pub fn jti(&self) -> String {
        self.claims["jti"].as_str().unwrap_or_default().to_owned()
    }
    pub fn sign(&self) -> String {
        encode(
            &Header::default(),
            &Value::Object(self.claims.clone()),
            &EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .unwrap()
    }
}

/// The OpenBao dev server started by `scripts/test`.
pub fn vault_client() -> vaultrs::client::VaultClient {
    let settings = vaultrs::client::VaultClientSettingsBuilder::default()
        .address(required_env("PINAK_TEST_VAULT_ADDR"))
        .token(required_env("PINAK_TEST_VAULT_TOKEN"))
        .build()
        .expect("vault settings");
    vaultrs::client::VaultClient::new(settings).expect("vault client")
}
