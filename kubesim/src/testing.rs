//! Harness for scenario tests (here and in other crates' tests): a fresh kubesim per test,
//! started in-process (it starts in milliseconds), and the real kubectl and Helm binaries that
//! `scripts/test` installs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub struct Sim {
    pub running: crate::Running,
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// A tool `scripts/test` installs; the tests refuse to run (loudly) without it.
pub fn tool(env: &str) -> PathBuf {
    let p = std::env::var(env)
        .unwrap_or_else(|_| panic!("{env} is not set: run the suite with scripts/test (it installs kubectl and Helm)"));
    PathBuf::from(p)
}

impl Sim {
    pub async fn start() -> Sim {
        Self::start_with(Vec::new()).await
    }

    pub async fn start_with(images: Vec<(String, PathBuf)>) -> Sim {
        // The workspace enables both of rustls's providers (reqwest brings aws-lc-rs), so the
        // kube client's process-wide default must be chosen once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!("kubesim-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("requests.jsonl");
        let mut cfg = crate::Config::new(dir.join("kubeconfig"));
        cfg.request_log = Some(log.clone());
        cfg.state_dir = Some(dir.join("state"));
        cfg.images = images;
        let running = crate::start(cfg).await.expect("kubesim starts");
        Sim { running, dir, log }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.running.kubeconfig
    }

    /// Runs the real kubectl against this cluster (blocking: call from spawn_blocking or
    /// a multi-threaded runtime).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run(
            Command::new(tool("PINAK_KUBECTL")).args(args).env("KUBECONFIG", self.kubeconfig()).env("HOME", &self.dir),
            stdin,
        )
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl that must fail; returns stderr.
    pub fn kubectl_err(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&a, None)).expect("kubectl -o json prints JSON")
    }

    pub fn helm(&self, env: &str, args: &[&str]) -> Output {
        run(
            Command::new(tool(env))
                .args(args)
                .env("KUBECONFIG", self.kubeconfig())
                .env("HOME", &self.dir)
                .env("HELM_CACHE_HOME", self.dir.join("helm-cache"))
                .env("HELM_CONFIG_HOME", self.dir.join("helm-config"))
                .env("HELM_DATA_HOME", self.dir.join("helm-data")),
            None,
        )
    }

    /// The request log's lines.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Polls `f` until it returns Some, or panics after `secs` with `what`.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The OpenBao dev server `scripts/test` starts, called over its HTTP API with the root token.
pub struct OpenBao {
    pub addr: String,
    root: String,
    http: reqwest::Client,
}

impl OpenBao {
    pub fn from_env() -> Self {
        let addr = std::env::var("PINAK_TEST_VAULT_ADDR")
            .expect("PINAK_TEST_VAULT_ADDR is not set: run the suite with scripts/test");
        let root = std::env::var("PINAK_TEST_VAULT_TOKEN").expect("PINAK_TEST_VAULT_TOKEN is not set");
        OpenBao { addr, root, http: reqwest::Client::new() }
    }

    /// `method /v1/<path>` with `body`, as `token` (the root token when `None`).
    pub async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", token.unwrap_or(&self.root));
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("OpenBao answers");
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    /// Like [`OpenBao::call`] as root, asserting success.
    pub async fn ok(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let (code, answer) = self.call(method.clone(), path, None, body).await;
        assert!(code < 300, "OpenBao {method} {path}: {code} {answer}");
        answer
    }

    /// Enables the kubernetes auth method at `mount`, pointed at `sim`'s TokenReview with a
    /// fresh service account `reviewer` in `ns` bound to `system:auth-delegator`, as a platform
    /// team sets Vault up for a cluster.
    pub async fn enable_kubernetes_auth(&self, sim: &Sim, ns: &str, mount: &str) {
        use base64::Engine;
        sim.kubectl_ok(&["-n", ns, "create", "serviceaccount", "reviewer"], None);
        sim.kubectl_ok(
            &[
                "create",
                "clusterrolebinding",
                &format!("{ns}-reviewer"),
                "--clusterrole=system:auth-delegator",
                &format!("--serviceaccount={ns}:reviewer"),
            ],
            None,
        );
        let reviewer = sim.kubectl_ok(&["-n", ns, "create", "token", "reviewer"], None).trim().to_owned();
        let kubeconfig: Value = serde_yaml::from_str(&std::fs::read_to_string(sim.kubeconfig()).unwrap()).unwrap();
        let ca_b64 = kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"].as_str().unwrap();
        let ca_pem = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(ca_b64).unwrap()).unwrap();
        self.ok(reqwest::Method::POST, &format!("sys/auth/{mount}"), serde_json::json!({"type": "kubernetes"})).await;
        let config = serde_json::json!({
            "kubernetes_host": format!("https://{}", sim.running.address),
            "kubernetes_ca_cert": ca_pem,
            "token_reviewer_jwt": reviewer,
            "disable_local_ca_jwt": true,
        });
        self.ok(reqwest::Method::POST, &format!("auth/{mount}/config"), config).await;
    }
}
