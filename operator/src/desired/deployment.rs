//! The pinak-api Deployment of a store.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath,
    ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector,
    SecretVolumeSource, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use pinak_crds::{ApiMode, EmbeddingBackend, MemoryStore, MemoryStoreSpec};
use sha2::{Digest, Sha256};

use super::labels::{child_metadata, desired_labels, selector};
use super::secret::{
    KEY_DATABASE_PASSWORD, KEY_DATABASE_URL, KEY_DATABASE_USERNAME, KEY_EMBEDDING_API_KEY, KEY_JWT_SECRET,
};
use crate::config::OperatorConfig;
use crate::names::{API_PORT, StoreNames};

/// Pod-template annotation holding [`restart_hash`]: pods roll when it changes.
pub const RESTART_HASH_ANNOTATION: &str = "pinak.dev/restart-hash";
/// The container's name.
pub const CONTAINER: &str = "api";
/// Non-root uid/gid of the API (the "nonroot" user of distroless images).
pub const RUN_AS: i64 = 65532;
/// Where the pods mount the login role's user and password (re-read for new connections).
pub const STORE_SECRET_DIR: &str = "/var/run/pinak/store";
/// Where the pods mount the JWT-keys Secret (`PINAK_JWT_KEYS_DIR`).
pub const JWT_KEYS_DIR: &str = "/var/run/pinak/jwt-keys";
/// `PINAK_DB_POOL_SIZE` of every pod; the login role's connection limit is sized from it.
pub const DB_POOL_SIZE: i32 = 8;
/// Connections of a pod's job worker: its pool is `PINAK_JOBS_CONCURRENCY` (1) + 4.
const JOB_POOL_SIZE: i32 = 5;

/// The Deployment serving `store`. `secret_env_hash` is [`super::secret::env_hash`] of the
/// store's Secret: its values reach the pods as environment variables, read only at start.
pub fn deployment(
    store: &MemoryStore,
    names: &StoreNames,
    config: &OperatorConfig,
    secret_env_hash: &str,
) -> Deployment {
    let spec = &store.spec;
    Deployment {
        metadata: child_metadata(store, names, &names.workload),
        spec: Some(DeploymentSpec {
            // With an HPA the replica count is the HPA's: not even listed here, so server-side
            // apply leaves the field to it instead of resetting it on every reconcile.
            replicas: spec.api.autoscaling.is_none().then_some(spec.api.replicas),
            selector: selector(store),
            template: pod_template(store, names, config, secret_env_hash),
            ..Default::default()
        }),
        status: None,
    }
}

/// The API pods' template, shared by the Deployment and (adapted) the Knative Service.
pub fn pod_template(
    store: &MemoryStore,
    names: &StoreNames,
    config: &OperatorConfig,
    secret_env_hash: &str,
) -> PodTemplateSpec {
    let spec = &store.spec;
    let container = container(spec, names, config);
    let labels = desired_labels(store);
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([(
                RESTART_HASH_ANNOTATION.to_owned(),
                restart_hash(&container, secret_env_hash),
            )])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            // The API never calls the Kubernetes API.
            automount_service_account_token: Some(false),
            // Service links would inject `<SERVICE>_PORT`-style variables; a Service named
            // `pinak` would put PINAK_* names into the API's configuration namespace.
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), ..Default::default() }),
                ..Default::default()
            }),
            topology_spread_constraints: Some(vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: "kubernetes.io/hostname".to_owned(),
                // Spread when possible; a one-node cluster still runs every replica.
                when_unsatisfiable: "ScheduleAnyway".to_owned(),
                label_selector: Some(selector(store)),
                ..Default::default()
            }]),
            volumes: Some(volumes(spec, names)),
            ..Default::default()
        }),
    }
}

fn container(spec: &MemoryStoreSpec, names: &StoreNames, config: &OperatorConfig) -> Container {
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(API_PORT),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    };
    Container {
        name: CONTAINER.to_owned(),
        image: Some(spec.api.image.clone().unwrap_or_else(|| config.api_image.clone())),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: API_PORT,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]),
        env: Some(env(spec, names, config)),
        resources: spec.api.resources.clone(),
        // /api/v1/health answers 503 until the database is reachable and the keys are loaded.
        readiness_probe: Some(probe("/api/v1/health", 5, 3)),
        // /api/v1/live answers as soon as the process serves; a minute of silence means hung.
        liveness_probe: Some(probe("/api/v1/live", 10, 6)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Default::default() }),
            ..Default::default()
        }),
        volume_mounts: Some(volume_mounts(spec)),
        ..Default::default()
    }
}

