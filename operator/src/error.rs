//! The operator's one error type. Every variant carries a condition reason (`reason()`), so an
//! error is reported the same way in status, events, logs and metrics.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    #[error("not supported yet: {0}")]
    Unsupported(String),

    #[error("Secret {namespace}/{name} not found")]
    SecretNotFound { namespace: String, name: String },

    #[error("Secret {name} has no key {key:?}")]
    SecretKeyMissing { name: String, key: String },

    #[error("Secret {name} key {key:?} is not UTF-8 text")]
    SecretKeyNotText { name: String, key: String },

    /// `origin` says where the URL came from: `Secret <name>` or `Vault secret <path>`.
    #[error("the admin URL in {origin} is not usable: {reason}")]
    InvalidAdminUrl { origin: String, reason: String },

    #[error("Vault at {address} is unreachable: {reason}")]
    VaultUnreachable { address: String, reason: String },

    #[error("Vault login failed: {0}")]
    VaultAuthFailed(String),

    #[error("Vault denies reading {path}: the policy of the operator's Vault role does not grant it")]
    VaultPermissionDenied { path: String },

    #[error("Vault has no secret at {path}")]
    VaultPathNotFound { path: String },

    #[error("the Vault secret at {path} has no key {key:?} (or it is empty)")]
    VaultKeyMissing { path: String, key: String },

    #[error("the Vault secret at {path} is not usable: {reason}")]
    VaultInvalidValue { path: String, reason: String },

    #[error(
        "CloudNativePG Cluster {namespace}/{name} not found (is CloudNativePG installed, and the Cluster in the store's namespace?)"
    )]
    CnpgClusterNotFound { namespace: String, name: String },

    #[error("CloudNativePG: {0}")]
    CnpgNotUsable(String),

    #[error("Postgres is unreachable: {0}")]
    DatabaseUnreachable(String),

    #[error("Postgres refused the admin login: {0}")]
    DatabaseAuthFailed(String),

    #[error(
        "schema {schema:?} exists and was not created by pinak-operator for this store (its comment is {found:?}); refusing to adopt it"
    )]
    SchemaNotOwned { schema: String, found: Option<String> },

    #[error(
        "role {role:?} exists and was not created by pinak-operator for this store (its comment is {found:?}); refusing to adopt it"
    )]
    RoleNotOwned { role: String, found: Option<String> },

    #[error("pgvector: {0}")]
    Pgvector(String),

    #[error("the admin role lacks a privilege: {0}")]
    InsufficientPrivilege(String),

    #[error("migrations failed: {0}")]
    Migration(#[source] pinak_migrations::Error),

    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),

    #[error(
        "api.mode is Serverless, but Knative Serving is not installed (API discovery lists no serving.knative.dev/v1 services); the store keeps its current workload"
    )]
    KnativeNotInstalled,

    #[error("{kind} {name} exists and is not controlled by this MemoryStore; refusing to adopt it")]
    ChildNotOwned { kind: String, name: String },

    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),

    #[error("cannot serialise {0}: {1}")]
    Serialize(&'static str, #[source] serde_json::Error),

    #[error("no randomness from the operating system: {0}")]
    Random(String),

    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error the reconciler itself returned, looking through the finalizer wrapper.
    pub fn root(&self) -> &Error {
        use kube::runtime::finalizer::Error as F;
        match self {
            Self::Finalizer(inner) => match inner.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.root(),
                _ => self,
            },
            _ => self,
        }
    }

    /// The condition reason (CamelCase) and metrics label of this error.
    pub fn reason(&self) -> &'static str {
        match self.root() {
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::KnativeNotInstalled => "KnativeNotInstalled",
            Self::Unsupported(_) => "Unsupported",
            Self::SecretNotFound { .. } => "SecretNotFound",
            Self::SecretKeyMissing { .. } => "SecretKeyMissing",
            Self::SecretKeyNotText { .. } => "SecretKeyNotText",
            Self::InvalidAdminUrl { .. } => "InvalidAdminUrl",
            Self::VaultUnreachable { .. } => "VaultUnreachable",
            Self::VaultAuthFailed(_) => "VaultAuthFailed",
            Self::VaultPermissionDenied { .. } => "VaultPermissionDenied",
            Self::VaultPathNotFound { .. } => "VaultPathNotFound",
            Self::VaultKeyMissing { .. } => "VaultKeyMissing",
            Self::VaultInvalidValue { .. } => "VaultInvalidValue",
            Self::CnpgClusterNotFound { .. } => "CnpgClusterNotFound",
            Self::CnpgNotUsable(_) => "CnpgNotUsable",
            Self::DatabaseUnreachable(_) => "DatabaseUnreachable",
            Self::DatabaseAuthFailed(_) => "DatabaseAuthFailed",
            Self::SchemaNotOwned { .. } => "SchemaNotOwned",
            Self::RoleNotOwned { .. } => "RoleNotOwned",
            Self::Pgvector(_) => "PgvectorUnavailable",
            Self::InsufficientPrivilege(_) => "InsufficientPrivilege",
            Self::Migration(_) => "MigrationFailed",
            Self::Database(_) => "DatabaseError",
            Self::ChildNotOwned { .. } => "ChildNotOwned",
            Self::Kube(_) => "KubernetesApiError",
            Self::Serialize(..) => "InternalError",
            Self::Random(_) => "InternalError",
            Self::Finalizer(_) => "FinalizerError",
        }
    }

    /// Classifies a sqlx error: a server that cannot be reached or refuses the login is an
    /// outage to wait out, not a bug, and gets its own reason.
    pub fn from_sqlx(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                Self::DatabaseUnreachable(e.to_string())
            }
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // invalid_authorization_specification, invalid_password
                Some("28000" | "28P01") => Self::DatabaseAuthFailed(db.message().to_owned()),
                // invalid_catalog_name (no such database), admin_shutdown, crash_shutdown,
                // cannot_connect_now, too_many_connections
                Some("3D000" | "57P01" | "57P02" | "57P03" | "53300") => {
                    Self::DatabaseUnreachable(db.message().to_owned())
                }
                Some("42501") => Self::InsufficientPrivilege(db.message().to_owned()),
                _ => Self::Database(e),
            },
            _ => Self::Database(e),
        }
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Self::Kube(e)
    }
}
