//! Runtime configuration, read from the environment (the runtime contract in
//! `shared/spec/architecture.md`; the README lists every variable).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid { name: &'static str, value: String, reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmbeddingBackend {
    Local,
    Http,
    Dummy,
    None,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    /// `PINAK_DATABASE_USERNAME_FILE` / `PINAK_DATABASE_PASSWORD_FILE`: files whose content
    /// overrides the user / password of the URL, re-read while running
    /// (api/src/security/credentials.rs).
    pub database_username_file: Option<PathBuf>,
    pub database_password_file: Option<PathBuf>,
    pub db_schema: String,
    pub migrate: bool,
    pub db_pool_size: u32,
    pub listen: SocketAddr,
    pub jwt_secret: Option<String>,
    /// `PINAK_JWT_SECRET_FILE`: the HS256 secret from a file, re-read while running
    /// (api/src/security/secret_file.rs); excludes `PINAK_JWT_SECRET`.
    pub jwt_secret_file: Option<PathBuf>,
    /// Directory of asymmetric verification keys (file name = `kid`), hot-reloaded.
    pub jwt_keys_dir: Option<PathBuf>,
    /// JWKS endpoint of an identity provider; its keys merge with the directory's.
    pub jwt_jwks_url: Option<String>,
    pub jwt_jwks_refresh: Duration,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub tenant: Option<String>,
    pub embedding_backend: EmbeddingBackend,
    pub model_dir: Option<PathBuf>,
    pub embedding_url: Option<String>,
    pub embedding_model: String,
    pub embedding_api_key: Option<String>,
    /// `PINAK_EMBEDDING_API_KEY_FILE`: the provider's key from a file, re-read while running;
    /// excludes `PINAK_EMBEDDING_API_KEY`.
    pub embedding_api_key_file: Option<PathBuf>,
    pub embedding_timeout: Duration,
    /// `PINAK_REEMBED_FROM`: models whose vectors the re-embed job may replace (`*`: any). Empty
    /// by default, so a pod started with the wrong backend cannot overwrite a store's vectors.
    pub reembed_from: Vec<String>,
    pub trusted_clients: Vec<String>,
    pub quarantine_auto_approve: bool,
    pub quarantine_untrusted_writes: bool,
    pub auto_resolve_issues: Vec<String>,
    pub access_log_retention_days: u32,
    pub request_timeout: Duration,
    /// `PINAK_HEADER_TIMEOUT_MS`: a connection that has not sent its request headers by then is
    /// closed (api/src/web/server.rs).
    pub header_timeout: Duration,
    /// `PINAK_BODY_TIMEOUT_MS`: a request body not received in full by then gets 408.
    pub body_timeout: Duration,
    /// `PINAK_MAX_CONNECTIONS`: connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    pub audit_signing_key: Option<String>,
    pub hnsw_ef_search: u32,
    /// `PINAK_TEXT_SEARCH_CONFIG`: the Postgres text-search configuration that parses search
    /// queries (stop words, stemming; api/src/retrieval/keyword.rs).
    pub text_search_config: String,
    /// `PINAK_EXACT_SEARCH_MAX_ROWS` and `PINAK_EXACT_SEARCH_MAX_FRACTION`: scopes this small
    /// are searched exactly (api/src/retrieval/vector_path.rs).
    pub exact_search_max_rows: i64,
    pub exact_search_max_fraction: f64,
    /// `PINAK_SCOPE_SIZE_TTL_SECS`: how long a pod reuses a scope's measured size (0: never).
    pub scope_size_ttl: Duration,
    /// `PINAK_READ_LOG_SYNC_COMMIT`: commit the access and audit rows of reads durably before
    /// answering. Off by default: they commit asynchronously (see `access::log_read`).
    pub read_log_sync_commit: bool,
    /// `PINAK_JOBS`: run the background-job worker in this pod (api/src/runtime/jobs.rs).
    pub jobs_enabled: bool,
    /// `PINAK_JOBS_CONCURRENCY`: jobs this pod runs at once (at least 1).
    pub jobs_concurrency: usize,
}

