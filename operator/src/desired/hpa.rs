//! The store's HorizontalPodAutoscaler, only when `spec.api.autoscaling` is set.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use pinak_crds::MemoryStore;

use super::labels::child_metadata;
use crate::names::StoreNames;

pub fn hpa(store: &MemoryStore, names: &StoreNames) -> Option<HorizontalPodAutoscaler> {
    let autoscaling = store.spec.api.autoscaling.as_ref()?;
    Some(HorizontalPodAutoscaler {
        metadata: child_metadata(store, names, &names.workload),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: names.workload.clone(),
            },
            min_replicas: Some(autoscaling.min_replicas),
            max_replicas: autoscaling.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(autoscaling.target_cpu_utilization_percentage),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_golden, store};

    #[test]
    fn hpa_only_with_autoscaling() {
        let plain = store(serde_json::json!({}));
        assert!(hpa(&plain, &StoreNames::of(&plain).unwrap()).is_none());
        let scaled = store(serde_json::json!({"api": {"autoscaling": {"maxReplicas": 8}}}));
        let h = hpa(&scaled, &StoreNames::of(&scaled).unwrap()).unwrap();
        assert_golden("hpa.json", &h);
        let spec = h.spec.unwrap();
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 8));
    }
}
