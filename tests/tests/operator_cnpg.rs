//! A store on a CloudNativePG `Cluster` (`adminCredentials.cnpgCluster`), end to end on kubesim
//! with the real Postgres. kubesim runs no CloudNativePG: the test installs its `Cluster` CRD
//! (schema-less, as far as the operator cares) and plays the CloudNativePG operator's part,
//! making the Cluster's superuser Secret and its read-write Service `<cluster>-rw`, whose
//! Endpoints point at the test Postgres.
//!
//! Not on a real cluster (`PINAK_E2E_KUBECONFIG`): there the operator, which runs on the test
//! host, cannot reach the `-rw` Service's cluster IP it takes the database from, and the
//! cluster may run the real CloudNativePG, which the test's stand-in objects would fight.

use kubesim::testing::{Sim, skip_on_external_cluster};
use pinak_tests::operator::{
    cluster, service_base, start_operator_with, store_jwt_secret, store_manifest, store_secret, token, wait_condition,
    wait_ready,
};
use serde_json::json;
use sqlx::postgres::PgConnectOptions;

const CLUSTER_CRD: &str = include_str!("../fixtures/cnpg-cluster-crd.yaml");

/// The standard test store, on CloudNativePG Cluster `cluster` instead of a URL Secret.
fn store(ns: &str, cluster: &str) -> String {
    store_manifest(ns, 1, "").replace("{secretRef: {name: pg-admin}}", &format!("{{cnpgCluster: {{name: {cluster}}}}}"))
}

/// What CloudNativePG would have made for Cluster `pg` in `ns`, on the test Postgres.
fn cloudnative_pg(sim: &Sim, ns: &str, admin_url: &str) {
    let url: PgConnectOptions = admin_url.parse().unwrap();
    let (host, port, database) = (url.get_host(), url.get_port(), url.get_database().unwrap_or("postgres"));
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "pg", "namespace": ns},
         "spec": {"instances": 1, "enableSuperuserAccess": true, "bootstrap": {"initdb": {"database": database}}}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg-superuser", "namespace": ns},
         "type": "kubernetes.io/basic-auth", "stringData": {"username": url.get_username(), "password": "unused-trust"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pg-rw", "namespace": ns},
         "spec": {"ports": [{"name": "postgres", "port": 5432, "targetPort": port}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "pg-rw", "namespace": ns},
         "subsets": [{"addresses": [{"ip": host}], "ports": [{"name": "postgres", "port": port}]}]},
    ]});
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&objects.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_on_a_cloudnative_pg_cluster_becomes_ready_and_serves() {
    if skip_on_external_cluster(
        "the operator runs on the test host, which cannot reach the -rw Service's cluster IP, and the test plays CloudNativePG",
    ) {
        return;
    }
    let (sim, admin_url) = cluster().await;
    sim.kubectl_ok(&["apply", "-f", "-"], Some(CLUSTER_CRD));
    sim.kubectl_ok(&["wait", "--for=condition=Established", "crd/clusters.postgresql.cnpg.io", "--timeout=20s"], None);
    let _operator = start_operator_with(&sim, "operator.log", &[]);
    let ns = format!("cnpg-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    sim.kubectl_ok(&["create", "namespace", &ns], None);

    // The Cluster is not there yet: said so.
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store(&ns, "pg")));
    let c = wait_condition(&sim, &ns, "notes", "Degraded", "True", "CnpgClusterNotFound").await;
    assert!(c["message"].as_str().unwrap().contains(&format!("{ns}/pg")), "{c}");

    // CloudNativePG made it: the store comes up on its -rw Service.
    cloudnative_pg(&sim, &ns, &admin_url);
    let ready = wait_ready(&sim, &ns);
    let service_ip = sim.kubectl_json(&["-n", &ns, "get", "service", "pg-rw"])["spec"]["clusterIP"].clone();
    let url = String::from_utf8(store_secret(&sim, &ns, "database-url")).unwrap();
    assert!(url.starts_with(&format!("postgres://{}:5432/", service_ip.as_str().unwrap())), "{url}");
    assert!(ready["status"]["migrationVersion"].as_i64().is_some(), "{}", ready["status"]);
    let answer = reqwest::Client::new()
        .get(format!("{}/search?query=cnpg", service_base(&sim, &ns)))
        .bearer_auth(token(&store_jwt_secret(&sim, &ns), &ns))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200, "a tenant request through the store's Service");

    // Superuser access switched off on the Cluster: a precise reason, nothing touched.
    let patch = json!({"spec": {"enableSuperuserAccess": false}}).to_string();
    sim.kubectl_ok(&["-n", &ns, "patch", "cluster.postgresql.cnpg.io", "pg", "--type=merge", "-p", &patch], None);
    let annotate = ["-n", &ns, "annotate", "memorystore", "notes", "pinak.dev/poke=1", "--overwrite"];
    sim.kubectl_ok(&annotate, None);
    let c = wait_condition(&sim, &ns, "notes", "Degraded", "True", "CnpgNotUsable").await;
    assert!(c["message"].as_str().unwrap().contains("enableSuperuserAccess"), "{c}");
    let patch = json!({"spec": {"enableSuperuserAccess": true}}).to_string();
    sim.kubectl_ok(&["-n", &ns, "patch", "cluster.postgresql.cnpg.io", "pg", "--type=merge", "-p", &patch], None);
    sim.kubectl_ok(&["-n", &ns, "annotate", "memorystore", "notes", "pinak.dev/poke=2", "--overwrite"], None);
    wait_ready(&sim, &ns);
    sim.kubectl_ok(&["-n", &ns, "delete", "memorystore", "notes", "--timeout=60s"], None);
}
