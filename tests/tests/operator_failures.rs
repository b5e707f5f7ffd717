//! The operator under failure, end to end on kubesim with the real Postgres: an unreachable
//! database, a missing Secret and invalid specs are reported as `Degraded` with their reason,
//! touch no pods and delete nothing, and heal without an operator restart; a restarted
//! operator converges without writing anything or rolling the pods; of two replicas with
//! leader election only the Lease holder writes, and the other takes over when it dies.
//!
//! The outage is simulated without stopping the shared Postgres (other tests use it): the
//! store's admin Secret is pointed at a loopback port nothing listens on, then restored. The
//! operator does not watch admin Secrets, so these operators run with
//! `PINAK_OPERATOR_RESYNC_SECS=2`: a healthy store is re-checked every 2 s and sees the outage
//! at once; a failing store is retried on its back-off (5 s, 10 s, 20 s, …), which is what
//! brings it back after the Secret is restored.
//!
//! With `PINAK_E2E_KUBECONFIG` set, the same on that cluster, but for what only kubesim's
//! request log shows (which writes the operators made); each test says what it leaves out.

use std::time::Duration;

use kubesim::testing::Sim;
use pinak_tests::operator::{
    Operator, cluster, condition, new_namespace, operator_logs, operator_requests, operator_writes, pods, replica_sets,
    set_secret_url, start_operator_with, store_manifest, tenant_namespace, wait_condition, wait_ready,
};
use serde_json::Value;

const FAST_RESYNC: (&str, &str) = ("PINAK_OPERATOR_RESYNC_SECS", "2");

fn uid(sim: &Sim, ns: &str, kind: &str, name: &str) -> String {
    sim.kubectl_json(&["-n", ns, "get", kind, name])["metadata"]["uid"].as_str().unwrap().to_owned()
}

async fn schema_exists(admin_url: &str, schema: &str) -> bool {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await.unwrap();
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// A loopback Postgres URL whose port has nothing listening (bound, then released).
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("postgres://postgres@127.0.0.1:{port}/pinak")
}

