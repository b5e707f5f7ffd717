//! The Knative Service of a store in mode `Serverless`: the same pods as the Deployment,
//! adapted to what Knative Serving admits by default, scaled by concurrent requests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, SecurityContext};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use pinak_crds::MemoryStore;
use serde_json::json;

use super::deployment::pod_template;
use super::labels::child_metadata;
use crate::config::OperatorConfig;
use crate::names::{API_PORT, StoreNames};

/// `serving.knative.dev/v1` `Service`.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, VERSION, "Service"))
}

pub const GROUP: &str = "serving.knative.dev";
pub const VERSION: &str = "v1";

/// Knative's name for a plain HTTP/1.1 port: any other name is refused or changes the protocol.
const HTTP1_PORT: &str = "http1";

pub fn knative_service(
    store: &MemoryStore,
    names: &StoreNames,
    config: &OperatorConfig,
    secret_env_hash: &str,
) -> DynamicObject {
    let template = pod_template(store, names, config, secret_env_hash);
    let scaling = store.spec.api.serverless.clone().unwrap_or_default();
    let mut metadata = template.metadata.unwrap_or_default();
    let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (key, value) in [
        ("autoscaling.knative.dev/class", "kpa.autoscaling.knative.dev".to_owned()),
        ("autoscaling.knative.dev/metric", "concurrency".to_owned()),
        ("autoscaling.knative.dev/target", scaling.target_concurrency.to_string()),
        ("autoscaling.knative.dev/min-scale", scaling.min_scale.to_string()),
        ("autoscaling.knative.dev/max-scale", scaling.max_scale.to_string()),
    ] {
        annotations.insert(key.to_owned(), value);
    }
    let pod = knative_pod_spec(template.spec.unwrap_or_default());
    let mut ksvc = DynamicObject::new(&names.workload, &api_resource());
    ksvc.metadata = child_metadata(store, names, &names.workload);
    ksvc.data = json!({"spec": {"template": {"metadata": metadata, "spec": pod}}});
    ksvc
}

/// Knative's webhook drops or refuses pod fields outside its default feature set: the pod-level
/// security context (flag `kubernetes.podspec-securitycontext`) and topology spread constraints
/// are off by default, so the user, group and seccomp profile move to the container, and the
/// spread is left to Knative's scheduler defaults. Knative's queue-proxy reaches the API on
/// 127.0.0.1 and the kubelet on the pod IP, so the API listens on every interface.
fn knative_pod_spec(mut pod: PodSpec) -> PodSpec {
    let pod_security = pod.security_context.take().unwrap_or_default();
    pod.topology_spread_constraints = None;
    for c in &mut pod.containers {
        let sc = c.security_context.get_or_insert_with(SecurityContext::default);
        sc.run_as_user = pod_security.run_as_user;
        sc.run_as_group = pod_security.run_as_group;
        sc.seccomp_profile.clone_from(&pod_security.seccomp_profile);
        for port in c.ports.iter_mut().flatten() {
            port.name = Some(HTTP1_PORT.to_owned());
        }
        for var in c.env.iter_mut().flatten().filter(|v| v.name == "PINAK_LISTEN") {
            var.value = Some(format!("0.0.0.0:{API_PORT}"));
        }
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_golden, store};

    fn build(api: serde_json::Value) -> DynamicObject {
        let store = store(json!({"api": api}));
        knative_service(&store, &StoreNames::of(&store).unwrap(), &OperatorConfig::default(), "secret-hash")
    }

    #[test]
    fn knative_service_golden() {
        let ksvc = build(json!({"mode": "Serverless", "serverless": {"minScale": 1, "maxScale": 4}}));
        assert_golden("knative-service.json", &ksvc);
        let annotations = &ksvc.data["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["autoscaling.knative.dev/min-scale"], "1");
        assert_eq!(annotations["autoscaling.knative.dev/max-scale"], "4");
        assert_eq!(annotations["autoscaling.knative.dev/target"], "50", "the default target");
    }

    #[test]
    fn defaults_scale_to_zero_and_the_pods_stay_restricted() {
        let ksvc = build(json!({"mode": "Serverless"}));
        let pod = &ksvc.data["spec"]["template"]["spec"];
        assert_eq!(ksvc.data["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"], "0");
        assert!(pod.get("securityContext").is_none() && pod.get("topologySpreadConstraints").is_none());
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["runAsUser"], 65532);
        assert_eq!(c["securityContext"]["runAsNonRoot"], true);
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
        assert_eq!(c["ports"].as_array().unwrap().len(), 1);
        assert_eq!(c["ports"][0]["name"], "http1");
        assert_eq!(pod["automountServiceAccountToken"], false);
        let listen = c["env"].as_array().unwrap().iter().find(|e| e["name"] == "PINAK_LISTEN").unwrap();
        assert_eq!(listen["value"], "0.0.0.0:8080", "queue-proxy connects on 127.0.0.1");
        assert_eq!(ksvc.metadata.owner_references.as_ref().unwrap()[0].controller, Some(true));
    }

    #[test]
    fn the_pods_match_the_deployments_apart_from_the_knative_adaptations() {
        let s = store(json!({"api": {"mode": "Serverless"}}));
        let names = StoreNames::of(&s).unwrap();
        let config = OperatorConfig::default();
        let deployment = super::super::deployment::deployment(&s, &names, &config, "h");
        let ksvc = knative_service(&s, &names, &config, "h");
        let d = serde_json::to_value(&deployment.spec.unwrap().template.spec.unwrap().containers[0]).unwrap();
        let k = &ksvc.data["spec"]["template"]["spec"]["containers"][0];
        for field in ["image", "volumeMounts", "readinessProbe", "livenessProbe", "resources"] {
            assert_eq!(d.get(field), k.get(field), "{field}");
        }
    }
}
