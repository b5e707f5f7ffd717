//! Prometheus metrics of the operator (`/metrics`), with the prometheus-client crate the API
//! already uses.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    condition: String,
    status: String,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    errors: Family<ReasonLabels, Counter>,
    duration: Histogram,
    stores: Family<ConditionLabels, Gauge>,
    /// The last reported conditions of each store (namespace/name): (type, status).
    conditions: Mutex<BTreeMap<String, Vec<(String, String)>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconciles = Counter::default();
        let errors = Family::<ReasonLabels, Counter>::default();
        // 10 ms .. ~20 s: a steady-state reconcile is a few reads; a first one runs migrations.
        let duration = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        let mut registry = Registry::with_prefix("pinak_operator");
        registry.register("reconciles", "Reconciles of MemoryStores", reconciles.clone());
        registry.register("reconcile_errors", "Failed reconciles by condition reason", errors.clone());
        registry.register("reconcile_duration_seconds", "Duration of a reconcile", duration.clone());
        let stores = Family::<ConditionLabels, Gauge>::default();
        registry.register("stores", "MemoryStores by condition and its status", stores.clone());
        Self { registry, reconciles, errors, duration, stores, conditions: Mutex::default() }
    }
}

impl Metrics {
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn failed(&self, reason: &str) {
        self.errors.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
    }

    /// Records the conditions `store` (namespace/name) now reports.
    pub fn observe_store(&self, store: &str, conditions: &[Condition]) {
        let pairs = conditions.iter().map(|c| (c.type_.clone(), c.status.clone())).collect();
        self.conditions.lock().unwrap_or_else(PoisonError::into_inner).insert(store.to_owned(), pairs);
    }

    /// A store that is gone no longer counts.
    pub fn forget_store(&self, store: &str) {
        self.conditions.lock().unwrap_or_else(PoisonError::into_inner).remove(store);
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        // Counted afresh, so a condition no store has any more drops out rather than stay at 0.
        self.stores.clear();
        for pairs in self.conditions.lock().unwrap_or_else(PoisonError::into_inner).values() {
            for (condition, status) in pairs {
                let labels = ConditionLabels { condition: condition.clone(), status: status.clone() };
                self.stores.get_or_create(&labels).inc();
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_errors_and_histogram() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(30));
        m.failed("DatabaseUnreachable");
        let text = m.render();
        assert!(text.contains("pinak_operator_reconciles_total 1"), "{text}");
        assert!(text.contains("pinak_operator_reconcile_errors_total{reason=\"DatabaseUnreachable\"} 1"), "{text}");
        assert!(text.contains("pinak_operator_reconcile_duration_seconds_count 1"), "{text}");
    }

    #[test]
    fn stores_are_counted_by_condition_and_status() {
        let cond = |type_: &str, status: &str| Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "R".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        };
        let m = Metrics::default();
        m.observe_store("a/notes", &[cond("Ready", "True"), cond("Degraded", "False")]);
        m.observe_store("b/notes", &[cond("Ready", "False"), cond("Degraded", "True")]);
        m.observe_store("c/notes", &[cond("Ready", "True")]);
        let text = m.render();
        assert!(text.contains(r#"pinak_operator_stores{condition="Ready",status="True"} 2"#), "{text}");
        assert!(text.contains(r#"pinak_operator_stores{condition="Degraded",status="True"} 1"#), "{text}");
        // A store that recovers moves; one that is deleted goes.
        m.observe_store("b/notes", &[cond("Ready", "True"), cond("Degraded", "False")]);
        m.forget_store("c/notes");
        let text = m.render();
        assert!(text.contains(r#"pinak_operator_stores{condition="Ready",status="True"} 2"#), "{text}");
        assert!(text.contains(r#"pinak_operator_stores{condition="Degraded",status="False"} 2"#), "{text}");
        assert!(!text.contains(r#"condition="Degraded",status="True""#), "{text}");
        assert!(!text.contains(r#"condition="Ready",status="False""#), "{text}");
    }
}
