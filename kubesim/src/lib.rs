//! kubesim: a stand-in Kubernetes API server and kubelet for Pinak's tests.
//!
//! No registry we reach ships kube-apiserver, etcd or kind, so the operator, the Helm chart and
//! the "kubectl apply → working memory API" path are tested against this. Real clients (kubectl,
//! Helm, kube-rs) talk to it unchanged over loopback HTTPS; its kubelet runs pods whose image is
//! mapped to a local binary as real processes. See README.md for what it models and where it
//! differs from a real cluster.

pub mod api;
pub mod auth;
pub mod controllers;
pub mod crd;
pub mod kubelet;
pub mod patch;
pub mod resources;
pub mod selector;
pub mod server;
pub mod store;
pub mod testing;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use api::Cluster;
use auth::Authenticator;
use server::ApiServer;

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the admin kubeconfig is written once the server is ready.
    pub kubeconfig: PathBuf,
    /// Image name (with or without tag) → local binary the kubelet runs for it.
    pub images: Vec<(String, PathBuf)>,
    /// Pod directories (volumes, logs); a temporary directory when None.
    pub state_dir: Option<PathBuf>,
    /// JSON-lines request log.
    pub request_log: Option<PathBuf>,
    /// Listen address; port 0 picks a free port.
    pub listen: SocketAddr,
}

impl Config {
    pub fn new(kubeconfig: impl Into<PathBuf>) -> Self {
        Config {
            kubeconfig: kubeconfig.into(),
            images: Vec::new(),
            state_dir: None,
            request_log: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// A started cluster. Dropping it does not stop the tasks; the process exiting does.
pub struct Running {
    pub address: SocketAddr,
    pub kubeconfig: PathBuf,
    pub server: Arc<ApiServer>,
    pub cluster: Arc<Cluster>,
    pub state_dir: PathBuf,
    /// Stops the pods' processes gracefully (`shutdown`) and finds container logs (`log_path`).
    pub kubelet: Arc<kubelet::Kubelet>,
}

/// Starts the API server, the controllers and the kubelet, then writes the kubeconfig.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let pki = tls::Pki::generate().context("generating the cluster CA")?;
    let auth = Arc::new(Authenticator::generate().context("generating the service-account signing key")?);
    let cluster = Arc::new(Cluster::new());
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    let request_log = match &config.request_log {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening request log {}", p.display()))?,
        ),
        None => None,
    };
    let state_dir = match &config.state_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("kubesim-{}", uuid::Uuid::new_v4().simple())),
    };
    std::fs::create_dir_all(&state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
    controllers::bootstrap(&cluster, &pki.ca_pem);
    let server = Arc::new(ApiServer::new(cluster.clone(), auth.clone(), address, request_log, state_dir.clone()));
    tokio::spawn(server.clone().serve(listener, pki.server_config.clone()));
    controllers::spawn_all(cluster.clone(), auth.clone(), pki.ca_pem.clone());
    let kubelet = kubelet::spawn(
        cluster.clone(),
        kubelet::KubeletConfig {
            images: config.images.clone(),
            state_dir: state_dir.clone(),
            api_address: address,
            ca_pem: pki.ca_pem.clone(),
            auth: auth.clone(),
        },
    );
    let kubeconfig = tls::kubeconfig(&format!("https://{address}"), &pki.ca_pem, auth::ADMIN_USER, auth.admin_token());
    // Written last and atomically: a waiting test may read the file the moment it appears.
    let tmp = config.kubeconfig.with_extension("tmp");
    std::fs::write(&tmp, kubeconfig).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &config.kubeconfig).with_context(|| format!("writing {}", config.kubeconfig.display()))?;
    Ok(Running { address, kubeconfig: config.kubeconfig, server, cluster, state_dir, kubelet })
}
