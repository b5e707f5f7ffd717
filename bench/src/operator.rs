//! `pinak-bench operator`: the operator's reconcile benchmark (issue 15).
//!
//! Starts kubesim in-process (the pinak image mapped to the real `pinak-api` binary, the CRD
//! applied) and the real `pinak-operator` binary as a child process with `KUBECONFIG` pointing
//! at it. For each N: a fresh operator, N stores (one per namespace, dummy embeddings, one API
//! replica) applied in one `kubectl apply`, the time from that apply to each store's `Ready`
//! condition, the operator's CPU time and peak RSS, its requests to the API server in a quiet
//! window afterwards, then the deletion of every store (schemas dropped) before the next N.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kubesim::resources::GroupResource;
use kubesim::store::EventType;
use kubesim::testing::{Sim, repo_root};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::cpu::process_seconds;
use crate::report::Table;

/// The image name mapped to the `pinak-api` binary in kubesim.
const API_IMAGE: &str = "pinak:bench";
/// Marker label of the results section in docs/performance.md.
const DOC_LABEL: &str = "operator";
/// Below this much available memory the bench stops waiting for more stores (and says so).
const MIN_AVAILABLE_MIB: f64 = 1536.0;

pub const USAGE: &str = "usage: pinak-bench operator [--stores 1,10,100] [--steady-secs S] [--settle-secs S]
                            [--timeout-secs S] [--database-url URL] [--operator-bin PATH]
                            [--api-bin PATH] [--doc FILE] [--keep]

  --stores        store counts, one phase each (default 1,10,100)
  --steady-secs   quiet window after all stores are Ready in which the operator's requests are
                  counted (default 60)
  --settle-secs   wait between the last Ready and the quiet window (default 10)
  --timeout-secs  per phase, apply to all Ready (default 600)
  --database-url  Postgres admin URL the stores' Secret gets (default $PINAK_BENCH_DATABASE_URL,
                  else $PINAK_TEST_DATABASE_URL); store schemas ms_ob_* are created and dropped
  --operator-bin  default: pinak-operator beside this binary (same profile; build it first:
                  cargo build --release -p pinak-operator -p pinak-api -p pinak-bench)
  --api-bin       default: pinak-api beside this binary
  --doc           write the results section into FILE (docs/performance.md)
  --keep          keep kubesim's directory (logs, request log) afterwards
Needs $PINAK_KUBECTL (source .tools/env) and root (kubesim binds loopback addresses).";

struct Args {
    stores: Vec<usize>,
    steady: Duration,
    settle: Duration,
    timeout: Duration,
    database_url: String,
    operator_bin: PathBuf,
    api_bin: PathBuf,
    doc: Option<PathBuf>,
    keep: bool,
}

fn parse_args(argv: &[String]) -> Result<Args> {
    let beside = |name: &str| -> Result<PathBuf> {
        let exe = std::env::current_exe().context("path of pinak-bench")?;
        Ok(exe.parent().map(|d| d.join(name)).unwrap_or_else(|| PathBuf::from(name)))
    };
    let mut stores = vec![1, 10, 100];
    let mut steady = 60.0;
    let mut settle = 10.0;
    let mut timeout = 600.0;
    let mut database_url =
        std::env::var("PINAK_BENCH_DATABASE_URL").or_else(|_| std::env::var("PINAK_TEST_DATABASE_URL")).ok();
    let mut operator_bin = beside("pinak-operator")?;
    let mut api_bin = beside("pinak-api")?;
    let mut doc = None;
    let mut keep = false;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().with_context(|| format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--stores" => stores = parse_counts(&val()?)?,
            "--steady-secs" => steady = val()?.parse::<f64>()?,
            "--settle-secs" => settle = val()?.parse::<f64>()?,
            "--timeout-secs" => timeout = val()?.parse::<f64>()?,
            "--database-url" => database_url = Some(val()?),
            "--operator-bin" => operator_bin = PathBuf::from(val()?),
            "--api-bin" => api_bin = PathBuf::from(val()?),
            "--doc" => doc = Some(PathBuf::from(val()?)),
            "--keep" => keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let database_url = database_url.context(
        "no database: pass --database-url or set PINAK_BENCH_DATABASE_URL (scripts/stack.sh pg-start bench prints it)",
    )?;
    for bin in [&operator_bin, &api_bin] {
        if !bin.is_file() {
            bail!(
                "{} not found: build it in the bench's profile first (cargo build --release -p pinak-operator -p pinak-api -p pinak-bench)",
                bin.display()
            );
        }
    }
    if std::env::var_os("PINAK_KUBECTL").is_none() {
        bail!("PINAK_KUBECTL is not set: source .tools/env (scripts/stack.sh install puts kubectl there)");
    }
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    Ok(Args {
        stores,
        steady: secs(steady),
        settle: secs(settle),
        timeout: secs(timeout),
        database_url,
        operator_bin,
        api_bin,
        doc,
        keep,
    })
}

fn parse_counts(s: &str) -> Result<Vec<usize>> {
    let counts = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().parse::<usize>().with_context(|| format!("--stores: {p:?} is not a count")))
        .collect::<Result<Vec<_>>>()?;
    if counts.is_empty() || counts.contains(&0) || counts.iter().any(|&n| n > 240) {
        bail!("--stores takes counts from 1 to 240 (kubesim hands out 250 pod and Service addresses)");
    }
    Ok(counts)
}

