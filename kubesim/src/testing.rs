//! Harness for scenario tests (here and in other crates' tests): a fresh kubesim per test,
//! started in-process (it starts in milliseconds), and the real kubectl and Helm binaries that
//! `scripts/test` installs.
//!
//! Scenario tests start their cluster with [`Sim::scenario_with`]: with `PINAK_E2E_KUBECONFIG`
//! set, that is the cluster the kubeconfig points at instead of a kubesim (see
//! [`external_kubeconfig`]); kubesim's own tests use [`Sim::start_with`], which always starts
//! one.

use std::any::Any;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

/// Names a real cluster's kubeconfig: scenario tests then run there (see the README's "Running
/// the scenarios on a real cluster").
pub const E2E_KUBECONFIG: &str = "PINAK_E2E_KUBECONFIG";

/// What [`Sim::set_cleanup_helper`] runs, and keeps running, while the namespaces of a test go.
type CleanupHelper = Box<dyn Fn(&Sim, &[String]) -> Box<dyn Any> + Send + Sync>;

pub struct Sim {
    /// The in-process kubesim; None on an external cluster (see [`Sim::kubesim`]).
    pub running: Option<crate::Running>,
    /// Scratch directory of this test (logs, files handed to tools).
    pub dir: PathBuf,
    /// kubesim's request log (see [`Sim::requests`]).
    pub log: PathBuf,
    kubeconfig: PathBuf,
    external: Option<External>,
}

/// A test's hold on an external cluster: the lock that gives it the cluster to itself, and
/// what it must remove from the cluster when it ends (a real cluster outlives the test).
struct External {
    _lock: std::fs::File,
    namespaces: Mutex<Vec<String>>,
    /// kubectl arguments (and stdin) run at the end, last registered first.
    cleanup: Mutex<Vec<(Vec<String>, Option<String>)>>,
    helper: Mutex<Option<CleanupHelper>>,
}

/// A tool `scripts/test` installs; the tests refuse to run (loudly) without it.
pub fn tool(env: &str) -> PathBuf {
    let p = std::env::var(env)
        .unwrap_or_else(|_| panic!("{env} is not set: run the suite with scripts/test (it installs kubectl and Helm)"));
    PathBuf::from(p)
}

/// The kubeconfig of `PINAK_E2E_KUBECONFIG`, when scenario tests are to run on that cluster.
pub fn external_kubeconfig() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os(E2E_KUBECONFIG).filter(|v| !v.is_empty())?);
    assert!(
        path.is_absolute() && path.is_file(),
        "{E2E_KUBECONFIG}={} must be the absolute path of a kubeconfig file (tests run in their crate's directory)",
        path.display()
    );
    Some(path)
}

/// For a test that cannot run at all on a real cluster: true (after printing `why`) when
/// `PINAK_E2E_KUBECONFIG` is set, so the test returns before starting anything.
pub fn skip_on_external_cluster(why: &str) -> bool {
    let external = external_kubeconfig().is_some();
    if external {
        eprintln!("skipped on a real cluster: {why}");
    }
    external
}

/// The environment variable `name`, which a scenario needs on a real cluster.
pub fn required_for_external_cluster(name: &str, what: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!("{name} is not set: with {E2E_KUBECONFIG} set, the scenarios need {what} (see the README's \"Running the scenarios on a real cluster\")")
    })
}

impl Sim {
    /// A fresh kubesim.
    pub async fn start() -> Sim {
        Self::start_with(Vec::new()).await
    }

    /// A fresh kubesim whose kubelet runs `images` (name → local binary).
    pub async fn start_with(images: Vec<(String, PathBuf)>) -> Sim {
        // The workspace enables both of rustls's providers (reqwest brings aws-lc-rs), so the
        // kube client's process-wide default must be chosen once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = scratch_dir();
        let log = dir.join("requests.jsonl");
        let mut cfg = crate::Config::new(dir.join("kubeconfig"));
        cfg.request_log = Some(log.clone());
        cfg.state_dir = Some(dir.join("state"));
        cfg.images = images;
        let running = crate::start(cfg).await.expect("kubesim starts");
        let kubeconfig = running.kubeconfig.clone();
        Sim { running: Some(running), dir, log, kubeconfig, external: None }
    }