fn assert_running(operator: &mut Operator, sim: &Sim) {
    assert!(operator.is_running(), "the operator exited:\n{}", operator_logs(sim));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_unreachable_degrades_the_store_without_touching_it_and_it_recovers_without_a_restart() {
    let (sim, admin_url) = cluster().await;
    let mut operator = start_operator_with(&sim, "operator.log", &[FAST_RESYNC]);
    let ns = tenant_namespace(&sim, &admin_url);
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&ns, 1, "")));
    let ready = wait_ready(&sim, &ns);
    let schema = ready["status"]["schema"].as_str().unwrap().to_owned();
    sim.kubectl_ok(&["-n", &ns, "rollout", "status", "deployment/notes", "--timeout=60s"], None);
    let pods_before = pods(&sim, &ns);
    let rs_before = replica_sets(&sim, &ns);
    let (deployment_uid, secret_uid) = (uid(&sim, &ns, "deployment", "notes"), uid(&sim, &ns, "secret", "notes-pinak"));

    // Outage: the admin URL now leads nowhere.
    let mark = sim
        .kubesim_only("which writes the operator made during the outage (kubesim's request log)")
        .then(|| sim.requests().len());
    set_secret_url(&sim, &ns, "pg-admin", &closed_port_url());
    let degraded = wait_condition(&sim, &ns, "notes", "Degraded", "True", "DatabaseUnreachable").await;
    let message = degraded["message"].as_str().unwrap_or_default();
    assert!(message.contains("Postgres is unreachable"), "a message says what failed: {degraded}");
    let ready_now = condition(&sim, &ns, "notes", "Ready").unwrap();
    assert_eq!(
        (ready_now["status"].as_str(), ready_now["reason"].as_str()),
        (Some("False"), Some("DatabaseUnreachable"))
    );
    let db = condition(&sim, &ns, "notes", "DatabaseReady").unwrap();
    assert_eq!((db["status"].as_str(), db["reason"].as_str()), (Some("False"), Some("DatabaseUnreachable")));
    // A few failed retries later: the pods still serve, nothing was replaced or deleted.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let api = condition(&sim, &ns, "notes", "ApiAvailable").unwrap();
    assert_eq!(api["status"], "True", "the pods still serve: {api}");
    assert_eq!(pods(&sim, &ns), pods_before, "pods untouched");
    assert_eq!(replica_sets(&sim, &ns), rs_before, "no rollout");
    assert_eq!(uid(&sim, &ns, "deployment", "notes"), deployment_uid);
    assert_eq!(uid(&sim, &ns, "secret", "notes-pinak"), secret_uid);
    assert!(schema_exists(&admin_url, &schema).await, "the store's data stays");
    if let Some(mark) = mark {
        let writes: Vec<Value> = operator_writes(&sim, mark);
        assert!(
            writes.iter().all(|w| w["verb"] != "delete" && w["verb"] != "deletecollection"),
            "nothing deleted: {writes:?}"
        );
        assert!(
            writes.iter().all(|w| w["resource"] == "memorystores" || w["resource"] == "events"),
            "only the store's status and events are written during the outage: {writes:?}"
        );
    }
    assert_running(&mut operator, &sim);

    // Postgres is back: the store heals on the operator's own retry, no restart.
    set_secret_url(&sim, &ns, "pg-admin", &admin_url);
    wait_condition(&sim, &ns, "notes", "Degraded", "False", "AsExpected").await;
    wait_ready(&sim, &ns);
    assert_eq!(pods(&sim, &ns), pods_before, "recovery does not roll the pods either");
    assert_eq!(replica_sets(&sim, &ns), rs_before);
    assert_running(&mut operator, &sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_secret_and_invalid_specs_are_degraded_with_a_precise_reason_and_never_crash_the_operator() {
    let (sim, admin_url) = cluster().await;
    let mut operator = start_operator_with(&sim, "operator.log", &[FAST_RESYNC]);
    let ns = new_namespace(&sim, "e2e");

    // The admin Secret does not exist (yet).
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&ns, 1, "")));
    let missing = wait_condition(&sim, &ns, "notes", "Degraded", "True", "SecretNotFound").await;
    assert_eq!(missing["message"], format!("Secret {ns}/pg-admin not found"), "{missing}");

    // A name the CRD accepts (a DNS-1123 subdomain) but that cannot name a Service.
    let bad_name = store_manifest(&ns, 1, "").replace("name: notes,", "name: notes.v2,");
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&bad_name));
    let invalid = wait_condition(&sim, &ns, "notes.v2", "Degraded", "True", "InvalidSpec").await;
    let message = invalid["message"].as_str().unwrap_or_default();
    assert!(message.contains("\"notes.v2\"") && message.contains("DNS-1035"), "{invalid}");

    // A store on Vault while the operator has no service-account token to log in with (it runs
    // outside a pod here): the login failure is named, with the file it looked for.
    let vault =
        store_manifest(&ns, 1, "  vault: {address: \"http://vault:8200\", auth: {kubernetes: {role: pinak}}}\n")
            .replace("name: notes,", "name: vaulted,");
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&vault));
    let refused = wait_condition(&sim, &ns, "vaulted", "Degraded", "True", "VaultAuthFailed").await;
    assert!(refused["message"].as_str().unwrap_or_default().contains("service-account token at"), "{refused}");

    // Nothing was built for the invalid stores.
    for name in ["notes.v2", "vaulted"] {
        let got = sim.kubectl(&["-n", &ns, "get", "deployment", name], None);
        assert!(!got.status.success(), "no Deployment for {name}");
    }
    assert_running(&mut operator, &sim);

    // The Secret appears: the store becomes Ready on the operator's retry; the others stay
    // Degraded.
    sim.kubectl_ok(
        &["-n", &ns, "create", "secret", "generic", "pg-admin", &format!("--from-literal=url={admin_url}")],
        None,
    );
    wait_ready(&sim, &ns);
    assert_eq!(condition(&sim, &ns, "notes.v2", "Degraded").unwrap()["reason"], "InvalidSpec");
    assert_eq!(condition(&sim, &ns, "vaulted", "Degraded").unwrap()["reason"], "VaultAuthFailed");
    assert_running(&mut operator, &sim);

    // The admin Secret goes before the store (as when the namespace is deleted): the store is
    // let go rather than held forever, and its data is kept, with a Warning that says so.
    let store = sim.kubectl_json(&["-n", &ns, "get", "memorystore", "notes"]);
    let schema = store["status"]["schema"].as_str().unwrap().to_owned();
    sim.kubectl_ok(&["-n", &ns, "delete", "secret", "pg-admin"], None);
    sim.kubectl_ok(&["-n", &ns, "delete", "memorystore", "notes", "--timeout=60s"], None);
    assert!(schema_exists(&admin_url, &schema).await, "the data of {schema} is kept");
    let events = sim.kubectl_ok(&["-n", &ns, "get", "events", "--field-selector", "reason=ReclaimSkipped"], None);
    assert!(events.contains("admin credentials are gone") && events.contains(&schema), "{events}");
    drop_schema(&admin_url, &schema).await;
}

