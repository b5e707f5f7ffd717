//! The `MemoryStore` custom resource (`pinak.dev/v1alpha1`).
//!
//! A `MemoryStore` asks the Pinak operator for one isolated memory store: a Postgres schema
//! (with pgvector) owned by a dedicated role, the secrets the API needs (from Vault or a
//! Kubernetes Secret), and a `pinak-api` Deployment, Service, PodDisruptionBudget and
//! (optionally) HorizontalPodAutoscaler serving it, or in mode `Serverless` a Knative Service.
//!
//! The doc comments on the types below become the descriptions in the generated CRD
//! (`crds/memorystore.yaml`, produced by `cargo run -p pinak-crds --bin crdgen`); a test fails
//! when the checked-in file drifts from these types.
//!
//! Either/or choices (admin credentials, Vault auth) are modelled as optional fields plus CEL
//! `x-kubernetes-validations` rules rather than Rust enums, so that the schema stays
//! structural (no `oneOf`/`anyOf`) and the API server accepts it.

use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// API group of the Pinak custom resources.
pub const GROUP: &str = "pinak.dev";
/// Served and stored version of `MemoryStore`.
pub const VERSION: &str = "v1alpha1";

/// Condition types the operator sets on `status.conditions`.
pub mod condition {
    /// The store is fully reconciled and serving: every other condition is healthy.
    pub const READY: &str = "Ready";
    /// Schema, role, pgvector extension and migrations are in place.
    pub const DATABASE_READY: &str = "DatabaseReady";
    /// Credentials and keys were read (Vault or Secret) and written to the store's Secret.
    pub const SECRETS_READY: &str = "SecretsReady";
    /// The API Deployment has its minimum of available replicas.
    pub const API_AVAILABLE: &str = "ApiAvailable";
    /// A change is being rolled out (new generation, migration, rotation or scaling).
    pub const PROGRESSING: &str = "Progressing";
    /// Something needs attention; the reason and message say what.
    pub const DEGRADED: &str = "Degraded";
    /// `spec.paused` is true: the operator observes but changes nothing.
    pub const PAUSED: &str = "Paused";

    /// Every condition type, in the order the operator reports them.
    pub const ALL: [&str; 7] = [READY, DATABASE_READY, SECRETS_READY, API_AVAILABLE, PROGRESSING, DEGRADED, PAUSED];
}

/// Desired state of a Pinak memory store.
// Clippy reads the repeated `type_ = "string"` of the printer columns as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "pinak.dev",
    version = "v1alpha1",
    kind = "MemoryStore",
    plural = "memorystores",
    singular = "memorystore",
    shortname = "ms",
    namespaced,
    status = "MemoryStoreStatus",
    derive = "PartialEq",
    doc = "A Pinak memory store: an isolated Postgres schema with pgvector, its credentials, and the pinak-api Deployment that serves it.",
    scale(
        spec_replicas_path = ".spec.api.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Status of the Ready condition",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Schema",
        type_ = "string",
        description = "Postgres schema holding the store",
        json_path = ".status.schema"
    ),
    printcolumn(name = "Replicas", type_ = "integer", description = "API pods", json_path = ".status.replicas"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.database.adminCredentials.vaultPath) || has(self.vault)",
        "message": "database.adminCredentials.vaultPath requires spec.vault"
    },
    {
        "rule": "!has(self.embedding) || !has(self.embedding.apiKeyVaultKey) || has(self.vault)",
        "message": "embedding.apiKeyVaultKey requires spec.vault"
    }
]))]
pub struct MemoryStoreSpec {
    /// Tenant this store serves (the `tenant` claim tokens must carry). Defaults to the
    /// MemoryStore's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub tenant: Option<String>,

    /// Postgres: admin credentials, schema name and what happens to the data on deletion.
    pub database: DatabaseSpec,

    /// Vault connection, used for admin credentials, JWT keys and the embedding-provider key.
    /// Required when any `vaultPath` / `apiKeyVaultKey` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultSpec>,

    /// Token verification settings for the API.
    #[serde(default)]
    pub auth: AuthSpec,

    /// How memories are embedded for vector search.
    #[serde(default)]
    pub embedding: EmbeddingSpec,

