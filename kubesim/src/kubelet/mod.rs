//! The kubelet of the single node `kubesim`, and the Service proxy: pods whose every image is
//! mapped to a local binary run as real processes, with their env, volumes, probes and restarts
//! modelled on the real kubelet; Services answer on their cluster IPs.
//!
//! Pods are taken (bound to the node) as they appear; each gets a worker task (`pod.rs`) that
//! owns its processes. Everything is driven by the store's change stream plus timers; a receiver
//! that falls behind resyncs from a full list.
//!
//! DIFFERENCES from a real kubelet and kube-proxy (the README lists these):
//! - **No images, no containers.** An image is mapped to a local binary (`--image NAME=PATH`;
//!   the entry named exactly as the image, or as the image without tag and digest). The binary
//!   is the entrypoint; a `command` runs the binary of the same basename next to it when there
//!   is one (one image with several programs), else the entrypoint, followed by the rest of
//!   `command` and `args`. Unmapped images wait with `ErrImagePull` (never `ImagePullBackOff`)
//!   and a message naming `--image`. `imageID` is `kubesim://<path>`, `containerID`
//!   `kubesim://<pid>`, and `imagePullPolicy` is ignored.
//! - **Isolation is a mount and UTS namespace only.** Each process gets a private mount
//!   namespace with its volumes bind-mounted at their real mountPaths, and the pod name as
//!   hostname, but shares the host's filesystem, network, PIDs and users (it runs as root).
//!   Mount points missing on the host are created there (empty directories or files). Mounts
//!   need root: as non-root, a container with any volume mount (the service-account directory
//!   counts) waits with `CreateContainerError`. `securityContext`, resources (limits are not
//!   enforced), `stdin`/`tty`, lifecycle hooks, `terminationMessagePath` and
//!   `activeDeadlineSeconds` are ignored.
//! - **Networking.** A pod gets a unique loopback IP `127.2.x.y` (never reused while kubesim
//!   runs; each kubesim claims its own block 127.2.x.* and 127.1.x.* with a lock file so that
//!   kubesims side by side never share an address); a process must bind that IP (from
//!   `status.podIP` through the downward API) or it is not reachable as the pod. There is no
//!   DNS: clients use cluster IPs or the `<SVC>_SERVICE_HOST` variables.
//!   `KUBERNETES_SERVICE_HOST`/`_PORT` point at the API server itself (127.0.0.1 and its real
//!   port), not at the `kubernetes` Service (which is not proxied). Services are proxied on
//!   `clusterIP:port` (127.1.x.y) for TCP only; a port with no ready endpoint is closed
//!   (connection refused); connections rotate round-robin over the ready pods and a dead
//!   backend is skipped; `sessionAffinity`, `nodePort`, `externalIPs`, load-balancer status and
//!   EndpointSlices are not modelled. NetworkPolicies are not enforced.
//! - **Timing.** Crash back-off is 1 s doubling to 30 s, reset after 60 s of running (real:
//!   10 s to 5 min, reset after 10 min). Readiness and startup probes run every 200 ms until
//!   their first success (real: every `periodSeconds`); a startup probe keeps its
//!   `failureThreshold × periodSeconds` budget. HTTPS and gRPC probes only check that the port
//!   accepts connections. Pod deletion with grace 0 kills at once (real: at least 2 s). On
//!   kubesim's own shutdown containers get at most 5 s.
//! - **Volumes.** secret, configMap, downwardAPI, projected (secret, configMap, downwardAPI,
//!   serviceAccountToken), emptyDir (`medium: Memory` is a plain directory) and hostPath; other
//!   types fail the mount. Files use the real atomic-writer layout (`..<timestamp>`, `..data`)
//!   and are updated in place on every change of their sources; subPath mounts are not (as for
//!   real). `subPathExpr`, `fsGroup` and `mountPropagation` are not supported. The
//!   service-account directory is written by the kubelet itself (token, ca.crt, namespace)
//!   instead of a `kube-api-access-*` volume added to the spec; tokens are refreshed at 80 % of
//!   their lifetime.
//! - **Processes.** The host environment is not inherited except PATH (HOME=/root, HOSTNAME the
//!   pod's hostname, as runtimes set them); exec probes run inside the container's mount
//!   namespace with its environment. stdout and stderr are appended, unprefixed, to one log
//!   file per container (`log_path`): every run of the container goes to the same file, so
//!   `--previous` shows all runs, `--timestamps`/`sinceSeconds` are ignored, and `-f` ends when
//!   the pod finishes or goes (real: when the container exits). A stop signals the whole
//!   process group. The container's process gets PR_SET_PDEATHSIG, so it dies with
//!   kubesim; processes it started survive an abrupt kill of kubesim (SIGKILL) but not a stop.
//! - **Status.** Conditions, container states and phases follow the real kubelet (including the
//!   terminal phase written before a deleted pod goes); Events are recorded for transitions only
//!   (Scheduled, Pulled, Created, Started, Killing, BackOff, Unhealthy, FailedMount, Failed),
//!   one object each, never aggregated. There is no Node object and no node status.
//! - **Endpoints.** Kept for every Service with a selector (ready and not-ready addresses,
//!   ports resolved per pod); terminating pods are left out.