/// Scratch space under the read-only root (for libraries that write temporary files), the login
/// role's user and password, and the JWT-keys Secret when Vault supplies keys.
fn volumes(spec: &MemoryStoreSpec, names: &StoreNames) -> Vec<Volume> {
    let item = |key: &str| KeyToPath { key: key.to_owned(), path: key.to_owned(), mode: None };
    let mut items = vec![item(KEY_DATABASE_USERNAME), item(KEY_DATABASE_PASSWORD), item(KEY_JWT_SECRET)];
    // Present in the Secret only when Vault supplies it; a listed key that is missing would
    // keep the volume (and the pod) from starting.
    if spec.embedding.api_key_vault_key.is_some() {
        items.push(item(KEY_EMBEDDING_API_KEY));
    }
    let mut volumes = vec![
        Volume { name: "tmp".to_owned(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() },
        Volume {
            name: "store-secret".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names.secret.clone()),
                items: Some(items),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    if vault_jwt_keys(spec) {
        volumes.push(Volume {
            name: "jwt-keys".to_owned(),
            secret: Some(SecretVolumeSource { secret_name: Some(names.jwt_keys_secret.clone()), ..Default::default() }),
            ..Default::default()
        });
    }
    volumes
}

fn volume_mounts(spec: &MemoryStoreSpec) -> Vec<VolumeMount> {
    let mut mounts = vec![
        VolumeMount { name: "tmp".to_owned(), mount_path: "/tmp".to_owned(), ..Default::default() },
        VolumeMount {
            name: "store-secret".to_owned(),
            mount_path: STORE_SECRET_DIR.to_owned(),
            read_only: Some(true),
            ..Default::default()
        },
    ];
    if vault_jwt_keys(spec) {
        mounts.push(VolumeMount {
            name: "jwt-keys".to_owned(),
            mount_path: JWT_KEYS_DIR.to_owned(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    mounts
}

/// Whether the store takes token-verification keys from Vault (`spec.vault.paths.jwt`).
pub fn vault_jwt_keys(spec: &MemoryStoreSpec) -> bool {
    spec.vault.as_ref().is_some_and(|v| v.paths.jwt.is_some())
}

/// The API's environment (the runtime contract in the README's table).
pub fn env(spec: &MemoryStoreSpec, names: &StoreNames, config: &OperatorConfig) -> Vec<EnvVar> {
    let from_secret = |name: &str, key: &str| EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: names.secret.clone(), key: key.to_owned(), optional: None }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let value = |name: &str, value: String| EnvVar { name: name.to_owned(), value: Some(value), ..Default::default() };
    // Secret values the API re-reads from the mounted Secret: a rotation needs no new pods.
    let file = |name: &str, key: &str| value(name, format!("{STORE_SECRET_DIR}/{key}"));
    let mut env = vec![
        EnvVar {
            name: "POD_IP".to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector { field_path: "status.podIP".to_owned(), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        },
        // The pod's own IP rather than 0.0.0.0: the test cluster gives every pod its own
        // loopback address on one host, and on a real cluster it is the same interface.
        value("PINAK_LISTEN", format!("$(POD_IP):{API_PORT}")),
        from_secret("PINAK_DATABASE_URL", KEY_DATABASE_URL),
        file("PINAK_DATABASE_USERNAME_FILE", KEY_DATABASE_USERNAME),
        file("PINAK_DATABASE_PASSWORD_FILE", KEY_DATABASE_PASSWORD),
        value("PINAK_DB_SCHEMA", names.schema.clone()),
        // The operator applies the migrations: one writer, never racing pods.
        value("PINAK_MIGRATE", "false".to_owned()),
        value("PINAK_DB_POOL_SIZE", DB_POOL_SIZE.to_string()),
        value("PINAK_TENANT", spec.resolved_tenant(&names.namespace).to_owned()),
        file("PINAK_JWT_SECRET_FILE", KEY_JWT_SECRET),
        value("PINAK_JWT_ISSUER", spec.auth.issuer.clone()),
        value("PINAK_JWT_AUDIENCE", spec.auth.audience.clone()),
    ];
    if let Some(url) = &spec.auth.jwks_url {
        env.push(value("PINAK_JWT_JWKS_URL", url.clone()));
    }
    if vault_jwt_keys(spec) {
        env.push(value("PINAK_JWT_KEYS_DIR", JWT_KEYS_DIR.to_owned()));
    }
    env.push(value("PINAK_EMBEDDING_BACKEND", spec.embedding.backend.as_str().to_owned()));
    if let Some(model) = &spec.embedding.model {
        env.push(value("PINAK_EMBEDDING_MODEL", model.clone()));
    }
    if let Some(url) = &spec.embedding.url {
        env.push(value("PINAK_EMBEDDING_URL", url.clone()));
    }
    if spec.embedding.api_key_vault_key.is_some() {
        env.push(file("PINAK_EMBEDDING_API_KEY_FILE", KEY_EMBEDDING_API_KEY));
    }
    if !spec.embedding.replace_vectors_from.is_empty() {
        env.push(value("PINAK_REEMBED_FROM", spec.embedding.replace_vectors_from.join(",")));
    }
    if let (EmbeddingBackend::Local, Some(dir)) = (spec.embedding.backend, &config.model_dir) {
        env.push(value("PINAK_MODEL_DIR", dir.clone()));
    }
    env.push(value("PINAK_HNSW_EF_SEARCH", spec.index.ef_search.to_string()));
    env.push(value("PINAK_TEXT_SEARCH_CONFIG", spec.index.text_search_config.clone()));
    env.push(value("PINAK_ACCESS_LOG_RETENTION_DAYS", spec.retention.access_log_days.to_string()));
    env.push(value("PINAK_QUARANTINE_UNTRUSTED_WRITES", spec.policy.quarantine_untrusted_writes.to_string()));
    if !spec.policy.trusted_clients.is_empty() {
        env.push(value("PINAK_TRUSTED_CLIENTS", spec.policy.trusted_clients.join(",")));
    }
    env
}

/// Hash of what a running pod cannot pick up without a restart: the container (image,
/// resources, environment) and the Secret values it reads into its environment.
pub fn restart_hash(container: &Container, secret_env_hash: &str) -> String {
    let mut h = Sha256::new();
    // Serialising a k8s-openapi struct cannot fail (string keys only); an empty fallback
    // would only make the hash ignore the container.
    h.update(serde_json::to_vec(container).unwrap_or_default());
    h.update(secret_env_hash.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Most pods the store runs at once: the replica count, or the autoscaler's maximum.
pub fn max_pods(spec: &MemoryStoreSpec) -> i32 {
    let most = match spec.api.mode {
        ApiMode::Serverless => spec.api.serverless.clone().unwrap_or_default().max_scale,
        ApiMode::Deployment => spec.api.autoscaling.as_ref().map_or(spec.api.replicas, |a| a.max_replicas),
    };
    most.max(1)
}

/// Connection limit of the login role: every pod's pools, twice over because a rolling update
/// runs old and new pods side by side.
pub fn connection_limit(spec: &MemoryStoreSpec) -> i32 {
    max_pods(spec).saturating_mul(2).saturating_mul(DB_POOL_SIZE + JOB_POOL_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_golden, store};

    fn build(overrides: serde_json::Value) -> Deployment {
        let store = store(overrides);
        let names = StoreNames::of(&store).unwrap();
        deployment(&store, &names, &OperatorConfig::default(), "secret-hash")
    }

    fn env_of(d: &Deployment) -> BTreeMap<String, EnvVar> {
        let c = &d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
        c.env.clone().unwrap().into_iter().map(|e| (e.name.clone(), e)).collect()
    }

    fn restart_hash_of(d: &Deployment) -> String {
        d.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().annotations.as_ref().unwrap()
            [RESTART_HASH_ANNOTATION]
            .clone()
    }

    #[test]
    fn default_store_golden() {
        assert_golden("deployment-default.json", &build(serde_json::json!({})));
    }

    #[test]
    fn full_spec_golden() {
        let d = build(serde_json::json!({
            "tenant": "acme",
            "auth": {"issuer": "iss", "audience": "aud", "jwksUrl": "https://idp/jwks"},
            "embedding": {"backend": "http", "url": "http://emb:8080", "model": "m", "replaceVectorsFrom": ["old-m"]},
            "index": {"efSearch": 40},
            "api": {"image": "pinak:test", "replicas": 3,
                    "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}},
            "retention": {"accessLogDays": 7},
            "policy": {"quarantineUntrustedWrites": true, "trustedClients": ["a", "b"]}
        }));
        assert_golden("deployment-full.json", &d);
        let env = env_of(&d);
        assert_eq!(env["PINAK_TENANT"].value.as_deref(), Some("acme"));
        assert_eq!(env["PINAK_TRUSTED_CLIENTS"].value.as_deref(), Some("a,b"));
        assert_eq!(env["PINAK_HNSW_EF_SEARCH"].value.as_deref(), Some("40"));
        assert_eq!(env["PINAK_REEMBED_FROM"].value.as_deref(), Some("old-m"));
        assert_eq!(d.spec.as_ref().unwrap().replicas, Some(3));
    }

    #[test]
    fn contract_env_is_complete() {
        let d = build(serde_json::json!({}));
        let env = env_of(&d);
        for name in [
            "POD_IP",
            "PINAK_LISTEN",
            "PINAK_DATABASE_URL",
            "PINAK_DB_SCHEMA",
            "PINAK_MIGRATE",
            "PINAK_TENANT",
            "PINAK_JWT_SECRET_FILE",
            "PINAK_JWT_ISSUER",
            "PINAK_JWT_AUDIENCE",
            "PINAK_EMBEDDING_BACKEND",
            "PINAK_HNSW_EF_SEARCH",
            "PINAK_TEXT_SEARCH_CONFIG",
            "PINAK_ACCESS_LOG_RETENTION_DAYS",
            "PINAK_QUARANTINE_UNTRUSTED_WRITES",
        ] {
            assert!(env.contains_key(name), "{name} missing");
        }
        assert_eq!(env["PINAK_MIGRATE"].value.as_deref(), Some("false"));
        assert_eq!(env["PINAK_TENANT"].value.as_deref(), Some("team-a"));
        assert_eq!(env["PINAK_LISTEN"].value.as_deref(), Some("$(POD_IP):8080"));
        let db = env["PINAK_DATABASE_URL"].value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        assert_eq!((db.name.as_str(), db.key.as_str()), ("notes-pinak", "database-url"));
        // $(POD_IP) only expands when POD_IP is defined earlier in the list.
        let names: Vec<_> = d.spec.unwrap().template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(names.iter().position(|n| n == "POD_IP") < names.iter().position(|n| n == "PINAK_LISTEN"));
    }

    #[test]
    fn autoscaled_store_leaves_replicas_to_the_hpa() {
        let d = build(serde_json::json!({"api": {"replicas": 5, "autoscaling": {"maxReplicas": 6}}}));
        assert_eq!(d.spec.unwrap().replicas, None);
    }

    #[test]
    fn restart_hash_follows_image_resources_env_and_secret_only() {
        let base = restart_hash_of(&build(serde_json::json!({})));
        assert_eq!(base, restart_hash_of(&build(serde_json::json!({}))), "deterministic");
        // Replicas and autoscaling do not restart pods.
        assert_eq!(base, restart_hash_of(&build(serde_json::json!({"api": {"replicas": 7}}))));
        for changed in [
            serde_json::json!({"api": {"image": "pinak:other"}}),
            serde_json::json!({"api": {"resources": {"limits": {"memory": "2Gi"}}}}),
            serde_json::json!({"policy": {"trustedClients": ["x"]}}),
        ] {
            assert_ne!(base, restart_hash_of(&build(changed.clone())), "{changed}");
        }
        let store = store(serde_json::json!({}));
        let names = StoreNames::of(&store).unwrap();
        let other_secret = deployment(&store, &names, &OperatorConfig::default(), "other");
        assert_ne!(base, restart_hash_of(&other_secret));
    }

    #[test]
    fn model_dir_only_for_the_local_backend() {
        let store = store(serde_json::json!({}));
        let names = StoreNames::of(&store).unwrap();
        let config = OperatorConfig { model_dir: Some("/models/minilm".into()), ..Default::default() };
        let local = env(&store.spec, &names, &config);
        assert!(local.iter().any(|e| e.name == "PINAK_MODEL_DIR" && e.value.as_deref() == Some("/models/minilm")));
        let dummy = crate::test_support::store(serde_json::json!({"embedding": {"backend": "dummy"}}));
        assert!(!env(&dummy.spec, &names, &config).iter().any(|e| e.name == "PINAK_MODEL_DIR"));
    }

    #[test]
    fn connection_limit_covers_a_rolling_update() {
        let spec = |v| store(v).spec;
        assert_eq!(connection_limit(&spec(serde_json::json!({}))), 2 * 2 * 13);
        assert_eq!(connection_limit(&spec(serde_json::json!({"api": {"replicas": 0}}))), 2 * 13);
        assert_eq!(
            connection_limit(&spec(serde_json::json!({"api": {"autoscaling": {"maxReplicas": 10}}}))),
            2 * 10 * 13
        );
    }

    #[test]
    fn vault_keys_are_mounted_and_the_embedding_key_comes_from_the_secret() {
        let plain = build(serde_json::json!({}));
        let pod = |d: &Deployment| d.spec.clone().unwrap().template.spec.unwrap();
        assert_eq!(pod(&plain).volumes.unwrap().len(), 2, "no Vault: scratch space and the database credentials");
        assert!(!env_of(&plain).contains_key("PINAK_JWT_KEYS_DIR"));
        let vault = serde_json::json!({"address": "http://v", "auth": {"kubernetes": {"role": "r"}}, "paths": {"jwt": "j", "embedding": "e"}});
        let d = build(serde_json::json!({"vault": vault, "embedding": {"apiKeyVaultKey": "key"}}));
        let volumes = pod(&d).volumes.unwrap();
        let keys = volumes.iter().find(|v| v.name == "jwt-keys").expect("the keys volume");
        assert_eq!(keys.secret.as_ref().unwrap().secret_name.as_deref(), Some("notes-pinak-jwt-keys"));
        let mounts = pod(&d).containers[0].volume_mounts.clone().unwrap();
        assert!(
            mounts.iter().any(|m| m.name == "jwt-keys" && m.mount_path == JWT_KEYS_DIR && m.read_only == Some(true))
        );
        let env = env_of(&d);
        assert_eq!(env["PINAK_JWT_KEYS_DIR"].value.as_deref(), Some(JWT_KEYS_DIR));
        assert_eq!(
            env["PINAK_EMBEDDING_API_KEY_FILE"].value.as_deref(),
            Some("/var/run/pinak/store/embedding-api-key")
        );
        let store_secret = |d: &Deployment| {
            let volumes = pod(d).volumes.unwrap();
            let secret = volumes.into_iter().find(|v| v.name == "store-secret").unwrap().secret.unwrap();
            assert_eq!(secret.secret_name.as_deref(), Some("notes-pinak"));
            secret.items.unwrap().into_iter().map(|i| i.key).collect::<Vec<_>>()
        };
        assert!(store_secret(&d).contains(&KEY_EMBEDDING_API_KEY.to_owned()));
        assert!(!store_secret(&plain).contains(&KEY_EMBEDDING_API_KEY.to_owned()), "a key the Secret lacks");
    }

    #[test]
    fn secret_values_reach_the_pods_as_files_never_as_environment() {
        let vault = serde_json::json!({"address": "http://v", "auth": {"kubernetes": {"role": "r"}}, "paths": {"embedding": "e"}});
        let d = build(serde_json::json!({"vault": vault, "embedding": {"apiKeyVaultKey": "key"}}));
        let env = env_of(&d);
        for (name, path) in [
            ("PINAK_DATABASE_USERNAME_FILE", "/var/run/pinak/store/database-username"),
            ("PINAK_DATABASE_PASSWORD_FILE", "/var/run/pinak/store/database-password"),
            ("PINAK_JWT_SECRET_FILE", "/var/run/pinak/store/jwt-secret"),
        ] {
            assert_eq!(env[name].value.as_deref(), Some(path), "{name}");
        }
        // Only the URL (host, port, database: no credentials) is read from the Secret at start.
        let from_secret: Vec<_> = env
            .values()
            .filter(|e| e.value_from.as_ref().is_some_and(|v| v.secret_key_ref.is_some()))
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(from_secret, ["PINAK_DATABASE_URL"]);
    }
}
