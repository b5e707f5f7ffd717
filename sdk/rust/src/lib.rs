//! `pinak-sdk`: a typed async client of the Pinak memory API, on `reqwest`.
//!
//! ```no_run
//! # async fn run(token: &str) -> Result<(), pinak_sdk::Error> {
//! let pinak = pinak_sdk::Client::new("http://127.0.0.1:8000", token)?;
//! pinak.remember("The staging database is restored every Sunday", &["ops"]).await?;
//! for hit in pinak.search("when is staging restored", 3).await? {
//!     println!("{:.2} {} {}", hit.score.unwrap_or(0.0), hit.layer.as_deref().unwrap_or("?"), hit.content);
//! }
//! # Ok(()) }
//! ```
//!
//! Every call goes through one route of `routes`, a table the workspace's tests check against
//! a running service's `/openapi.json`. GETs are retried with exponential back-off on 503 and
//! on transport errors; writes only when nothing can have been processed (the connection was
//! never made, or the service answered 503 `not_ready` before any handler ran), so a retry
//! never stores a memory twice.

mod error;
pub mod routes;
mod types;

use std::time::Duration;

use reqwest::Url;
use serde_json::{Value, json};

pub use error::Error;
use routes::Route;
pub use types::{Fusion, Mode, Page, Record, SearchHit, SearchOptions};

/// How many times, and how patiently, a failed call is sent again.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub max_retries: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { max_retries: 3, base: Duration::from_millis(250), max: Duration::from_secs(8) }
    }
}

impl Retry {
    fn delay(&self, attempt: u32) -> Duration {
        self.base.saturating_mul(2u32.saturating_pow(attempt)).min(self.max)
    }
}

/// A client of one Pinak API with one token. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct Client {
    base: Url,
    token: String,
    http: reqwest::Client,
    retry: Retry,
    client_name: Option<String>,
}

/// Options of `Client::builder`.
#[derive(Debug)]
pub struct Builder {
    base: String,
    token: String,
    timeout: Duration,
    retry: Retry,
    client_name: Option<String>,
}

impl Builder {
    /// Deadline of each attempt (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }
    /// Sent as `X-Pinak-Client-Name`.
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }
    pub fn build(self) -> Result<Client, Error> {
        let base = Url::parse(self.base.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Error::Config(format!("base URL must start with http:// or https://, got `{}`", self.base))
            })?;
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(concat!("pinak-sdk-rust/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client { base, token: self.token, http, retry: self.retry, client_name: self.client_name })
    }
}

/// Query pairs of a list route: `limit` and the `cursor` of the previous page.
fn page_query(limit: Option<u32>, cursor: Option<&str>) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(l) = limit {
        q.push(("limit", l.to_string()));
    }
    if let Some(c) = cursor {
        q.push(("cursor", c.to_owned()));
    }
    q
}

impl Client {
    /// A client with the default timeout and retries.
    pub fn new(base_url: &str, token: &str) -> Result<Client, Error> {
        Client::builder(base_url, token).build()
    }

    pub fn builder(base_url: &str, token: &str) -> Builder {
        Builder {
            base: base_url.to_owned(),
            token: token.to_owned(),
            timeout: Duration::from_secs(30),
            retry: Retry::default(),
            client_name: None,
        }
    }

    /// The URL of `route` with its `{name}` segments filled (percent-encoded) from `params`.
    fn url(&self, route: Route, params: &[&str]) -> Result<Url, Error> {
        let mut url = self.base.clone();
        let mut given = params.iter();
        {
            let mut segments =
                url.path_segments_mut().map_err(|()| Error::Config(format!("`{}` cannot be a base URL", self.base)))?;
            segments.pop_if_empty();
            for seg in route.path.trim_start_matches('/').split('/') {
                if seg.starts_with('{') {
                    let value = given.next().ok_or_else(|| Error::Config(format!("{}: missing {seg}", route.path)))?;
                    segments.push(value);
                } else {
                    segments.push(seg);
                }
            }
        }
        Ok(url)
    }

