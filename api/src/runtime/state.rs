//! `AppState`: what every handler shares. Nothing here is authoritative data; all state
//! lives in Postgres, so any replica can serve any request (the path cache is a cost hint).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use sqlx::PgPool;

use crate::embedding::Embedder;
use crate::retrieval::keyword::CommonTerms;
use crate::retrieval::vector_path::{PathCache, Rule};
use crate::runtime::config::Config;
use crate::security::auth::TokenVerifier;
use crate::security::credentials::DbCredentials;
use crate::store::schemas::LayerSchemas;

/// Startup verification states of the contract (`verification` in readiness bodies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Verification {
    NotStarted = 0,
    Verifying = 1,
    Ready = 2,
    Failed = 3,
    Stopping = 4,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::NotStarted => "not_started",
            Verification::Verifying => "verifying",
            Verification::Ready => "ready",
            Verification::Failed => "failed",
            Verification::Stopping => "stopping",
        }
    }
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Verification::Verifying,
            2 => Verification::Ready,
            3 => Verification::Failed,
            4 => Verification::Stopping,
            _ => Verification::NotStarted,
        }
    }
}

pub struct Inner {
    pub config: Config,
    pub pool: PgPool,
    /// The credential files the pools follow (api/src/security/credentials.rs); their poller
    /// ends when this state is dropped.
    pub credentials: Arc<DbCredentials>,
    pub embedder: Embedder,
    pub verifier: TokenVerifier,
    pub schemas: LayerSchemas,
    /// Per-scope choice of exact or HNSW vector search, cached in the pod (a cost hint only).
    pub vector_paths: PathCache,
    /// The store's common lexemes, for the keyword leg's match (retrieval/keyword.rs).
    pub common_terms: CommonTerms,
    verification: AtomicU8,
    db_up: AtomicBool,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        config: Config,
        pool: PgPool,
        credentials: Arc<DbCredentials>,
        embedder: Embedder,
        verifier: TokenVerifier,
    ) -> Self {
        let rule = Rule { max_rows: config.exact_search_max_rows, max_fraction: config.exact_search_max_fraction };
        let vector_paths = PathCache::new(rule, config.scope_size_ttl);
        AppState(Arc::new(Inner {
            vector_paths,
            common_terms: CommonTerms::default(),
            config,
            pool,
            credentials,
            embedder,
            verifier,
            schemas: LayerSchemas::load(),
            verification: AtomicU8::new(Verification::NotStarted as u8),
            db_up: AtomicBool::new(true),
        }))
    }

    pub fn verification(&self) -> Verification {
        Verification::from_u8(self.verification.load(Ordering::Acquire))
    }
    pub fn set_verification(&self, v: Verification) {
        self.verification.store(v as u8, Ordering::Release);
    }
    pub fn db_up(&self) -> bool {
        self.db_up.load(Ordering::Acquire)
    }
    pub fn set_db_up(&self, up: bool) {
        self.db_up.store(up, Ordering::Release);
    }
    /// Ready to serve memory routes: started, and the database answers.
    pub fn is_ready(&self) -> bool {
        self.verification() == Verification::Ready && self.db_up()
    }
    /// The state reported to callers: a lost database shows as `verifying` until it returns.
    pub fn readiness_state(&self) -> &'static str {
        match self.verification() {
            Verification::Ready if !self.db_up() => "database_unavailable",
            v => v.as_str(),
        }
    }
}