mod addresses;
mod atomic;
mod container;
mod downward;
mod env;
mod events;
mod image;
pub mod logs;
mod objects;
mod pod;
mod probes;
mod process;
mod proxy;
mod status;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};

use crate::api::Cluster;
use crate::auth::Authenticator;
use crate::resources::GroupResource;
use crate::store::{Change, EventType};
use container::AbortOnDrop;
use pod::Msg;

/// The node every pod runs on.
pub const NODE_NAME: &str = "kubesim";
/// The node's address (`status.hostIP`).
pub const HOST_IP: &str = "127.0.0.1";
/// How long `Kubelet::shutdown` waits for the pods' processes in all.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

pub struct KubeletConfig {
    /// Image name (with or without tag) → the local binary that is its entrypoint.
    pub images: Vec<(String, PathBuf)>,
    /// Pod directories (volumes, logs) go under `<state_dir>/pods`.
    pub state_dir: PathBuf,
    /// The API server, for `KUBERNETES_SERVICE_HOST`/`_PORT`.
    pub api_address: SocketAddr,
    /// The cluster CA, written as `ca.crt` into the service-account directory.
    pub ca_pem: String,
    /// Mints the pods' service-account tokens.
    pub auth: Arc<Authenticator>,
}

/// What every pod worker shares.
struct Shared {
    cluster: Arc<Cluster>,
    cfg: KubeletConfig,
    /// Held while the kubelet runs: this kubesim's loopback addresses.
    _addresses: addresses::Claim,
}

impl Shared {
    fn api_endpoint(&self) -> env::ApiEndpoint {
        let ip = self.cfg.api_address.ip();
        let host = if ip.is_unspecified() { HOST_IP.to_owned() } else { ip.to_string() };
        env::ApiEndpoint { host, port: self.cfg.api_address.port() }
    }
}

/// The running kubelet. Dropping the handle leaves it running; `shutdown` stops the pods.
pub struct Kubelet {
    commands: mpsc::UnboundedSender<oneshot::Sender<()>>,
    state_dir: PathBuf,
}

/// Starts the kubelet and the Service proxy on the current tokio runtime. Pod and Service IPs
/// allocated from now on come from this kubesim's own address block (see `addresses.rs`).
pub fn spawn(cluster: Arc<Cluster>, mut cfg: KubeletConfig) -> Arc<Kubelet> {
    // Processes run in their pod's directory: relative paths given at startup would resolve
    // against it.
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    cfg.state_dir = absolute(&cfg.state_dir);
    for (_, path) in &mut cfg.images {
        *path = absolute(path);
    }
    let claim = addresses::claim();
    {
        let mut inner = cluster.lock();
        let base = claim.block * 250;
        inner.next_pod_ip = inner.next_pod_ip.max(base);
        inner.next_service_ip = inner.next_service_ip.max(base);
    }
    let state_dir = cfg.state_dir.clone();
    let proxy = AbortOnDrop(proxy::spawn(cluster.clone()));
    let (commands, rx) = mpsc::unbounded_channel();
    tokio::spawn(dispatch(Arc::new(Shared { cluster, cfg, _addresses: claim }), rx, proxy));
    Arc::new(Kubelet { commands, state_dir })
}

impl Kubelet {
    /// Stops every pod's processes (SIGTERM, SIGKILL after at most 5 s) and waits for them, as
    /// kubesim exits. Pods stay in the store.
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(done).is_ok() {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, wait).await;
        }
    }

    /// The log file of a container of a pod (see `log_path`).
    pub fn log_path(&self, namespace: &str, pod: &str, uid: &str, container: &str) -> PathBuf {
        log_path(&self.state_dir, namespace, pod, uid, container)
    }
}

