//! Desired state: pure functions from a `MemoryStore` (and the operator's configuration) to
//! the objects that serve it. Nothing here talks to the API server or the database.

pub mod deployment;
pub mod hpa;
pub mod knative;
pub mod labels;
pub mod pdb;
pub mod secret;
pub mod service;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use pinak_crds::MemoryStore;

use crate::config::OperatorConfig;
use crate::names::StoreNames;

/// The workload objects of a store (the Secret is built apart: its values come from the live
/// Secret and the database).
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub deployment: Deployment,
    pub service: Service,
    pub pdb: PodDisruptionBudget,
    /// `None`: the store is not autoscaled, and an HPA left from before is deleted.
    pub hpa: Option<HorizontalPodAutoscaler>,
}

pub fn workload(store: &MemoryStore, names: &StoreNames, config: &OperatorConfig, secret_env_hash: &str) -> Workload {
    Workload {
        deployment: deployment::deployment(store, names, config, secret_env_hash),
        service: service::service(store, names),
        pdb: pdb::pdb(store, names),
        hpa: hpa::hpa(store, names),
    }
}
