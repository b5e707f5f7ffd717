//! The store's PodDisruptionBudget: node drains take API pods one at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use pinak_crds::MemoryStore;

use super::labels::{child_metadata, selector};
use crate::names::StoreNames;

pub fn pdb(store: &MemoryStore, names: &StoreNames) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: child_metadata(store, names, &names.workload),
        spec: Some(PodDisruptionBudgetSpec {
            // maxUnavailable rather than minAvailable: still satisfiable at one replica and
            // when the store is scaled to zero.
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(store)),
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
    fn pdb_golden() {
        let store = store(serde_json::json!({}));
        assert_golden("pdb.json", &pdb(&store, &StoreNames::of(&store).unwrap()));
    }
}