    /// pgvector HNSW index parameters.
    #[serde(default)]
    pub index: IndexSpec,

    /// The pinak-api workload: mode (Deployment or Serverless), image, replicas or autoscaling, resources.
    #[serde(default)]
    pub api: ApiSpec,

    /// Data retention.
    #[serde(default)]
    pub retention: RetentionSpec,

    /// Write policy: quarantine of untrusted writes and the trusted clients.
    #[serde(default)]
    pub policy: PolicySpec,

    /// When true the operator stops changing anything for this store (it still reports status).
    #[serde(default)]
    pub paused: bool,
}

/// Postgres settings of the store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.schema) == has(oldSelf.schema) && (!has(self.schema) || self.schema == oldSelf.schema)",
        "message": "database.schema is immutable"
    },
    {
        "rule": "!has(self.schema) || !self.schema.startsWith('pg_')",
        "message": "database.schema must not start with pg_ (reserved by Postgres)"
    }
]))]
pub struct DatabaseSpec {
    /// Credentials of a Postgres role allowed to create schemas and roles (and the `vector`
    /// extension). The operator uses them only to provision; API pods get a store-only role.
    pub admin_credentials: AdminCredentials,

    /// Postgres schema of the store. Immutable once the store is created. Defaults to
    /// `ms_<namespace>_<name>` sanitised to a Postgres identifier (a short hash is appended
    /// when the name had to be altered or truncated); the name in use is in `status.schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z_][a-z0-9_]*$"))]
    pub schema: Option<String>,

    /// What happens to the schema and role when the MemoryStore is deleted: `Retain` keeps
    /// them (the default), `Delete` drops them.
    #[serde(default)]
    pub reclaim_policy: ReclaimPolicy,
}

/// Where the admin database credentials come from. Set exactly one of `secretRef`,
/// `vaultPath` or `cnpgCluster`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.secretRef) ? 1 : 0) + (has(self.vaultPath) ? 1 : 0) + (has(self.cnpgCluster) ? 1 : 0) == 1",
        "message": "set exactly one of secretRef, vaultPath or cnpgCluster"
    }
]))]
pub struct AdminCredentials {
    /// A Secret in the MemoryStore's namespace whose key (default `url`) holds a
    /// `postgres://` URL with admin rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,

    /// A KV path (under `spec.vault.kvMount`) holding the admin connection: key `url`
    /// (a `postgres://` URL). Requires `spec.vault`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub vault_path: Option<String>,

    /// A CloudNativePG `Cluster` in the MemoryStore's namespace: the operator logs in with the
    /// Cluster's superuser Secret (`spec.enableSuperuserAccess: true`) through its read-write
    /// Service `<cluster>-rw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnpg_cluster: Option<CnpgClusterRef>,
}

/// A CloudNativePG `Cluster` (`postgresql.cnpg.io/v1`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CnpgClusterRef {
    /// Name of the Cluster.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Database the stores live in. Defaults to the Cluster's `bootstrap.initdb.database`, or
    /// CloudNativePG's default `app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub database: Option<String>,
}

/// A key in a Secret in the MemoryStore's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Key within the Secret. Defaults depend on the use: `url` for database admin
    /// credentials, `token` for a Vault token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub key: Option<String>,
}

impl SecretKeyRef {
    /// The key to read, falling back to `default` when none is set.
    pub fn key_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.key.as_deref().unwrap_or(default)
    }
}

/// What happens to the store's data when the MemoryStore is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ReclaimPolicy {
    /// Keep the schema, its data and the store role.
    #[default]
    Retain,
    /// Drop the schema (with all memories) and the store role.
    Delete,
}

/// Vault (or OpenBao) connection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultSpec {
    /// Vault address, e.g. `https://vault.vault.svc:8200`.
    #[schemars(length(min = 1))]
    pub address: String,

    /// How the operator logs in to Vault.
    pub auth: VaultAuth,

    /// Mount path of the KV version 2 secrets engine.
    #[serde(default = "default_kv_mount")]
    #[schemars(length(min = 1))]
    pub kv_mount: String,

    /// KV paths (under `kvMount`) the operator reads.
    #[serde(default)]
    pub paths: VaultPaths,

    /// How often the operator re-reads Vault to pick up rotated values, as a duration such
    /// as `30s`, `5m` or `1h30m`.
    #[serde(default = "default_refresh_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub refresh_interval: String,
}

