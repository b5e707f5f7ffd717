//! The kubelet against a kubesim started in-process: pods run as real processes bound to their
//! pod IPs, see their Secret at its mountPath (and its updates in place), get env from Secrets
//! and the downward API, become Ready through their probes, answer through their Service,
//! restart with back-off, and stop when deleted.

mod common;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::Sim;
use kubesim::api::{Cluster, Ctx, DeleteOptions, PatchType};
use kubesim::resources::GroupResource;

/// A tiny HTTP server in the test image: it binds `$POD_IP:$PORT` and serves `/healthz`, any
/// file under `/file/<absolute path>` (read inside the container's mount namespace), and its
/// environment under `/env`.
const SERVER: &str = r#"
import http.server, os, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            body = b"ok"
        elif self.path == "/env":
            body = "\n".join(f"{k}={v}" for k, v in sorted(os.environ.items())).encode()
        elif self.path == "/hostname":
            body = socket.gethostname().encode()
        elif self.path.startswith("/file/"):
            try:
                body = open(self.path[len("/file"):], "rb").read()
            except OSError:
                self.send_response(404); self.end_headers(); return
        else:
            self.send_response(404); self.end_headers(); return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("serving on", os.environ["POD_IP"], flush=True)
http.server.ThreadingHTTPServer((os.environ["POD_IP"], int(os.environ["PORT"])), H).serve_forever()
"#;

const PY: &str = "kubesim-test/py";
const SH: &str = "kubesim-test/sh";

async fn sim() -> Sim {
    Sim::start_with(vec![(PY.into(), PathBuf::from("/usr/bin/python3")), (SH.into(), PathBuf::from("/bin/sh"))]).await
}

fn create(cluster: &Cluster, resource: &str, ns: Option<&str>, body: Value) -> Value {
    let rt = cluster.registry().find_gr(&GroupResource::new("", resource)).cloned().expect("a built-in resource");
    cluster
        .create(&Ctx::system("test"), &rt, ns, body)
        .unwrap_or_else(|e| panic!("creating {resource}: {}", e.message))
        .object
}

fn get(cluster: &Cluster, resource: &str, ns: &str, name: &str) -> Option<Value> {
    cluster.get_raw(&GroupResource::new("", resource), Some(ns), name)
}

fn namespace(cluster: &Cluster, name: &str) {
    create(cluster, "namespaces", None, json!({"metadata": {"name": name}}));
}

/// Polls the async `f` every 100 ms until it returns Some, or panics after `secs`.
async fn until<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The body of a 200 answer to `GET path` on `addr`, or None.
async fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await.ok()?.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| body.to_owned())
}

fn condition(pod: &Value, kind: &str) -> Option<String> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str().map(str::to_owned))
}