/// Published example secrets that must never sign production tokens.
const REFUSED_SECRETS: [&str; 2] = ["secret", "dev-secret-change-me"];
const MIN_SECRET_BYTES: usize = 32;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Builds the config from any key lookup (tests pass a map instead of the process env).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let database_url = get("PINAK_DATABASE_URL").ok_or(ConfigError::Missing("PINAK_DATABASE_URL"))?;
        let db_schema = get("PINAK_DB_SCHEMA").unwrap_or_else(|| "public".into());
        if !is_identifier(&db_schema) {
            return Err(invalid("PINAK_DB_SCHEMA", &db_schema, "use lowercase letters, digits and _ (at most 63)"));
        }
        let jwt_keys_dir = get("PINAK_JWT_KEYS_DIR").map(PathBuf::from);
        let jwt_jwks_url = get("PINAK_JWT_JWKS_URL");
        if let Some(url) = jwt_jwks_url.as_deref().filter(|u| !u.starts_with("https://") && !u.starts_with("http://")) {
            return Err(invalid("PINAK_JWT_JWKS_URL", url, "expected an http(s) URL"));
        }
        let jwt_jwks_refresh_secs: u64 = positive(&get, "PINAK_JWT_JWKS_REFRESH_SECS", 300)?;
        // The shared secret is optional once asymmetric keys are configured; when set, it must
        // still be strong (a file's content is checked when it is read, see `weak_secret`).
        let keys_configured = jwt_keys_dir.is_some() || jwt_jwks_url.is_some();
        let (jwt_secret, jwt_secret_file) = value_or_file(&get, "PINAK_JWT_SECRET", "PINAK_JWT_SECRET_FILE")?;
        match &jwt_secret {
            None if keys_configured || jwt_secret_file.is_some() => {}
            None => {
                return Err(ConfigError::Missing(
                    "PINAK_JWT_SECRET or PINAK_JWT_SECRET_FILE (or PINAK_JWT_KEYS_DIR / PINAK_JWT_JWKS_URL)",
                ));
            }
            Some(s) => {
                if let Some(reason) = weak_secret(s) {
                    return Err(invalid("PINAK_JWT_SECRET", "<redacted>", reason));
                }
            }
        }
        let (embedding_api_key, embedding_api_key_file) =
            value_or_file(&get, "PINAK_EMBEDDING_API_KEY", "PINAK_EMBEDDING_API_KEY_FILE")?;
        let embedding_backend =
            match get("PINAK_EMBEDDING_BACKEND").unwrap_or_else(|| "local".into()).to_ascii_lowercase().as_str() {
                "local" => EmbeddingBackend::Local,
                "http" => EmbeddingBackend::Http,
                "dummy" => EmbeddingBackend::Dummy,
                "none" | "off" | "disabled" => EmbeddingBackend::None,
                other => return Err(invalid("PINAK_EMBEDDING_BACKEND", other, "expected local, http, dummy or none")),
            };
        let model_dir = get("PINAK_MODEL_DIR").map(PathBuf::from);
        if embedding_backend == EmbeddingBackend::Local && model_dir.is_none() {
            return Err(ConfigError::Missing("PINAK_MODEL_DIR (directory of all-MiniLM-L6-v2; scripts/dev sets it)"));
        }
        let embedding_url = get("PINAK_EMBEDDING_URL");
        if embedding_backend == EmbeddingBackend::Http && embedding_url.is_none() {
            return Err(ConfigError::Missing("PINAK_EMBEDDING_URL (with PINAK_EMBEDDING_BACKEND=http)"));
        }
        Ok(Config {
            database_url,
            database_username_file: get("PINAK_DATABASE_USERNAME_FILE").map(PathBuf::from),
            database_password_file: get("PINAK_DATABASE_PASSWORD_FILE").map(PathBuf::from),
            db_schema,
            migrate: parse_bool(&get, "PINAK_MIGRATE", true)?,
            db_pool_size: parse_num(&get, "PINAK_DB_POOL_SIZE", 8)?,
            listen: parse_num(&get, "PINAK_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            jwt_secret,
            jwt_secret_file,
            jwt_keys_dir,
            jwt_jwks_url,
            jwt_jwks_refresh: Duration::from_secs(jwt_jwks_refresh_secs),
            jwt_issuer: get("PINAK_JWT_ISSUER").unwrap_or_else(|| "pinak-memory".into()),
            jwt_audience: get("PINAK_JWT_AUDIENCE").unwrap_or_else(|| "pinak-memory-api".into()),
            tenant: get("PINAK_TENANT"),
            embedding_backend,
            model_dir,
            embedding_url,
            embedding_model: get("PINAK_EMBEDDING_MODEL").unwrap_or_else(|| "all-MiniLM-L6-v2".into()),
            embedding_api_key,
            embedding_api_key_file,
            embedding_timeout: Duration::from_millis(parse_num(&get, "PINAK_EMBEDDING_TIMEOUT_MS", 10_000)?),
            reembed_from: parse_csv(get("PINAK_REEMBED_FROM")),
            trusted_clients: parse_csv(get("PINAK_TRUSTED_CLIENTS")),
            quarantine_auto_approve: parse_bool(&get, "PINAK_QUARANTINE_AUTO_APPROVE", false)?,
            quarantine_untrusted_writes: parse_bool(&get, "PINAK_QUARANTINE_UNTRUSTED_WRITES", false)?,
            auto_resolve_issues: parse_csv(get("PINAK_AUTO_RESOLVE_ISSUES")),
            access_log_retention_days: parse_num(&get, "PINAK_ACCESS_LOG_RETENTION_DAYS", 90)?,
            request_timeout: Duration::from_millis(parse_num(&get, "PINAK_REQUEST_TIMEOUT_MS", 30_000)?),
            header_timeout: Duration::from_millis(positive(&get, "PINAK_HEADER_TIMEOUT_MS", 10_000)?),
            body_timeout: Duration::from_millis(positive(&get, "PINAK_BODY_TIMEOUT_MS", 10_000)?),
            max_connections: positive(&get, "PINAK_MAX_CONNECTIONS", 1_024)?,
            audit_signing_key: secret_var(&get, "PINAK_AUDIT_SIGNING_KEY")?,
            hnsw_ef_search: match parse_num(&get, "PINAK_HNSW_EF_SEARCH", 100u32)? {
                n @ 1..=1000 => n,
                n => {
                    return Err(invalid(
                        "PINAK_HNSW_EF_SEARCH",
                        &n.to_string(),
                        "must be between 1 and 1000 (pgvector's range)",
                    ));
                }
            },
            // Postgres checks that the configuration exists when the first connection sets it,
            // which `lifecycle::prepare` does before the service reports ready.
            text_search_config: match get("PINAK_TEXT_SEARCH_CONFIG") {
                None => "english".into(),
                Some(c) if is_identifier(&c) => c,
                Some(c) => {
                    return Err(invalid(
                        "PINAK_TEXT_SEARCH_CONFIG",
                        &c,
                        "expected the name of a PostgreSQL text-search configuration, such as english, simple or german",
                    ));
                }
            },
            exact_search_max_rows: match parse_num(&get, "PINAK_EXACT_SEARCH_MAX_ROWS", 2_000i64)? {
                n if n < 0 => return Err(invalid("PINAK_EXACT_SEARCH_MAX_ROWS", &n.to_string(), "must be 0 or more")),
                n => n,
            },
            exact_search_max_fraction: match parse_num(&get, "PINAK_EXACT_SEARCH_MAX_FRACTION", 0.02f64)? {
                f if (0.0..=1.0).contains(&f) => f,
                f => return Err(invalid("PINAK_EXACT_SEARCH_MAX_FRACTION", &f.to_string(), "must be between 0 and 1")),
            },
            scope_size_ttl: Duration::from_secs(parse_num(&get, "PINAK_SCOPE_SIZE_TTL_SECS", 30)?),
            read_log_sync_commit: parse_bool(&get, "PINAK_READ_LOG_SYNC_COMMIT", false)?,
            jobs_enabled: parse_bool(&get, "PINAK_JOBS", true)?,
            jobs_concurrency: match parse_num(&get, "PINAK_JOBS_CONCURRENCY", 1usize)? {
                0 => return Err(invalid("PINAK_JOBS_CONCURRENCY", "0", "must be at least 1")),
                n => n,
            },
        })
    }
}