    /// The cluster of a scenario test: [`Sim::scenario_with`] without images.
    pub async fn scenario() -> Sim {
        Self::scenario_with(Vec::new()).await
    }

    /// The cluster of a scenario test: a fresh kubesim running `images`, or, with
    /// `PINAK_E2E_KUBECONFIG` set, that cluster (`images` are ignored: its nodes pull real
    /// ones). An external cluster is held by one test at a time (a lock file per API server on
    /// this machine), since each scenario's operator watches every namespace; what the test
    /// creates through [`Sim::create_namespace`] and [`Sim::on_cleanup`] is removed when the
    /// Sim is dropped.
    pub async fn scenario_with(images: Vec<(String, PathBuf)>) -> Sim {
        let Some(kubeconfig) = external_kubeconfig() else { return Self::start_with(images).await };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = api_server_of(&kubeconfig).0;
        let lock_path = std::env::temp_dir().join(format!("pinak-e2e-{}.lock", short_hash(&server)));
        let lock = std::fs::File::create(&lock_path)
            .unwrap_or_else(|e| panic!("cannot create the cluster lock {}: {e}", lock_path.display()));
        if lock.try_lock().is_err() {
            eprintln!("waiting for {} (another scenario is using {server})", lock_path.display());
            lock.lock().unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
        }
        let dir = scratch_dir();
        let external =
            External { _lock: lock, namespaces: Mutex::default(), cleanup: Mutex::default(), helper: Mutex::default() };
        Sim { running: None, log: dir.join("requests.jsonl"), dir, kubeconfig, external: Some(external) }
    }

    /// On a cluster of `PINAK_E2E_KUBECONFIG`, not a kubesim.
    pub fn external(&self) -> bool {
        self.external.is_some()
    }

    /// The in-process kubesim; panics on an external cluster.
    pub fn kubesim(&self) -> &crate::Running {
        self.running.as_ref().expect("this needs kubesim itself; on a real cluster, guard it with Sim::kubesim_only")
    }

    /// For checks only kubesim allows (its request log, fault injection): true on kubesim; on a
    /// real cluster prints that `what` is not checked and returns false.
    pub fn kubesim_only(&self, what: &str) -> bool {
        if self.external() {
            eprintln!("not checked on a real cluster: {what}");
        }
        !self.external()
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL and the CA that signs its certificate (PEM; None when the
    /// kubeconfig names none, i.e. a publicly trusted one), from the kubeconfig's current
    /// context.
    pub fn api_server(&self) -> (String, Option<String>) {
        api_server_of(&self.kubeconfig)
    }

    /// Creates namespace `name`; on an external cluster it is deleted when the Sim is dropped.
    pub fn create_namespace(&self, name: &str) {
        self.kubectl_ok(&["create", "namespace", name], None);
        self.adopt_namespace(name);
    }

    /// A namespace something else created for this test (e.g. `helm install
    /// --create-namespace`): on an external cluster it is deleted when the Sim is dropped.
    pub fn adopt_namespace(&self, name: &str) {
        if let Some(ext) = &self.external {
            let mut list = ext.namespaces.lock().unwrap_or_else(|e| e.into_inner());
            if !list.iter().any(|n| n == name) {
                list.push(name.to_owned());
            }
        }
    }

    /// On an external cluster, runs `kubectl args` (with `stdin`) when the Sim is dropped,
    /// after the namespaces are gone: for what a test leaves outside its namespaces.
    pub fn on_cleanup(&self, args: &[&str], stdin: Option<&str>) {
        if let Some(ext) = &self.external {
            let args = args.iter().map(|a| (*a).to_owned()).collect();
            ext.cleanup.lock().unwrap_or_else(|e| e.into_inner()).push((args, stdin.map(str::to_owned)));
        }
    }

    /// What runs before the test's namespaces (given) are deleted on an external cluster, and
    /// what it returns is kept until they are gone: objects with finalizers (a MemoryStore's)
    /// need their controller, which the test may already have stopped, and may have to go
    /// before the rest of their namespace.
    pub fn set_cleanup_helper(&self, helper: impl Fn(&Sim, &[String]) -> Box<dyn Any> + Send + Sync + 'static) {
        if let Some(ext) = &self.external {
            *ext.helper.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(helper));
        }
    }

    fn command(&self, program: PathBuf) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("KUBECONFIG", self.kubeconfig());
        // A real cluster's kubeconfig may run a credential plugin that reads its own files
        // under the user's HOME (aws, gcloud); kubesim's needs nothing, so it gets a clean one.
        if !self.external() {
            cmd.env("HOME", &self.dir);
        }
        cmd
    }