impl VaultSpec {
    /// `refreshInterval` as a [`Duration`]; `None` when it does not parse.
    pub fn refresh_interval_duration(&self) -> Option<Duration> {
        parse_duration(&self.refresh_interval)
    }
}

/// Vault login method. Set exactly one of `kubernetes` or `tokenSecretRef`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.kubernetes) != has(self.tokenSecretRef)",
        "message": "set exactly one of kubernetes or tokenSecretRef"
    }
]))]
pub struct VaultAuth {
    /// Kubernetes auth method, logging in with the operator's service account token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<VaultKubernetesAuth>,

    /// A Secret holding a Vault token (key default `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
}

/// Vault Kubernetes auth method settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesAuth {
    /// Vault role to log in as.
    #[schemars(length(min = 1))]
    pub role: String,

    /// Mount path of the auth method. Defaults to `kubernetes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub mount_path: Option<String>,
}

impl VaultKubernetesAuth {
    /// `mountPath`, or the Vault default `kubernetes`.
    pub fn mount_path_or_default(&self) -> &str {
        self.mount_path.as_deref().unwrap_or("kubernetes")
    }
}

/// KV paths (relative to `kvMount`) the operator reads. Unset paths are not read.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultPaths {
    /// Database settings of the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,

    /// JWT verification material: an HS256 secret or public keys (by `kid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,

    /// Embedding-provider settings; `embedding.apiKeyVaultKey` names the key in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<String>,
}

/// Token verification settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Required `iss` claim.
    #[serde(default = "default_issuer")]
    #[schemars(length(min = 1))]
    pub issuer: String,

    /// Required `aud` claim.
    #[serde(default = "default_audience")]
    #[schemars(length(min = 1))]
    pub audience: String,

    /// JWKS URL to fetch verification keys from, instead of keys from Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
}

impl Default for AuthSpec {
    fn default() -> Self {
        Self { issuer: default_issuer(), audience: default_audience(), jwks_url: None }
    }
}

/// Embedding settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.backend != 'http' || has(self.url)",
        "message": "embedding.url is required when backend is http"
    }
]))]
pub struct EmbeddingSpec {
    /// `local` (built-in all-MiniLM-L6-v2), `http` (OpenAI-compatible `/v1/embeddings`),
    /// `dummy` (deterministic vectors, for tests) or `none` (keyword search only).
    #[serde(default)]
    pub backend: EmbeddingBackend,

    /// Model name sent to the provider (`http`) or the local model to load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,

    /// Vector dimensions. Must match the model; changing it requires re-embedding.
    #[serde(default = "default_dimensions")]
    #[schemars(range(min = 1, max = 16000))]
    pub dimensions: i32,

    /// Base URL of the provider (`http` backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Key within the Vault `paths.embedding` entry that holds the provider's API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_vault_key: Option<String>,

    /// Models whose stored vectors the API's re-embed job may replace with this model's
    /// (`*`: any). Empty by default: only rows without a vector are embedded, so a wrong
    /// backend or model cannot overwrite a store's vectors. Name the old model when you change
    /// models on purpose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub replace_vectors_from: Vec<String>,
}

impl Default for EmbeddingSpec {
    fn default() -> Self {
        Self {
            backend: EmbeddingBackend::default(),
            model: None,
            dimensions: default_dimensions(),
            url: None,
            api_key_vault_key: None,
            replace_vectors_from: Vec::new(),
        }
    }
}

/// Embedding backend of the API (`PINAK_EMBEDDING_BACKEND`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingBackend {
    /// Built-in model, computed in the API pods.
    #[default]
    Local,
    /// OpenAI-compatible `/v1/embeddings` endpoint.
    Http,
    /// Deterministic vectors, for tests.
    Dummy,
    /// No embeddings: keyword search only.
    None,
}

