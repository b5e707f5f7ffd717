//! The store's Service: the endpoint in `status.endpoint`.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use pinak_crds::MemoryStore;

use super::labels::{child_metadata, desired_labels};
use crate::names::{API_PORT, SERVICE_PORT, StoreNames};

pub fn service(store: &MemoryStore, names: &StoreNames) -> Service {
    Service {
        metadata: child_metadata(store, names, &names.workload),
        spec: Some(ServiceSpec {
            selector: Some(desired_labels(store)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: SERVICE_PORT,
                target_port: Some(IntOrString::Int(API_PORT)),
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_golden, store};

    #[test]
    fn service_golden() {
        let store = store(serde_json::json!({}));
        assert_golden("service.json", &service(&store, &StoreNames::of(&store).unwrap()));
    }
}