/// Nearest-rank percentile of sorted `v` (p in 0..=100); NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A `kB` field of /proc/<pid>/status (e.g. `VmHWM`), in MiB.
fn status_kb_field(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.split(':').next() == Some(key))?;
    let kb: f64 = line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()?;
    Some(kb / 1024.0)
}

fn process_mib(pid: u32, key: &str) -> Option<f64> {
    status_kb_field(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?, key)
}

/// `MemAvailable` of the machine, in MiB.
fn available_mib() -> Option<f64> {
    status_kb_field(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemAvailable")
}

/// Resident memory (MiB) and count of every process running `bin` (the store pods' pinak-api:
/// the kubelet executes it through /proc/self/fd, so its `comm` is not its name).
fn processes_rss(bin: &Path) -> (f64, usize) {
    let Ok(target) = bin.canonicalize() else { return (0.0, 0) };
    let Ok(dir) = std::fs::read_dir("/proc") else { return (0.0, 0) };
    let mut total = 0.0;
    let mut n = 0;
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else { continue };
        // A binary rebuilt while it runs shows as "<path> (deleted)".
        if exe.to_string_lossy().trim_end_matches(" (deleted)") == target.to_string_lossy() {
            total += process_mib(pid, "VmRSS").unwrap_or(0.0);
            n += 1;
        }
    }
    (total, n)
}

