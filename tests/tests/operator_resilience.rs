//! The operator against the failures of its own environment, end to end on kubesim with the
//! real Postgres: its watches dropped and their history compacted away (a 410 on resume, then a
//! relist), and the operator killed right after each API write it makes (crash points). Neither
//! may duplicate a side effect: no extra writes after a relist, no second rollout, and after
//! any crash a restarted operator converges to exactly one set of objects, in Kubernetes and in
//! Postgres.
//!
//! With `PINAK_E2E_KUBECONFIG` set, the crash points run on that cluster, found by watching
//! what the operator writes instead of in kubesim's request log; the watch test needs kubesim.

use std::collections::BTreeMap;
use std::time::Duration;

use kubesim::testing::{Sim, skip_on_external_cluster};
use pinak_tests::operator::{
    cluster, operator_logs, operator_requests, operator_writes, pods, replica_sets, start_operator_with,
    store_manifest, tenant_namespace, wait_ready,
};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

/// POSTs to one of kubesim's test endpoints through the real kubectl.
fn kubesim_admin(sim: &Sim, path: &str, body: Value) {
    sim.kubectl_ok(&["create", "--raw", path, "-f", "-"], Some(&body.to_string()));
}

/// Where the operator's writes can be seen from: kubesim's request log, or on a real cluster
/// what they change in the store's namespace (see [`written_state`]).
enum Mark {
    Log(usize),
    State(BTreeMap<String, Value>),
}

impl Mark {
    fn now(sim: &Sim, ns: &str) -> Mark {
        if sim.external() { Mark::State(written_state(sim, ns)) } else { Mark::Log(sim.requests().len()) }
    }

    /// The first write of the operator since the mark, if any, as "<verb> <resource> <name>"
    /// (or, on a real cluster, "changed <kind>/<name>").
    fn first_write(&self, sim: &Sim, ns: &str) -> Option<String> {
        match self {
            Mark::Log(from) => operator_writes(sim, *from)
                .into_iter()
                .next()
                .map(|w| format!("{} {} {}", w["verb"], w["resource"], w["name"].as_str().unwrap_or(""))),
            Mark::State(before) => {
                let now = written_state(sim, ns);
                let keys = before.keys().chain(now.keys());
                keys.into_iter().find(|k| before.get(*k) != now.get(*k)).map(|k| format!("changed {k}"))
            }
        }
    }
}

/// What the operator's writes change in `ns`, by object: the store (its finalizers and status
/// are the operator's alone) and its children's metadata and desired state (their status is
/// their controllers'). On a real cluster, a change here is how a test sees that the operator
/// wrote.
fn written_state(sim: &Sim, ns: &str) -> BTreeMap<String, Value> {
    let kinds = "memorystores,deployments,services,secrets,poddisruptionbudgets,horizontalpodautoscalers";
    let list = sim.kubectl_json(&["-n", ns, "get", kinds]);
    let mut state = BTreeMap::new();
    for o in list["items"].as_array().into_iter().flatten() {
        let meta = &o["metadata"];
        let mut written = json!({
            "labels": meta["labels"], "annotations": meta["annotations"], "finalizers": meta["finalizers"],
            "ownerReferences": meta["ownerReferences"], "deleting": meta["deletionTimestamp"].is_string(),
            "spec": o["spec"], "data": o["data"],
        });
        if o["kind"] == "MemoryStore" {
            written["status"] = o["status"].clone();
        }
        state.insert(
            format!("{}/{}", o["kind"].as_str().unwrap_or_default(), meta["name"].as_str().unwrap_or_default()),
            written,
        );
    }
    state
}

/// Waits until the operator made no write for `quiet` (it has stopped changing things). Reads
/// are not counted: on a saturated machine the operator may go on re-reading a store whose
/// Deployment keeps changing (see the reconcile benchmark in docs/performance.md).
async fn settle(sim: &Sim, ns: &str, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut mark = Mark::now(sim, ns);
    loop {
        tokio::time::sleep(quiet).await;
        let next = Mark::now(sim, ns);
        if mark.first_write(sim, ns).is_none() {
            return;
        }
        mark = next;
        assert!(tokio::time::Instant::now() < deadline, "the operator never settled\n{}", operator_logs(sim));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_watches_and_a_410_relist_cause_no_duplicate_side_effects() {
    if skip_on_external_cluster("it drops watches and compacts their history with kubesim's test endpoints") {
        return;
    }
    let (sim, admin_url) = cluster().await;
    let _operator = start_operator_with(&sim, "operator.log", &[]);
    let ns = tenant_namespace(&sim, &admin_url);
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&ns, 1, "")));
    wait_ready(&sim, &ns);
    sim.kubectl_ok(&["-n", &ns, "rollout", "status", "deployment/notes", "--timeout=60s"], None);
    settle(&sim, &ns, Duration::from_secs(2)).await;
    let (pods_before, rs_before) = (pods(&sim, &ns), replica_sets(&sim, &ns));

    // Every watch is cut; while the operator reconnects (held back 1.5 s), the history it would
    // resume from is forgotten, so its watches get 410 Gone and it lists everything again.
    let mark = sim.requests().len();
    let hold = json!({"path": "/apis/pinak.dev/v1alpha1/memorystores", "method": "GET", "count": 1, "delayMs": 1500});
    kubesim_admin(&sim, "/kubesim/faults", hold);
    kubesim_admin(&sim, "/kubesim/drop-watches", json!({}));
    kubesim_admin(&sim, "/kubesim/compact", json!({}));
    let relisted =
        |sim: &Sim| operator_requests(sim, mark).iter().any(|r| r["verb"] == "list" && r["resource"] == "memorystores");
    kubesim::testing::eventually(30, "the operator to relist its stores", || relisted(&sim).then_some(())).await;
    settle(&sim, &ns, Duration::from_secs(2)).await;
    let writes = operator_writes(&sim, mark);
    assert!(writes.is_empty(), "the relist re-reconciled the store but changed nothing: {writes:?}");
    assert_eq!((pods(&sim, &ns), replica_sets(&sim, &ns)), (pods_before, rs_before), "no pod touched");

    // The watches work again: a spec change still rolls the pods, once.
    sim.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&store_manifest(&ns, 1, "  policy: {trustedClients: [after-relist]}\n")),
    );
    let generation = sim.kubectl_json(&["-n", &ns, "get", "memorystore", "notes"])["metadata"]["generation"].clone();
    let caught_up = format!("--for=jsonpath={{.status.observedGeneration}}={generation}");
    sim.kubectl_ok(&["-n", &ns, "wait", &caught_up, "memorystore/notes", "--timeout=60s"], None);
    sim.kubectl_ok(&["-n", &ns, "rollout", "status", "deployment/notes", "--timeout=60s"], None);
    assert_eq!(replica_sets(&sim, &ns), rs_before + 1, "one rollout");
    sim.kubectl_ok(&["-n", &ns, "delete", "memorystore", "notes", "--timeout=60s"], None);
}

