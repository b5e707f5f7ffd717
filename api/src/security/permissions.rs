//! RBAC: what each action needs, in one table.
//!
//! The contract's scopes stay the umbrella grants: `memory.read`, `memory.write`, and
//! `memory.admin` with role `admin`. Each action can also be granted alone by a finer scope,
//! so a platform team can mint, say, an ingest-only token (`memory.episodic.write`) or a
//! reviewer token (`memory.quarantine.review` + role `admin`). A missing scope is reported
//! with the umbrella name (`Missing scope: memory.write`), as the contract's clients expect.
//! Handlers call `Principal::require` after validating their input, as in the prototype.

use crate::security::auth::{Principal, ROLE_ADMIN, SCOPE_ADMIN, SCOPE_READ, SCOPE_WRITE};
use crate::store::layers::Layer;
use crate::web::error::{AppError, AppResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    /// Read records or lists of one layer.
    Read(Layer),
    /// Direct writes to one layer.
    Write(Layer),
    /// Edit or delete records of one layer.
    Edit(Layer),
    /// Hybrid search, context retrieval, rag search.
    Search,
    /// Layer JSON Schemas.
    Schemas,
    /// Propose a memory for review.
    Propose,
    /// List, approve and reject proposals.
    Review,
    /// Heartbeats, agent/access/client/issue lists, client summary.
    Observe,
    /// Register a client (setting `trusted`/`blocked` also needs role admin).
    RegisterClient,
    FileIssue,
    ResolveIssue,
    CreateUnit,
    ReadUnits,
    /// Verify the audit chain.
    Audit,
    /// Revoke tokens.
    Revoke,
    /// The JSON metrics endpoint.
    Metrics,
    /// The capture wire.
    Capture,
    /// Export a whole project (every layer, vectors included).
    Export,
    /// Import records into a project, bypassing the write policy (a restore).
    Import,
}

impl Perm {
    /// (umbrella scope, finer scope, needs role admin)
    pub fn grant(self) -> (&'static str, String, bool) {
        let layer_scope = |l: Layer, action: &str| format!("memory.{}.{action}", l.name());
        match self {
            Perm::Read(l) => (SCOPE_READ, layer_scope(l, "read"), false),
            Perm::Write(l) => (SCOPE_WRITE, layer_scope(l, "write"), false),
            Perm::Edit(l) => (SCOPE_ADMIN, layer_scope(l, "admin"), true),
            Perm::Search => (SCOPE_READ, "memory.search".into(), false),
            Perm::Schemas => (SCOPE_READ, "memory.schema.read".into(), false),
            Perm::Propose => (SCOPE_WRITE, "memory.quarantine.propose".into(), false),
            Perm::Review => (SCOPE_ADMIN, "memory.quarantine.review".into(), true),
            Perm::Observe => (SCOPE_READ, "memory.observe".into(), false),
            Perm::RegisterClient => (SCOPE_WRITE, "memory.clients.write".into(), false),
            Perm::FileIssue => (SCOPE_WRITE, "memory.issues.write".into(), false),
            Perm::ResolveIssue => (SCOPE_ADMIN, "memory.issues.resolve".into(), true),
            Perm::CreateUnit => (SCOPE_ADMIN, "memory.units.write".into(), true),
            Perm::ReadUnits => (SCOPE_READ, "memory.units.read".into(), false),
            Perm::Audit => (SCOPE_ADMIN, "memory.audit".into(), true),
            Perm::Revoke => (SCOPE_ADMIN, "memory.auth.revoke".into(), true),
            Perm::Metrics => (SCOPE_ADMIN, "memory.metrics".into(), true),
            Perm::Capture => (SCOPE_WRITE, "memory.capture".into(), false),
            Perm::Export => (SCOPE_ADMIN, "memory.export".into(), true),
            Perm::Import => (SCOPE_ADMIN, "memory.import".into(), true),
        }
    }
}

impl Principal {
    /// The one authorisation check: the umbrella or the finer scope, then the admin role.
    pub fn require(&self, perm: Perm) -> AppResult<()> {
        let (umbrella, fine, needs_admin) = perm.grant();
        if !self.has_scope(umbrella) && !self.has_scope(&fine) {
            return Err(AppError::forbidden(format!("Missing scope: {umbrella}")));
        }
        if needs_admin && !self.has_role(ROLE_ADMIN) {
            return Err(AppError::forbidden(format!("Missing role: {ROLE_ADMIN}")));
        }
        Ok(())
    }
}
