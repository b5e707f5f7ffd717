//! Pinak operator: reconciles `MemoryStore` resources (see `crds/`) into a provisioned
//! Postgres schema, an operator-owned Secret, and a pinak-api Deployment, Service, PDB and
//! (optionally) HPA, or in mode `Serverless` a Knative Service.
//!
//! - [`names`]: every name derived from a store;
//! - [`desired`]: pure builders of the child objects;
//! - [`cnpg`]: admin credentials from a CloudNativePG Cluster;
//! - [`knative`]: whether Knative Serving is installed, and its Services' status;
//! - [`database`]: provisioning and reclaim in Postgres (the SQL plan is pure);
//! - [`status`]: the status as a pure function of what a reconcile achieved;
//! - [`reconcile`]: the controller that ties them together;
//! - [`leader`]: leader election on a Lease, so that one replica reconciles;
//! - [`vault`]: login to Vault and the KV reads a store's spec asks for.

pub mod cnpg;
pub mod config;
pub mod database;
pub mod desired;
pub mod error;
pub mod knative;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod reconcile;
pub mod secret_ref;
pub mod server;
pub mod status;
pub mod validate;
pub mod vault;

pub use desired::labels::desired_labels;

/// Field manager name of the operator (server-side apply), for children and status alike.
pub const MANAGER: &str = "pinak-operator";
/// Finalizer that holds a store until its database objects are reclaimed (or retained).
pub const FINALIZER: &str = "pinak.dev/cleanup";

#[cfg(test)]
pub(crate) mod test_support {
    use pinak_crds::MemoryStore;
    use serde_json::{Value, json};

    /// `team-a/notes` with admin credentials from Secret `pg`, `spec` merged over that.
    pub fn store(spec: Value) -> MemoryStore {
        let mut base = json!({"database": {"adminCredentials": {"secretRef": {"name": "pg"}}}});
        merge(&mut base, spec);
        serde_json::from_value(json!({
            "apiVersion": "pinak.dev/v1alpha1",
            "kind": "MemoryStore",
            "metadata": {"name": "notes", "namespace": "team-a", "uid": "00000000-0000-4000-8000-000000000001", "generation": 1},
            "spec": base
        }))
        .expect("test store")
    }

    fn merge(base: &mut Value, over: Value) {
        match (base, over) {
            (Value::Object(b), Value::Object(o)) => {
                for (k, v) in o {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, o) => *b = o,
        }
    }

    /// Compares `value` as pretty JSON with `tests/golden/<file>`; `PINAK_UPDATE_GOLDEN=1`
    /// rewrites the file instead.
    pub fn assert_golden(file: &str, value: &impl serde::Serialize) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(file);
        let actual = serde_json::to_string_pretty(value).expect("serialisable") + "\n";
        if std::env::var_os("PINAK_UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &actual).expect("write golden file");
            return;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run with PINAK_UPDATE_GOLDEN=1 to create it", path.display()));
        assert_eq!(actual, expected, "{file} differs; run with PINAK_UPDATE_GOLDEN=1 to accept the change");
    }
}