/// Names of the objects the operator made for store `notes` in `ns`, by kind.
fn children(sim: &Sim, ns: &str) -> Vec<String> {
    let got = sim.kubectl_ok(
        &[
            "-n",
            ns,
            "get",
            "deployments,services,secrets,poddisruptionbudgets,hpa",
            "-l",
            "pinak.dev/store=notes",
            "-o",
            "name",
        ],
        None,
    );
    let mut names: Vec<String> = got.lines().map(str::to_owned).collect();
    names.sort();
    names
}

/// The store's roles and schemas in Postgres.
async fn database_objects(admin_url: &str, schema: &str) -> (Vec<String>, Vec<String>) {
    let mut conn = PgConnection::connect(admin_url).await.unwrap();
    let like = format!("{schema}%");
    let roles = sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1 ORDER BY 1")
        .bind(&like)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let schemas = sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1 ORDER BY 1")
        .bind(&like)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    (roles, schemas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_killed_after_each_of_its_writes_converges_after_a_restart() {
    let (sim, admin_url) = cluster().await;
    let ns = tenant_namespace(&sim, &admin_url);
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&ns, 1, "")));

    // Each operator lives until it has made one write, then dies without warning (SIGKILL);
    // the next one starts from whatever state that left. Until one makes no write at all.
    let poll = Duration::from_millis(if sim.external() { 50 } else { 5 });
    let mut crashes = Vec::new();
    for round in 0..40 {
        let mark = Mark::now(&sim, &ns);
        let operator = start_operator_with(&sim, &format!("operator-{round:02}.log"), &[]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let write = loop {
            if let Some(w) = mark.first_write(&sim, &ns) {
                break Some(w);
            }
            if tokio::time::Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(poll).await;
        };
        operator.kill();
        match write {
            Some(w) => crashes.push(w),
            None => break,
        }
    }
    // How many writes an operator gets in before the kill lands depends on the machine's load
    // (each round kills as soon as the request log shows its first write); on an idle machine
    // every write of a reconcile is a crash point, under load rounds make several. On a real
    // cluster a write is seen only when kubectl reads its result, so rounds make several too.
    assert!(!crashes.is_empty(), "the operators wrote before they were killed: {crashes:?}");
    println!("crash points ({}): {crashes:?}", crashes.len());

    let _last = start_operator_with(&sim, "operator-last.log", &[]);
    let store = wait_ready(&sim, &ns);
    sim.kubectl_ok(&["-n", &ns, "rollout", "status", "deployment/notes", "--timeout=60s"], None);
    settle(&sim, &ns, Duration::from_secs(2)).await;
    assert_eq!(
        children(&sim, &ns),
        ["deployment.apps/notes", "poddisruptionbudget.policy/notes", "secret/notes-pinak", "service/notes",],
        "exactly one of each child"
    );
    assert_eq!(replica_sets(&sim, &ns), 1, "every operator built the same pod template: no rollout");
    assert_eq!(pods(&sim, &ns).len(), 1);
    let schema = store["status"]["schema"].as_str().unwrap();
    let (roles, schemas) = database_objects(&admin_url, schema).await;
    assert_eq!(roles, [format!("{schema}_a"), format!("{schema}_owner")], "no leaked role");
    assert_eq!(schemas, [schema.to_owned(), format!("{schema}_worker")], "no leaked schema");
    // Ready pods mean the password in the Secret is the one Postgres has (it checks them).
    sim.kubectl_ok(&["-n", &ns, "delete", "memorystore", "notes", "--timeout=60s"], None);
    assert_eq!(database_objects(&admin_url, schema).await, (vec![], vec![]), "reclaimed");
}
