//! The operator's Vault (or OpenBao) side: login, token renewal, and the KV reads a store's
//! spec asks for, cached per store for `spec.vault.refreshInterval`.
//!
//! Login is the kubernetes auth method with the operator's service-account token (read from
//! its file at each login, since projected tokens rotate), or a token kept in a Secret of the
//! store's namespace. Tokens are cached per login and renewed when a third of their TTL is
//! left; a token Vault no longer accepts (revoked, expired) is dropped and the login repeated
//! once before a read is reported as denied.
//!
//! A failed refresh is an error of the reconcile: the store turns `Degraded` and
//! `SecretsReady=False` with the reason, and nothing already delivered is changed, so the pods
//! keep serving with the last good values.

pub mod material;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Client, ResourceExt};
use pinak_crds::{MemoryStore, VaultSpec};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use self::material::{ADMIN_URL_KEY, Document, JwtMaterial, jwt_material};
use crate::error::{Error, Result};

/// Forces a re-read of Vault before `refreshInterval` has passed: any new value works, e.g.
/// `kubectl annotate memorystore/notes pinak.dev/vault-refresh="$(date +%s)" --overwrite`.
pub const REFRESH_ANNOTATION: &str = "pinak.dev/vault-refresh";
/// Key of the token in `auth.tokenSecretRef` when `key` is unset.
const TOKEN_KEY: &str = "token";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything read from Vault for one store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fetched {
    pub admin_url: Option<String>,
    pub jwt: Option<JwtMaterial>,
    pub embedding_api_key: Option<String>,
    /// When these values were read.
    pub refreshed_at: Option<Timestamp>,
    /// When the Vault token used expires (`None`: it does not, e.g. a root token).
    pub token_expires_at: Option<Timestamp>,
}

/// A logged-in Vault token.
#[derive(Clone)]
struct Session {
    token: String,
    /// `None` for tokens without a TTL.
    expires: Option<(Instant, Timestamp)>,
    ttl: Duration,
    renewable: bool,
    /// Whether the operator can log in again by itself (kubernetes auth).
    can_relogin: bool,
}

struct Cached {
    read_at: Instant,
    /// The store's generation: a changed spec (another path, address or login) reads again.
    generation: Option<i64>,
    trigger: Option<String>,
    values: Arc<Fetched>,
}

/// The Vault sessions and per-store values of the operator.
pub struct Vaults {
    service_account_token_file: PathBuf,
    sessions: Mutex<HashMap<String, Session>>,
    cache: std::sync::Mutex<HashMap<(String, String), Cached>>,
}

impl Vaults {
    pub fn new(service_account_token_file: PathBuf) -> Self {
        Self { service_account_token_file, sessions: Mutex::default(), cache: std::sync::Mutex::default() }
    }

    /// The store's Vault values: cached ones while younger than `refreshInterval` and neither
    /// the spec nor the refresh annotation changed, else freshly read.
    pub async fn values(&self, kube: &Client, store: &MemoryStore, vault: &VaultSpec) -> Result<Arc<Fetched>> {
        let key = (store.namespace().unwrap_or_default(), store.name_any());
        let trigger = store.annotations().get(REFRESH_ANNOTATION).cloned();
        let interval = vault.refresh_interval_duration().unwrap_or(Duration::from_secs(300));
        if let Some(c) = self.cache().get(&key)
            && c.read_at.elapsed() < interval
            && c.trigger == trigger
            && c.generation == store.metadata.generation
        {
            return Ok(c.values.clone());
        }
        let values = Arc::new(self.fetch(kube, &key.0, store, vault).await?);
        let generation = store.metadata.generation;
        self.cache().insert(key, Cached { read_at: Instant::now(), generation, trigger, values: values.clone() });
        Ok(values)
    }

