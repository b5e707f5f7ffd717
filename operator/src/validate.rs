//! Spec checks the CRD schema cannot express, and fields this operator cannot honour yet. A
//! field that would be silently ignored is reported instead (`Degraded`, reason
//! `Unsupported`), so nobody believes a setting is in effect when it is not.

use pinak_crds::{EmbeddingBackend, IndexSpec, MemoryStoreSpec};

use crate::error::{Error, Result};

/// Vector width of the `vector(384)` columns in `migrations/`.
const SCHEMA_DIMENSIONS: i32 = 384;

pub fn validate(spec: &MemoryStoreSpec) -> Result<()> {
    if spec.vault.is_some() || spec.database.admin_credentials.vault_path.is_some() {
        return Err(Error::Unsupported(
            "spec.vault and adminCredentials.vaultPath (Vault support comes with issue 16); use adminCredentials.secretRef and remove spec.vault".into(),
        ));
    }
    if spec.database.admin_credentials.secret_ref.is_none() {
        return Err(Error::InvalidSpec("database.adminCredentials.secretRef is required".into()));
    }
    if spec.embedding.backend == EmbeddingBackend::Http && spec.embedding.url.is_none() {
        return Err(Error::InvalidSpec("embedding.url is required when embedding.backend is http".into()));
    }
    if spec.embedding.dimensions != SCHEMA_DIMENSIONS {
        return Err(Error::Unsupported(format!(
            "embedding.dimensions {} (the store schema holds {SCHEMA_DIMENSIONS}-dimensional vectors)",
            spec.embedding.dimensions
        )));
    }
    let defaults = IndexSpec::default();
    if (spec.index.m, spec.index.ef_construction, spec.index.halfvec)
        != (defaults.m, defaults.ef_construction, defaults.halfvec)
    {
        return Err(Error::Unsupported(format!(
            "index.m, index.efConstruction and index.halfvec other than {}, {} and {} (the migrations build the HNSW indexes with those)",
            defaults.m, defaults.ef_construction, defaults.halfvec
        )));
    }
    if spec.retention.session_ttl_seconds.is_some() || spec.retention.working_ttl_seconds.is_some() {
        return Err(Error::Unsupported(
            "retention.sessionTtlSeconds and retention.workingTtlSeconds (pinak-api has no store-wide default TTL setting; clients pass ttl_seconds per write)".into(),
        ));
    }
    if let Some(a) = &spec.api.autoscaling
        && a.max_replicas < a.min_replicas
    {
        return Err(Error::InvalidSpec("api.autoscaling.maxReplicas must be at least minReplicas".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::store;

    fn check(v: serde_json::Value) -> Result<()> {
        validate(&store(v).spec)
    }

    #[test]
    fn defaults_and_supported_fields_pass() {
        check(serde_json::json!({})).unwrap();
        check(serde_json::json!({"index": {"efSearch": 40}, "embedding": {"backend": "dummy"}})).unwrap();
    }

    #[test]
    fn unsupported_fields_are_named() {
        for (v, field) in [
            (
                serde_json::json!({"vault": {"address": "http://v", "auth": {"kubernetes": {"role": "r"}}}}),
                "spec.vault",
            ),
            (serde_json::json!({"embedding": {"dimensions": 768}}), "embedding.dimensions"),
            (serde_json::json!({"index": {"m": 32, "efConstruction": 64}}), "index.m"),
            (serde_json::json!({"index": {"halfvec": false}}), "index.halfvec"),
            (serde_json::json!({"retention": {"sessionTtlSeconds": 60}}), "sessionTtlSeconds"),
        ] {
            match check(v) {
                Err(Error::Unsupported(msg)) => assert!(msg.contains(field), "{msg}"),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_combinations_are_invalid_specs() {
        assert!(matches!(check(serde_json::json!({"embedding": {"backend": "http"}})), Err(Error::InvalidSpec(_))));
        assert!(matches!(
            check(serde_json::json!({"api": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}})),
            Err(Error::InvalidSpec(_))
        ));
    }
}
