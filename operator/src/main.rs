//! `pinak-operator crd` prints the MemoryStore CRD; `pinak-operator run` runs the controller
//! (KUBECONFIG or the in-cluster configuration) with its health and metrics server.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use kube::api::{Api, ListParams};
use pinak_crds::MemoryStore;
use pinak_operator::config::OperatorConfig;
use pinak_operator::leader::{Election, LEASE_NAME, LeaderConfig};
use pinak_operator::metrics::Metrics;
use pinak_operator::{reconcile, server};

const USAGE: &str = "usage: pinak-operator <crd|run>
  crd   print the MemoryStore CustomResourceDefinition (YAML)
  run   run the controller (KUBECONFIG or in-cluster config); health and metrics on
        PINAK_OPERATOR_LISTEN (default 0.0.0.0:8080); with PINAK_OPERATOR_LEADER_ELECTION
        (default: on when POD_NAMESPACE is set) only the holder of Lease pinak-operator in
        POD_NAMESPACE reconciles";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["crd"] => {
            print!("{}", pinak_crds::crd_yaml());
            ExitCode::SUCCESS
        }
        ["run"] => {
            init_logging();
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => return fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
            };
            match runtime.block_on(run()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    tracing::error!(error = format!("{e:#}"), "pinak-operator failed");
    eprintln!("pinak-operator: {e:#}");
    ExitCode::FAILURE
}

/// JSON lines on stdout; `RUST_LOG` filters (default `info`, kube's own chatter at warn). The
/// Vault client logs every refused request at error level, including the 403 that tells the
/// operator to log in again; the operator reports Vault failures itself, so those are off.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,sqlx=warn,vaultrs=off,rustify=off"));
    tracing_subscriber::fmt().json().with_env_filter(filter).with_current_span(false).init();
}

async fn run() -> anyhow::Result<()> {
    let config = OperatorConfig::from_env()?;
    let leader = LeaderConfig::from_env()?;
    // Built in the workspace, rustls has both crypto providers (reqwest brings aws-lc-rs), and
    // then refuses to guess: choose ring, the one kube's TLS feature asks for.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube_client(&leader.identity).await?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (PINAK_OPERATOR_LISTEN)", config.listen))?;
    let health = server::Health { ready: ready.clone(), metrics: metrics.clone() };
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, server::router(health)).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    tracing::info!(
        listen = %config.listen,
        api_image = %config.api_image,
        identity = %leader.identity,
        leader_election = leader.enabled,
        "pinak-operator starting"
    );
    wait_for_crd(&client).await;
    // A follower is healthy and ready: it is a warm standby.
    ready.store(true, Ordering::Relaxed);
    if !leader.enabled {
        reconcile::run(client, config, metrics).await;
        tracing::info!("pinak-operator stopped");
        return Ok(());
    }

    let lease = format!("{}/{LEASE_NAME}", leader.namespace);
    let mut election = Election::start(client.clone(), &leader).await?;
    tracing::info!(lease = %lease, identity = %leader.identity, "waiting for the leader Lease");
    tokio::select! {
        acquired = election.acquired() => acquired?,
        () = shutdown_signal() => {
            election.release().await;
            tracing::info!("pinak-operator stopped (was not leading)");
            return Ok(());
        }
    }
    tracing::info!(lease = %lease, identity = %leader.identity, "leading: reconciling MemoryStores");
    let outcome = tokio::select! {
        // Returns on SIGTERM or Ctrl-C, after the reconciles in flight finish.
        () = reconcile::run(client, config, metrics) => Ok(()),
        () = election.lost() => Err(anyhow::anyhow!(
            "lost the leader Lease {lease}; exiting so that the restarted replica rejoins as a follower"
        )),
    };
    election.release().await;
    tracing::info!("pinak-operator stopped");
    outcome
}

/// The Kubernetes client, with a User-Agent naming this replica (in audit and request logs).
async fn kube_client(identity: &str) -> anyhow::Result<kube::Client> {
    let mut config =
        kube::Config::infer().await.context("no Kubernetes configuration (set KUBECONFIG, or run in a pod)")?;
    let agent = format!("pinak-operator/{} ({identity})", env!("CARGO_PKG_VERSION"));
    let agent = http::HeaderValue::from_str(&agent).unwrap_or(http::HeaderValue::from_static("pinak-operator"));
    config.headers.push((http::header::USER_AGENT, agent));
    kube::Client::try_from(config).context("cannot build the Kubernetes client")
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Waits (not ready) until MemoryStores can be listed: the CRD may be installed after the
/// operator starts, and a crash loop would only delay it.
async fn wait_for_crd(client: &kube::Client) {
    let api = Api::<MemoryStore>::all(client.clone());
    loop {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list MemoryStores (is the CRD installed? `pinak-operator crd | kubectl apply -f -`); retrying in 5s")
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