/// Whether the store object's `Ready` condition is True.
fn is_ready(store: &Value) -> bool {
    store["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Whether a logged request changes something (kubesim's request log `verb`).
fn is_write(r: &Value) -> bool {
    matches!(r["verb"].as_str(), Some("create" | "update" | "patch" | "delete" | "deletecollection"))
}

/// Requests the operator made (its User-Agent names it; kubectl's start with `kubectl`).
fn is_operator(r: &Value) -> bool {
    r["userAgent"].as_str().is_some_and(|a| a.starts_with("pinak-operator"))
}

fn request_log(sim: &Sim) -> Vec<Value> {
    sim.requests()
}

/// The operator as a child process; killed when dropped.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn cpu_seconds(&self) -> f64 {
        process_seconds(self.pid()).unwrap_or(f64::NAN)
    }

    fn hwm_mib(&self) -> f64 {
        process_mib(self.pid(), "VmHWM").unwrap_or(f64::NAN)
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts the operator with its defaults (resync 300 s, no leader election: no POD_NAMESPACE)
/// and waits for its `/readyz` (the CRD is listable).
async fn start_operator(sim: &Sim, bin: &Path, name: &str) -> Result<Operator> {
    let log = sim.dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log)?;
    let port = free_port()?;
    let child = Command::new(bin)
        .arg("run")
        .env("KUBECONFIG", sim.kubeconfig())
        .env("PINAK_OPERATOR_LISTEN", format!("127.0.0.1:{port}"))
        .env("PINAK_OPERATOR_API_IMAGE", API_IMAGE)
        .env_remove("RUST_LOG")
        .env_remove("POD_NAMESPACE")
        .env_remove("PINAK_OPERATOR_RESYNC_SECS")
        .env_remove("PINAK_OPERATOR_LEADER_ELECTION")
        .stdout(file.try_clone()?)
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut op = Operator { child, log };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = op.exited() {
            bail!("pinak-operator exited ({status}); log: {}", op.log.display());
        }
        let ok = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
        if ok.is_ok_and(|r| r.status().is_success()) {
            return Ok(op);
        }
        if Instant::now() > deadline {
            bail!("pinak-operator not ready after 30 s; log: {}", op.log.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// kubectl (blocking, on this multi-threaded runtime); stdout, or an error with stderr.
fn kubectl(sim: &Sim, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let out = tokio::task::block_in_place(|| sim.kubectl(args, stdin));
    if !out.status.success() {
        bail!("kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn namespaces(run: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("ob-{run}-n{n}-{i:03}")).collect()
}

fn setup_manifest(nss: &[String], admin_url: &str) -> String {
    let mut y = String::new();
    for ns in nss {
        y.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: pg-admin, namespace: {ns}}}\nstringData:\n  url: {}\n",
            serde_json::to_string(admin_url).unwrap_or_default()
        ));
    }
    y
}

fn stores_manifest(nss: &[String]) -> String {
    nss.iter().map(|ns| format!("---{}", pinak_tests::operator::store_manifest(ns, 1, ""))).collect()
}

/// Figures of one phase (N stores).
struct Phase {
    n: usize,
    ready: usize,
    stopped_early: Option<String>,
    apply_s: f64,
    /// Seconds from the start of `kubectl apply` to each store's Ready, sorted.
    to_ready: Vec<f64>,
    /// Seconds from each store's creation (its ADDED event) to its Ready, sorted.
    created_to_ready: Vec<f64>,
    cpu_to_ready: f64,
    hwm_ready: f64,
    pods_rss: (f64, usize),
    connections: (i64, i64),
    min_available: f64,
    steady_secs: f64,
    steady_requests: usize,
    steady_writes: usize,
    steady_cpu: f64,
    steady_breakdown: BTreeMap<String, usize>,
    startup_requests: usize,
    delete_s: f64,
    cpu_delete: f64,
    hwm_end: f64,
    schemas_left: i64,
}

/// Client connections to the cluster, and its `max_connections`.
async fn pg_connections(admin_url: &str) -> Result<(i64, i64)> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(admin_url).await?;
    let used: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        .fetch_one(&mut c)
        .await?;
    let max: String = sqlx::query_scalar("SHOW max_connections").fetch_one(&mut c).await?;
    Ok((used, max.parse().unwrap_or(-1)))
}

async fn schemas_left(admin_url: &str, run: &str) -> Result<i64> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(admin_url).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1")
        .bind(format!("%ob\\_{run}\\_%"))
        .fetch_one(&mut c)
        .await?;
    Ok(n)
}

