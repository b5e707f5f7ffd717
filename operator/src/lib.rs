//! Pinak operator: reconciles `MemoryStore` resources (see `crds/`).
//!
//! Not implemented yet (see the "Operator" issue). What is here is pure and unit-tested, so
//! the controller can build on it.

use std::collections::BTreeMap;

use kube::ResourceExt;
use pinak_crds::MemoryStore;

/// Field manager name of the operator (server-side apply).
pub const MANAGER: &str = "pinak-operator";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_a_store() {
        let store: MemoryStore = serde_json::from_value(serde_json::json!({
            "apiVersion": "pinak.dev/v1alpha1",
            "kind": "MemoryStore",
            "metadata": {"name": "notes", "namespace": "team-a"},
            "spec": {"database": {"adminCredentials": {"secretRef": {"name": "pg"}}}}
        }))
        .unwrap();
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
    }
}