    /// Forgets a deleted store's values.
    pub fn forget(&self, store: &MemoryStore) {
        self.cache().remove(&(store.namespace().unwrap_or_default(), store.name_any()));
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Cached>> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn fetch(&self, kube: &Client, namespace: &str, store: &MemoryStore, vault: &VaultSpec) -> Result<Fetched> {
        let (session_key, login) = self.login_source(kube, namespace, vault).await?;
        let mut session = self.session(&session_key, &login, vault).await?;
        let mut relogged = false;
        loop {
            let client = client(vault, &session.token)?;
            match read_store(&client, store, vault).await {
                Err(Error::VaultPermissionDenied { .. }) if !token_valid(&client).await => {
                    self.sessions.lock().await.remove(&session_key);
                    if !session.can_relogin || relogged {
                        return Err(Error::VaultAuthFailed(format!(
                            "Vault no longer accepts the token from {} (revoked or expired)",
                            login.describe()
                        )));
                    }
                    relogged = true;
                    session = self.session(&session_key, &login, vault).await?;
                }
                Err(e) => return Err(e),
                Ok(mut fetched) => {
                    fetched.refreshed_at = Some(Timestamp::now());
                    fetched.token_expires_at = session.expires.map(|(_, at)| at);
                    return Ok(fetched);
                }
            }
        }
    }

    /// How this store logs in, and the key of its cached session (the token itself, hashed,
    /// for a token Secret, so that a replaced token starts a new session).
    async fn login_source(&self, kube: &Client, namespace: &str, vault: &VaultSpec) -> Result<(String, Login)> {
        if let Some(k) = &vault.auth.kubernetes {
            let mount = k.mount_path_or_default().to_owned();
            let key = format!("k8s\0{}\0{mount}\0{}", vault.address, k.role);
            return Ok((
                key,
                Login::Kubernetes { mount, role: k.role.clone(), jwt_file: self.service_account_token_file.clone() },
            ));
        }
        let r = vault.auth.token_secret_ref.as_ref().ok_or_else(|| {
            Error::InvalidSpec("spec.vault.auth: set exactly one of kubernetes or tokenSecretRef".into())
        })?;
        let token = crate::secret_ref::read(kube, namespace, &r.name, r.key_or(TOKEN_KEY)).await?.trim().to_owned();
        let key = format!("token\0{}\0{}", vault.address, hex::encode(Sha256::digest(token.as_bytes())));
        Ok((key, Login::Token { token, secret: format!("{namespace}/{}", r.name) }))
    }

    /// A usable session: the cached one (renewed when a third of its TTL is left), or a new login.
    async fn session(&self, key: &str, login: &Login, vault: &VaultSpec) -> Result<Session> {
        let mut sessions = self.sessions.lock().await;
        if let Some(s) = sessions.get(key).cloned() {
            match s.expires {
                None => return Ok(s),
                Some((at, _)) if at > Instant::now() + s.ttl / 3 => return Ok(s),
                Some((at, _)) if s.renewable && at > Instant::now() => {
                    let client = client(vault, &s.token)?;
                    match vaultrs::token::renew_self(&client, None).await {
                        Ok(auth) => {
                            tracing::info!(lease_secs = auth.lease_duration, "renewed the Vault token");
                            let renewed =
                                Session::from_lease(s.token, auth.lease_duration, auth.renewable, s.can_relogin);
                            sessions.insert(key.to_owned(), renewed.clone());
                            return Ok(renewed);
                        }
                        Err(e) => tracing::info!(error = %chain(&e), "Vault token renewal failed; logging in again"),
                    }
                }
                Some(_) => {}
            }
            sessions.remove(key);
        }
        let session = login.login(vault).await?;
        tracing::info!(
            login = %login.describe(),
            ttl_secs = session.ttl.as_secs(),
            renewable = session.renewable,
            "logged in to Vault"
        );
        sessions.insert(key.to_owned(), session.clone());
        Ok(session)
    }
}

enum Login {
    Kubernetes { mount: String, role: String, jwt_file: PathBuf },
    Token { token: String, secret: String },
}

impl Login {
    fn describe(&self) -> String {
        match self {
            Login::Kubernetes { mount, role, .. } => format!("the kubernetes auth login (mount {mount}, role {role})"),
            Login::Token { secret, .. } => format!("Secret {secret}"),
        }
    }