/// Drops a store's schemas and roles left on purpose (what the Warning asks a person to do).
async fn drop_schema(admin_url: &str, schema: &str) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await.unwrap();
    let names = [format!("{schema}_a"), format!("{schema}_b"), format!("{schema}_owner")];
    let roles: Vec<String> = sqlx::query_scalar("SELECT quote_ident(rolname) FROM pg_roles WHERE rolname = ANY($1)")
        .bind(&names[..])
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let roles = roles.join(", ");
    for sql in [
        format!("DROP SCHEMA \"{schema}\", \"{schema}_worker\" CASCADE"),
        format!("DROP OWNED BY {roles}"),
        format!("DROP ROLE {roles}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_operator_converges_with_no_writes_and_no_rollout() {
    let (sim, admin_url) = cluster().await;
    let first = start_operator_with(&sim, "operator.log", &[FAST_RESYNC]);
    let ns = tenant_namespace(&sim, &admin_url);
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&ns, 1, "")));
    wait_ready(&sim, &ns);
    sim.kubectl_ok(&["-n", &ns, "rollout", "status", "deployment/notes", "--timeout=60s"], None);
    // Let the first operator settle (its last status write after the pods became available).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deployment = sim.kubectl_json(&["-n", &ns, "get", "deployment", "notes"]);
    let (pods_before, rs_before) = (pods(&sim, &ns), replica_sets(&sim, &ns));
    let store_before = sim.kubectl_json(&["-n", &ns, "get", "memorystore", "notes"]);

    first.kill();
    let mark = (!sim.external()).then(|| sim.requests().len());
    // Its reconciles logged (at debug), for a real cluster, where there is no request log.
    let logged = ("RUST_LOG", "info,vaultrs=off,rustify=off,pinak_operator::reconcile=debug");
    let mut second = start_operator_with(&sim, "operator-2.log", &[FAST_RESYNC, logged]);
    // Converged: the new operator has read the store's Deployment (the last step of a
    // reconcile) at least twice, i.e. its first reconcile and one resync are done. On a real
    // cluster: it has logged two finished reconciles.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = match mark {
            Some(mark) => operator_requests(&sim, mark)
                .iter()
                .filter(|r| r["verb"] == "get" && r["resource"] == "deployments" && r["name"] == "notes")
                .count(),
            None => std::fs::read_to_string(&second.log).unwrap_or_default().matches("\"reconciled\"").count(),
        };
        if done >= 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the new operator did not reconcile:\n{}", operator_logs(&sim));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    if sim.kubesim_only("that the restarted operator made no write at all (kubesim's request log)")
        && let Some(mark) = mark
    {
        let writes = operator_writes(&sim, mark);
        assert!(writes.is_empty(), "the restarted operator writes nothing: {writes:?}");
    }
    let store = sim.kubectl_json(&["-n", &ns, "get", "memorystore", "notes"]);
    assert_eq!(store["status"], store_before["status"], "status unchanged");
    assert_eq!(store["metadata"]["resourceVersion"], store_before["metadata"]["resourceVersion"]);
    let ready = condition(&sim, &ns, "notes", "Ready").unwrap();
    assert_eq!(ready["status"], "True", "{ready}");
    let now = sim.kubectl_json(&["-n", &ns, "get", "deployment", "notes"]);
    assert_eq!(now["spec"]["template"], deployment["spec"]["template"], "pod template unchanged");
    assert_eq!(now["metadata"]["generation"], deployment["metadata"]["generation"]);
    assert_eq!(replica_sets(&sim, &ns), rs_before, "no rollout");
    assert_eq!(pods(&sim, &ns), pods_before, "pods untouched");
    assert_running(&mut second, &sim);
}

/// The holder of Lease `default/pinak-operator`, if any.
fn lease_holder(sim: &Sim) -> Option<String> {
    let got = sim.kubectl(&["-n", "default", "get", "lease", "pinak-operator", "-o", "json"], None);
    let lease: Value = serde_json::from_slice(&got.stdout).ok()?;
    lease["spec"]["holderIdentity"].as_str().filter(|h| !h.is_empty()).map(str::to_owned)
}

