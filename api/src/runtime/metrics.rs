//! Metrics: Prometheus text at `GET /metrics` (request counts and latency histograms by
//! route template and status, pool usage, embedding latency) and the prototype's JSON
//! counters at `GET /api/v1/metrics`. Per process; labels never carry tokens, queries or
//! raw paths (unmatched routes are labelled "unmatched", methods outside the standard nine
//! "OTHER").

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sqlx::PgPool;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    embedding: Family<BackendLabels, Histogram>,
    pool_size: Gauge,
    pool_idle: Gauge,
    /// `"<METHOD> <route> <N>xx"` -> (count, duration sum), for the JSON endpoint.
    summary: Mutex<BTreeMap<String, (u64, f64)>>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("pinak");
    let requests = Family::<RequestLabels, Counter>::default();
    let latency = Family::<RequestLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
    let embedding = Family::<BackendLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
    let pool_size = Gauge::default();
    let pool_idle = Gauge::default();
    registry.register("http_requests", "HTTP requests by route template and status", requests.clone());
    registry.register("http_request_duration_seconds", "HTTP request latency", latency.clone());
    registry.register("embedding_duration_seconds", "Embedding latency per batch", embedding.clone());
    registry.register("db_pool_connections", "Open database connections", pool_size.clone());
    registry.register("db_pool_idle_connections", "Idle database connections", pool_idle.clone());
    Metrics { registry, requests, latency, embedding, pool_size, pool_idle, summary: Mutex::new(BTreeMap::new()) }
});

/// The method label: one of a fixed set, so an invented method cannot add label sets.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|k| *k == method).unwrap_or("OTHER")
}

pub fn observe_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let m = &*METRICS;
    let method = method_label(method);
    let labels = RequestLabels { method: method.into(), route: route.into(), status: status.to_string() };
    m.requests.get_or_create(&labels).inc();
    m.latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
    let key = format!("{method} {route} {}xx", status / 100);
    let mut summary = m.summary.lock().unwrap_or_else(|p| p.into_inner());
    let entry = summary.entry(key).or_default();
    entry.0 += 1;
    entry.1 += elapsed.as_secs_f64();
}

pub fn observe_embedding(backend: &str, elapsed: Duration) {
    METRICS.embedding.get_or_create(&BackendLabels { backend: backend.into() }).observe(elapsed.as_secs_f64());
}

pub fn request_summary() -> serde_json::Value {
    let summary = METRICS.summary.lock().unwrap_or_else(|p| p.into_inner());
    summary
        .iter()
        .map(|(k, (count, sum))| (k.clone(), serde_json::json!({ "count": count, "duration_seconds_sum": sum })))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

pub fn render(pool: &PgPool) -> String {
    let m = &*METRICS;
    m.pool_size.set(pool.size() as i64);
    m.pool_idle.set(pool.num_idle() as i64);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &m.registry).expect("writing to a String cannot fail");
    out
}
