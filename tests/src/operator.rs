//! Harness of the operator's end-to-end scenarios (`operator_*.rs`): kubesim with the pinak
//! image mapped to the real `pinak-api` binary and the CRD installed, the real `pinak-operator`
//! binary as a local process (KUBECONFIG), the shared Postgres. With `PINAK_E2E_KUBECONFIG`
//! set, the same on that cluster: its nodes run `PINAK_E2E_API_IMAGE` (built from the
//! Dockerfile) and the stores use `PINAK_E2E_DATABASE_URL`, which the test host and the pods
//! both reach; the operator still runs on the test host, so that tests can kill and restart it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use kubesim::testing::{Sim, external_kubeconfig, repo_root, required_for_external_cluster};
use serde_json::{Value, json};

/// The image name the scenarios map to the `pinak-api` binary on kubesim.
pub const API_IMAGE: &str = "pinak:e2e";

/// The image of the stores' pods: [`API_IMAGE`] on kubesim, `PINAK_E2E_API_IMAGE` on a real
/// cluster.
pub fn api_image() -> String {
    match external_kubeconfig() {
        Some(_) => required_for_external_cluster("PINAK_E2E_API_IMAGE", "the image built from the Dockerfile"),
        None => API_IMAGE.to_owned(),
    }
}

/// The admin URL of the Postgres the stores use: the shared test cluster on kubesim,
/// `PINAK_E2E_DATABASE_URL` on a real cluster (its pods cannot reach the test host's loopback).
pub fn admin_url() -> String {
    match external_kubeconfig() {
        Some(_) => required_for_external_cluster(
            "PINAK_E2E_DATABASE_URL",
            "a Postgres admin URL that the test host and the cluster's pods both reach",
        ),
        None => std::env::var("PINAK_TEST_DATABASE_URL")
            .expect("PINAK_TEST_DATABASE_URL is not set: run the suite with scripts/test"),
    }
}

/// A binary of this workspace, built beside the test executable.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is not built: run the suite with scripts/test (or cargo build -p {name})",
        bin.display()
    );
    bin
}

/// The operator as a local process talking to the cluster with the admin kubeconfig; killed
/// when dropped.
pub struct Operator {
    child: Child,
    /// Its stdout and stderr (JSON log lines).
    pub log: PathBuf,
}

