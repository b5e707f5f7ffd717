//! Labels and ownership metadata shared by every child object.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use pinak_crds::MemoryStore;

use crate::MANAGER;
use crate::names::StoreNames;

/// Labels the operator puts on everything it creates for `store` (Deployment, pods, Service,
/// PDB, HPA, Secret). They also form the API pods' selector in `status.selector`.
pub fn desired_labels(store: &MemoryStore) -> BTreeMap<String, String> {
    let name = store.name_any();
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "pinak-api".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), name.clone()),
        ("app.kubernetes.io/managed-by".to_owned(), MANAGER.to_owned()),
        ("pinak.dev/store".to_owned(), name),
    ])
}

/// The pods' selector, as the Deployment, Service, PDB and topology spread use it.
pub fn selector(store: &MemoryStore) -> LabelSelector {
    LabelSelector { match_labels: Some(desired_labels(store)), ..Default::default() }
}

/// The pods' selector in string form (`status.selector`, read by the scale subresource).
pub fn selector_string(store: &MemoryStore) -> String {
    desired_labels(store).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Controller reference to the store: garbage collection removes the child with the store,
/// and `Controller::owns` maps the child's events back to it.
pub fn owner_reference(names: &StoreNames) -> OwnerReference {
    OwnerReference {
        api_version: MemoryStore::api_version(&()).into_owned(),
        kind: MemoryStore::kind(&()).into_owned(),
        name: names.name.clone(),
        uid: names.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata of a child object named `name`.
pub fn child_metadata(store: &MemoryStore, names: &StoreNames, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(names.namespace.clone()),
        labels: Some(desired_labels(store)),
        owner_references: Some(vec![owner_reference(names)]),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::store;

    #[test]
    fn labels_of_a_store() {
        let store = store(serde_json::json!({}));
        let labels = desired_labels(&store);
        let expected: BTreeMap<String, String> = [
            ("app.kubernetes.io/name", "pinak-api"),
            ("app.kubernetes.io/instance", "notes"),
            ("app.kubernetes.io/managed-by", "pinak-operator"),
            ("pinak.dev/store", "notes"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(labels, expected);
        // Every value is a valid label value (<= 63 chars, alphanumeric at both ends).
        for v in labels.values() {
            assert!(v.len() <= 63);
            assert!(v.starts_with(|c: char| c.is_ascii_alphanumeric()));
            assert!(v.ends_with(|c: char| c.is_ascii_alphanumeric()));
        }
        assert_eq!(
            selector_string(&store),
            "app.kubernetes.io/instance=notes,app.kubernetes.io/managed-by=pinak-operator,app.kubernetes.io/name=pinak-api,pinak.dev/store=notes"
        );
    }

    #[test]
    fn owner_reference_is_a_controller_reference() {
        let store = store(serde_json::json!({}));
        let names = StoreNames::of(&store).unwrap();
        let r = owner_reference(&names);
        assert_eq!(
            (r.api_version.as_str(), r.kind.as_str(), r.name.as_str()),
            ("pinak.dev/v1alpha1", "MemoryStore", "notes")
        );
        assert_eq!((r.controller, r.block_owner_deletion), (Some(true), Some(true)));
        assert_eq!(r.uid, "00000000-0000-4000-8000-000000000001");
    }
}