impl EmbeddingBackend {
    /// The value of `PINAK_EMBEDDING_BACKEND` for this backend.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Http => "http",
            Self::Dummy => "dummy",
            Self::None => "none",
        }
    }
}

/// pgvector HNSW index parameters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.efConstruction >= 2 * self.m",
        "message": "index.efConstruction must be at least 2 * index.m"
    }
]))]
pub struct IndexSpec {
    /// Maximum connections per layer (HNSW `m`).
    #[serde(default = "default_m")]
    #[schemars(range(min = 2, max = 100))]
    pub m: i32,

    /// Size of the candidate list while building (HNSW `ef_construction`).
    #[serde(default = "default_ef_construction")]
    #[schemars(range(min = 4, max = 1000))]
    pub ef_construction: i32,

    /// Size of the candidate list while searching (`hnsw.ef_search`).
    #[serde(default = "default_ef_search")]
    #[schemars(range(min = 1, max = 1000))]
    pub ef_search: i32,

    /// Build the HNSW graph over half-precision copies of the vectors (`halfvec`; the stored
    /// vectors and returned distances stay full precision). Measured at 100k: index 43 %
    /// smaller, 30-50 % more queries per second, recall@10 within 0.003 (docs/performance.md).
    #[serde(default = "default_true")]
    pub halfvec: bool,

    /// The PostgreSQL text-search configuration that parses search queries for the keyword
    /// leg: its stop words are dropped and its stemmer applied (`PINAK_TEXT_SEARCH_CONFIG`).
    /// Stored text is not rewritten or re-indexed: a change only rolls the API pods.
    #[serde(default = "default_text_search_config")]
    #[schemars(extend("enum" = [
        "arabic", "armenian", "basque", "catalan", "danish", "dutch", "english", "finnish", "french", "german",
        "greek", "hindi", "hungarian", "indonesian", "irish", "italian", "lithuanian", "nepali", "norwegian",
        "portuguese", "romanian", "russian", "serbian", "simple", "spanish", "swedish", "tamil", "turkish", "yiddish"
    ]))]
    pub text_search_config: String,
}

impl Default for IndexSpec {
    fn default() -> Self {
        Self {
            m: default_m(),
            ef_construction: default_ef_construction(),
            ef_search: default_ef_search(),
            halfvec: true,
            text_search_config: default_text_search_config(),
        }
    }
}

/// The pinak-api workload.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.mode == 'Serverless' || !has(self.serverless)",
        "message": "api.serverless applies to mode Serverless only"
    },
    {
        "rule": "self.mode != 'Serverless' || !has(self.autoscaling)",
        "message": "api.autoscaling applies to mode Deployment; a Serverless store scales by api.serverless"
    }
]))]
pub struct ApiSpec {
    /// `Deployment` (default): a Deployment, Service, PodDisruptionBudget and optional
    /// HorizontalPodAutoscaler. `Serverless`: a Knative Service that scales with concurrent
    /// requests, down to zero pods; needs Knative Serving in the cluster.
    #[serde(default)]
    pub mode: ApiMode,

    /// Container image of pinak-api. Defaults to the image the operator was released with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Number of API pods (also the scale subresource). Ignored while `autoscaling` is set
    /// and in mode `Serverless`.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,

    /// HorizontalPodAutoscaler for the API; when set it owns the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// Knative autoscaling of mode `Serverless` (defaults apply when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessSpec>,

    /// CPU and memory requests and limits of the API container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ApiSpec {
    fn default() -> Self {
        Self {
            mode: ApiMode::default(),
            image: None,
            replicas: default_replicas(),
            autoscaling: None,
            serverless: None,
            resources: None,
        }
    }
}

/// How the API pods are run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ApiMode {
    /// Deployment + Service + PodDisruptionBudget (+ HorizontalPodAutoscaler).
    #[default]
    Deployment,
    /// Knative Service (`serving.knative.dev/v1`), scale to zero.
    Serverless,
}

/// Knative autoscaling of a `Serverless` store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.maxScale >= self.minScale",
        "message": "api.serverless.maxScale must be at least minScale"
    }
]))]
pub struct ServerlessSpec {
    /// Pods kept when idle; 0 lets the store scale to zero (the API starts in about 100 ms).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_scale: i32,

