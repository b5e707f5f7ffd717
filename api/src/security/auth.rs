//! The auth rule, in one place: who the caller is (a verified token), what it may do
//! (scopes and roles), and which client it speaks for (signed claims only; headers are hints
//! that must agree with the claims).
//!
//! Order of checks follows the contract's failure matrix: bearer present -> signature,
//! issuer, audience, expiry -> `jti` shape -> tenant/project claims -> revocation (database,
//! keyed by tenant, so it needs the claim) -> store tenant pin -> identity headers. Scope and role checks run inside handlers, after
//! body and query validation, through the permission table in `permissions`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::runtime::config::{Config, ConfigError, weak_secret};
use crate::runtime::state::AppState;
use crate::security::keys::KeyStore;
use crate::security::secret_file::SecretValue;
use crate::security::tenancy::Scope;
use crate::web::error::{AppError, AppResult};

pub const SCOPE_READ: &str = "memory.read";
pub const SCOPE_WRITE: &str = "memory.write";
pub const SCOPE_ADMIN: &str = "memory.admin";
pub const ROLE_ADMIN: &str = "admin";

/// Bounded clock skew accepted on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;
const MAX_JTI_LEN: usize = 256;

/// Verifies token signatures and the registered claims.
///
/// A token with a `kid` header is verified only with that key (directory or JWKS, see
/// `keys`), and only when its `alg` is the key's algorithm. A token without `kid` is verified
/// with the HS256 shared secret (compat mode) when one is configured. Anything else, including
/// `alg: none`, is `Invalid token`.
pub struct TokenVerifier {
    hs256: Option<Arc<SecretValue<DecodingKey>>>,
    keys: Option<Arc<KeyStore>>,
    validation: Validation,
}

impl TokenVerifier {
    /// From the runtime config: the HS256 secret if set (from the environment, or from a file
    /// that is re-read), plus the key directory and JWKS if set. Loads the keys and starts their
    /// background reloads; a missing or weak secret file is a configuration error.
    pub async fn from_config(cfg: &Config) -> Result<Self, ConfigError> {
        let hs256 = match (&cfg.jwt_secret, &cfg.jwt_secret_file) {
            (_, Some(path)) => Some(SecretValue::watch("PINAK_JWT_SECRET_FILE", path.clone(), hs256_key)?),
            (Some(secret), None) => Some(SecretValue::fixed(DecodingKey::from_secret(secret.as_bytes()))),
            (None, None) => None,
        };
        let keys = if cfg.jwt_keys_dir.is_some() || cfg.jwt_jwks_url.is_some() {
            Some(KeyStore::start(cfg.jwt_keys_dir.clone(), cfg.jwt_jwks_url.clone(), cfg.jwt_jwks_refresh).await)
        } else {
            None
        };
        Ok(TokenVerifier { hs256, keys, validation: validation(&cfg.jwt_issuer, &cfg.jwt_audience) })
    }

    /// The asymmetric key store, when keys are configured.
    pub fn keys(&self) -> Option<&Arc<KeyStore>> {
        self.keys.as_ref()
    }

    /// The claims of a valid token, or the contract's 401 detail.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, &'static str> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "Invalid token")?;
        match header.kid.as_deref() {
            None => match &self.hs256 {
                Some(secret) => self.check(token, header.alg, &secret.get(), Algorithm::HS256),
                None => Err("Invalid token"),
            },
            Some(kid) => {
                let store = self.keys.as_ref().ok_or("Invalid token")?;
                let key = store.find(kid).await.ok_or("Invalid token")?;
                self.check(token, header.alg, &key.key, key.alg)
            }
        }
    }

    /// Only the key's own algorithm: `none` and HS/RS confusion never reach a key.
    fn check(
        &self,
        token: &str,
        header_alg: Algorithm,
        key: &DecodingKey,
        alg: Algorithm,
    ) -> Result<Map<String, Value>, &'static str> {
        if header_alg != alg {
            return Err("Invalid token");
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err("Token expired"),
            Err(_) => Err("Invalid token"),
        }
    }
}

/// A secret file's content as the HS256 key, held to the same rules as `PINAK_JWT_SECRET`.
fn hs256_key(secret: &str) -> Result<DecodingKey, String> {
    match weak_secret(secret) {
        Some(reason) => Err(reason.to_owned()),
        None => Ok(DecodingKey::from_secret(secret.as_bytes())),
    }
}

fn validation(issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_nbf = true;
    validation
}

