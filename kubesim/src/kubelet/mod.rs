//! The kubelet is being written (pods as local processes, volumes, probes, the Service proxy);
//! until it lands, pods are stored but never run (they stay without a node).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::api::Cluster;
use crate::auth::Authenticator;

pub struct KubeletConfig {
    pub images: Vec<(String, PathBuf)>,
    pub state_dir: PathBuf,
    pub api_address: SocketAddr,
    pub ca_pem: String,
    pub auth: Arc<Authenticator>,
}

pub fn spawn(_cluster: Arc<Cluster>, _cfg: KubeletConfig) {}

pub async fn shutdown(_cluster: &Arc<Cluster>) {}
