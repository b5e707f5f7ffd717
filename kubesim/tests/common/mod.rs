//! The shared harness is `kubesim::testing`; kube-rs clients are built here because kube is
//! only a dev-dependency of kubesim.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub use kubesim::testing::*;

pub async fn kube_client(sim: &Sim) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(sim.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    kube::Client::try_from(cfg).unwrap()
}
