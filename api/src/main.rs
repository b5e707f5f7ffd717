//! `pinak-api`: configuration from the environment (see README), then serve.

use std::process::ExitCode;

use pinak_api::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    pinak_api::telemetry::init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "pinak-api failed to start");
            eprintln!("pinak-api: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), pinak_api::StartError> {
    let cfg = Config::from_env()?;
    let listener = pinak_api::bind(&cfg).await?;
    let state = pinak_api::prepare(cfg).await?;
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(addr = %addr, schema = %state.config.db_schema, embedding = state.embedder.backend_name(), "pinak-api ready");
    pinak_api::serve(state, listener, shutdown_signal())
        .await
        .map_err(|source| pinak_api::StartError::Listen { addr, source })
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
