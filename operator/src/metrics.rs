//! Prometheus metrics of the operator (`/metrics`), with the prometheus-client crate the API
//! already uses.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    errors: Family<ReasonLabels, Counter>,
    duration: Histogram,
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
        Self { registry, reconciles, errors, duration }
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

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
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
}
