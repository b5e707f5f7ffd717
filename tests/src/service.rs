//! How a scenario reaches a store's Service from the test host, the same way on kubesim and on
//! a real cluster (whose cluster IPs the test host cannot reach), with nothing but the
//! kubeconfig's credentials:
//! - [`service_url`]: a local address in front of the Service. Each connection to it goes to
//!   the next ready endpoint of the Service (as kube-proxy balances) through the API server's
//!   port forwarding (`pods/portforward`). Tenant requests go this way: they carry the
//!   tenant's token in `Authorization`, which the API server's service proxy would take (it
//!   authenticates the caller with that header and strips it before relaying);
//! - [`service_proxy`]: one request through the API server's service proxy
//!   (`services/<name>:<port>/proxy/<path>`), for what needs no `Authorization` of its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::Api;
use kubesim::testing::Sim;

/// The User-Agent of the tests' own API requests, which the request-log checks of the
/// operator's requests leave out (as they leave out kubectl's).
pub const USER_AGENT: &str = "pinak-tests";

/// A kube-rs client of `kubeconfig` that does not retry (a 503 is seen as sent).
pub async fn kube_client_at(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("the kubeconfig reads");
    let mut cfg =
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("the kubeconfig is usable");
    cfg.default_retry = false;
    cfg.headers.push((http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT)));
    kube::Client::try_from(cfg).expect("a client for the kubeconfig")
}

pub async fn kube_client(sim: &Sim) -> kube::Client {
    kube_client_at(sim.kubeconfig()).await
}

/// `method path` through the API server's service proxy of `service:port` in `ns`:
/// (status, body).
pub async fn service_proxy(sim: &Sim, method: &str, ns: &str, service: &str, port: u16, path: &str) -> (u16, String) {
    let uri = format!("/api/v1/namespaces/{ns}/services/{service}:{port}/proxy{path}");
    let req = http::Request::builder().method(method).uri(&uri).body(kube::client::Body::empty()).unwrap();
    let resp = kube_client(sim).await.send(req).await.unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
    let (parts, body) = resp.into_parts();
    let body = body.collect_bytes().await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    (parts.status.as_u16(), body)
}

struct Target {
    kubeconfig: PathBuf,
    namespace: String,
    service: String,
    port: u16,
    /// Round-robin position over the ready endpoints.
    next: AtomicUsize,
}

type ForwardKey = (PathBuf, String, String, u16);

/// `http://<local address>` in front of port `port` of Service `service` in `ns`, for this
/// test's runtime (call it from within the test). The same address for the same Service.
pub fn service_url(sim: &Sim, ns: &str, service: &str, port: u16) -> String {
    static FORWARDS: OnceLock<Mutex<HashMap<ForwardKey, SocketAddr>>> = OnceLock::new();
    let key = (sim.kubeconfig().to_owned(), ns.to_owned(), service.to_owned(), port);
    let mut forwards = FORWARDS.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(addr) = forwards.get(&key) {
        return format!("http://{addr}");
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("service_url is called inside the test's runtime");
    let target = Target {
        kubeconfig: key.0.clone(),
        namespace: ns.to_owned(),
        service: service.to_owned(),
        port,
        next: AtomicUsize::new(0),
    };
    tokio::spawn(accept(listener, Arc::new(target)));
    forwards.insert(key, addr);
    format!("http://{addr}")
}

async fn accept(listener: tokio::net::TcpListener, target: Arc<Target>) {
    let client = kube_client_at(&target.kubeconfig).await;
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                tokio::spawn(forward(client.clone(), target.clone(), conn));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The (pod, container port) of each ready endpoint of the target's Service port.
async fn ready_endpoints(client: &kube::Client, t: &Target) -> Result<Vec<(String, u16)>, String> {
    let svc =
        Api::<Service>::namespaced(client.clone(), &t.namespace).get(&t.service).await.map_err(|e| e.to_string())?;
    let port_name = svc
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.port == i32::from(t.port))
        .map(|p| p.name.unwrap_or_default())
        .ok_or_else(|| format!("Service {}/{} has no port {}", t.namespace, t.service, t.port))?;
    let endpoints =
        Api::<Endpoints>::namespaced(client.clone(), &t.namespace).get(&t.service).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for subset in endpoints.subsets.unwrap_or_default() {
        let Some(port) = subset
            .ports
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.name.clone().unwrap_or_default() == port_name)
            .and_then(|p| u16::try_from(p.port).ok())
        else {
            continue;
        };
        for address in subset.addresses.unwrap_or_default() {
            if let Some(pod) = address.target_ref.and_then(|r| r.name) {
                out.push((pod, port));
            }
        }
    }
    Ok(out)
}

/// One client connection, carried to the next ready endpoint that takes it. With none, the
/// connection is closed (as a Service without ready endpoints refuses connections).
async fn forward(client: kube::Client, t: Arc<Target>, mut conn: tokio::net::TcpStream) {
    let backends = match ready_endpoints(&client, &t).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("service {}/{}: {e}", t.namespace, t.service);
            return;
        }
    };
    let start = t.next.fetch_add(1, Ordering::Relaxed);
    for k in 0..backends.len() {
        let (pod, port) = &backends[(start + k) % backends.len()];
        let pods: Api<Pod> = Api::namespaced(client.clone(), &t.namespace);
        let Ok(mut forwarder) = pods.portforward(pod, &[*port]).await else { continue };
        let Some(upstream) = forwarder.take_stream(*port) else { continue };
        let _ = conn.set_nodelay(true);
        let (mut from_client, mut to_client) = conn.split();
        let (mut from_pod, mut to_pod) = tokio::io::split(upstream);
        let up = tokio::io::copy(&mut from_client, &mut to_pod);
        let down = tokio::io::copy(&mut from_pod, &mut to_client);
        tokio::pin!(up, down);
        tokio::select! {
            _ = &mut down => {}
            // The forwarding protocol cannot pass a half-close on to the pod, so the pod's side
            // would stay open: once the client is done, its last answer gets a moment to come.
            _ = &mut up => {
                let _ = tokio::time::timeout(Duration::from_secs(2), down).await;
            }
        }
        forwarder.abort();
        return;
    }
}