/// One phase: fresh operator, N stores, Ready, quiet window, delete all.
async fn phase(sim: &Sim, args: &Args, run: &str, n: usize) -> Result<Phase> {
    let gr = GroupResource::new("pinak.dev", "memorystores");
    let nss = namespaces(run, n);
    println!("\n== {n} store(s) ==");
    kubectl(sim, &["apply", "-f", "-"], Some(&setup_manifest(&nss, &args.database_url)))?;
    let log_start = request_log(sim).len();
    let mut op = start_operator(sim, &args.operator_bin, &format!("operator-{n}")).await?;
    // Let its watches settle (initial lists) before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let startup_requests = request_log(sim).iter().skip(log_start).filter(|r| is_operator(r)).count();

    let mut rx = sim.kubesim().cluster.lock().store.subscribe();
    let cpu0 = op.cpu_seconds();
    let t0 = Instant::now();
    kubectl(sim, &["apply", "-f", "-"], Some(&stores_manifest(&nss)))?;
    let apply_s = t0.elapsed().as_secs_f64();
    println!("  kubectl apply of {n} stores returned after {apply_s:.2} s");

    let mut created: HashMap<String, Instant> = HashMap::new();
    let mut ready: HashMap<String, Instant> = HashMap::new();
    let mut min_available = available_mib().unwrap_or(f64::NAN);
    let mut stopped_early = None;
    let mut last_report = Instant::now();
    let mut last_progress = Instant::now();
    let note = |ns: &str, obj: &Value, created: &mut HashMap<String, Instant>, ready: &mut HashMap<String, Instant>| {
        if !nss.iter().any(|x| x == ns) {
            return;
        }
        let now = Instant::now();
        created.entry(ns.to_owned()).or_insert(now);
        if is_ready(obj) {
            ready.entry(ns.to_owned()).or_insert(now);
        }
    };
    // Stores that were created (and maybe became Ready) before the subscription saw them: the
    // subscription was taken before the apply, so only a lagged receiver needs this.
    let scan = |created: &mut HashMap<String, Instant>, ready: &mut HashMap<String, Instant>| {
        for obj in sim.kubesim().cluster.list_raw(&gr, None) {
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
            note(&ns, &obj, created, ready);
        }
    };
    let deadline = t0 + args.timeout;
    while ready.len() < n {
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Ok(change)) => {
                if change.gr == gr && change.kind != EventType::Deleted {
                    let ns = change.object["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
                    note(&ns, &change.object, &mut created, &mut ready);
                }
            }
            Ok(Err(RecvError::Lagged(_))) => scan(&mut created, &mut ready),
            Ok(Err(RecvError::Closed)) => bail!("kubesim's change stream closed"),
            Err(_) => {}
        }
        if last_report.elapsed() > Duration::from_secs(1) {
            last_report = Instant::now();
            scan(&mut created, &mut ready);
            let avail = available_mib().unwrap_or(f64::NAN);
            min_available = min_available.min(avail);
            if last_progress.elapsed() >= Duration::from_secs(10) {
                last_progress = Instant::now();
                println!(
                    "  {:>4.0} s: {}/{n} Ready, {avail:.0} MiB available",
                    t0.elapsed().as_secs_f64(),
                    ready.len()
                );
            }
            if avail < MIN_AVAILABLE_MIB {
                stopped_early = Some(format!("machine down to {avail:.0} MiB available"));
                break;
            }
            if let Some(status) = op.exited() {
                stopped_early = Some(format!("operator exited ({status})"));
                break;
            }
        }
        if Instant::now() > deadline {
            stopped_early = Some(format!("timeout after {:.0} s", args.timeout.as_secs_f64()));
            break;
        }
    }
    drop(rx);
    let cpu_to_ready = op.cpu_seconds() - cpu0;
    let hwm_ready = op.hwm_mib();
    let pods_rss = processes_rss(&args.api_bin);
    let connections = pg_connections(&args.database_url).await.unwrap_or((-1, -1));
    let mut to_ready: Vec<f64> = ready.values().map(|t| t.duration_since(t0).as_secs_f64()).collect();
    to_ready.sort_by(|a, b| a.total_cmp(b));
    let mut created_to_ready: Vec<f64> =
        ready.iter().filter_map(|(ns, t)| created.get(ns).map(|c| t.duration_since(*c).as_secs_f64())).collect();
    created_to_ready.sort_by(|a, b| a.total_cmp(b));
    println!(
        "  {}/{n} Ready; apply->Ready p50 {:.2} s, p99 {:.2} s, max {:.2} s; operator CPU {cpu_to_ready:.2} s, VmHWM {hwm_ready:.0} MiB; {} pinak-api processes, {:.0} MiB RSS; {} of {} Postgres connections",
        ready.len(),
        percentile(&to_ready, 50.0),
        percentile(&to_ready, 99.0),
        to_ready.last().copied().unwrap_or(f64::NAN),
        pods_rss.1,
        pods_rss.0,
        connections.0,
        connections.1
    );
    if let Some(why) = &stopped_early {
        println!("  stopped waiting: {why}");
    }

    // Quiet window: nothing changes; count the operator's requests.
    let mut steady_requests = 0;
    let mut steady_writes = 0;
    let mut steady_cpu = f64::NAN;
    let mut steady_secs = 0.0;
    let mut steady_breakdown = BTreeMap::new();
    if stopped_early.is_none() && !args.steady.is_zero() {
        tokio::time::sleep(args.settle).await;
        let from = request_log(sim).len();
        let c0 = op.cpu_seconds();
        let w0 = Instant::now();
        tokio::time::sleep(args.steady).await;
        steady_secs = w0.elapsed().as_secs_f64();
        steady_cpu = op.cpu_seconds() - c0;
        for r in request_log(sim).iter().skip(from).filter(|r| is_operator(r)) {
            steady_requests += 1;
            if is_write(r) {
                steady_writes += 1;
            }
            let what = format!(
                "{} {}{}",
                r["verb"].as_str().unwrap_or("?"),
                r["resource"].as_str().unwrap_or("?"),
                r["subresource"].as_str().map(|s| format!("/{s}")).unwrap_or_default()
            );
            *steady_breakdown.entry(what).or_insert(0) += 1;
        }
        println!(
            "  quiet {steady_secs:.0} s: {steady_requests} operator requests ({steady_writes} writes), CPU {steady_cpu:.3} s"
        );
    }

    // Delete every store; the finalizer drops the schemas (reclaimPolicy: Delete).
    let c0 = op.cpu_seconds();
    let t1 = Instant::now();
    kubectl(sim, &["delete", "memorystores", "--all", "--all-namespaces", "--wait=false"], None)?;
    let deadline = Instant::now() + args.timeout;
    loop {
        let left = sim
            .kubesim()
            .cluster
            .list_raw(&gr, None)
            .iter()
            .filter(|o| o["metadata"]["namespace"].as_str().is_some_and(|ns| nss.iter().any(|x| x == ns)))
            .count();
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{left} store(s) still present {:.0} s after their deletion", args.timeout.as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delete_s = t1.elapsed().as_secs_f64();
    let cpu_delete = op.cpu_seconds() - c0;
    let hwm_end = op.hwm_mib();
    let schemas_left = schemas_left(&args.database_url, run).await.unwrap_or(-1);
    println!(
        "  all {n} stores deleted in {delete_s:.2} s (operator CPU {cpu_delete:.2} s); store schemas left: {schemas_left}"
    );
    drop(op);
    // Namespaces go too (their pods' addresses are reused by the next phase).
    let mut del = vec!["delete", "namespace", "--wait=true", "--timeout=300s"];
    del.extend(nss.iter().map(String::as_str));
    kubectl(sim, &del, None)?;
    Ok(Phase {
        n,
        ready: ready.len(),
        stopped_early,
        apply_s,
        to_ready,
        created_to_ready,
        cpu_to_ready,
        hwm_ready,
        pods_rss,
        connections,
        min_available,
        steady_secs,
        steady_requests,
        steady_writes,
        steady_cpu,
        steady_breakdown,
        startup_requests,
        delete_s,
        cpu_delete,
        hwm_end,
        schemas_left,
    })
}

