//! `pinak-api`: configuration from the environment (see README), then serve.

use std::process::ExitCode;

use pinak_api::runtime::config::Config;
use pinak_api::runtime::lifecycle::{self, StartError};
use pinak_api::runtime::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "pinak-api failed to start");
            eprintln!("pinak-api: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), StartError> {
    let cfg = Config::from_env()?;
    let listener = lifecycle::bind(&cfg).await?;
    let state = lifecycle::prepare(cfg).await?;
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(addr = %addr, schema = %state.config.db_schema, embedding = state.embedder.backend_name(), "pinak-api ready");
    lifecycle::serve(state, listener, shutdown_signal()).await.map_err(|source| StartError::Listen { addr, source })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received; draining");
}
