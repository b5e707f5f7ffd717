//! The API server's connect subresources that reach into the cluster's network:
//! - `services/<[scheme:]name[:port]>/proxy/<path>`: one HTTP request relayed to a ready
//!   endpoint of the Service, as the real server's service proxy does (the way to reach a
//!   Service from outside the cluster with nothing but API credentials);
//! - `pods/<name>/portforward?ports=P`: a WebSocket (`v4.channel.k8s.io`, the protocol of the
//!   kubelet's WebSocket port forwarding, which kube-rs's `Api::portforward` speaks) carrying
//!   one TCP connection per port to the pod.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::Response;
use hyper::header::{self, HeaderMap, HeaderName};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{ApiServer, Req};
use crate::api::{ApiError, ApiResult};
use crate::resources::{GroupResource, ResourceType};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The channel protocol of the kubelet's WebSocket port forwarding (`""` is its unversioned
/// form, same framing).
const PORTFORWARD_PROTOCOLS: [&str; 2] = ["v4.channel.k8s.io", ""];

/// Headers that describe one hop, not the message (net/http/httputil's list).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn service_unavailable(message: String) -> ApiError {
    ApiError::new(503, "ServiceUnavailable", message)
}

/// `[scheme:]name[:port]` as the API server splits a proxy target; the scheme is http or https.
fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

/// Headers of one message that go on to the next hop: not the hop-by-hop ones, nor those the
/// `Connection` header names, nor the ones the relaying client sets itself.
fn end_to_end(headers: &HeaderMap, also_drop: &[HeaderName]) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::new();
    for (k, v) in headers {
        let name = k.as_str();
        if HOP_BY_HOP.contains(&name) || named.iter().any(|n| n == name) || also_drop.contains(k) {
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    out
}

/// The ready backend address for Service port `port` (a number, a port name, or empty for the
/// Service's unnamed port), picked at random among the ready addresses as the real server does.
fn pick_endpoint(server: &ApiServer, svc: &Value, ns: &str, name: &str, id: &str, port: &str) -> ApiResult<SocketAddr> {
    let port_name = match port.parse::<u64>() {
        Ok(number) => svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_u64() == Some(number))
            .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
            .ok_or_else(|| service_unavailable(format!("no service port {number} found for service {name:?}")))?,
        Err(_) => port.to_owned(),
    };
    let endpoints = server
        .cluster
        .get_raw(&GroupResource::new("", "endpoints"), Some(ns), name)
        .ok_or_else(|| ApiError::not_found("endpoints", name))?;
    let subsets = endpoints["subsets"].as_array().cloned().unwrap_or_default();
    if subsets.is_empty() {
        return Err(service_unavailable(format!("no endpoints available for service {name:?}")));
    }
    let mut candidates = Vec::new();
    for subset in &subsets {
        let Some(target) = subset["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
            .and_then(|p| u16::try_from(p["port"].as_u64()?).ok())
        else {
            continue;
        };
        for a in subset["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = a["ip"].as_str().and_then(|ip| ip.parse::<IpAddr>().ok()) {
                candidates.push(SocketAddr::new(ip, target));
            }
        }
    }
    if candidates.is_empty() {
        return Err(service_unavailable(format!("no endpoints available for service {id:?}")));
    }
    let random = uuid::Uuid::new_v4().as_u128() as usize;
    Ok(candidates[random % candidates.len()])
}

fn proxy_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            // The client sees the backend's redirects; following them here would hide them.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .expect("the service proxy's HTTP client builds")
    })
}

