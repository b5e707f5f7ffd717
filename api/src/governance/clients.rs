//! Client registry and client issues.
//!
//! Identity is signed (see `auth`); the registry records what each client is allowed to be:
//! `observed` (seen automatically), `registered` (self-registration), `trusted` and `blocked`
//! (admin only). Trust drives quarantine auto-approval and issue auto-resolution; `blocked`
//! refuses every write.

use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::governance::actor::Actor;
use crate::governance::audit;
use crate::runtime::config::Config;
use crate::security::auth::Principal;
use crate::security::tenancy::Scope;
use crate::web::error::{AppError, AppResult};

pub const OBSERVED: &str = "observed";
pub const REGISTERED: &str = "registered";
pub const TRUSTED: &str = "trusted";
pub const BLOCKED: &str = "blocked";

/// Statuses that only an admin may set, or move a client out of.
pub fn is_privileged_status(s: &str) -> bool {
    s == TRUSTED || s == BLOCKED
}

/// The registry's statuses: a closed set.
pub const STATUSES: [&str; 4] = [OBSERVED, REGISTERED, TRUSTED, BLOCKED];

/// Who may register what: an admin any client; anyone else only its own signed identities
/// (`client_id`, or the `child_client_id` it signs for), with a parent that is signed too.
pub fn check_registration(principal: &Principal, client_id: &str, parent: Option<&str>) -> AppResult<()> {
    if principal.is_admin() {
        return Ok(());
    }
    let signed = |c: &Option<String>, v: &str| c.as_deref() == Some(v);
    if !signed(&principal.client_id, client_id) && !signed(&principal.child_client_id, client_id) {
        return Err(AppError::forbidden("A non-admin may register only its own signed client_id or child_client_id"));
    }
    if let Some(parent) = parent
        && !signed(&principal.client_id, parent)
        && !signed(&principal.parent_client_id, parent)
    {
        return Err(AppError::forbidden(
            "A non-admin may name as parent only its own signed client_id or parent_client_id",
        ));
    }
    Ok(())
}

pub async fn status_of(conn: &mut PgConnection, scope: &Scope, client_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT status FROM clients_registry WHERE tenant = $1 AND project_id = $2 AND client_id = $3")
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(client_id)
        .fetch_optional(conn)
        .await
}

pub fn is_trusted(config: &Config, client_id: &str, status: Option<&str>) -> bool {
    config.trusted_clients.iter().any(|c| c == client_id) || status == Some(TRUSTED)
}

/// Upserts a client as `observed` (status is only set on insert) and refreshes last_seen.
async fn observe_one(
    conn: &mut PgConnection,
    scope: &Scope,
    client_id: &str,
    name: Option<&str>,
    parent: Option<&str>,
    agent_id: &str,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO clients_registry (id, tenant, project_id, client_id, client_name, parent_client_id, status, metadata, last_seen)
         VALUES ($1, $2, $3, $4, $5, $6, 'observed', $7, now())
         ON CONFLICT (tenant, project_id, client_id) DO UPDATE SET
             client_name = COALESCE(EXCLUDED.client_name, clients_registry.client_name),
             parent_client_id = COALESCE(EXCLUDED.parent_client_id, clients_registry.parent_client_id),
             last_seen = now(), updated_at = now()
         RETURNING status",
    )
    .bind(Uuid::new_v4())
    .bind(&scope.tenant)
    .bind(&scope.project)
    .bind(client_id)
    .bind(name)
    .bind(parent)
    .bind(json!({ "agent_id": agent_id }))
    .fetch_one(conn)
    .await
}