fn web_pod(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "web",
                "image": format!("{PY}:1.0"),
                "args": ["-c", SERVER],
                "env": [
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "PORT", "value": "8080"},
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "password"}}},
                    {"name": "ADDR", "value": "$(POD_IP):$(PORT)"},
                ],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
                "volumeMounts": [{"name": "keys", "mountPath": "/etc/pinak/keys"}],
            }],
            "volumes": [{"name": "keys", "secret": {"secretName": "keys"}}],
        },
    })
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_runs_sees_its_secret_and_answers_through_its_service() {
    let sim = sim().await;
    let cluster = sim.kubesim().cluster.clone();
    namespace(&cluster, "shop");
    create(&cluster, "secrets", Some("shop"), json!({"metadata": {"name": "keys"}, "stringData": {"password": "one"}}));
    create(&cluster, "pods", Some("shop"), web_pod("web"));
    let svc = create(
        &cluster,
        "services",
        Some("shop"),
        json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        }),
    );

    let pod = until(20, "the pod to be Ready", || {
        let pod = get(&cluster, "pods", "shop", "web");
        async move { pod.filter(|p| condition(p, "Ready").as_deref() == Some("True")) }
    })
    .await;
    assert_eq!(pod["spec"]["nodeName"], "kubesim");
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["status"]["hostIP"], "127.0.0.1");
    let ip = pod["status"]["podIP"].as_str().unwrap().to_owned();
    assert!(ip.starts_with("127.2."), "{ip}");
    let cs = &pod["status"]["containerStatuses"][0];
    assert_eq!(
        (cs["ready"].as_bool(), cs["started"].as_bool(), cs["restartCount"].as_u64()),
        (Some(true), Some(true), Some(0))
    );
    assert!(cs["state"]["running"]["startedAt"].is_string());
    assert_eq!(cs["image"], "kubesim-test/py:1.0");
    let addr = format!("{ip}:8080");

    // The Secret at its mountPath, the service-account directory, env from the Secret and the
    // downward API, $(VAR) expansion, the API server's address, the pod's hostname.
    assert_eq!(http_get(&addr, "/file/etc/pinak/keys/password").await.as_deref(), Some("one"));
    let sa = "/file/var/run/secrets/kubernetes.io/serviceaccount";
    assert_eq!(http_get(&addr, &format!("{sa}/namespace")).await.as_deref(), Some("shop"));
    let token = http_get(&addr, &format!("{sa}/token")).await.unwrap();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let env = http_get(&addr, "/env").await.unwrap();
    let api_port = sim.kubesim().address.port();
    for line in [
        "DB_PASSWORD=one".to_owned(),
        format!("ADDR={ip}:8080"),
        format!("KUBERNETES_SERVICE_PORT={api_port}"),
        "KUBERNETES_SERVICE_HOST=127.0.0.1".into(),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} in\n{env}");
    }
    assert_eq!(http_get(&addr, "/hostname").await.as_deref(), Some("web"));

    // Updated in place, atomically, when the Secret changes.
    let secrets = cluster.registry().find_gr(&GroupResource::new("", "secrets")).cloned().unwrap();
    let patch = json!({"data": {"password": b64("two")}}).to_string();
    cluster
        .patch(&Ctx::system("test"), &secrets, Some("shop"), "keys", PatchType::Merge, patch.as_bytes(), false, None)
        .unwrap();
    until(10, "the new password in the mounted file", || {
        let addr = addr.clone();
        async move { (http_get(&addr, "/file/etc/pinak/keys/password").await? == "two").then_some(()) }
    })
    .await;
    let pod_dir =
        kubesim::kubelet::pod_dir(&sim.kubesim().state_dir, "shop", "web", pod["metadata"]["uid"].as_str().unwrap());
    let data = std::fs::read_link(pod_dir.join("volumes/keys/..data")).unwrap();
    assert!(data.to_string_lossy().starts_with("..20"), "{}", data.display());

    // Through the Service: its cluster IP and port, and its Endpoints.
    let svc_addr = format!("{}:80", svc["spec"]["clusterIP"].as_str().unwrap());
    let body = until(10, "the Service to answer", || {
        let a = svc_addr.clone();
        async move { http_get(&a, "/healthz").await }
    })
    .await;
    assert_eq!(body, "ok");
    let ep = get(&cluster, "endpoints", "shop", "web").expect("the Service's Endpoints");
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], ip.as_str());
    assert_eq!(ep["subsets"][0]["ports"][0], json!({"name": "http", "port": 8080, "protocol": "TCP"}));

    // Its output went to the container's log file.
    let log = kubesim::kubelet::log_path(
        &sim.kubesim().state_dir,
        "shop",
        "web",
        pod["metadata"]["uid"].as_str().unwrap(),
        "web",
    );
    assert!(std::fs::read_to_string(&log).unwrap().contains(&format!("serving on {ip}")));

    // A steady pod is not rewritten.
    let rv = get(&cluster, "pods", "shop", "web").unwrap()["metadata"]["resourceVersion"].clone();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        get(&cluster, "pods", "shop", "web").unwrap()["metadata"]["resourceVersion"],
        rv,
        "no writes while steady"
    );

    // Deleting stops the process, then the pod goes, and the Service's port closes.
    let pods = cluster.registry().find_gr(&GroupResource::new("", "pods")).cloned().unwrap();
    cluster.delete(&Ctx::system("test"), &pods, Some("shop"), "web", &DeleteOptions::default()).unwrap();
    until(10, "the pod to be gone", || {
        let gone = get(&cluster, "pods", "shop", "web").is_none();
        async move { gone.then_some(()) }
    })
    .await;
    assert!(TcpStream::connect(&addr).await.is_err(), "the process is gone");
    until(5, "the Service port to close", || {
        let a = svc_addr.clone();
        async move { TcpStream::connect(&a).await.is_err().then_some(()) }
    })
    .await;
    assert!(!pod_dir.join("volumes").exists(), "the pod's volumes are removed");
    let ep = get(&cluster, "endpoints", "shop", "web").unwrap();
    assert!(ep["subsets"].as_array().is_none_or(|s| s.is_empty()), "{ep}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_images_and_missing_secrets_wait_with_the_real_reasons() {
    let sim = sim().await;
    let cluster = sim.kubesim().cluster.clone();
    namespace(&cluster, "lab");
    create(
        &cluster,
        "pods",
        Some("lab"),
        json!({
            "metadata": {"name": "nginx"},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]},
        }),
    );
    create(
        &cluster,
        "pods",
        Some("lab"),
        json!({
            "metadata": {"name": "needs-secret"},
            "spec": {"automountServiceAccountToken": false, "containers": [{
                "name": "main", "image": SH, "args": ["-c", "echo $TOKEN; sleep 30"],
                "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}],
            }]},
        }),
    );
    let waiting = |name: &'static str, reason: &'static str| {
        let cluster = cluster.clone();
        move || {
            let pod = get(&cluster, "pods", "lab", name);
            async move { pod.filter(|p| p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == reason) }
        }
    };
    let nginx = until(10, "ErrImagePull", waiting("nginx", "ErrImagePull")).await;
    assert_eq!(nginx["status"]["phase"], "Pending");
    let message = nginx["status"]["containerStatuses"][0]["state"]["waiting"]["message"].as_str().unwrap();
    assert!(message.contains("nginx:1.27") && message.contains("--image nginx=PATH"), "{message}");

    let pod = until(10, "CreateContainerConfigError", waiting("needs-secret", "CreateContainerConfigError")).await;
    assert_eq!(pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"], "secret \"later\" not found");
    create(&cluster, "secrets", Some("lab"), json!({"metadata": {"name": "later"}, "stringData": {"token": "t0k3n"}}));
    let running = until(10, "the container to start once the Secret exists", || {
        let pod = get(&cluster, "pods", "lab", "needs-secret");
        async move { pod.filter(|p| p["status"]["phase"] == "Running") }
    })
    .await;
    let uid = running["metadata"]["uid"].as_str().unwrap();
    let log = kubesim::kubelet::log_path(&sim.kubesim().state_dir, "lab", "needs-secret", uid, "main");
    until(5, "the secret value in the log", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        async move { text.contains("t0k3n").then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_restart_with_back_off_and_policies_end_pods() {
    let sim = sim().await;
    let cluster = sim.kubesim().cluster.clone();
    namespace(&cluster, "jobs");
    let pod = |name: &str, policy: &str, script: &str| {
        json!({
            "metadata": {"name": name},
            "spec": {"restartPolicy": policy, "automountServiceAccountToken": false,
                "containers": [{"name": "main", "image": SH, "args": ["-c", script]}]},
        })
    };
    create(&cluster, "pods", Some("jobs"), pod("crasher", "Always", "echo crashing; exit 3"));
    create(&cluster, "pods", Some("jobs"), pod("ok", "Never", "exit 0"));
    create(&cluster, "pods", Some("jobs"), pod("fails", "Never", "exit 7"));
    create(&cluster, "pods", Some("jobs"), pod("retry", "OnFailure", "test -f marker && exit 0; touch marker; exit 1"));

    let phase = |name: &'static str, want: &'static str| {
        let cluster = cluster.clone();
        move || {
            let pod = get(&cluster, "pods", "jobs", name);
            async move { pod.filter(|p| p["status"]["phase"] == want) }
        }
    };
    until(10, "the pod exiting 0 to succeed", phase("ok", "Succeeded")).await;
    let failed = until(10, "the pod exiting 7 to fail", phase("fails", "Failed")).await;
    assert_eq!(failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 7);
    assert_eq!(condition(&failed, "Ready").as_deref(), Some("False"));
    // The working directory is the pod's own: the second run finds the marker of the first.
    let retried = until(10, "OnFailure to retry then succeed", phase("retry", "Succeeded")).await;
    assert_eq!(retried["status"]["containerStatuses"][0]["restartCount"], 1);

    let crasher = until(15, "two restarts of the crashing container", || {
        let pod = get(&cluster, "pods", "jobs", "crasher");
        async move { pod.filter(|p| p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(2)) }
    })
    .await;
    let cs = &crasher["status"]["containerStatuses"][0];
    assert_eq!(crasher["status"]["phase"], "Running");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    until(10, "CrashLoopBackOff", || {
        let pod = get(&cluster, "pods", "jobs", "crasher");
        async move {
            pod.filter(|p| p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff")
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_exec_inside_the_container_and_liveness_failures_restart_it() {
    let sim = sim().await;
    let cluster = sim.kubesim().cluster.clone();
    namespace(&cluster, "live");
    create(&cluster, "secrets", Some("live"), json!({"metadata": {"name": "keys"}, "stringData": {"password": "x"}}));
    // The exec probe sees the container's mounts: the file exists only in its mount namespace.
    let mut exec = web_pod("exec");
    exec["spec"]["containers"][0]["readinessProbe"] =
        json!({"exec": {"command": ["cat", "/etc/pinak/keys/password"]}, "periodSeconds": 1});
    create(&cluster, "pods", Some("live"), exec);
    until(20, "ready through the exec probe", || {
        let pod = get(&cluster, "pods", "live", "exec");
        async move { pod.filter(|p| condition(p, "Ready").as_deref() == Some("True")) }
    })
    .await;

    let mut pod = web_pod("sick");
    pod["spec"]["containers"][0]["livenessProbe"] = json!({
        "httpGet": {"path": "/missing", "port": 8080},
        "periodSeconds": 1,
        "failureThreshold": 2,
        "terminationGracePeriodSeconds": 1,
    });
    create(&cluster, "pods", Some("live"), pod);
    let restarted = until(20, "a restart after liveness failures", || {
        let pod = get(&cluster, "pods", "live", "sick");
        async move { pod.filter(|p| p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1)) }
    })
    .await;
    // Killed by SIGTERM: 128 + 15.
    assert_eq!(restarted["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 143);
}

fn resource_type(cluster: &Cluster, group: &str, resource: &str) -> kubesim::resources::ResourceType {
    cluster.registry().find_gr(&GroupResource::new(group, resource)).cloned().expect("a built-in resource")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_becomes_ready_and_rolls_to_a_new_template() {
    let sim = sim().await;
    let cluster = sim.kubesim().cluster.clone();
    namespace(&cluster, "app");
    create(&cluster, "secrets", Some("app"), json!({"metadata": {"name": "keys"}, "stringData": {"password": "v1"}}));
    let mut template = web_pod("ignored");
    template["metadata"] = json!({"labels": {"app": "web"}, "annotations": {"rev": "1"}});
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template},
    });
    let deployments = resource_type(&cluster, "apps", "deployments");
    cluster.create(&Ctx::system("test"), &deployments, Some("app"), deployment).unwrap();
    let svc = create(
        &cluster,
        "services",
        Some("app"),
        json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }),
    );
    let svc_addr = format!("{}:80", svc["spec"]["clusterIP"].as_str().unwrap());
    let ready = |want: i64| {
        let cluster = cluster.clone();
        move || {
            let d = cluster.get_raw(&GroupResource::new("apps", "deployments"), Some("app"), "web");
            async move {
                d.filter(|d| {
                    d["status"]["readyReplicas"].as_i64() == Some(want) && d["status"]["updatedReplicas"] == want
                })
            }
        }
    };
    until(30, "2 ready replicas", ready(2)).await;
    let password = |addr: String| async move { http_get(&addr, "/file/etc/pinak/keys/password").await };
    assert_eq!(password(svc_addr.clone()).await.as_deref(), Some("v1"));

    // A new template (as a chart's checksum annotation does on a config change) rolls the pods.
    let pods_before: Vec<String> = cluster
        .list_raw(&GroupResource::new("", "pods"), Some("app"))
        .iter()
        .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
        .collect();
    let secrets = resource_type(&cluster, "", "secrets");
    let patch = json!({"data": {"password": b64("v2")}}).to_string();
    cluster
        .patch(&Ctx::system("test"), &secrets, Some("app"), "keys", PatchType::Merge, patch.as_bytes(), false, None)
        .unwrap();
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}}).to_string();
    cluster
        .patch(&Ctx::system("test"), &deployments, Some("app"), "web", PatchType::Merge, patch.as_bytes(), false, None)
        .unwrap();
    until(30, "only new pods left", || {
        let pods = cluster.list_raw(&GroupResource::new("", "pods"), Some("app"));
        let old = pods.iter().any(|p| pods_before.iter().any(|u| p["metadata"]["uid"] == u.as_str()));
        async move { (pods.len() == 2 && !old).then_some(()) }
    })
    .await;
    until(30, "2 ready replicas of the new template", ready(2)).await;
    for _ in 0..4 {
        assert_eq!(password(svc_addr.clone()).await.as_deref(), Some("v2"), "every backend has the new Secret");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_served_cut_and_followed() {
    let sim = sim().await;
    let cluster = sim.kubesim().cluster.clone();
    namespace(&cluster, "logs");
    create(
        &cluster,
        "pods",
        Some("logs"),
        json!({
            "metadata": {"name": "talker"},
            "spec": {"restartPolicy": "Never", "automountServiceAccountToken": false, "containers": [{
                "name": "main", "image": SH, "args": ["-c", "echo one; echo two >&2; sleep 0.5; echo three"],
            }]},
        }),
    );
    let running = until(10, "the pod to run", || {
        let pod = get(&cluster, "pods", "logs", "talker");
        async move { pod.filter(|p| p["status"]["phase"] == "Running") }
    })
    .await;
    let query = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let read = |pod: Value, q: std::collections::HashMap<String, String>| {
        let (cluster, dir) = (cluster.clone(), sim.kubesim().state_dir.clone());
        async move {
            let body = kubesim::kubelet::logs::body(cluster, &dir, &pod, &q).unwrap();
            String::from_utf8(axum::body::to_bytes(body, usize::MAX).await.unwrap().to_vec()).unwrap()
        }
    };
    // Following from the start returns once the pod has finished, with all of its output.
    let followed = read(running, query(&[("follow", "true")])).await;
    assert_eq!(followed, "one\ntwo\nthree\n");
    let done = get(&cluster, "pods", "logs", "talker").unwrap();
    assert_eq!(done["status"]["phase"], "Succeeded");
    assert_eq!(read(done.clone(), query(&[("tailLines", "1")])).await, "three\n");
    assert_eq!(read(done, query(&[("limitBytes", "5")])).await, "one\nt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_process_with_sigterm_first() {
    use kubesim::kubelet::{self, KubeletConfig};
    use std::sync::Arc;
    // A kubelet on a bare cluster, to hold its handle (`kubesim::start` keeps its own).
    let cluster = Arc::new(Cluster::new());
    kubesim::controllers::bootstrap(&cluster, "CA");
    let state_dir = std::env::temp_dir().join(format!("kubesim-shutdown-{}", uuid::Uuid::new_v4().simple()));
    let kubelet = kubelet::spawn(
        cluster.clone(),
        KubeletConfig {
            images: vec![(SH.into(), PathBuf::from("/bin/sh"))],
            state_dir: state_dir.clone(),
            api_address: "127.0.0.1:6443".parse().unwrap(),
            ca_pem: "CA".into(),
            auth: Arc::new(kubesim::auth::Authenticator::generate().unwrap()),
        },
    );
    let script = "trap 'echo got TERM; exit 0' TERM; echo started; while :; do sleep 0.1; done";
    create(
        &cluster,
        "pods",
        Some("default"),
        json!({
            "metadata": {"name": "loop"},
            "spec": {"automountServiceAccountToken": false,
                "containers": [{"name": "main", "image": SH, "args": ["-c", script]}]},
        }),
    );
    let pod = until(10, "the pod to run", || {
        let pod = get(&cluster, "pods", "default", "loop");
        async move { pod.filter(|p| p["status"]["phase"] == "Running") }
    })
    .await;
    let id = pod["status"]["containerStatuses"][0]["containerID"].as_str().unwrap().to_owned();
    let pid: u32 = id.strip_prefix("kubesim://").unwrap().parse().unwrap();
    let log = kubelet.log_path("default", "loop", pod["metadata"]["uid"].as_str().unwrap(), "main");
    until(5, "the script to start", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        async move { text.contains("started").then_some(()) }
    })
    .await;
    kubelet.shutdown().await;
    assert!(std::fs::read_to_string(&log).unwrap().contains("got TERM"), "SIGTERM came first");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the process is gone");
    assert!(get(&cluster, "pods", "default", "loop").is_some(), "pods stay in the store");
    std::fs::remove_dir_all(&state_dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_credentials_reach_the_api_server() {
    let sim = sim().await;
    let cluster = sim.kubesim().cluster.clone();
    namespace(&cluster, "incluster");
    // What an in-cluster client (kube-rs, client-go) does: the service-account directory and
    // the KUBERNETES_SERVICE_* variables, over TLS checked against ca.crt.
    let script = r#"SA=/var/run/secrets/kubernetes.io/serviceaccount
for path in /version /api/v1/namespaces/$(cat $SA/namespace)/pods/$HOSTNAME; do
  curl -sS --cacert $SA/ca.crt -H "Authorization: Bearer $(cat $SA/token)" -o /dev/null -w "$path %{http_code}\n" \
    "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT$path"
done
sleep 30"#;
    let pod = create(
        &cluster,
        "pods",
        Some("incluster"),
        json!({
            "metadata": {"name": "client"},
            "spec": {"containers": [{"name": "main", "image": SH, "args": ["-c", script]}]},
        }),
    );
    let log = kubesim::kubelet::log_path(
        &sim.kubesim().state_dir,
        "incluster",
        "client",
        pod["metadata"]["uid"].as_str().unwrap(),
        "main",
    );
    let text = until(15, "both answers", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        async move { (text.lines().count() >= 2).then_some(text) }
    })
    .await;
    assert!(text.contains("/version 200"), "{text}");
    // Authenticated as the pod's service account, which RBAC lets read nothing (401 would mean
    // the token was refused).
    assert!(text.contains("/pods/client 403"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_clients_read_logs_and_finalizers_hold_a_stopped_pod() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, LogParams};
    let sim = sim().await;
    let cluster = sim.kubesim().cluster.clone();
    namespace(&cluster, "cli");
    create(
        &cluster,
        "pods",
        Some("cli"),
        json!({
            "metadata": {"name": "talker", "finalizers": ["example.com/hold"]},
            "spec": {"automountServiceAccountToken": false, "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": SH, "args": ["-c", "echo one; echo two; sleep 30"]}]},
        }),
    );
    let pods: Api<Pod> = Api::namespaced(common::kube_client(&sim).await, "cli");
    let text = until(10, "the log through the API", || {
        let pods = pods.clone();
        async move { pods.logs("talker", &LogParams::default()).await.ok().filter(|t| t.contains("two")) }
    })
    .await;
    assert_eq!(text, "one\ntwo\n");
    assert_eq!(pods.logs("talker", &LogParams { tail_lines: Some(1), ..Default::default() }).await.unwrap(), "two\n");
    let err =
        pods.logs("talker", &LogParams { container: Some("nope".into()), ..Default::default() }).await.unwrap_err();
    assert!(err.to_string().contains("container nope is not valid for pod talker"), "{err}");

    // Deleted with a finalizer: the process stops and the pod ends Failed, then stays until the
    // finalizer goes.
    let rt = resource_type(&cluster, "", "pods");
    cluster.delete(&Ctx::system("test"), &rt, Some("cli"), "talker", &DeleteOptions::default()).unwrap();
    until(10, "the stopped pod held by its finalizer", || {
        let pod = get(&cluster, "pods", "cli", "talker");
        async move { pod.filter(|p| p["status"]["phase"] == "Failed") }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(get(&cluster, "pods", "cli", "talker").is_some(), "held by the finalizer");
    let patch = json!({"metadata": {"finalizers": null}}).to_string();
    cluster
        .patch(&Ctx::system("test"), &rt, Some("cli"), "talker", PatchType::Merge, patch.as_bytes(), false, None)
        .unwrap();
    assert!(get(&cluster, "pods", "cli", "talker").is_none(), "gone with its finalizer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_binary_under_a_mounted_over_directory_still_starts() {
    // The binary lives under /tmp, and the pod mounts an emptyDir at /tmp (as read-only-root
    // pods do): the exec must not look the binary up inside the container's mounts. The
    // test's state directory is under /tmp too, so the Secret volume's source is hidden once
    // /tmp is mounted over: it must be bound by descriptor, not by path.
    let dir = std::env::temp_dir().join(format!("kubesim-hidden-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("sh");
    std::fs::copy("/bin/sh", &bin).unwrap();
    let sim = Sim::start_with(vec![("hidden".into(), bin)]).await;
    let cluster = sim.kubesim().cluster.clone();
    namespace(&cluster, "tmp");
    let secret = json!({"metadata": {"name": "keys"}, "stringData": {"k1.pem": "key"}});
    create(&cluster, "secrets", Some("tmp"), secret);
    let pod = json!({
        "metadata": {"name": "under-tmp"},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": false,
            "containers": [{"name": "main", "image": "hidden", "args": ["-c", "test -d /tmp && ! test -e /tmp/kubesim-hidden-* && test \"$(cat /etc/keys/k1.pem)\" = key && exit 0; exit 9"],
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "keys", "mountPath": "/etc/keys", "readOnly": true}]}],
            "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "keys", "secret": {"secretName": "keys"}}]},
    });
    create(&cluster, "pods", Some("tmp"), pod);
    let done = until(10, "the pod to finish", || {
        let pod = get(&cluster, "pods", "tmp", "under-tmp");
        async move { pod.filter(|p| matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))) }
    })
    .await;
    assert_eq!(done["status"]["phase"], "Succeeded", "{}", done["status"]);
    let _ = std::fs::remove_dir_all(&dir);
}
