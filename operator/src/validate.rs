//! Spec checks the CRD schema cannot express, and fields this operator cannot honour yet. A
//! field that would be silently ignored is reported instead (`Degraded`, reason
//! `Unsupported`), so nobody believes a setting is in effect when it is not.

use pinak_crds::{EmbeddingBackend, IndexSpec, MemoryStoreSpec};

use crate::error::{Error, Result};

/// Vector width of the `vector(384)` columns in `migrations/`.
const SCHEMA_DIMENSIONS: i32 = 384;

pub fn validate(spec: &MemoryStoreSpec) -> Result<()> {
    let admin = &spec.database.admin_credentials;
    let sources = [admin.secret_ref.is_some(), admin.vault_path.is_some(), admin.cnpg_cluster.is_some()];
    if sources.into_iter().filter(|set| *set).count() != 1 {
        return Err(Error::InvalidSpec(
            "database.adminCredentials: set exactly one of secretRef, vaultPath or cnpgCluster".into(),
        ));
    }
    match &spec.vault {
        None if admin.vault_path.is_some() => {
            return Err(Error::InvalidSpec("database.adminCredentials.vaultPath requires spec.vault".into()));
        }
        None if spec.embedding.api_key_vault_key.is_some() => {
            return Err(Error::InvalidSpec("embedding.apiKeyVaultKey requires spec.vault".into()));
        }
        None => {}
        Some(vault) => {
            if vault.refresh_interval_duration().is_none_or(|d| d.is_zero()) {
                return Err(Error::InvalidSpec(format!(
                    "spec.vault.refreshInterval {:?} is not a positive duration such as 30s, 5m or 1h30m",
                    vault.refresh_interval
                )));
            }
            if spec.embedding.api_key_vault_key.is_some() && vault.paths.embedding.is_none() {
                return Err(Error::InvalidSpec(
                    "embedding.apiKeyVaultKey names a key of spec.vault.paths.embedding, which is not set".into(),
                ));
            }
            if vault.paths.database.is_some() {
                return Err(Error::Unsupported(
                    "spec.vault.paths.database (keeping the store role's password in Vault); the operator keeps it in the store's Secret".into(),
                ));
            }
        }
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
                serde_json::json!({"vault": {"address": "http://v", "auth": {"kubernetes": {"role": "r"}}, "paths": {"database": "db"}}}),
                "spec.vault.paths.database",
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
    fn vault_specs() {
        let vault =
            serde_json::json!({"address": "http://v", "auth": {"kubernetes": {"role": "r"}}, "paths": {"jwt": "j"}});
        check(serde_json::json!({"vault": vault})).unwrap();
        let from_vault = serde_json::json!({"adminCredentials": {"secretRef": null, "vaultPath": "pg"}});
        check(serde_json::json!({"vault": vault, "database": from_vault})).unwrap();
        for (v, says) in [
            (serde_json::json!({"database": from_vault}), "vaultPath requires spec.vault"),
            (
                serde_json::json!({"database": {"adminCredentials": {"secretRef": {"name": "pg"}, "vaultPath": "pg"}}}),
                "exactly one",
            ),
            (serde_json::json!({"embedding": {"apiKeyVaultKey": "k"}}), "apiKeyVaultKey requires spec.vault"),
            (serde_json::json!({"vault": vault, "embedding": {"apiKeyVaultKey": "k"}}), "paths.embedding"),
            (
                serde_json::json!({"vault": {"address": "http://v", "auth": {"kubernetes": {"role": "r"}}, "refreshInterval": "0s"}}),
                "refreshInterval",
            ),
        ] {
            match check(v) {
                Err(Error::InvalidSpec(msg)) => assert!(msg.contains(says), "{msg}"),
                other => panic!("{says}: {other:?}"),
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