impl Operator {
    /// The process has not exited (crashed or stopped) so far.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process (SIGKILL: no graceful shutdown, like a crashed or evicted pod).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (a graceful stop, as on a pod's deletion) and waits up to `secs` for the
    /// process to exit; true if it exited with success.
    pub fn terminate(mut self, secs: u64) -> bool {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {}", self.child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The operator with its default settings, logging to `operator.log` in the cluster's dir.
pub fn start_operator(sim: &Sim) -> Operator {
    start_operator_with(sim, "operator.log", &[])
}

/// The operator with extra environment (`env` overrides the defaults), logging to
/// `log_name` in the cluster's directory.
pub fn start_operator_with(sim: &Sim, log_name: &str, env: &[(&str, &str)]) -> Operator {
    let log = sim.dir.join(log_name);
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(workspace_bin("pinak-operator"));
    cmd.arg("run")
        .env("KUBECONFIG", sim.kubeconfig())
        .env("PINAK_OPERATOR_LISTEN", "127.0.0.1:0")
        .env("PINAK_OPERATOR_API_IMAGE", api_image())
        .env("RUST_LOG", "info,vaultrs=off,rustify=off");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child =
        cmd.stdout(file.try_clone().unwrap()).stderr(file).stdin(Stdio::null()).spawn().expect("pinak-operator starts");
    Operator { child, log }
}

/// Every operator log of this cluster, for failure messages.
pub fn operator_logs(sim: &Sim) -> String {
    let mut out = String::new();
    let mut files: Vec<_> =
        std::fs::read_dir(&sim.dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.starts_with("operator") && name.ends_with(".log") {
            out += &format!("--- {name}\n{}\n", std::fs::read_to_string(&f).unwrap_or_default());
        }
    }
    out
}

/// On a real cluster, the test's stores are deleted before their namespaces, by an operator
/// started for that: their finalizers (dropping the schemas of `reclaimPolicy: Delete`) need
/// one, the test's own operators are gone by then, and they need their admin Secret, which
/// deleting the namespace would delete alongside them. A store that cannot drop its data (its
/// database or Vault unreachable) is let go as the operator documents it: `reclaimPolicy:
/// Retain`.
pub fn operator_during_cleanup(sim: &Sim) {
    sim.set_cleanup_helper(|sim, namespaces| {
        let operator = start_operator_with(sim, "operator-cleanup.log", &[]);
        for ns in namespaces {
            let delete = ["-n", ns, "delete", "memorystores", "--all", "--timeout=15s"];
            if sim.kubectl(&delete, None).status.success() {
                continue;
            }
            let left = sim.kubectl(&["-n", ns, "get", "memorystores", "-o", "name"], None);
            for store in String::from_utf8_lossy(&left.stdout).lines() {
                eprintln!("{ns}/{store} cannot drop its data; letting it go with reclaimPolicy Retain");
                let retain = r#"{"spec":{"database":{"reclaimPolicy":"Retain"}}}"#;
                sim.kubectl(&["-n", ns, "patch", store, "--type=merge", "-p", retain], None);
            }
            if !sim.kubectl(&delete, None).status.success() {
                eprintln!("the stores of {ns} are still there; their namespace may stay Terminating");
            }
        }
        Box::new(operator)
    });
}

/// kubesim with the pinak image mapped and the CRD established (no operator yet); returns
/// the admin URL of the shared Postgres too.
pub async fn cluster() -> (Sim, String) {
    let admin_url = admin_url();
    let sim = Sim::scenario_with(vec![(API_IMAGE.into(), workspace_bin("pinak-api"))]).await;
    operator_during_cleanup(&sim);
    let crd = repo_root().join("crds/memorystore.yaml");
    sim.kubectl_ok(&["apply", "-f", crd.to_str().unwrap()], None);
    sim.kubectl_ok(&["wait", "--for=condition=Established", "crd/memorystores.pinak.dev", "--timeout=20s"], None);
    (sim, admin_url)
}

/// [`cluster`] with the operator running.
pub async fn cluster_with_operator() -> (Sim, Operator, String) {
    let (sim, admin_url) = cluster().await;
    let operator = start_operator(&sim);
    (sim, operator, admin_url)
}

/// Claims of a read+write agent of `tenant`, as the store's API expects them.
pub fn agent_claims(tenant: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": "agent-1", "tenant": tenant, "project_id": "p1", "client_id": "client-a",
        "iss": "pinak-memory", "aud": "pinak-memory-api", "iat": now, "exp": now + 600,
        "jti": uuid::Uuid::new_v4().to_string(), "scopes": ["memory.read", "memory.write"], "roles": ["agent"],
    })
}

/// A token for `tenant` signed with `secret` (HS256, no `kid`).
pub fn token(secret: &[u8], tenant: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &agent_claims(tenant),
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// MemoryStore `notes` in `ns`, admin credentials from Secret `pg-admin`, `extra` appended
/// to the spec (indented by two spaces).
pub fn store_manifest(ns: &str, replicas: i64, extra: &str) -> String {
    format!(
        r#"
apiVersion: pinak.dev/v1alpha1
kind: MemoryStore
metadata: {{name: notes, namespace: {ns}}}
spec:
  database:
    adminCredentials: {{secretRef: {{name: pg-admin}}}}
    reclaimPolicy: Delete
  embedding: {{backend: dummy}}
  api: {{replicas: {replicas}}}
{extra}"#
    )
}

/// A new namespace `<prefix>-<random>` (deleted at the end on a real cluster); returns its name.
pub fn new_namespace(sim: &Sim, prefix: &str) -> String {
    let ns = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    sim.create_namespace(&ns);
    ns
}

/// A namespace with the admin Secret `pg-admin`; returns its name.
pub fn tenant_namespace(sim: &Sim, admin_url: &str) -> String {
    let ns = new_namespace(sim, "e2e");
    sim.kubectl_ok(
        &["-n", &ns, "create", "secret", "generic", "pg-admin", &format!("--from-literal=url={admin_url}")],
        None,
    );
    ns
}

/// Sets key `url` of Secret `name` in `ns`.
pub fn set_secret_url(sim: &Sim, ns: &str, name: &str, url: &str) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(url);
    let patch = json!({"data": {"url": encoded}}).to_string();
    sim.kubectl_ok(&["-n", ns, "patch", "secret", name, "--type=merge", "-p", &patch], None);
}