    /// Sends one call, with retries; the decoded body and the `X-Next-Cursor` header.
    async fn call(
        &self,
        route: Route,
        params: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<(Value, Option<String>), Error> {
        let url = self.url(route, params)?;
        let context = format!("{} {}", route.method, url.path());
        let method = reqwest::Method::from_bytes(route.method.as_bytes()).expect("routes use standard methods");
        let mut attempt = 0;
        loop {
            let mut req = self.http.request(method.clone(), url.clone()).bearer_auth(&self.token).query(query);
            if let Some(name) = &self.client_name {
                req = req.header("X-Pinak-Client-Name", name);
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            let retry_left = attempt < self.retry.max_retries;
            match req.send().await {
                Err(e) => {
                    if retry_left && (route.idempotent() || e.is_connect()) {
                        tokio::time::sleep(self.retry.delay(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(Error::Transport { context, source: e });
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let cursor = resp.headers().get("x-next-cursor").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    let text =
                        resp.text().await.map_err(|e| Error::Transport { context: context.clone(), source: e })?;
                    let value: Value = if text.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    };
                    if (200..300).contains(&status) {
                        return Ok((value, cursor));
                    }
                    let not_ready = value["detail"]["status"] == "not_ready";
                    if status == 503 && retry_left && (route.idempotent() || not_ready) {
                        tokio::time::sleep(self.retry.delay(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(Error::for_status(context, status, value));
                }
            }
        }
    }

    async fn value(
        &self,
        route: Route,
        params: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value, Error> {
        Ok(self.call(route, params, query, body).await?.0)
    }

    fn decode<T: serde::de::DeserializeOwned>(route: Route, v: Value) -> Result<T, Error> {
        serde_json::from_value(v)
            .map_err(|e| Error::Decode { context: format!("{} {}", route.method, route.path), message: e.to_string() })
    }

    async fn page(
        &self,
        route: Route,
        mut query: Vec<(&'static str, String)>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<Value>, Error> {
        query.extend(page_query(limit, cursor));
        let (v, next_cursor) = self.call(route, &[], &query, None).await?;
        Ok(Page { items: Self::decode(route, v)?, next_cursor })
    }

    // ------------------------------------------------------------------ service

    /// Readiness and the embedding backend (`GET /api/v1/health`).
    pub async fn health(&self) -> Result<Value, Error> {
        self.value(routes::HEALTH, &[], &[], None).await
    }

    /// Revoke a token by its `jti` (admin).
    pub async fn revoke_token(&self, jti: &str) -> Result<(), Error> {
        self.value(routes::REVOKE_TOKEN, &[], &[], Some(json!({ "jti": jti }))).await.map(drop)
    }

    // ------------------------------------------------------------------ writes

    /// Add a semantic memory: the stored record, or the quarantine ticket when the store's
    /// policy holds it for review (`status: "pending"`).
    pub async fn remember(&self, content: &str, tags: &[&str]) -> Result<Value, Error> {
        self.value(routes::REMEMBER, &[], &[], Some(json!({ "content": content, "tags": tags }))).await
    }

    /// Up to 500 payloads of one layer, all or nothing.
    pub async fn add_batch(&self, layer: &str, items: Vec<Value>) -> Result<Value, Error> {
        self.value(routes::ADD_BATCH, &[], &[], Some(json!({ "layer": layer, "items": items }))).await
    }

    /// An episode: `{content, goal?, outcome?, plan?, tool_logs?, salience?}`.
    pub async fn add_episode(&self, episode: Value) -> Result<Value, Error> {
        self.value(routes::ADD_EPISODE, &[], &[], Some(episode)).await
    }

    /// A skill: `{skill_name, trigger?, steps?, description?, code_snippet?}`.
    pub async fn add_skill(&self, skill: Value) -> Result<Value, Error> {
        self.value(routes::ADD_SKILL, &[], &[], Some(skill)).await
    }

    /// An external snippet: `{query, external_source, content}`.
    pub async fn add_rag(&self, snippet: Value) -> Result<Value, Error> {
        self.value(routes::ADD_RAG, &[], &[], Some(snippet)).await
    }

    /// A working-memory note; `extra` may hold `session_id`, `key`, `ttl_seconds`, `expires_at`.
    pub async fn add_working(&self, content: &str, extra: Value) -> Result<Value, Error> {
        let mut body = json!({ "content": content });
        merge(&mut body, extra);
        self.value(routes::ADD_WORKING, &[], &[], Some(body)).await
    }

    pub async fn add_session(&self, session_id: &str, content: &str, role: &str) -> Result<Value, Error> {
        let body = json!({ "session_id": session_id, "content": content, "role": role });
        self.value(routes::ADD_SESSION, &[], &[], Some(body)).await
    }

    pub async fn add_event(&self, event_type: &str, payload: Value) -> Result<Value, Error> {
        self.value(routes::ADD_EVENT, &[], &[], Some(json!({ "event_type": event_type, "payload": payload }))).await
    }

    // ------------------------------------------------------------------ recall

    /// The `k` best hits across layers (hybrid search, the service's defaults).
    pub async fn search(&self, query: &str, k: u32) -> Result<Vec<SearchHit>, Error> {
        self.search_with(query, k, &SearchOptions::default()).await
    }

    pub async fn search_with(&self, query: &str, k: u32, options: &SearchOptions) -> Result<Vec<SearchHit>, Error> {
        let mut q = vec![("query", query.to_owned()), ("k", k.to_string())];
        q.extend(options.query());
        let v = self.value(routes::SEARCH, &[], &q, None).await?;
        Self::decode(routes::SEARCH, v)
    }

    /// Hits grouped by layer: `{semantic: [...], episodic: [...], ...}`.
    pub async fn retrieve_context(&self, query: &str, limit: u32, options: &SearchOptions) -> Result<Value, Error> {
        let mut q = vec![("query", query.to_owned()), ("limit", limit.to_string())];
        q.extend(options.query());
        self.value(routes::RETRIEVE_CONTEXT, &[], &q, None).await
    }

    pub async fn rag_search(&self, query: &str, limit: u32) -> Result<Vec<Record>, Error> {
        let q = [("query", query.to_owned()), ("limit", limit.to_string())];
        let v = self.value(routes::RAG_SEARCH, &[], &q, None).await?;
        Self::decode(routes::RAG_SEARCH, v)
    }

    // ------------------------------------------------------------------ records

    pub async fn get(&self, layer: &str, id: &str) -> Result<Record, Error> {
        let v = self.value(routes::GET, &[layer, id], &[], None).await?;
        Self::decode(routes::GET, v)
    }

    /// Edit allow-listed fields (admin); the record as stored.
    pub async fn update(&self, layer: &str, id: &str, fields: Value) -> Result<Record, Error> {
        let v = self.value(routes::UPDATE, &[layer, id], &[], Some(fields)).await?;
        Self::decode(routes::UPDATE, v)
    }

    /// Delete a record and its vector (admin).
    pub async fn delete(&self, layer: &str, id: &str) -> Result<(), Error> {
        self.value(routes::DELETE, &[layer, id], &[], None).await.map(drop)
    }

    // ------------------------------------------------------------------ paged lists

    /// Events, newest first. Pass the previous page's `next_cursor` to go on.
    pub async fn events(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<Value>, Error> {
        self.page(routes::EVENTS, vec![], limit, cursor).await
    }

    pub async fn session_lines(
        &self,
        session_id: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<Value>, Error> {
        self.page(routes::SESSION_LINES, vec![("session_id", session_id.to_owned())], limit, cursor).await
    }

    pub async fn working_notes(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<Value>, Error> {
        self.page(routes::WORKING_NOTES, vec![], limit, cursor).await
    }

    pub async fn agents(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<Value>, Error> {
        self.page(routes::AGENTS, vec![], limit, cursor).await
    }

    pub async fn access_log(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<Value>, Error> {
        self.page(routes::ACCESS_LOG, vec![], limit, cursor).await
    }

    pub async fn clients(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<Value>, Error> {
        self.page(routes::CLIENTS, vec![], limit, cursor).await
    }

    /// Client issues with `status` (`open` by default on the server).
    pub async fn issues(
        &self,
        status: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<Value>, Error> {
        self.page(routes::ISSUES, status_filter(status), limit, cursor).await
    }

    /// Quarantine items with `status` (`pending` by default on the server; admin).
    pub async fn quarantine(
        &self,
        status: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<Value>, Error> {
        self.page(routes::QUARANTINE, status_filter(status), limit, cursor).await
    }

    // ------------------------------------------------------------------ agents, clients, issues

    /// `fields`: `status`, `hostname`, `pid`, `meta`, all optional.
    pub async fn heartbeat(&self, fields: Value) -> Result<Value, Error> {
        self.value(routes::HEARTBEAT, &[], &[], Some(fields)).await
    }

    /// `fields`: `client_id` and optionally `client_name`, `parent_client_id`, `status`, `metadata`.
    pub async fn register_client(&self, fields: Value) -> Result<Value, Error> {
        self.value(routes::REGISTER_CLIENT, &[], &[], Some(fields)).await
    }

    pub async fn client_summary(&self, include_children: bool) -> Result<Value, Error> {
        let q = [("include_children", include_children.to_string())];
        self.value(routes::CLIENT_SUMMARY, &[], &q, None).await
    }

    /// `fields`: `error_code`, `message`, and optionally `layer`, `payload`, `metadata`.
    pub async fn report_issue(&self, fields: Value) -> Result<Value, Error> {
        self.value(routes::REPORT_ISSUE, &[], &[], Some(fields)).await
    }

    pub async fn resolve_issue(&self, issue_id: &str, resolution: Option<&str>) -> Result<Value, Error> {
        let body = resolution.map_or_else(|| json!({}), |r| json!({ "resolution": r }));
        self.value(routes::RESOLVE_ISSUE, &[issue_id], &[], Some(body)).await
    }

    // ------------------------------------------------------------------ quarantine

    /// Propose a memory of `layer` for review: the pending item.
    pub async fn propose(&self, layer: &str, payload: Value) -> Result<Value, Error> {
        self.value(routes::PROPOSE, &[layer], &[], Some(payload)).await
    }

    pub async fn approve(&self, item_id: &str) -> Result<Value, Error> {
        self.value(routes::APPROVE, &[item_id], &[], None).await
    }

    pub async fn reject(&self, item_id: &str) -> Result<Value, Error> {
        self.value(routes::REJECT, &[item_id], &[], None).await
    }

    // ------------------------------------------------------------------ audit, units, schemas

    /// Verify the tenant's audit chain (admin); a broken chain is `Error::Conflict`.
    pub async fn verify_audit(&self, anchor: Option<Value>) -> Result<Value, Error> {
        let body = anchor.map_or_else(|| json!({}), |a| json!({ "anchor": a }));
        self.value(routes::VERIFY_AUDIT, &[], &[], Some(body)).await
    }

    pub async fn audit_head(&self) -> Result<Value, Error> {
        self.value(routes::AUDIT_HEAD, &[], &[], None).await
    }

    /// Group records into a unit (admin): `members` are `{layer, id, role}`.
    pub async fn create_unit(&self, label: &str, members: Vec<Value>) -> Result<Value, Error> {
        self.value(routes::CREATE_UNIT, &[], &[], Some(json!({ "label": label, "members": members }))).await
    }

    pub async fn related(&self, layer: &str, record_id: &str) -> Result<Value, Error> {
        self.value(routes::RELATED, &[layer, record_id], &[], None).await
    }

    pub async fn schemas(&self) -> Result<Value, Error> {
        self.value(routes::SCHEMAS, &[], &[], None).await
    }

    pub async fn schema(&self, layer: &str) -> Result<Value, Error> {
        self.value(routes::SCHEMA, &[layer], &[], None).await
    }
}

/// The `status_filter` query of the issue and quarantine lists.
fn status_filter(status: Option<&str>) -> Vec<(&'static str, String)> {
    status.map(|s| vec![("status_filter", s.to_owned())]).unwrap_or_default()
}

/// `extra`'s fields added to the object `body`.
fn merge(body: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_filled_and_encoded() {
        let c = Client::new("http://h:1/base/", "t").unwrap();
        assert_eq!(
            c.url(routes::GET, &["semantic", "a/b c"]).unwrap().as_str(),
            "http://h:1/base/api/v1/memory/semantic/a%2Fb%20c"
        );
        assert!(c.url(routes::GET, &["semantic"]).is_err());
        assert!(Client::new("ftp://h", "t").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let r = Retry::default();
        assert_eq!(
            (r.delay(0), r.delay(1), r.delay(10)),
            (Duration::from_millis(250), Duration::from_millis(500), r.max)
        );
    }

    #[test]
    fn every_route_is_in_the_table_once() {
        let mut seen = std::collections::HashSet::new();
        for r in routes::ALL {
            assert!(seen.insert((r.method, r.path)), "{r:?} twice");
        }
    }
}