async fn wait_holder(sim: &Sim, who: &str, secs: u64) -> Duration {
    let started = tokio::time::Instant::now();
    while lease_holder(sim).as_deref() != Some(who) {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "{who} does not hold the Lease after {secs}s (holder {:?})\n{}",
            lease_holder(sim),
            operator_logs(sim)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Writes of the replica whose identity (in its User-Agent) is `who`, from entry `from` on.
fn writes_of(sim: &Sim, who: &str, from: usize) -> Vec<Value> {
    let tag = format!("({who})");
    operator_writes(sim, from)
        .into_iter()
        .filter(|r| r["userAgent"].as_str().unwrap_or_default().contains(&tag))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_elect_one_leader_and_the_other_takes_over_within_the_lease_duration() {
    const LEASE_SECS: u64 = 6;
    let (sim, admin_url) = cluster().await;
    sim.on_cleanup(&["-n", "default", "delete", "lease", "pinak-operator", "--ignore-not-found"], None);
    let env = |pod: &'static str| {
        [
            FAST_RESYNC,
            ("PINAK_OPERATOR_LEADER_ELECTION", "true"),
            ("PINAK_OPERATOR_LEASE_DURATION_SECS", "6"),
            ("POD_NAME", pod),
        ]
    };
    let a = start_operator_with(&sim, "operator-a.log", &env("op-a"));
    wait_holder(&sim, "op-a", 30).await;
    let mut b = start_operator_with(&sim, "operator-b.log", &env("op-b"));
    let ns = tenant_namespace(&sim, &admin_url);
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&ns, 1, "")));
    wait_ready(&sim, &ns);
    // Past a few renewals and resyncs: only the leader reconciles, the follower writes nothing.
    tokio::time::sleep(Duration::from_secs(LEASE_SECS)).await;
    assert_eq!(lease_holder(&sim).as_deref(), Some("op-a"), "the leader keeps renewing");
    if sim.kubesim_only("which replica made the writes (kubesim's request log)") {
        let from_a = writes_of(&sim, "op-a", 0);
        assert!(from_a.iter().any(|w| w["resource"] == "deployments"), "the leader reconciled: {from_a:?}");
        assert_eq!(writes_of(&sim, "op-b", 0), Vec::<Value>::new(), "the follower writes nothing");
    }

    // The leader dies without releasing the Lease: the follower takes over once it expires.
    a.kill();
    let took = wait_holder(&sim, "op-b", LEASE_SECS + 10).await;
    assert!(took <= Duration::from_secs(LEASE_SECS + 2), "fail-over took {took:?} (lease {LEASE_SECS}s)");
    // And reconciles: a store change after the fail-over reaches the Deployment (op-b is the
    // only operator left).
    let mark = (!sim.external()).then(|| sim.requests().len());
    sim.kubectl_ok(&["-n", &ns, "scale", "memorystore/notes", "--replicas=2"], None);
    sim.kubectl_ok(
        &["-n", &ns, "wait", "--for=jsonpath={.status.replicas}=2", "memorystore/notes", "--timeout=60s"],
        None,
    );
    if sim.kubesim_only("that the new leader made the Deployment write (kubesim's request log)")
        && let Some(mark) = mark
    {
        let from_b = writes_of(&sim, "op-b", mark);
        assert!(
            from_b.iter().any(|w| w["resource"] == "deployments"),
            "the new leader applied the change: {from_b:?}\n{}",
            operator_logs(&sim)
        );
    }
    assert_running(&mut b, &sim);

    // A graceful stop (SIGTERM) releases the Lease before the process exits; the standby
    // (which re-reads the Lease when it would expire) takes over within the lease duration.
    let _c = start_operator_with(&sim, "operator-c.log", &env("op-c"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lease_holder(&sim).as_deref(), Some("op-b"));
    assert!(b.terminate(20), "op-b stops cleanly on SIGTERM:\n{}", operator_logs(&sim));
    assert_ne!(lease_holder(&sim).as_deref(), Some("op-b"), "released on SIGTERM");
    let took = wait_holder(&sim, "op-c", LEASE_SECS + 10).await;
    assert!(took <= Duration::from_secs(LEASE_SECS + 2), "hand-over after SIGTERM took {took:?}");
}