pub async fn main(argv: &[String]) -> Result<()> {
    let args = parse_args(argv)?;
    let started = Instant::now();
    let machine = crate::machine();
    let load_before = crate::loadavg();
    let when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    println!("pinak-bench operator: stores {:?}; {machine}", args.stores);
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let sim = Sim::start_with(vec![(API_IMAGE.into(), args.api_bin.clone())]).await;
    println!("kubesim at {} (logs in {})", sim.kubesim().address, sim.dir.display());
    let result = async {
        let crd = repo_root().join("crds/memorystore.yaml");
        kubectl(&sim, &["apply", "-f", &crd.display().to_string()], None)?;
        kubectl(&sim, &["wait", "--for=condition=Established", "crd/memorystores.pinak.dev", "--timeout=20s"], None)?;
        let mut phases = Vec::new();
        for &n in &args.stores {
            phases.push(phase(&sim, &args, &run, n).await?);
        }
        Ok::<_, anyhow::Error>(phases)
    }
    .await;
    // The pods are local processes: stop them whatever happened.
    sim.kubesim().kubelet.shutdown().await;
    if args.keep {
        println!("kept {}", sim.dir.display());
    } else if result.is_ok() {
        let _ = std::fs::remove_dir_all(&sim.dir);
    } else {
        println!("logs kept in {}", sim.dir.display());
    }
    let phases = result?;

    let mut md = format!(
        "### Results\n\nMeasured {when} by `pinak-bench operator --stores {}`; run took {:.0} s.\n\n",
        args.stores.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
        started.elapsed().as_secs_f64()
    );
    let mut setup = Table::new("Setup", &["item", "value"]);
    setup.row(vec!["machine".into(), machine]);
    setup.row(vec![
        "load average".into(),
        format!(
            "{load_before} at start, {} at end (1/5/15 min; other work on the machine competes for the 2 cores)",
            crate::loadavg()
        ),
    ]);
    setup.row(vec![
        "cluster".into(),
        "kubesim in-process (API server, controllers, kubelet running the pods as local processes), real kubectl"
            .into(),
    ]);
    setup.row(vec![
        "operator".into(),
        format!(
            "{} as a child process, defaults: PINAK_OPERATOR_RESYNC_SECS=300, no leader election (no POD_NAMESPACE), RUST_LOG unset (info,kube=warn,sqlx=warn); a fresh process per phase",
            args.operator_bin.display()
        ),
    ]);
    setup.row(vec![
        "stores".into(),
        "one per namespace (with Secret pg-admin), api.replicas 1, embedding.backend dummy, reclaimPolicy Delete; all N in one `kubectl apply`".into(),
    ]);
    setup.row(vec![
        "quiet window".into(),
        format!(
            "{:.0} s, starting {:.0} s after the last store became Ready",
            args.steady.as_secs_f64(),
            args.settle.as_secs_f64()
        ),
    ]);
    md.push_str(&setup.markdown());

    let s = |v: f64| if v.is_nan() { "-".to_string() } else { format!("{v:.2}") };
    let mut t = Table::new(
        "Apply to Ready, operator CPU and memory",
        &[
            "stores",
            "Ready",
            "kubectl apply s",
            "apply->Ready p50 s",
            "p99 s",
            "max s",
            "created->Ready p50 s",
            "operator CPU s (to Ready)",
            "operator VmHWM MiB",
            "API pods RSS MiB",
            "Postgres connections",
            "delete all s",
            "operator CPU s (delete)",
        ],
    );
    for p in &phases {
        t.row(vec![
            p.n.to_string(),
            format!("{}/{}", p.ready, p.n),
            s(p.apply_s),
            s(percentile(&p.to_ready, 50.0)),
            s(percentile(&p.to_ready, 99.0)),
            s(p.to_ready.last().copied().unwrap_or(f64::NAN)),
            s(percentile(&p.created_to_ready, 50.0)),
            s(p.cpu_to_ready),
            format!("{:.0}", p.hwm_end.max(p.hwm_ready)),
            format!("{:.0} ({} processes)", p.pods_rss.0, p.pods_rss.1),
            format!("{} of {}", p.connections.0, p.connections.1),
            s(p.delete_s),
            s(p.cpu_delete),
        ]);
        if let Some(why) = &p.stopped_early {
            t.note(format!("{} stores: stopped waiting for Ready: {why}", p.n));
        }
        if p.schemas_left != 0 {
            t.note(format!("{} stores: {} store schema(s) left after the deletion", p.n, p.schemas_left));
        }
    }
    t.note("apply->Ready: from the start of the one `kubectl apply` of all N stores to the store's Ready condition turning True, taken from kubesim's change stream in-process (exact to the event, no polling); created->Ready starts at the store's creation instead (kubectl creates the stores one after the other)");
    t.note("p99 is the nearest rank: with 1 or 10 stores it is the maximum");
    t.note("operator CPU: utime + stime from /proc/<pid>/stat between the apply and the last Ready, and between the deletion and the last store gone; VmHWM from /proc/<pid>/status at the end of the phase (fresh process per phase)");
    t.note("API pods RSS: every pinak-api process (one per store) when the last store was Ready; Postgres connections: client backends in pg_stat_activity then (this bench's and anything else on the cluster), of max_connections");
    let min_avail = phases.iter().map(|p| p.min_available).fold(f64::INFINITY, f64::min);
    if min_avail.is_finite() {
        t.note(format!("lowest MemAvailable seen while waiting: {min_avail:.0} MiB"));
    }
    md.push_str(&t.markdown());

    let mut st = Table::new(
        "Steady state: the operator's requests while nothing changes",
        &["stores", "window s", "requests/min", "writes/min", "operator CPU ms/min", "requests"],
    );
    for p in &phases {
        if p.steady_secs <= 0.0 {
            st.row(vec![p.n.to_string(), "-".into(), "-".into(), "-".into(), "-".into(), "not measured".into()]);
            continue;
        }
        let per_min = |x: f64| x * 60.0 / p.steady_secs;
        let breakdown = if p.steady_breakdown.is_empty() {
            "none".to_string()
        } else {
            p.steady_breakdown.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
        };
        st.row(vec![
            p.n.to_string(),
            format!("{:.0}", p.steady_secs),
            format!("{:.1}", per_min(p.steady_requests as f64)),
            format!("{:.1}", per_min(p.steady_writes as f64)),
            format!("{:.1}", per_min(p.steady_cpu * 1000.0)),
            breakdown,
        ]);
    }
    st.note("target: no writes at all when nothing changes");
    st.note("requests from kubesim's request log whose User-Agent is the operator's (kubectl's are not counted); a watch is one request when it is opened, so long-running watches cost nothing here");
    st.note(format!(
        "at start (its initial lists and watches, first 2 s): {} requests",
        phases.iter().map(|p| p.startup_requests.to_string()).collect::<Vec<_>>().join(" / ")
    ));
    st.note("with leader election on (the default in a pod), the leader's Lease renewals add writes: one a third of the lease duration before it expires (every 10 s at the default 15 s, 6 writes/min), not measured here");
    st.note("the periodic resync (300 s) is longer than the window: each store is re-checked once per 5 minutes without any event, which a 60 s window may or may not catch");
    md.push_str(&st.markdown());

    println!("\n{md}");
    if let Some(doc) = &args.doc {
        crate::report::write_section(doc, DOC_LABEL, &md)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 50.0), 5.0);
        assert_eq!(percentile(&ten, 99.0), 10.0, "p99 of 10 is the maximum");
        assert_eq!(percentile(&[7.0], 50.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn status_fields_are_read_in_mib() {
        let status = "Name:\tpinak-operator\nVmPeak:\t  200000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kb_field(status, "VmHWM"), Some(20.0));
        assert_eq!(status_kb_field(status, "VmRSS"), Some(10.0));
        assert_eq!(status_kb_field(status, "VmSwap"), None);
        assert_eq!(status_kb_field("VmHWM:\tlots kB\n", "VmHWM"), None);
        let meminfo = "MemTotal:       24617000 kB\nMemAvailable:   23068672 kB\n";
        assert_eq!(status_kb_field(meminfo, "MemAvailable"), Some(22528.0));
    }

    #[test]
    fn counts_are_parsed_and_bounded() {
        assert_eq!(parse_counts("1,10,100").unwrap(), vec![1, 10, 100]);
        assert_eq!(parse_counts(" 5 ").unwrap(), vec![5]);
        assert!(parse_counts("0").is_err());
        assert!(parse_counts("").is_err());
        assert!(parse_counts("1,x").is_err());
        assert!(parse_counts("1000").is_err());
    }

    #[test]
    fn ready_needs_a_true_ready_condition() {
        let cond = |t: &str, s: &str| serde_json::json!({"status": {"conditions": [{"type": t, "status": s}]}});
        assert!(is_ready(&cond("Ready", "True")));
        assert!(!is_ready(&cond("Ready", "False")));
        assert!(!is_ready(&cond("DatabaseReady", "True")));
        assert!(!is_ready(&serde_json::json!({})));
    }

    #[test]
    fn operator_requests_and_writes_are_told_apart() {
        let r = |agent: &str, verb: &str| serde_json::json!({"userAgent": agent, "verb": verb});
        assert!(is_operator(&r("pinak-operator/0.1.0 (host-1)", "get")));
        assert!(!is_operator(&r("kubectl/v1.35.0 (linux/amd64)", "get")));
        assert!(!is_operator(&serde_json::json!({"verb": "get"})));
        assert!(is_write(&r("x", "patch")) && is_write(&r("x", "create")) && is_write(&r("x", "delete")));
        assert!(!is_write(&r("x", "get")) && !is_write(&r("x", "list")) && !is_write(&r("x", "watch")));
    }
}
