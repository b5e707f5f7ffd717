//! The connect subresources against a kubesim started in-process, with the clients that use
//! them on real clusters: the service proxy (`kubectl get --raw .../services/web:80/proxy/...`
//! and kube-rs raw requests) relays a request to a ready endpoint without the caller's
//! credentials and answers as the real server does when it cannot; port forwarding
//! (kube-rs's `Api::portforward`) carries a TCP connection to a pod. Both are authorized as
//! the real server authorizes them.

mod common;

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::Sim;

/// An HTTP server that answers every request with what it received, as JSON; `/status/<code>`
/// answers with that code (and a Location header).
const ECHO: &str = r#"
import http.server, json, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        out = json.dumps({"method": self.command, "path": self.path, "body": body,
                          "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        code = int(self.path.split("/")[2]) if self.path.startswith("/status/") else 200
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Backend", os.environ["POD_NAME"])
        self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
"#;

const PY: &str = "kubesim-test/py";

/// Namespace `shop`: pod `web` running [`ECHO`], Service `web` (port `http` 80 → 8080) in front
/// of it, Service `idle` whose selector matches nothing, and Service `down` whose hand-written
/// Endpoints name a port nothing listens on (`closed`).
async fn shop(closed: u16) -> Sim {
    let sim = Sim::start_with(vec![(PY.into(), PathBuf::from("/usr/bin/python3"))]).await;
    let port = json!([{"name": "http", "port": 80, "targetPort": 8080}]);
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
         "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "echo", "image": PY, "args": ["-c", ECHO],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": {"app": "web"}, "ports": port}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "idle", "namespace": "shop"},
         "spec": {"selector": {"app": "nothing"}, "ports": port}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "down", "namespace": "shop"},
         "spec": {"ports": [{"port": 80}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "down", "namespace": "shop"},
         "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": closed}]}]},
    ]});
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&objects.to_string()));
    sim.kubectl_ok(&["-n", "shop", "wait", "--for=condition=Ready", "pod/web", "--timeout=30s"], None);
    sim
}

/// A loopback port with nothing listening (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A kube-rs client of the kubeconfig, as `token` when given; no retries, so that a 503 is seen
/// as the server sent it.
async fn client(sim: &Sim, token: Option<&str>) -> kube::Client {
    let mut kc = kube::config::Kubeconfig::read_from(sim.kubeconfig()).unwrap();
    if let Some(t) = token {
        let mut user: Value = serde_json::to_value(&kc.auth_infos[0].auth_info).unwrap();
        user["token"] = json!(t);
        kc.auth_infos[0].auth_info = serde_json::from_value(user).unwrap();
    }
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    cfg.default_retry = false;
    kube::Client::try_from(cfg).unwrap()
}