    /// Upper bound of pods; also sizes the store role's connection limit.
    #[serde(default = "default_max_scale")]
    #[schemars(range(min = 1))]
    pub max_scale: i32,

    /// Concurrent requests per pod the autoscaler aims for (`autoscaling.knative.dev/target`).
    #[serde(default = "default_target_concurrency")]
    #[schemars(range(min = 1, max = 1000))]
    pub target_concurrency: i32,
}

impl Default for ServerlessSpec {
    fn default() -> Self {
        Self { min_scale: 0, max_scale: default_max_scale(), target_concurrency: default_target_concurrency() }
    }
}

/// HorizontalPodAutoscaler settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.maxReplicas >= self.minReplicas",
        "message": "autoscaling.maxReplicas must be at least minReplicas"
    }
]))]
pub struct AutoscalingSpec {
    /// Lower bound of API pods.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1))]
    pub min_replicas: i32,

    /// Upper bound of API pods.
    #[schemars(range(min = 1))]
    pub max_replicas: i32,

    /// Average CPU utilisation (percent of requests) the autoscaler aims for.
    #[serde(rename = "targetCPUUtilizationPercentage", default = "default_target_cpu")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

/// Data retention.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Days of access-log entries to keep (`PINAK_ACCESS_LOG_RETENTION_DAYS`).
    #[serde(default = "default_access_log_days")]
    #[schemars(range(min = 1))]
    pub access_log_days: i32,

    /// Lifetime of session memories in seconds. Unset: the API default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub session_ttl_seconds: Option<i64>,

    /// Lifetime of working memories in seconds. Unset: the API default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub working_ttl_seconds: Option<i64>,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        Self { access_log_days: default_access_log_days(), session_ttl_seconds: None, working_ttl_seconds: None }
    }
}

/// Write policy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// Hold writes from clients not in `trustedClients` in quarantine until reviewed.
    #[serde(default)]
    pub quarantine_untrusted_writes: bool,

    /// Client ids whose writes are trusted (`PINAK_TRUSTED_CLIENTS`).
    #[serde(default)]
    pub trusted_clients: Vec<String>,
}

/// Observed state of a MemoryStore, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStoreStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Conditions: Ready, DatabaseReady, SecretsReady, ApiAvailable, Progressing, Degraded,
    /// Paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Postgres schema holding the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,

    /// In-cluster URL of the API Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// API pods currently running (scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Label selector of the API pods, in string form (scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Latest migration applied to the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_version: Option<i64>,

    /// Version of the pgvector extension in the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgvector_version: Option<String>,

    /// The operator's last read of the store's values from Vault (stores with `spec.vault`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultStatus>,
}

/// The operator's last read of a store's values from Vault.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultStatus {
    /// When the values were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_time: Option<Time>,

    /// When the Vault token used for that read expires; absent for a token without a TTL.
    /// The operator renews the token, or logs in again, before it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expiry_time: Option<Time>,
}

/// The MemoryStore CRD as YAML, exactly as checked in at `crds/memorystore.yaml`.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&MemoryStore::crd()).expect("CRD serialises to YAML")
}

/// Postgres' limit on identifier length (NAMEDATALEN - 1), in bytes.
pub const MAX_PG_IDENTIFIER_LEN: usize = 63;
/// Hex digits of the disambiguating hash appended to altered or truncated schema names.
const SCHEMA_HASH_LEN: usize = 10;

