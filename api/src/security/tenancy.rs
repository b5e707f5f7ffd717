//! The tenant-isolation rule, in one place.
//!
//! A `Scope` is the (tenant, project) pair taken from the *signed* token, never from the
//! request body, path or headers. Every query on tenant data binds it (`tenant = $1 AND
//! project_id = $2`) before any other condition, including the vector search, which ranks
//! only rows already restricted to the scope. A row outside the scope is indistinguishable
//! from a missing row (404). With `PINAK_TENANT` set, a store serves that tenant only (403
//! for any other), which is how the operator runs one schema per store.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub tenant: String,
    pub project: String,
}

impl Scope {
    pub fn new(tenant: impl Into<String>, project: impl Into<String>) -> Self {
        Scope { tenant: tenant.into(), project: project.into() }
    }
}