/// Waits for `kubectl wait --for=condition=Ready` on store `notes`; returns the store.
pub fn wait_ready(sim: &Sim, ns: &str) -> Value {
    let waited = sim.kubectl(&["-n", ns, "wait", "--for=condition=Ready", "memorystore/notes", "--timeout=120s"], None);
    if !waited.status.success() {
        let status = sim.kubectl_ok(&["-n", ns, "get", "memorystore", "notes", "-o", "yaml"], None);
        panic!(
            "store not Ready: {}\n{status}\noperator log:\n{}",
            String::from_utf8_lossy(&waited.stderr),
            operator_logs(sim)
        );
    }
    sim.kubectl_json(&["-n", ns, "get", "memorystore", "notes"])
}

/// The condition `type_` of MemoryStore `name`, if reported.
pub fn condition(sim: &Sim, ns: &str, name: &str, type_: &str) -> Option<Value> {
    let store = sim.kubectl_json(&["-n", ns, "get", "memorystore", name]);
    store["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_).cloned()
}

/// Polls until condition `type_` of store `name` has `status` and `reason`; returns it.
pub async fn wait_condition(sim: &Sim, ns: &str, name: &str, type_: &str, status: &str, reason: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let c = condition(sim, ns, name, type_);
        if let Some(c) = &c
            && c["status"] == status
            && c["reason"] == reason
        {
            return c.clone();
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "{ns}/{name}: condition {type_} is not {status}/{reason} after 90s: {c:?}\noperator log:\n{}",
                operator_logs(sim)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Key `key` of store `notes`'s operator-owned Secret, decoded.
pub fn store_secret(sim: &Sim, ns: &str, key: &str) -> Vec<u8> {
    let secret = sim.kubectl_json(&["-n", ns, "get", "secret", "notes-pinak"]);
    let encoded = secret["data"][key].as_str().unwrap_or_else(|| panic!("Secret notes-pinak has no key {key}"));
    base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()
}

/// The store's JWT signing secret, from the operator-owned Secret.
pub fn store_jwt_secret(sim: &Sim, ns: &str) -> Vec<u8> {
    store_secret(sim, ns, "jwt-secret")
}

/// Base URL of the memory API through the store's Service (see [`crate::service`]).
pub fn service_base(sim: &Sim, ns: &str) -> String {
    format!("{}/api/v1/memory", crate::service::service_url(sim, ns, "notes", 80))
}

/// Requests made neither by kubectl nor by the test itself (so, the operators'), from entry
/// `from` of the request log on.
pub fn operator_requests(sim: &Sim, from: usize) -> Vec<Value> {
    sim.requests()
        .into_iter()
        .skip(from)
        .filter(|r| {
            let agent = r["userAgent"].as_str().unwrap_or_default();
            !agent.starts_with("kubectl") && !agent.starts_with(crate::service::USER_AGENT)
        })
        .collect()
}

/// Whether a logged request changes something.
pub fn is_write(r: &Value) -> bool {
    matches!(r["verb"].as_str(), Some("create" | "update" | "patch" | "delete" | "deletecollection"))
}

/// Writes not made by kubectl (the operators'), from entry `from` of the request log on.
pub fn operator_writes(sim: &Sim, from: usize) -> Vec<Value> {
    operator_requests(sim, from).into_iter().filter(is_write).collect()
}

/// The pods of `ns` as (name, uid, restarts), sorted: equal snapshots mean no pod was
/// replaced or restarted.
pub fn pods(sim: &Sim, ns: &str) -> Vec<(String, String, i64)> {
    let list = sim.kubectl_json(&["-n", ns, "get", "pods"]);
    let mut pods: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let restarts = p["status"]["containerStatuses"]
                .as_array()
                .map(|cs| cs.iter().filter_map(|c| c["restartCount"].as_i64()).sum())
                .unwrap_or(0);
            (
                p["metadata"]["name"].as_str().unwrap().to_owned(),
                p["metadata"]["uid"].as_str().unwrap().to_owned(),
                restarts,
            )
        })
        .collect();
    pods.sort();
    pods
}

/// How many ReplicaSets `ns` has: one more after each rollout.
pub fn replica_sets(sim: &Sim, ns: &str) -> usize {
    sim.kubectl_json(&["-n", ns, "get", "replicasets"])["items"].as_array().unwrap().len()
}
