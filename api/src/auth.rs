//! The auth rule, in one place: who the caller is (a verified token), what it may do
//! (scopes and roles), and which client it speaks for (signed claims only; headers are hints
//! that must agree with the claims).
//!
//! Order of checks follows the contract's failure matrix: bearer present -> signature,
//! issuer, audience, expiry -> `jti` shape -> revocation (database) -> tenant/project claims ->
//! store tenant pin -> identity headers. Scope and role checks run inside handlers, after
//! body and query validation, as in the prototype.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::tenancy::Scope;

pub const SCOPE_READ: &str = "memory.read";
pub const SCOPE_WRITE: &str = "memory.write";
pub const SCOPE_ADMIN: &str = "memory.admin";
pub const ROLE_ADMIN: &str = "admin";

/// Bounded clock skew accepted on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;
const MAX_JTI_LEN: usize = 256;

/// Verifies token signatures and the registered claims.
pub struct TokenVerifier {
    hs256: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    pub fn hs256(secret: &str, issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        TokenVerifier { hs256: DecodingKey::from_secret(secret.as_bytes()), validation }
    }

    /// The claims of a valid token, or the contract's 401 detail.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, &'static str> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "Invalid token")?;
        // Only the configured algorithm: `none` and HS/RS confusion never reach a key.
        if header.alg != Algorithm::HS256 {
            return Err("Invalid token");
        }
        match jsonwebtoken::decode::<Map<String, Value>>(token, &self.hs256, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err("Token expired"),
            Err(_) => Err("Invalid token"),
        }
    }
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
    pub fn require_scope(&self, scope: &str) -> AppResult<()> {
        if self.has_scope(scope) { Ok(()) } else { Err(AppError::forbidden(format!("Missing scope: {scope}"))) }
    }
    pub fn require_role(&self, role: &str) -> AppResult<()> {
        if self.has_role(role) { Ok(()) } else { Err(AppError::forbidden(format!("Missing role: {role}"))) }
    }
    /// `memory.admin` scope plus the `admin` role: edits, deletes, reviews, maintenance.
    pub fn require_admin(&self) -> AppResult<()> {
        self.require_scope(SCOPE_ADMIN)?;
        self.require_role(ROLE_ADMIN)
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
        Some(h) if claim.as_deref() != Some(h) => Err(AppError::forbidden("Client identity header does not match token")),
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
    let claims = state.verifier.verify(token).map_err(AppError::unauthorized)?;
    let jti = match claims.get("jti") {
        None => return Err(AppError::unauthorized("Invalid token")),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_JTI_LEN => s.clone(),
        Some(_) => return Err(AppError::unauthorized("Invalid token id")),
    };
    let revoked: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revoked_jti WHERE jti = $1 AND expires_at > now())")
        .bind(&jti)
        .fetch_one(&state.pool)
        .await?;
    if revoked {
        return Err(AppError::unauthorized("Token revoked"));
    }
    let (Some(tenant), Some(project)) = (claim_str(&claims, &["tenant", "tenant_id"]), claim_str(&claims, &["project_id", "project"])) else {
        return Err(AppError::forbidden("Tenant or project missing in token"));
    };
    if let Some(pinned) = &state.config.tenant {
        if pinned != &tenant {
            return Err(AppError::forbidden("Tenant not served by this store"));
        }
    }
    let client_id = claim_str(&claims, &["client_id", "cid"]);
    let parent_client_id = claim_str(&claims, &["parent_client_id", "parent_client"]);
    let child_client_id = claim_str(&claims, &["child_client_id"]);
    if let (Some(a), Some(b)) = (header(headers, "x-pinak-child-id"), header(headers, "x-pinak-child-client-id")) {
        if a != b {
            return Err(AppError::forbidden("Conflicting child identity headers"));
        }
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
        client_name: header(headers, "x-pinak-client-name").map(String::from).or_else(|| claim_str(&claims, &["client_name", "client"])),
        client_id,
        parent_client_id,
        child_client_id,
        signed_agent_id: claim_str(&claims, &["agent_id", "agent"]),
    })
}