    async fn login(&self, vault: &VaultSpec) -> Result<Session> {
        match self {
            Login::Kubernetes { mount, role, jwt_file } => {
                let jwt = std::fs::read_to_string(jwt_file).map_err(|e| {
                    Error::VaultAuthFailed(format!(
                        "cannot read the operator's service-account token at {}: {e}",
                        jwt_file.display()
                    ))
                })?;
                let client = client(vault, "")?;
                match vaultrs::auth::kubernetes::login(&client, mount, role, jwt.trim()).await {
                    Ok(auth) => Ok(Session::from_lease(auth.client_token, auth.lease_duration, auth.renewable, true)),
                    Err(ClientError::APIError { code, errors }) if (400..500).contains(&code) => {
                        Err(Error::VaultAuthFailed(format!(
                            "kubernetes auth login (mount {mount}, role {role}) refused with {code}: {}",
                            errors.join("; ")
                        )))
                    }
                    Err(e) => Err(unreachable(vault, &e)),
                }
            }
            Login::Token { token, secret } => {
                let client = client(vault, token)?;
                match vaultrs::token::lookup_self(&client).await {
                    Ok(info) => {
                        Ok(Session::from_lease(token.clone(), info.ttl, info.renewable.unwrap_or(false), false))
                    }
                    Err(ClientError::APIError { code: 401 | 403, .. }) => Err(Error::VaultAuthFailed(format!(
                        "Vault refuses the token in Secret {secret} (revoked or expired)"
                    ))),
                    Err(e) => Err(unreachable(vault, &e)),
                }
            }
        }
    }
}

impl Session {
    fn from_lease(token: String, lease_secs: u64, renewable: bool, can_relogin: bool) -> Self {
        let ttl = Duration::from_secs(lease_secs);
        let expires = (lease_secs > 0).then(|| {
            let wall =
                Timestamp::now().saturating_add(SignedDuration::from_secs(lease_secs as i64)).unwrap_or(Timestamp::MAX);
            (Instant::now() + ttl, wall)
        });
        Self { token, expires, ttl, renewable, can_relogin }
    }
}

fn client(vault: &VaultSpec, token: &str) -> Result<VaultClient> {
    let settings = VaultClientSettingsBuilder::default()
        .address(&vault.address)
        .token(token)
        .timeout(Some(REQUEST_TIMEOUT))
        .build()
        .map_err(|e| Error::InvalidSpec(format!("spec.vault.address {:?}: {e}", vault.address)))?;
    VaultClient::new(settings).map_err(|e| Error::InvalidSpec(format!("spec.vault: {}", chain(&e))))
}

/// Whether Vault still accepts the client's token (a 403 on a read may also mean the policy
/// does not grant the path).
async fn token_valid(client: &VaultClient) -> bool {
    !matches!(vaultrs::token::lookup_self(client).await, Err(ClientError::APIError { code: 401 | 403, .. }))
}

/// Reads every document the store's spec names.
async fn read_store(client: &VaultClient, store: &MemoryStore, vault: &VaultSpec) -> Result<Fetched> {
    let spec = &store.spec;
    let mut fetched = Fetched::default();
    if let Some(path) = &spec.database.admin_credentials.vault_path {
        fetched.admin_url = Some(read(client, vault, path).await?.string(ADMIN_URL_KEY)?);
    }
    if let Some(path) = &vault.paths.jwt {
        fetched.jwt = Some(jwt_material(&read(client, vault, path).await?)?);
    }
    if let Some(key) = spec.embedding.api_key_vault_key.as_deref() {
        let path = vault.paths.embedding.as_deref().ok_or_else(|| {
            Error::InvalidSpec("embedding.apiKeyVaultKey is set but spec.vault.paths.embedding is not".into())
        })?;
        fetched.embedding_api_key = Some(read(client, vault, path).await?.string(key)?);
    }
    Ok(fetched)
}

async fn read(client: &VaultClient, vault: &VaultSpec, path: &str) -> Result<Document> {
    let full = format!("{}/{path}", vault.kv_mount);
    match vaultrs::kv2::read::<BTreeMap<String, Value>>(client, &vault.kv_mount, path).await {
        Ok(data) => Ok(Document { path: full, data }),
        Err(ClientError::APIError { code: 404, .. }) => Err(Error::VaultPathNotFound { path: full }),
        Err(ClientError::APIError { code: 401 | 403, .. }) => Err(Error::VaultPermissionDenied { path: full }),
        Err(ClientError::APIError { code, errors }) if (400..500).contains(&code) => Err(Error::VaultInvalidValue {
            path: full,
            reason: format!("Vault answered {code}: {}", errors.join("; ")),
        }),
        Err(e) => Err(unreachable(vault, &e)),
    }
}

fn unreachable(vault: &VaultSpec, e: &ClientError) -> Error {
    Error::VaultUnreachable { address: vault.address.clone(), reason: chain(e) }
}

/// An error with its sources, since vaultrs' own messages are generic ("An error occurred with
/// the request").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::APIError { code, errors }) => format!("Vault answered {code}: {}", errors.join("; ")),
        _ => text,
    }
}