impl MemoryStoreSpec {
    /// Default Postgres schema of the store `namespace/name`: `ms_<namespace>_<name>`.
    ///
    /// The result is a valid unquoted Postgres identifier: lowercase ASCII letters, digits and
    /// `_`, starting with `ms_`, at most 63 bytes. When the inputs are plain (`[a-z0-9]+` each)
    /// and short enough, the result is exactly `ms_<namespace>_<name>`, which has exactly two
    /// underscores. Otherwise (a `-`, `.`, uppercase or other character had to be replaced,
    /// or the name had to be truncated) `_` and 10 hex digits of a SHA-256 of the original
    /// pair are appended, so distinct stores do not collide: `team-a/x` and `team/a-x` would
    /// both sanitise to `ms_team_a_x`, but get different hashes.
    pub fn schema_name(namespace: &str, name: &str) -> String {
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let raw = format!("ms_{namespace}_{name}");
        if plain(namespace) && plain(name) && raw.len() <= MAX_PG_IDENTIFIER_LEN {
            return raw;
        }
        let mut sanitised: String = raw
            .chars()
            .map(|c| match c {
                'a'..='z' | '0'..='9' | '_' => c,
                'A'..='Z' => c.to_ascii_lowercase(),
                _ => '_',
            })
            .collect();
        sanitised.truncate(MAX_PG_IDENTIFIER_LEN - 1 - SCHEMA_HASH_LEN);
        // Length-prefix the namespace so the pair is encoded unambiguously.
        let mut hasher = Sha256::new();
        hasher.update((namespace.len() as u64).to_be_bytes());
        hasher.update(namespace.as_bytes());
        hasher.update(name.as_bytes());
        let digest = hasher.finalize();
        let hash: String = digest
            .iter()
            .flat_map(|b| [b >> 4, b & 0xf])
            .take(SCHEMA_HASH_LEN)
            .map(|n| char::from_digit(u32::from(n), 16).expect("nibble"))
            .collect();
        format!("{sanitised}_{hash}")
    }

    /// The schema this store uses: `database.schema` when set, else [`Self::schema_name`].
    pub fn resolved_schema(&self, namespace: &str, name: &str) -> String {
        self.database.schema.clone().unwrap_or_else(|| Self::schema_name(namespace, name))
    }

    /// The tenant this store serves: `tenant` when set, else the namespace.
    pub fn resolved_tenant<'a>(&'a self, namespace: &'a str) -> &'a str {
        self.tenant.as_deref().unwrap_or(namespace)
    }
}

/// Parses a duration such as `30s`, `5m`, `1h30m` or `250ms` (units `ms`, `s`, `m`, `h`).
/// Returns `None` for anything else, including the empty string.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else {
            return None;
        };
        rest = &rest[len..];
        total = total.checked_add(unit.checked_mul(u32::try_from(value).ok()?)?)?;
    }
    Some(total)
}

fn default_kv_mount() -> String {
    "secret".to_owned()
}
fn default_refresh_interval() -> String {
    "5m".to_owned()
}
fn default_issuer() -> String {
    "pinak-memory".to_owned()
}
fn default_audience() -> String {
    "pinak-memory-api".to_owned()
}
fn default_dimensions() -> i32 {
    384
}
fn default_m() -> i32 {
    16
}
fn default_ef_construction() -> i32 {
    64
}
/// The API's default (`PINAK_HNSW_EF_SEARCH`): recall@10 0.985 at 100k, where 40 gives 0.959.
fn default_ef_search() -> i32 {
    100
}
fn default_text_search_config() -> String {
    "english".into()
}
fn default_true() -> bool {
    true
}
fn default_max_scale() -> i32 {
    10
}

fn default_target_concurrency() -> i32 {
    50
}

