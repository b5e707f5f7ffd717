//! Services: the Endpoints controller (an `Endpoints` object per Service with a selector, from
//! the matching pods' IPs and readiness) and the proxy (kube-proxy's job): each TCP port of a
//! Service with a cluster IP listens on `clusterIP:port` while the Service has ready endpoints
//! and forwards each connection to the next of them, round-robin. With no ready endpoint the
//! port is closed, so a client gets "connection refused" as kube-proxy's REJECT rule gives it.
//! A Service without a selector uses the Endpoints its owner writes (a way to reach a host
//! process, such as a test database, through a Service).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::broadcast::error::RecvError;

use super::NODE_NAME;
use super::container::AbortOnDrop;
use crate::api::{Cluster, Ctx, DeleteOptions, PatchType, labels_of};
use crate::resources::GroupResource;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MANAGER: &str = "endpoint-controller";

pub fn spawn(cluster: Arc<Cluster>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut changes = cluster.lock().store.subscribe();
        let mut proxy = Proxy { cluster, services: HashMap::new(), managed: HashSet::new() };
        proxy.resync();
        loop {
            match changes.recv().await {
                Ok(ch)
                    if ch.gr.group.is_empty()
                        && matches!(ch.gr.resource.as_str(), "services" | "pods" | "endpoints") =>
                {
                    if let Some(ns) = ch.object["metadata"]["namespace"].as_str() {
                        proxy.sync_namespace(ns);
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => proxy.resync(),
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// The backends of one Service port, shared with its listener.
#[derive(Default)]
struct Backends {
    addrs: Mutex<Vec<SocketAddr>>,
    next: AtomicUsize,
}

impl Backends {
    fn snapshot(&self) -> Vec<SocketAddr> {
        self.addrs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, addrs: Vec<SocketAddr>) {
        *self.addrs.lock().unwrap_or_else(|e| e.into_inner()) = addrs;
    }
}

struct PortProxy {
    addr: SocketAddr,
    backends: Arc<Backends>,
    listener: Option<AbortOnDrop>,
    bind_failed: bool,
}

struct Proxy {
    cluster: Arc<Cluster>,
    /// (namespace, name) → the Service's proxied ports.
    services: HashMap<(String, String), Vec<PortProxy>>,
    /// The Endpoints this controller writes (of Services with a selector).
    managed: HashSet<(String, String)>,
}

impl Proxy {
    fn resync(&mut self) {
        let known = self.services.keys().chain(&self.managed);
        let mut namespaces: HashSet<String> = known.map(|(ns, _)| ns.clone()).collect();
        for svc in self.cluster.list_raw(&GroupResource::new("", "services"), None) {
            namespaces.extend(svc["metadata"]["namespace"].as_str().map(str::to_owned));
        }
        for ns in namespaces {
            self.sync_namespace(&ns);
        }
    }

    fn sync_namespace(&mut self, ns: &str) {
        let services = self.cluster.list_raw(&GroupResource::new("", "services"), Some(ns));
        let pods = self.cluster.list_raw(&GroupResource::new("", "pods"), Some(ns));
        let mut proxied = HashSet::new();
        let mut selected = HashSet::new();
        for svc in &services {
            let name = svc["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            let key = (ns.to_owned(), name.clone());
            let subsets = if has_selector(svc) {
                let subsets = endpoint_subsets(svc, &pods);
                self.write_endpoints(ns, svc, &subsets);
                selected.insert(key.clone());
                subsets
            } else {
                let ep = self.cluster.get_raw(&GroupResource::new("", "endpoints"), Some(ns), &name);
                ep.and_then(|e| e["subsets"].as_array().cloned()).unwrap_or_default()
            };
            if let Some(ip) = cluster_ip(svc) {
                proxied.insert(key.clone());
                self.update_ports(key, ip, svc, &subsets);
            }
        }
        // Dropping a port's listener closes it.
        self.services.retain(|k, _| k.0 != ns || proxied.contains(k));
        let names: HashSet<&str> = services.iter().filter_map(|s| s["metadata"]["name"].as_str()).collect();
        let gone: Vec<(String, String)> =
            self.managed.iter().filter(|k| k.0 == ns && !names.contains(k.1.as_str())).cloned().collect();
        for key in gone {
            self.managed.remove(&key);
            if let Some(rt) = self.cluster.registry().find_gr(&GroupResource::new("", "endpoints")).cloned() {
                let _ =
                    self.cluster.delete(&Ctx::system(MANAGER), &rt, Some(&key.0), &key.1, &DeleteOptions::default());
            }
        }
        // A Service whose selector was removed keeps its Endpoints, now its owner's to manage.
        self.managed.retain(|k| k.0 != ns || selected.contains(k));
        self.managed.extend(selected);
    }

    fn update_ports(&mut self, key: (String, String), ip: IpAddr, svc: &Value, subsets: &[Value]) {
        let wanted: Vec<(SocketAddr, Vec<SocketAddr>)> = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["protocol"].as_str().unwrap_or("TCP") == "TCP")
            .filter_map(|p| {
                let port = u16::try_from(p["port"].as_u64()?).ok()?;
                Some((SocketAddr::new(ip, port), backends_for(subsets, p["name"].as_str().unwrap_or_default())))
            })
            .collect();
        let ports = self.services.entry(key).or_default();
        ports.retain(|p| wanted.iter().any(|(a, _)| *a == p.addr));
        for (addr, backends) in wanted {
            let idx = match ports.iter().position(|p| p.addr == addr) {
                Some(i) => i,
                None => {
                    ports.push(PortProxy { addr, backends: Arc::default(), listener: None, bind_failed: false });
                    ports.len() - 1
                }
            };
            let port = &mut ports[idx];
            let any = !backends.is_empty();
            port.backends.set(backends);
            if !any {
                port.listener = None;
            } else if port.listener.is_none() {
                match listen(addr) {
                    Ok(l) => {
                        port.bind_failed = false;
                        port.listener = Some(AbortOnDrop(tokio::spawn(serve(l, port.backends.clone()))));
                    }
                    Err(e) => {
                        if !port.bind_failed {
                            let why = "the Service proxy cannot listen; retrying on the next change";
                            tracing::warn!(%addr, error = %e, "{why}");
                        }
                        port.bind_failed = true;
                    }
                }
            }
        }
    }

    /// Creates or updates the Service's Endpoints when they differ from `subsets`.
    fn write_endpoints(&self, ns: &str, svc: &Value, subsets: &[Value]) {
        let Some(rt) = self.cluster.registry().find_gr(&GroupResource::new("", "endpoints")).cloned() else { return };
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        let labels = svc["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        let ctx = Ctx::system(MANAGER);
        match self.cluster.get_raw(&GroupResource::new("", "endpoints"), Some(ns), name) {
            None => {
                let meta = json!({"name": name, "namespace": ns, "labels": labels});
                let mut body = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": meta});
                if !subsets.is_empty() {
                    body["subsets"] = json!(subsets);
                }
                let _ = self.cluster.create(&ctx, &rt, Some(ns), body);
            }
            Some(ep) => {
                let have = ep["subsets"].as_array().map(Vec::as_slice).unwrap_or_default();
                let have_labels = ep["metadata"]["labels"].as_object().cloned().unwrap_or_default();
                if have == subsets && have_labels == labels {
                    return;
                }
                let patch = json!([
                    {"op": "add", "path": "/subsets", "value": subsets},
                    {"op": "add", "path": "/metadata/labels", "value": labels},
                ]);
                let body = patch.to_string();
                let _ = self.cluster.patch(&ctx, &rt, Some(ns), name, PatchType::Json, body.as_bytes(), false, None);
            }
        }
    }
}

fn has_selector(svc: &Value) -> bool {
    svc["spec"]["selector"].as_object().is_some_and(|m| !m.is_empty())
}

/// The address a Service is proxied on (types ClusterIP, NodePort and LoadBalancer).
fn cluster_ip(svc: &Value) -> Option<IpAddr> {
    if svc["spec"]["type"] == "ExternalName" {
        return None;
    }
    svc["spec"]["clusterIP"].as_str().and_then(|ip| ip.parse().ok())
}

/// A listening socket that can be re-bound at once after it is closed (SO_REUSEADDR).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn serve(listener: TcpListener, backends: Arc<Backends>) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                tokio::spawn(forward(conn, backends.clone()));
            }
            // Out of descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Connects the client to the next backend that accepts (a dead one is skipped; kube-proxy's
/// iptables mode would not retry), then copies both ways until either side closes.
async fn forward(mut client: TcpStream, backends: Arc<Backends>) {
    let list = backends.snapshot();
    let start = backends.next.fetch_add(1, Ordering::Relaxed);
    for k in 0..list.len() {
        let addr = list[(start + k) % list.len()];
        if let Ok(Ok(mut upstream)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            return;
        }
    }
}

/// The Endpoints subsets of a Service with a selector: running, non-terminating pods that
/// match, with an IP, grouped by their resolved target ports; ready ones in `addresses`, the
/// others in `notReadyAddresses` (unless `publishNotReadyAddresses`).
pub fn endpoint_subsets(svc: &Value, pods: &[Value]) -> Vec<Value> {
    let selector: BTreeMap<String, String> = svc["spec"]["selector"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default();
    let publish_all = svc["spec"]["publishNotReadyAddresses"] == true;
    let svc_ports = svc["spec"]["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut groups: BTreeMap<String, (Value, Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for pod in pods {
        let labels = labels_of(pod);
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            || !pod["metadata"]["deletionTimestamp"].is_null()
            || matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        {
            continue;
        }
        let Some(ip) = pod["status"]["podIP"].as_str().filter(|ip| !ip.is_empty()) else { continue };
        let ports: Vec<Value> = svc_ports
            .iter()
            .filter_map(|sp| {
                let mut p =
                    json!({"port": target_port(sp, pod)?, "protocol": sp["protocol"].as_str().unwrap_or("TCP")});
                if let Some(name) = sp["name"].as_str().filter(|n| !n.is_empty()) {
                    p["name"] = json!(name);
                }
                Some(p)
            })
            .collect();
        if ports.is_empty() && !svc_ports.is_empty() {
            continue;
        }
        let meta = &pod["metadata"];
        let address = json!({
            "ip": ip,
            "nodeName": NODE_NAME,
            "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
        });
        let ready = publish_all || pod_ready(pod);
        let group = groups
            .entry(Value::Array(ports.clone()).to_string())
            .or_insert_with(|| (json!(ports), Vec::new(), Vec::new()));
        if ready { group.1.push(address) } else { group.2.push(address) }
    }
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            let by_ip = |a: &Value| a["ip"].as_str().and_then(|ip| ip.parse::<IpAddr>().ok());
            ready.sort_by_key(by_ip);
            not_ready.sort_by_key(by_ip);
            let mut subset = json!({"ports": ports});
            if !ready.is_empty() {
                subset["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = json!(not_ready);
            }
            subset
        })
        .collect()
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// A Service port's target on one pod: a number, or the name of one of the pod's container ports.
fn target_port(svc_port: &Value, pod: &Value) -> Option<u64> {
    match &svc_port["targetPort"] {
        Value::Number(n) => n.as_u64(),
        Value::String(name) => name.parse().ok().or_else(|| {
            pod["spec"]["containers"].as_array()?.iter().find_map(|c| {
                c["ports"]
                    .as_array()?
                    .iter()
                    .find(|p| p["name"] == name.as_str())
                    .and_then(|p| p["containerPort"].as_u64())
            })
        }),
        Value::Null => svc_port["port"].as_u64(),
        _ => None,
    }
}

/// The ready addresses of the subsets for the Service port named `port_name`.
fn backends_for(subsets: &[Value], port_name: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for subset in subsets {
        let Some(port) = subset["ports"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"].as_str().unwrap_or_default() == port_name))
            .and_then(|p| u16::try_from(p["port"].as_u64()?).ok())
        else {
            continue;
        };
        for a in subset["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = a["ip"].as_str().and_then(|ip| ip.parse::<IpAddr>().ok()) {
                out.push(SocketAddr::new(ip, port));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, app: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        })
    }

    #[test]
    fn subsets_split_ready_and_not_ready_and_resolve_named_ports() {
        let port = json!({"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"});
        let svc = json!({"spec": {"selector": {"app": "web"}, "ports": [port]}});
        let mut terminating = pod("d", "127.2.0.4", true, "web");
        terminating["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        let pods = vec![
            pod("b", "127.2.0.10", true, "web"),
            pod("a", "127.2.0.2", true, "web"),
            pod("c", "127.2.0.3", false, "web"),
            pod("x", "127.2.0.5", true, "other"),
            terminating,
        ];
        let subsets = endpoint_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        let ips =
            |k: &str| s[k].as_array().unwrap().iter().map(|a| a["ip"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
        assert_eq!(ips("addresses"), ["127.2.0.2", "127.2.0.10"]);
        assert_eq!(ips("notReadyAddresses"), ["127.2.0.3"]);
        assert_eq!(s["ports"], json!([{"name": "web", "port": 8080, "protocol": "TCP"}]));
        assert_eq!(s["addresses"][0]["targetRef"]["name"], "a");
        let backends = backends_for(&subsets, "web");
        assert_eq!(backends, ["127.2.0.2:8080".parse().unwrap(), "127.2.0.10:8080".parse::<SocketAddr>().unwrap()]);
        assert!(backends_for(&subsets, "other").is_empty());
    }

    #[test]
    fn unnamed_single_ports_and_no_pods() {
        let svc = json!({"spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 9000}]}});
        let subsets = endpoint_subsets(&svc, &[pod("a", "127.2.0.2", true, "web")]);
        assert_eq!(subsets[0]["ports"], json!([{"port": 9000, "protocol": "TCP"}]));
        assert_eq!(backends_for(&subsets, ""), ["127.2.0.2:9000".parse::<SocketAddr>().unwrap()]);
        assert!(endpoint_subsets(&svc, &[]).is_empty());
    }

    #[tokio::test]
    async fn a_port_forwards_round_robin_and_closes_without_backends() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut upstreams = Vec::new();
        for tag in [b'a', b'b'] {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            upstreams.push(l.local_addr().unwrap());
            tokio::spawn(async move {
                loop {
                    let (mut s, _) = l.accept().await.unwrap();
                    s.write_all(&[tag]).await.unwrap();
                }
            });
        }
        let backends = Arc::new(Backends::default());
        backends.set(upstreams);
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let task = AbortOnDrop(tokio::spawn(serve(listener, backends.clone())));
        let mut seen = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut b = [0u8];
            s.read_exact(&mut b).await.unwrap();
            seen.push(b[0]);
        }
        seen.sort();
        assert_eq!(seen, b"ab");
        drop(task);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err(), "a closed port refuses");
    }
}
