//! Pinak memory API: a stateless axum service over PostgreSQL + pgvector.
//!
//! One folder per concern, so that a rule has one file and the file one obvious place:
//! - `security`: who the caller is, what it may do and whose rows it sees (`auth`,
//!   `permissions`, `tenancy`); the rest of the crate trusts its answer and never re-derives it.
//! - `governance`: what a tenant must be able to account for: who wrote what, the access log,
//!   the tamper-evident audit chain, client trust and the quarantine review.
//! - `store`: the memory layers and how their rows reach Postgres, through one write path
//!   (`write`).
//! - `retrieval`: how rows come back, ranked (`search`), on the exact or HNSW path
//!   (`vector_path`).
//! - `embedding`: text to vectors, one type over every backend, since writes, searches and jobs
//!   must embed alike.
//! - `web`: what every route shares (connections, the request pipeline `http`, extractors, errors),
//!   so a handler holds only its own rule.
//! - `routes`: the route table; the router, `/openapi.json` and `docs/api.md` are built from it.
//! - `mcp`: the memory tools over MCP (`/mcp`), each a call of a route.
//! - `runtime`: the process around it all: configuration, shared state, start and shutdown
//!   (`lifecycle`), background jobs, logs and metrics.

pub mod embedding;
pub mod governance;
pub mod mcp;
pub mod retrieval;
pub mod routes;
pub mod runtime;
pub mod security;
pub mod store;
pub mod web;