/// The verified caller of a memory route.
#[derive(Clone, Debug)]
pub struct Principal {
    pub scope: Scope,
    pub sub: Option<String>,
    pub jti: String,
    pub exp: i64,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// Signed client id (`client_id`, else `cid`).
    pub client_id: Option<String>,
    /// Display name: `X-Pinak-Client-Name` header, else the `client_name`/`client` claim.
    pub client_name: Option<String>,
    pub parent_client_id: Option<String>,
    pub child_client_id: Option<String>,
    /// Signed `agent_id`/`agent` claim (capture routes only).
    pub signed_agent_id: Option<String>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
    pub fn is_admin(&self) -> bool {
        self.has_role(ROLE_ADMIN)
    }
    /// `agent_id` on stored rows: the token subject.
    pub fn agent_id(&self) -> String {
        self.sub.clone().unwrap_or_else(|| "unknown".into())
    }
    /// The client a write is attributed to: signed child, else signed client, else subject.
    pub fn effective_client_id(&self) -> String {
        self.child_client_id
            .clone()
            .or_else(|| self.client_id.clone())
            .or_else(|| self.sub.clone())
            .unwrap_or_else(|| "unknown".into())
    }
}

fn claim_str(claims: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| claims.get(*n).and_then(Value::as_str)).filter(|s| !s.is_empty()).map(String::from)
}

fn claim_list(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(String::from).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
}

/// A header that claims an identity must equal the signed claim (an absent claim never matches).
fn check_identity_header(headers: &HeaderMap, name: &str, claim: &Option<String>) -> AppResult<()> {
    match header(headers, name) {
        Some(h) if claim.as_deref() != Some(h) => {
            Err(AppError::forbidden("Client identity header does not match token"))
        }
        _ => Ok(()),
    }
}

pub fn bearer_token(headers: &HeaderMap) -> AppResult<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(AppError::unauthorized("Missing bearer token")),
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(&parts.headers, state).await
    }
}

pub async fn authenticate(headers: &HeaderMap, state: &AppState) -> AppResult<Principal> {
    let token = bearer_token(headers)?;
    let claims = state.verifier.verify(token).await.map_err(AppError::unauthorized)?;
    let jti = match claims.get("jti") {
        None => return Err(AppError::unauthorized("Invalid token")),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_JTI_LEN => s.clone(),
        Some(_) => return Err(AppError::unauthorized("Invalid token id")),
    };
    let (Some(tenant), Some(project)) =
        (claim_str(&claims, &["tenant", "tenant_id"]), claim_str(&claims, &["project_id", "project"]))
    else {
        return Err(AppError::forbidden("Tenant or project missing in token"));
    };
    // Revocations are the tenant's own ('*': made before they were keyed by tenant).
    let revoked: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM revoked_jti WHERE jti = $1 AND tenant IN ($2, '*') AND expires_at > now())",
    )
    .bind(&jti)
    .bind(&tenant)
    .fetch_one(&state.pool)
    .await?;
    if revoked {
        return Err(AppError::unauthorized("Token revoked"));
    }
    if let Some(pinned) = &state.config.tenant
        && pinned != &tenant
    {
        return Err(AppError::forbidden("Tenant not served by this store"));
    }
    let client_id = claim_str(&claims, &["client_id", "cid"]);
    let parent_client_id = claim_str(&claims, &["parent_client_id", "parent_client"]);
    let child_client_id = claim_str(&claims, &["child_client_id"]);
    if let (Some(a), Some(b)) = (header(headers, "x-pinak-child-id"), header(headers, "x-pinak-child-client-id"))
        && a != b
    {
        return Err(AppError::forbidden("Conflicting child identity headers"));
    }
    check_identity_header(headers, "x-pinak-client-id", &client_id)?;
    check_identity_header(headers, "x-pinak-parent-client-id", &parent_client_id)?;
    check_identity_header(headers, "x-pinak-child-id", &child_client_id)?;
    check_identity_header(headers, "x-pinak-child-client-id", &child_client_id)?;
    Ok(Principal {
        scope: Scope::new(tenant, project),
        sub: claim_str(&claims, &["sub"]),
        jti,
        exp: claims.get("exp").and_then(Value::as_i64).unwrap_or_default(),
        roles: claim_list(&claims, "roles"),
        scopes: claim_list(&claims, "scopes"),
        client_name: header(headers, "x-pinak-client-name")
            .map(String::from)
            .or_else(|| claim_str(&claims, &["client_name", "client"])),
        client_id,
        parent_client_id,
        child_client_id,
        signed_agent_id: claim_str(&claims, &["agent_id", "agent"]),
    })
}