    /// Runs the real kubectl against this cluster (blocking: call from spawn_blocking or
    /// a multi-threaded runtime).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run(self.command(tool("PINAK_KUBECTL")).args(args), stdin)
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
            self.command(tool(env))
                .args(args)
                .env("HELM_CACHE_HOME", self.dir.join("helm-cache"))
                .env("HELM_CONFIG_HOME", self.dir.join("helm-config"))
                .env("HELM_DATA_HOME", self.dir.join("helm-data")),
            None,
        )
    }

    /// The request log's lines (kubesim only: guard the caller with [`Sim::kubesim_only`]).
    pub fn requests(&self) -> Vec<Value> {
        assert!(
            !self.external(),
            "the request log is kubesim's; on a real cluster, guard this check with Sim::kubesim_only"
        );
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let Some(ext) = &self.external else { return };
        let namespaces = std::mem::take(&mut *ext.namespaces.lock().unwrap_or_else(|e| e.into_inner()));
        if !namespaces.is_empty() {
            let helper = ext.helper.lock().unwrap_or_else(|e| e.into_inner()).take();
            let _running = helper.map(|h| h(self, &namespaces));
            eprintln!("deleting the test's namespaces from the cluster: {namespaces:?}");
            let mut args = vec!["delete", "namespace", "--ignore-not-found", "--wait=true", "--timeout=180s"];
            args.extend(namespaces.iter().map(String::as_str));
            let out = self.kubectl(&args, None);
            if !out.status.success() {
                eprintln!("could not delete namespaces {namespaces:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        let cleanup = std::mem::take(&mut *ext.cleanup.lock().unwrap_or_else(|e| e.into_inner()));
        for (args, stdin) in cleanup.iter().rev() {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = self.kubectl(&args, stdin.as_deref());
            if !out.status.success() {
                eprintln!("cleanup kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kubesim-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn short_hash(s: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(s.as_bytes())[..6])
}

/// The server URL and CA (PEM) of the current context's cluster of kubeconfig `path`.
fn api_server_of(path: &Path) -> (String, Option<String>) {
    use base64::Engine;
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let kc: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    let named = |list: &str, name: &str| -> Value {
        kc[list].as_array().into_iter().flatten().find(|e| e["name"] == name).cloned().unwrap_or_default()
    };
    let context = named("contexts", kc["current-context"].as_str().unwrap_or_default());
    let cluster = match context["context"]["cluster"].as_str() {
        Some(c) => named("clusters", c),
        None => kc["clusters"][0].clone(),
    };
    let cluster = &cluster["cluster"];
    let server = cluster["server"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: the current context's cluster has no server", path.display()))
        .to_owned();
    let ca = if let Some(data) = cluster["certificate-authority-data"].as_str() {
        let pem = base64::engine::general_purpose::STANDARD.decode(data.trim()).expect("certificate-authority-data");
        Some(String::from_utf8(pem).expect("certificate-authority-data is PEM"))
    } else {
        cluster["certificate-authority"].as_str().map(|file| {
            let file = path.parent().unwrap_or(Path::new("/")).join(file);
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()))
        })
    };
    (server, ca)
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
        sim.on_cleanup(&["delete", "clusterrolebinding", &format!("{ns}-reviewer"), "--ignore-not-found"], None);
        let reviewer = sim.kubectl_ok(&["-n", ns, "create", "token", "reviewer"], None).trim().to_owned();
        let (server, ca_pem) = sim.api_server();
        self.ok(reqwest::Method::POST, &format!("sys/auth/{mount}"), serde_json::json!({"type": "kubernetes"})).await;
        let mut config = serde_json::json!({
            "kubernetes_host": server,
            "token_reviewer_jwt": reviewer,
            "disable_local_ca_jwt": true,
        });
        if let Some(ca) = ca_pem {
            config["kubernetes_ca_cert"] = serde_json::json!(ca);
        }
        self.ok(reqwest::Method::POST, &format!("auth/{mount}/config"), config).await;
    }
}