/// Identity normalisation on every write and context retrieval: the caller (and its child)
/// are observed, and missing or unregistered identities are filed as issues.
/// Returns the registry status of the effective client, or `blocked` when any signed identity
/// (client, parent or child) is blocked: a blocked client cannot write through a child.
pub async fn observe(
    conn: &mut PgConnection,
    scope: &Scope,
    principal: &Principal,
    actor: &Actor,
) -> Result<String, sqlx::Error> {
    let client_key = principal.client_id.clone().unwrap_or_else(|| actor.client_id.clone());
    let mut status = observe_one(
        conn,
        scope,
        &client_key,
        actor.client_name.as_deref(),
        actor.parent_client_id.as_deref(),
        &actor.agent_id,
    )
    .await?;
    if principal.client_id.is_none() {
        file_issue(conn, scope, actor, NewIssue::new("missing_client_id", "Request carried no signed client_id claim"))
            .await?;
    }
    let mut blocked = status == BLOCKED;
    if let Some(parent) = principal.parent_client_id.as_deref().filter(|p| *p != client_key) {
        blocked |= status_of(conn, scope, parent).await?.as_deref() == Some(BLOCKED);
    }
    if let Some(child) = &principal.child_client_id {
        let parent = actor.parent_client_id.clone().unwrap_or_else(|| client_key.clone());
        status = observe_one(conn, scope, child, None, Some(&parent), &actor.agent_id).await?;
        blocked |= status == BLOCKED;
        if status == OBSERVED {
            file_issue(
                conn,
                scope,
                actor,
                NewIssue::new("child_client_unregistered", &format!("Child client {child} is not registered")),
            )
            .await?;
        }
    }
    Ok(if blocked { BLOCKED.into() } else { status })
}

pub struct NewIssue {
    pub error_code: String,
    pub message: String,
    pub layer: Option<String>,
    pub payload: Option<Value>,
    pub metadata: Option<Value>,
}

impl NewIssue {
    pub fn new(code: &str, message: &str) -> Self {
        NewIssue { error_code: code.into(), message: message.into(), layer: None, payload: None, metadata: None }
    }
    pub fn layer(mut self, layer: &str) -> Self {
        self.layer = Some(layer.into());
        self
    }
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = Some(payload);
        self
    }
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// Files a client issue (and its audit row). Returns the stored issue.
pub async fn file_issue(
    conn: &mut PgConnection,
    scope: &Scope,
    actor: &Actor,
    issue: NewIssue,
) -> Result<Value, sqlx::Error> {
    let row: Value = sqlx::query_scalar(
        "INSERT INTO logs_client_issues AS i (id, tenant, project_id, client_id, client_name, agent_id, parent_client_id, child_client_id,
                                              layer, error_code, message, payload, metadata)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING to_jsonb(i)",
    )
    .bind(Uuid::new_v4())
    .bind(&scope.tenant)
    .bind(&scope.project)
    .bind(&actor.client_id)
    .bind(&actor.client_name)
    .bind(&actor.agent_id)
    .bind(&actor.parent_client_id)
    .bind(&actor.child_client_id)
    .bind(&issue.layer)
    .bind(&issue.error_code)
    .bind(&issue.message)
    .bind(&issue.payload)
    .bind(&issue.metadata)
    .fetch_one(&mut *conn)
    .await?;
    audit::append(
        conn,
        &scope.tenant,
        "client_issue:create",
        &json!({ "id": row["id"], "error_code": issue.error_code, "client_id": actor.client_id }),
    )
    .await?;
    Ok(row)
}

/// Resolves an open issue in scope; `None` when there is no such open issue.
pub async fn resolve_issue(
    conn: &mut PgConnection,
    scope: &Scope,
    id: Uuid,
    by: &str,
    resolution: &str,
) -> Result<Option<Value>, sqlx::Error> {
    let row: Option<Value> = sqlx::query_scalar(
        "UPDATE logs_client_issues AS i SET status = 'resolved', resolved_at = now(), resolved_by = $4, resolution = $5
         WHERE id = $1 AND tenant = $2 AND project_id = $3 AND status = 'open' RETURNING to_jsonb(i)",
    )
    .bind(id)
    .bind(&scope.tenant)
    .bind(&scope.project)
    .bind(by)
    .bind(resolution)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(r) = &row {
        audit::append(conn, &scope.tenant, "client_issue:resolved", &json!({ "id": r["id"], "resolved_by": by }))
            .await?;
    }
    Ok(row)
}