/// `method path` with `body` through `client`: (status, headers, body).
async fn call(client: &kube::Client, method: &str, path: &str, body: &[u8]) -> (u16, http::HeaderMap, Vec<u8>) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("x-tenant", "t1")
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body.to_vec()))
        .unwrap();
    let resp = client.send(req).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let (parts, body) = resp.into_parts();
    (parts.status.as_u16(), parts.headers, body.collect_bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_proxy_relays_a_request_to_a_ready_endpoint_without_the_callers_credentials() {
    let sim = shop(closed_port()).await;
    let base = "/api/v1/namespaces/shop/services";

    // kubectl, as against a real cluster: the path and the query reach the backend as sent.
    let got: Value = serde_json::from_str(
        &sim.kubectl_ok(&["get", "--raw", &format!("{base}/web:80/proxy/echo/a%20b?x=1&y=two")], None),
    )
    .unwrap();
    assert_eq!((got["method"].as_str(), got["path"].as_str()), (Some("GET"), Some("/echo/a%20b?x=1&y=two")));
    assert!(got["headers"].get("authorization").is_none(), "the API server keeps the caller's token: {got}");
    // The port by name, and with the scheme.
    for target in ["web:http", "http:web:80"] {
        let got = sim.kubectl_ok(&["get", "--raw", &format!("{base}/{target}/proxy/by-name")], None);
        assert!(got.contains("\"/by-name\""), "{target}: {got}");
    }

    // Any method, the body and end-to-end headers go through; the backend's answer comes back
    // as it is, redirects included (not followed).
    let admin = client(&sim, None).await;
    let (code, headers, body) = call(&admin, "POST", &format!("{base}/web:80/proxy/items?a=1"), br#"{"k":1}"#).await;
    assert_eq!(code, 200);
    assert_eq!(headers["x-backend"], "web");
    let got: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (got["method"].as_str(), got["path"].as_str(), got["body"].as_str()),
        (Some("POST"), Some("/items?a=1"), Some(r#"{"k":1}"#))
    );
    assert_eq!(got["headers"]["x-tenant"], "t1");
    assert!(got["headers"].get("authorization").is_none(), "{got}");
    let (code, headers, _) = call(&admin, "DELETE", &format!("{base}/web:80/proxy/status/302"), b"").await;
    assert_eq!((code, headers["location"].to_str().unwrap()), (302, "/elsewhere"));
    assert_eq!(call(&admin, "PUT", &format!("{base}/web:80/proxy/status/418"), b"{}").await.0, 418);
    // `.../proxy` without a path moves to `.../proxy/`.
    let (code, headers, _) = call(&admin, "GET", &format!("{base}/web:80/proxy?q=1"), b"").await;
    assert_eq!((code, headers["location"].to_str().unwrap()), (301, &*format!("{base}/web:80/proxy/?q=1")));

    // When it cannot reach a backend, the API server's own answers.
    let err = sim.kubectl_err(&["get", "--raw", &format!("{base}/missing:80/proxy/")], None);
    assert!(err.contains("(NotFound)") && err.contains(r#"services "missing" not found"#), "{err}");
    let err = sim.kubectl_err(&["get", "--raw", &format!("{base}/web:81/proxy/")], None);
    assert!(
        err.contains("(ServiceUnavailable)") && err.contains(r#"no service port 81 found for service "web""#),
        "{err}"
    );
    let err = sim.kubectl_err(&["get", "--raw", &format!("{base}/idle:80/proxy/")], None);
    assert!(err.contains(r#"no endpoints available for service "idle""#), "{err}");
    let (code, _, body) = call(&admin, "GET", &format!("{base}/down:80/proxy/x"), b"").await;
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((code, status["reason"].as_str()), (503, Some("ServiceUnavailable")), "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("error trying to reach service: dial tcp 127.0.0.1:") && message.contains("refused"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_proxy_and_port_forwarding_need_their_own_rbac_grants() {
    let sim = shop(closed_port()).await;
    let grants = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "tester", "namespace": "shop"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "tester", "namespace": "shop"},
         "rules": [{"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get"]},
                   {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "tester", "namespace": "shop"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tester"},
         "subjects": [{"kind": "ServiceAccount", "name": "tester", "namespace": "shop"}]},
    ]});
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&grants.to_string()));
    let token = sim.kubectl_ok(&["-n", "shop", "create", "token", "tester"], None);
    let tester = client(&sim, Some(token.trim())).await;
    let proxy = "/api/v1/namespaces/shop/services/web:80/proxy/x";
    assert_eq!(call(&tester, "GET", proxy, b"").await.0, 200, "get on services/proxy allows GET");
    let (code, _, body) = call(&tester, "POST", proxy, b"{}").await;
    let denied = String::from_utf8_lossy(&body);
    assert_eq!(code, 403, "{denied}");
    assert!(
        denied.contains(r#"cannot create resource \"services/proxy\" in API group \"\" in the namespace \"shop\""#),
        "{denied}"
    );

    // A WebSocket port forward also needs `create` (AuthorizePodWebsocketUpgradeCreatePermission).
    let pods: Api<Pod> = Api::namespaced(tester.clone(), "shop");
    let refused = pods.portforward("web", &[8080]).await.err().expect("get alone does not forward ports");
    assert!(format!("{refused:?}").contains("403") || refused.to_string().contains("forbidden"), "{refused:?}");
    let patch = r#"[{"op": "add", "path": "/rules/1/verbs/-", "value": "create"}]"#;
    sim.kubectl_ok(&["-n", "shop", "patch", "role", "tester", "--type=json", "-p", patch], None);
    let mut forward = pods.portforward("web", &[8080]).await.expect("get and create forward ports");
    let mut stream = forward.take_stream(8080).unwrap();
    stream.write_all(b"GET /forwarded HTTP/1.0\r\nHost: web\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains(r#""path": "/forwarded""#), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forwarding_carries_connections_to_the_pod_and_reports_a_closed_port() {
    let sim = shop(closed_port()).await;
    let pods: Api<Pod> = Api::namespaced(client(&sim, None).await, "shop");
    // Two connections at once, each its own forward, as a local listener in front of a pod
    // makes them.
    let mut forwards = Vec::new();
    for i in 0..2 {
        let mut f = pods.portforward("web", &[8080]).await.unwrap();
        let mut s = f.take_stream(8080).unwrap();
        let request =
            format!("POST /item/{i} HTTP/1.1\r\nHost: web\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}");
        s.write_all(request.as_bytes()).await.unwrap();
        forwards.push((f, s));
    }
    for (i, (_f, mut s)) in forwards.into_iter().enumerate() {
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.contains(&format!(r#""path": "/item/{i}""#)), "{answer}");
    }

    let mut nothing = pods.portforward("web", &[8081]).await.unwrap();
    let error = nothing.take_error(8081).unwrap().await.expect("an error on the port's error channel");
    assert!(error.contains("error forwarding port 8081 to pod shop/web") && error.contains("refused"), "{error}");

    // kubectl port-forward speaks SPDY, which kubesim does not: it is told so.
    let out = sim.kubectl(&["-n", "shop", "port-forward", "pod/web", ":8080"], None);
    assert!(!out.status.success());
}
