//! Start to stop. `prepare` reports ready only once the store is reachable and migrated, so a
//! replica never takes traffic it cannot serve; `serve` ties the background jobs and the
//! database watch to the server's lifetime, so a shutdown drains requests and releases jobs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::embedding::{DummyEmbedder, Embedder, EmbeddingError, HttpEmbedder, HttpEmbedderConfig, LocalEmbedder};
use crate::routes;
use crate::runtime::config::{self, Config, EmbeddingBackend};
use crate::runtime::jobs;
use crate::runtime::state::{AppState, Verification};
use crate::security::{auth, credentials};
use crate::store::db;
use crate::web::{error, server};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(String),
    #[error("{0}")]
    Embedding(#[from] EmbeddingError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
}

pub fn build_embedder(cfg: &Config) -> Result<Embedder, EmbeddingError> {
    Ok(match cfg.embedding_backend {
        EmbeddingBackend::None => Embedder::None,
        EmbeddingBackend::Dummy => Embedder::Dummy(DummyEmbedder),
        EmbeddingBackend::Local => {
            let dir = cfg.model_dir.clone().unwrap_or_default();
            Embedder::Local(Arc::new(LocalEmbedder::load(&dir)?))
        }
        EmbeddingBackend::Http => Embedder::Http(Arc::new(HttpEmbedder::new(HttpEmbedderConfig {
            url: cfg.embedding_url.clone().unwrap_or_default(),
            model: cfg.embedding_model.clone(),
            api_key: cfg.embedding_api_key.clone(),
            api_key_file: cfg.embedding_api_key_file.clone(),
            timeout: cfg.embedding_timeout,
            max_retries: 3,
        })?)),
    })
}

/// Builds the state and runs migrations (standalone mode). The model loads on the blocking
/// pool so a slow disk does not stall the runtime.
pub async fn prepare(cfg: Config) -> Result<AppState, StartError> {
    // The credential files are read first: a missing or empty one is a configuration error.
    let credentials = credentials::DbCredentials::start(&cfg)?;
    let pool = db::pool(&cfg, &credentials)?;
    if cfg.migrate {
        db::migrate(&pool, &cfg.db_schema).await.map_err(|e| StartError::Migrate(e.to_string()))?;
    }
    let embed_cfg = cfg.clone();
    let embedder = tokio::task::spawn_blocking(move || build_embedder(&embed_cfg))
        .await
        .map_err(|e| EmbeddingError::Load { path: "model".into(), reason: e.to_string() })??;
    let verifier = auth::TokenVerifier::from_config(&cfg).await?;
    let state = AppState::new(cfg, pool, credentials, embedder, verifier);
    state.set_verification(Verification::Verifying);
    // A store must be reachable and migrated before we call ourselves ready.
    db::migration_version(&state.pool).await?;
    if state.config.migrate && state.config.jobs_enabled {
        // Install the job queue's schema now, like our own migrations, so it is in place (and
        // its DDL finished) before we report ready; the worker itself starts in `serve`.
        jobs::install(&state).await;
    }
    state.set_verification(Verification::Ready);
    Ok(state)
}

/// Watches the database so readiness turns false while it is gone (unreachable, or refusing the
/// API's login) and true when it returns. A refused login needs someone to fix the credentials:
/// it is logged at error level once, when it starts, and again only after the database was up.
pub fn spawn_db_watch(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut login_rejected = false;
        loop {
            tick.tick().await;
            // Bounded: a connection that goes silent must not freeze the watch (and readiness).
            let ping = sqlx::query("SELECT 1").execute(&state.pool);
            let result = tokio::time::timeout(Duration::from_secs(5), ping).await;
            let up = matches!(result, Ok(Ok(_)));
            match &result {
                Ok(Err(e)) if !login_rejected && error::is_login_rejected(e) => {
                    login_rejected = true;
                    tracing::error!(
                        error = %e,
                        "the database refuses the API's login (wrong user or password?); not ready, memory routes \
                         answer 503 until it accepts the credentials again"
                    );
                }
                Ok(Ok(_)) if login_rejected => {
                    login_rejected = false;
                    tracing::info!("the database accepts the API's login again");
                }
                _ => {}
            }
            if up != state.db_up() {
                tracing::warn!(database_up = up, "database availability changed");
                state.set_db_up(up);
            }
        }
    })
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let watch = spawn_db_watch(state.clone());
    // Background jobs (after `prepare` ran the migrations); stopped gracefully below so
    // in-flight jobs are released rather than left locked.
    let jobs = if state.config.jobs_enabled {
        match jobs::start(&state) {
            Ok(j) => Some(j),
            Err(e) => {
                tracing::error!(error = %e, "background jobs disabled: invalid database settings");
                None
            }
        }
    } else {
        None
    };
    let app = routes::router(state.clone());
    let stopping = state.clone();
    let limits =
        server::Limits { header_timeout: state.config.header_timeout, max_connections: state.config.max_connections };
    let result = server::run(listener, app, limits, async move {
        shutdown.await;
        stopping.set_verification(Verification::Stopping);
    })
    .await;
    watch.abort();
    if let Some(jobs) = jobs {
        jobs.shutdown().await;
    }
    state.pool.close().await;
    result
}

pub async fn bind(cfg: &Config) -> Result<TcpListener, StartError> {
    TcpListener::bind(cfg.listen).await.map_err(|source| StartError::Listen { addr: cfg.listen.to_string(), source })
}