/// A pod's directory: its working directory, volumes and logs.
pub fn pod_dir(state_dir: &Path, namespace: &str, pod: &str, uid: &str) -> PathBuf {
    state_dir.join("pods").join(format!("{namespace}_{pod}_{uid}"))
}

/// Where a container's stdout and stderr go (every run of it, appended), for `kubectl logs`.
pub fn log_path(state_dir: &Path, namespace: &str, pod: &str, uid: &str, container: &str) -> PathBuf {
    pod_dir(state_dir, namespace, pod, uid).join(format!("{container}.log"))
}

struct Worker {
    namespace: String,
    tx: mpsc::UnboundedSender<Msg>,
    task: tokio::task::JoinHandle<()>,
}

/// Routes store changes to the pod workers, starting one for each pod the node takes. Owns the
/// proxy task: the proxy stops (its ports close) when the kubelet shuts down.
async fn dispatch(sh: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<oneshot::Sender<()>>, proxy: AbortOnDrop) {
    let mut changes = sh.cluster.lock().store.subscribe();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    resync(&sh, &mut workers);
    let mut commands_open = true;
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(ch) => on_change(&sh, &mut workers, &ch),
                Err(RecvError::Lagged(_)) => resync(&sh, &mut workers),
                Err(RecvError::Closed) => return,
            },
            cmd = commands.recv(), if commands_open => match cmd {
                Some(done) => {
                    drop(proxy);
                    stop_all(workers).await;
                    let _ = done.send(());
                    return;
                }
                // The handle was dropped: no shutdown will come, keep running.
                None => commands_open = false,
            },
        }
    }
}

/// Whether the node runs this pod: not bound elsewhere, and not already being deleted before
/// it was ever bound.
fn takes(pod: &Value) -> bool {
    match pod["spec"]["nodeName"].as_str() {
        Some(NODE_NAME) => true,
        Some(_) => false,
        None => pod["metadata"]["deletionTimestamp"].is_null(),
    }
}

fn on_change(sh: &Arc<Shared>, workers: &mut HashMap<String, Worker>, ch: &Change) {
    if !ch.gr.group.is_empty() {
        return;
    }
    let ns = ch.object["metadata"]["namespace"].as_str().unwrap_or_default();
    match ch.gr.resource.as_str() {
        "pods" => {
            let uid = ch.object["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
            if ch.kind == EventType::Deleted {
                if let Some(w) = workers.remove(&uid) {
                    let _ = w.tx.send(Msg::Removed);
                }
                return;
            }
            match workers.get(&uid) {
                Some(w) => {
                    let _ = w.tx.send(Msg::Updated(ch.object.clone()));
                }
                None if takes(&ch.object) => {
                    let (tx, task) = pod::start(sh.clone(), ch.object.clone());
                    workers.insert(uid, Worker { namespace: ns.to_owned(), tx, task });
                }
                None => {}
            }
        }
        "secrets" | "configmaps" | "serviceaccounts" => {
            for w in workers.values().filter(|w| w.namespace == ns) {
                let _ = w.tx.send(Msg::Refresh);
            }
        }
        _ => {}
    }
}

/// Catches up after missed changes: every listed pod as updated, every vanished one removed,
/// and every worker's volumes re-read.
fn resync(sh: &Arc<Shared>, workers: &mut HashMap<String, Worker>) {
    let pods = sh.cluster.list_raw(&GroupResource::new("", "pods"), None);
    let live: HashSet<&str> = pods.iter().filter_map(|p| p["metadata"]["uid"].as_str()).collect();
    workers.retain(|uid, w| {
        let keep = live.contains(uid.as_str());
        if !keep {
            let _ = w.tx.send(Msg::Removed);
        }
        keep
    });
    for w in workers.values() {
        let _ = w.tx.send(Msg::Refresh);
    }
    for pod in &pods {
        let change = Change {
            rv: 0,
            gr: GroupResource::new("", "pods"),
            kind: EventType::Modified,
            object: pod.clone(),
            old: None,
        };
        on_change(sh, workers, &change);
    }
}

async fn stop_all(workers: HashMap<String, Worker>) {
    let mut tasks = Vec::new();
    for (_, w) in workers {
        let _ = w.tx.send(Msg::Shutdown);
        tasks.push(w.task);
    }
    for t in tasks {
        let _ = t.await;
    }
}