/// The innermost cause, which is what the real server's "error trying to reach service" quotes
/// (e.g. "connect: connection refused"), not reqwest's outer "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `services/<id>/proxy/<path>` in namespace `ns`: relays the request (method, path, query,
/// end-to-end headers but `Authorization`, which authentication consumed, and body) to one
/// ready endpoint, and its answer back.
pub async fn service_proxy(
    server: &Arc<ApiServer>,
    r: &Req,
    rt: &ResourceType,
    ns: &str,
    id: &str,
) -> ApiResult<Response<Body>> {
    let (scheme, name, port) =
        split_scheme_name_port(id).ok_or_else(|| ApiError::bad_request(format!("invalid service request {id:?}")))?;
    let svc = server.cluster.get(rt, Some(ns), name)?;
    let marker = format!("/services/{id}/proxy");
    let rest = r.path.find(&marker).map(|i| &r.path[i + marker.len()..]).unwrap_or_default();
    let query = r.raw_query.as_deref().map(|q| format!("?{q}")).unwrap_or_default();
    if rest.is_empty() {
        // As the real server: `.../proxy` redirects to `.../proxy/`, so that relative links of
        // the backend's pages resolve under the proxy.
        return Ok(Response::builder()
            .status(301)
            .header(header::LOCATION, format!("{}/{query}", r.path))
            .body(Body::empty())
            .unwrap_or_default());
    }
    if scheme == "https" {
        return Err(service_unavailable(format!(
            "error trying to reach service: kubesim's service proxy speaks http only, not https ({id})"
        )));
    }
    if r.upgrade.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
        return Err(ApiError::not_implemented("protocol upgrades through the service proxy"));
    }
    let backend = pick_endpoint(server, &svc, ns, name, id, port)?;
    let method = reqwest::Method::from_bytes(r.method.as_bytes())
        .map_err(|_| ApiError::method_not_allowed(format!("method {} cannot be proxied", r.method)))?;
    let headers = end_to_end(&r.headers, &[header::AUTHORIZATION, header::HOST, header::CONTENT_LENGTH]);
    let answer = proxy_client()
        .request(method, format!("http://{backend}{rest}{query}"))
        .headers(headers)
        .body(r.body.clone())
        .send()
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            let cause = root_cause(&e);
            let why = if e.is_connect() { format!("dial tcp {backend}: connect: {cause}") } else { cause };
            return Err(service_unavailable(format!("error trying to reach service: {why}")));
        }
    };
    let status = answer.status().as_u16();
    let headers = end_to_end(answer.headers(), &[header::CONTENT_LENGTH]);
    let body = answer
        .bytes()
        .await
        .map_err(|e| service_unavailable(format!("error trying to reach service: {}", root_cause(&e))))?;
    let mut resp = Response::builder().status(status).body(Body::from(body)).unwrap_or_default();
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// `pods/<name>/portforward`: checks the request, answers 101 and relays the ports over the
/// WebSocket once the connection has switched.
pub fn portforward(
    server: &Arc<ApiServer>,
    r: &Req,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    verb: &str,
) -> ApiResult<Response<Body>> {
    if !matches!(verb, "get" | "create") {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({}/portforward)",
            rt.qualified()
        )));
    }
    let pod = server.cluster.get(rt, Some(ns), name)?;
    let ports: Vec<u16> = r
        .query
        .get("ports")
        .map(|p| p.split(',').map(|p| p.trim().parse::<u16>()).collect::<Result<_, _>>())
        .transpose()
        .map_err(|_| ApiError::bad_request("query parameter \"ports\" must be port numbers"))?
        .unwrap_or_default();
    if ports.is_empty() || ports.contains(&0) {
        return Err(ApiError::bad_request("at least 1 port must be specified in query parameter \"ports\""));
    }
    if !r.header("upgrade").eq_ignore_ascii_case("websocket") {
        return Err(ApiError::bad_request(
            "Upgrade request required: kubesim forwards ports over WebSocket (v4.channel.k8s.io), as kube-rs's \
             Api::portforward asks; it does not speak SPDY (kubectl port-forward)",
        ));
    }
    let offered: Vec<String> = r
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    let protocol = if offered.is_empty() {
        ""
    } else {
        offered.iter().find_map(|o| PORTFORWARD_PROTOCOLS.iter().find(|p| **p == o.as_str())).copied().ok_or_else(
            || {
                ApiError::bad_request(format!(
                    "requested protocol(s) are not supported: {offered:?}; kubesim supports {:?}",
                    PORTFORWARD_PROTOCOLS[0]
                ))
            },
        )?
    };
    let key = r.header("sec-websocket-key");
    if key.is_empty() {
        return Err(ApiError::bad_request("missing Sec-WebSocket-Key"));
    }
    let ip: IpAddr = pod["status"]["podIP"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a pod IP yet")))?;
    let on_upgrade = r
        .upgrade
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| ApiError::bad_request("Upgrade request required"))?;
    let pod_ref = format!("{ns}/{name}");
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            relay_ports(ws, ip, ports, pod_ref).await;
        }
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut resp = Response::builder()
        .status(101)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept);
    if !protocol.is_empty() {
        resp = resp.header(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    Ok(resp.body(Body::empty()).unwrap_or_default())
}

/// The kubelet's side of WebSocket port forwarding: port `ports[i]` has data channel `2i` and
/// error channel `2i+1`; each channel first carries its port (2 bytes, little endian), then
/// every message is the channel byte followed by the payload. A port that cannot be reached
/// gets its error as text on its error channel.
async fn relay_ports<S>(ws: WebSocketStream<S>, ip: IpAddr, ports: Vec<u16>, pod_ref: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    for (i, port) in ports.iter().enumerate() {
        let [lo, hi] = port.to_le_bytes();
        let ch = (2 * i) as u8;
        for c in [ch, ch + 1] {
            if sink.send(Message::Binary(Bytes::from(vec![c, lo, hi]))).await.is_err() {
                return;
            }
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(64);
    let mut writers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let addr = SocketAddr::new(ip, *port);
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(conn)) => {
                let _ = conn.set_nodelay(true);
                let (mut read, write) = conn.into_split();
                writers.push(Some(write));
                let (tx, ch) = (tx.clone(), (2 * i) as u8);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n) = read.read(&mut buf[1..]).await
                        && n > 0
                    {
                        buf[0] = ch;
                        if tx.send(Message::Binary(Bytes::copy_from_slice(&buf[..=n]))).await.is_err() {
                            return;
                        }
                    }
                });
            }
            failed => {
                writers.push(None);
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                let mut message = vec![(2 * i + 1) as u8];
                message.extend(
                    format!("error forwarding port {port} to pod {pod_ref}: failed to connect to {addr}: {why}")
                        .into_bytes(),
                );
                let _ = sink.send(Message::Binary(Bytes::from(message))).await;
            }
        }
    }
    drop(tx);
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Binary(b))) if b.len() > 1 && b[0] % 2 == 0 => {
                    let Some(Some(w)) = writers.get_mut(usize::from(b[0] / 2)) else { continue };
                    if w.write_all(&b[1..]).await.is_err() {
                        writers[usize::from(b[0] / 2)] = None;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            outgoing = rx.recv() => match outgoing {
                Some(m) => {
                    if sink.send(m).await.is_err() {
                        break;
                    }
                }
                // Every pod side has closed (or none opened): the forwarding is over.
                None => break,
            },
        }
    }
    let _ = sink.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_targets_split_as_the_api_server_splits_them() {
        assert_eq!(split_scheme_name_port("web"), Some(("", "web", "")));
        assert_eq!(split_scheme_name_port("web:80"), Some(("", "web", "80")));
        assert_eq!(split_scheme_name_port("web:http"), Some(("", "web", "http")));
        assert_eq!(split_scheme_name_port("https:web:443"), Some(("https", "web", "443")));
        assert_eq!(split_scheme_name_port("ftp:web:21"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }

    #[test]
    fn only_end_to_end_headers_are_relayed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-hop".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("authorization", "Bearer kube".parse().unwrap());
        h.insert("x-tenant", "a".parse().unwrap());
        h.append("accept", "text/plain".parse().unwrap());
        h.append("accept", "application/json".parse().unwrap());
        let out = end_to_end(&h, &[header::AUTHORIZATION]);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-tenant", "accept"]);
        assert_eq!(out.get_all("accept").iter().count(), 2);
    }
}
