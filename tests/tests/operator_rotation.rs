//! Database password rotation under load, end to end: the real operator rotates a store's
//! login password (`pinak.dev/rotate-database-password`) twice while a few hundred requests
//! per second go through the store's Service to real `pinak-api` pods. The test cluster checks
//! the passwords of store roles (scripts/stack.sh), so a pod that opened a connection with
//! stale credentials would fail requests. Zero failed requests and zero pod restarts.

use std::time::{Duration, Instant};

use kubesim::testing::Sim;
use pinak_tests::load::Load;
use pinak_tests::operator::{
    cluster, operator_logs, pods, service_base, start_operator_with, store_jwt_secret, store_manifest, store_secret,
    tenant_namespace, token, wait_ready,
};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

const WORKERS: usize = 16;

/// Login roles of the store's pinak-api sessions now.
async fn session_roles(admin: &mut PgConnection, roles: [&str; 2]) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT DISTINCT usename::text FROM pg_stat_activity WHERE application_name = 'pinak-api' AND usename = ANY($1)",
    )
    .bind(roles)
    .fetch_all(&mut *admin)
    .await
    .unwrap()
}

fn username(sim: &Sim, ns: &str) -> String {
    String::from_utf8(store_secret(sim, ns, "database-username")).unwrap()
}

/// Rotates once and waits until the Secret names `to` and every pinak-api session uses it;
/// returns how long the pods took to move.
async fn rotate(sim: &Sim, ns: &str, request: &str, to: &str, roles: [&str; 2], admin: &mut PgConnection) -> Duration {
    let started = Instant::now();
    let annotation = format!("pinak.dev/rotate-database-password={request}");
    sim.kubectl_ok(&["-n", ns, "annotate", "memorystore", "notes", &annotation, "--overwrite"], None);
    let deadline = started + Duration::from_secs(60);
    loop {
        if username(sim, ns) == to && session_roles(admin, roles).await == [to] {
            return started.elapsed();
        }
        assert!(Instant::now() < deadline, "the pods did not move to {to} within 60s\n{}", operator_logs(sim));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_password_rotates_under_load_with_no_failed_request_and_no_restart() {
    let (sim, admin_url) = cluster().await;
    let _operator = start_operator_with(&sim, "operator.log", &[("PINAK_OPERATOR_ROTATION_GRACE_SECS", "3")]);
    let ns = tenant_namespace(&sim, &admin_url);
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&ns, 2, "")));
    let store = wait_ready(&sim, &ns);
    let schema = store["status"]["schema"].as_str().unwrap().to_owned();
    let (role_a, role_b) = (format!("{schema}_a"), format!("{schema}_b"));
    let roles = [role_a.as_str(), role_b.as_str()];
    assert_eq!(username(&sim, &ns), role_a);
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();

    let url = format!("{}/search?query=rotation", service_base(&sim, &ns));
    let load = Load::start(url, token(&store_jwt_secret(&sim, &ns), &ns), WORKERS);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pods_before = pods(&sim, &ns);
    assert_eq!(pods_before.len(), 2, "{pods_before:?}");
    assert_eq!(session_roles(&mut admin, roles).await, [role_a.as_str()], "the pods start on role a");

    let to_b = rotate(&sim, &ns, "1", &role_b, roles, &mut admin).await;
    // The grace period (3 s here) holds a second request back: the pods may still use a.
    let to_a = rotate(&sim, &ns, "2", &role_a, roles, &mut admin).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.finish().await;
    let (ok, failed) = (report.ok, report.failed);
    let pods_after = pods(&sim, &ns);
    let restarts: i64 = pods_after.iter().map(|(_, _, r)| r).sum();
    println!(
        "rotation under load: {} requests in {:.1} s ({:.0} req/s, {WORKERS} clients, 2 pods), {failed} failed, {restarts} pod restarts; pods on the new role after {:.1} s (a->b) and {:.1} s (b->a, after the 3 s grace)",
        ok + failed,
        report.elapsed.as_secs_f64(),
        report.per_second(),
        to_b.as_secs_f64(),
        to_a.as_secs_f64(),
    );
    assert_eq!(failed, 0, "failed requests; the first: {:?}", report.first_failure);
    assert!(ok > 500, "the load ran: {ok} requests");
    assert_eq!(pods_after, pods_before, "the same pods, none restarted");

    // What makes the above mean something: a store role with a wrong password is refused, so a
    // pod that opened a connection with stale credentials would have failed requests.
    let wrong: PgConnectOptions = admin_url.parse::<PgConnectOptions>().unwrap().username(&role_a).password("wrong");
    assert!(PgConnection::connect_with(&wrong).await.is_err(), "the cluster checks store roles' passwords");
    sim.kubectl_ok(&["-n", &ns, "delete", "memorystore", "notes", "--timeout=60s"], None);
}