fn default_replicas() -> i32 {
    2
}
fn default_min_replicas() -> i32 {
    2
}
fn default_target_cpu() -> i32 {
    80
}
fn default_access_log_days() -> i32 {
    90
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_pg_identifier(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_PG_IDENTIFIER_LEN
            && s.starts_with("ms_")
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    #[test]
    fn plain_names_are_kept_verbatim() {
        assert_eq!(MemoryStoreSpec::schema_name("default", "dev"), "ms_default_dev");
        assert_eq!(MemoryStoreSpec::schema_name("team1", "notes2"), "ms_team1_notes2");
    }

    #[test]
    fn altered_names_get_a_hash_and_do_not_collide() {
        let a = MemoryStoreSpec::schema_name("team-a", "x");
        let b = MemoryStoreSpec::schema_name("team", "a-x");
        assert!(a.starts_with("ms_team_a_x_"), "{a}");
        assert!(b.starts_with("ms_team_a_x_"), "{b}");
        assert_ne!(a, b);
        assert_eq!(a.len(), "ms_team_a_x_".len() + SCHEMA_HASH_LEN);
        // An altered name never equals a plain one (plain ones have exactly two underscores).
        assert_ne!(MemoryStoreSpec::schema_name("Default", "dev"), "ms_default_dev");
        assert!(is_pg_identifier(&a) && is_pg_identifier(&b));
    }

    #[test]
    fn deterministic() {
        assert_eq!(
            MemoryStoreSpec::schema_name("team-a", "my.store"),
            MemoryStoreSpec::schema_name("team-a", "my.store")
        );
    }

    #[test]
    fn long_names_are_truncated_with_distinct_hashes() {
        let ns = "a".repeat(63);
        let n1 = format!("{}1", "b".repeat(100));
        let n2 = format!("{}2", "b".repeat(100));
        let s1 = MemoryStoreSpec::schema_name(&ns, &n1);
        let s2 = MemoryStoreSpec::schema_name(&ns, &n2);
        assert_eq!(s1.len(), MAX_PG_IDENTIFIER_LEN);
        assert_eq!(s2.len(), MAX_PG_IDENTIFIER_LEN);
        assert_ne!(s1, s2, "same prefix after truncation must still differ");
        assert_eq!(s1[..52], s2[..52]);
        assert!(is_pg_identifier(&s1) && is_pg_identifier(&s2));

        // Exactly at the limit: kept verbatim; one byte over: truncated and hashed.
        let at_limit = MemoryStoreSpec::schema_name("n", &"x".repeat(58));
        assert_eq!(at_limit.len(), 63);
        assert_eq!(at_limit, format!("ms_n_{}", "x".repeat(58)));
        let over = MemoryStoreSpec::schema_name("n", &"x".repeat(59));
        assert_eq!(over.len(), 63);
        assert_ne!(over, at_limit);
        assert!(over.starts_with(&format!("ms_n_{}_", "x".repeat(63 - 6 - SCHEMA_HASH_LEN))));
        assert!(is_pg_identifier(&over));
    }

    #[test]
    fn split_point_is_part_of_the_hash() {
        // Same concatenation, different namespace/name split.
        let a = MemoryStoreSpec::schema_name("a_b", "c");
        let b = MemoryStoreSpec::schema_name("a", "b_c");
        assert_ne!(a, b);
    }

    #[test]
    fn hostile_names_become_safe_identifiers() {
        for (ns, name) in [
            ("x\"; DROP SCHEMA public CASCADE; --", "y"),
            ("", ""),
            ("ns", "ünïcødé-名前"),
            ("NS", "Name"),
            ("ns", "a b\tc\n"),
            ("pg_catalog", "x"),
            ("ns", "$1"),
            ("..", "../.."),
            (&"é".repeat(80), &"€".repeat(80)),
        ] {
            let s = MemoryStoreSpec::schema_name(ns, name);
            assert!(is_pg_identifier(&s), "{ns:?}/{name:?} -> {s:?}");
        }
        assert_ne!(MemoryStoreSpec::schema_name("ns", "a b"), MemoryStoreSpec::schema_name("ns", "a_b"));
        assert_ne!(MemoryStoreSpec::schema_name("NS", "x"), MemoryStoreSpec::schema_name("ns", "X"));
    }

    #[test]
    fn resolved_schema_and_tenant() {
        let mut spec: MemoryStoreSpec = serde_json::from_value(serde_json::json!({
            "database": {"adminCredentials": {"secretRef": {"name": "pg"}}}
        }))
        .unwrap();
        assert_eq!(spec.resolved_schema("default", "dev"), "ms_default_dev");
        assert_eq!(spec.resolved_tenant("default"), "default");
        spec.database.schema = Some("custom".into());
        spec.tenant = Some("acme".into());
        assert_eq!(spec.resolved_schema("default", "dev"), "custom");
        assert_eq!(spec.resolved_tenant("default"), "acme");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        for bad in ["", "5", "m", "5d", "-5m", "5 m", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn condition_types() {
        assert_eq!(
            condition::ALL,
            ["Ready", "DatabaseReady", "SecretsReady", "ApiAvailable", "Progressing", "Degraded", "Paused"]
        );
    }
}