/// Why `secret` is too weak to sign anything (tokens, audit heads), if it is.
pub fn weak_secret(secret: &str) -> Option<&'static str> {
    if REFUSED_SECRETS.contains(&secret) {
        Some("a published example secret; generate one, e.g. `openssl rand -base64 48`")
    } else if secret.len() < MIN_SECRET_BYTES {
        Some("shorter than 32 bytes")
    } else {
        None
    }
}

/// A secret given either as `var` or as a file named by `file_var`, not both.
fn value_or_file(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    file_var: &'static str,
) -> Result<(Option<String>, Option<PathBuf>), ConfigError> {
    let set = |name: &str| get(name).filter(|v| !v.is_empty());
    match (set(var), set(file_var)) {
        (Some(_), Some(path)) => Err(invalid(file_var, &path, &format!("set either {var} or {file_var}, not both"))),
        (value, path) => Ok((value, path.map(PathBuf::from))),
    }
}

fn invalid(name: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid { name, value: value.to_owned(), reason: reason.to_owned() }
}

/// A number that must be at least 1 (a zero timeout or limit would refuse everything).
fn positive<T: std::str::FromStr + PartialOrd + From<u8>>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match parse_num(get, name, default)? {
        n if n < T::from(1) => Err(invalid(name, "0", "must be at least 1")),
        n => Ok(n),
    }
}

fn parse_num<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e: T::Err| invalid(name, &v, &e.to_string())),
    }
}

fn parse_bool(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => Err(invalid(name, &v, "expected true or false")),
    }
}

fn parse_csv(v: Option<String>) -> Vec<String> {
    v.map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()).unwrap_or_default()
}

/// A Postgres identifier we can quote safely and that the operator can generate.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// An optional signing secret: when set, it must be long and not a published example.
fn secret_var(get: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<String>, ConfigError> {
    match get(name) {
        Some(s) if weak_secret(&s).is_some() => {
            Err(invalid(name, "<redacted>", "must be at least 32 bytes and not a published example"))
        }
        other => Ok(other),
    }
}
