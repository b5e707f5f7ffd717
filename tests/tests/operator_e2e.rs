//! End to end on the test cluster: `kubectl apply` of a MemoryStore → the real operator
//! provisions the store in the real Postgres and deploys real `pinak-api` processes (run by
//! kubesim's kubelet) → `kubectl wait --for=condition=Ready` → a tenant stores and recalls a
//! memory through the store's Service with a token signed by the store's own secret. With
//! `PINAK_E2E_KUBECONFIG` set, the same on that cluster (see `pinak_tests::operator`).

use std::time::Duration;

use kubesim::testing::Sim;
use pinak_tests::operator::{
    cluster, cluster_with_operator, operator_writes, replica_sets, service_base, start_operator_with, store_jwt_secret,
    store_manifest, tenant_namespace, token, wait_ready,
};
use pinak_tests::service::service_proxy;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_are_isolated_scale_and_a_spec_change_rolls_once() {
    let (sim, _operator, admin_url) = cluster_with_operator().await;
    let (a, b) = (tenant_namespace(&sim, &admin_url), tenant_namespace(&sim, &admin_url));
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&a, 1, "")));
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&b, 1, "")));
    let (sa, sb) = (wait_ready(&sim, &a), wait_ready(&sim, &b));
    assert_ne!(sa["status"]["schema"], sb["status"]["schema"]);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let (key_a, key_b) = (store_jwt_secret(&sim, &a), store_jwt_secret(&sim, &b));
    let add = http
        .post(format!("{}/add", service_base(&sim, &a)))
        .header("authorization", format!("Bearer {}", token(&key_a, &a)))
        .json(&json!({"content": "store A only: the launch code is tangerine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(add.status().as_u16(), 201);
    // A's credentials do not open B: B does not know A's signing secret.
    let cross = http
        .get(format!("{}/search?query=tangerine", service_base(&sim, &b)))
        .header("authorization", format!("Bearer {}", token(&key_a, &a)))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status().as_u16(), 401, "A's token is refused by B");
    let in_b = http
        .get(format!("{}/search?query=tangerine", service_base(&sim, &b)))
        .header("authorization", format!("Bearer {}", token(&key_b, &b)))
        .send()
        .await
        .unwrap();
    assert_eq!(in_b.status().as_u16(), 200);
    assert!(!in_b.text().await.unwrap().contains("tangerine"), "B's own tenant does not see A's memory");

    // kubectl scale goes through the MemoryStore's scale subresource to the Deployment.
    sim.kubectl_ok(&["-n", &a, "scale", "memorystore/notes", "--replicas=2"], None);
    sim.kubectl_ok(
        &["-n", &a, "wait", "--for=jsonpath={.status.replicas}=2", "memorystore/notes", "--timeout=60s"],
        None,
    );
    let rs_before = replica_sets(&sim, &a);
    // A spec change that reaches the pods' environment rolls them exactly once.
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&a, 2, "  policy: {trustedClients: [client-a]}\n")));
    let generation =
        sim.kubectl_json(&["-n", &a, "get", "memorystore", "notes"])["metadata"]["generation"].as_i64().unwrap();
    sim.kubectl_ok(
        &[
            "-n",
            &a,
            "wait",
            &format!("--for=jsonpath={{.status.observedGeneration}}={generation}"),
            "memorystore/notes",
            "--timeout=60s",
        ],
        None,
    );
    sim.kubectl_ok(&["-n", &a, "rollout", "status", "deployment/notes", "--timeout=60s"], None);
    let rs_after = replica_sets(&sim, &a);
    assert_eq!(rs_after, rs_before + 1, "one rollout: one new ReplicaSet");
    let d = sim.kubectl_json(&["-n", &a, "get", "deployment", "notes"]);
    let env = d["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(env.contains("client-a"), "the trusted client reached the pods: {env}");
    for ns in [&a, &b] {
        sim.kubectl_ok(&["-n", ns, "delete", "memorystore", "notes", "--timeout=60s"], None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_memory_store_becomes_ready_and_serves_its_tenant_through_its_service() {
    let (sim, _operator, admin_url) = cluster_with_operator().await;
    let ns = tenant_namespace(&sim, &admin_url);
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&ns, 2, "")));
    let got = wait_ready(&sim, &ns);
    assert_eq!(got["status"]["observedGeneration"], got["metadata"]["generation"]);
    assert_eq!(got["status"]["replicas"], 2, "{}", got["status"]);
    assert!(got["status"]["migrationVersion"].as_i64().is_some_and(|v| v >= 5), "{}", got["status"]);
    let jwt_secret = store_jwt_secret(&sim, &ns);
    let base = service_base(&sim, &ns);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let bearer = format!("Bearer {}", token(&jwt_secret, &ns));
    let add = http
        .post(format!("{base}/add"))
        .header("authorization", &bearer)
        .json(&json!({"content": "The staging database moved to the eu-west cluster", "tags": ["ops"]}))
        .send()
        .await
        .expect("the Service answers");
    assert_eq!(add.status().as_u16(), 201, "{}", add.text().await.unwrap_or_default());
    let found: Value = http
        .get(format!("{base}/search?query=staging%20database"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(found.to_string().contains("eu-west cluster"), "the memory is found: {found}");
    let other = http
        .get(format!("{base}/search?query=x"))
        .header("authorization", format!("Bearer {}", token(&jwt_secret, "someone-else")))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 403, "another tenant is refused by this store");
    // The API server's service proxy reaches the store too, for what needs no token (it takes
    // the caller's Authorization header for itself).
    let (code, metrics) = service_proxy(&sim, "GET", &ns, "notes", 80, "/metrics").await;
    assert!(code == 200 && metrics.contains("# EOF"), "{code}: {metrics}");

    // Steady state: once Ready, the operator makes no writes while nothing changes.
    if sim.kubesim_only("no operator writes in steady state (kubesim's request log)") {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mark = sim.requests().len();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let writes = operator_writes(&sim, mark);
        assert!(writes.is_empty(), "no writes in steady state: {writes:?}");
    }

    // Delete with reclaimPolicy Delete: the store goes, and so do its schema and roles.
    sim.kubectl_ok(&["-n", &ns, "delete", "memorystore", "notes", "--timeout=60s"], None);
    let schema = got["status"]["schema"].as_str().unwrap().to_owned();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1")
        .bind(format!("{schema}%"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "the store's schemas are dropped");
}

/// Who manages `.spec.replicas` of the Deployment, by the managedFields entries that own it.
fn replicas_managers(sim: &Sim, ns: &str) -> Vec<String> {
    let d = sim.kubectl_json(&["-n", ns, "get", "deployment", "notes", "--show-managed-fields"]);
    d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["fieldsV1"]["f:spec"]["f:replicas"].is_object())
        .map(|m| m["manager"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_autoscaling_the_replicas_are_the_hpas_and_the_operator_never_fights_it() {
    // kubesim has no metrics and runs no HPA controller: the test plays its part, writing the
    // Deployment's scale subresource as the controller does (on a real cluster, whose HPA
    // controller does it, the test does not).
    let (sim, admin_url) = cluster().await;
    let _operator = start_operator_with(&sim, "operator.log", &[("PINAK_OPERATOR_RESYNC_SECS", "2")]);
    let ns = tenant_namespace(&sim, &admin_url);
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&ns, 2, "")));
    wait_ready(&sim, &ns);
    assert_eq!(replicas_managers(&sim, &ns), ["pinak-operator"]);

    // Autoscaling on: an HPA on the Deployment, and the replica count handed over as it is.
    let autoscaled = "  api: {replicas: 2, autoscaling: {minReplicas: 1, maxReplicas: 4}}\n";
    let manifest = store_manifest(&ns, 2, "").replace("  api: {replicas: 2}\n", "") + autoscaled;
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    let hpa = kubesim::testing::eventually(30, "the HPA", || {
        let got = sim.kubectl(&["-n", &ns, "get", "hpa", "notes", "-o", "json"], None);
        serde_json::from_slice::<Value>(&got.stdout).ok()
    })
    .await;
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "notes");
    assert_eq!((hpa["spec"]["minReplicas"].as_i64(), hpa["spec"]["maxReplicas"].as_i64()), (Some(1), Some(4)));
    let d = sim.kubectl_json(&["-n", &ns, "get", "deployment", "notes"]);
    assert_eq!(d["spec"]["replicas"], 2, "handed over at its current count, not reset to 1");

    // The "HPA" scales up; resyncs every 2 s do not undo it.
    if sim.kubesim_only("the test playing the HPA controller (a real cluster runs its own, which would undo it)") {
        sim.kubectl_ok(&["-n", &ns, "scale", "deployment/notes", "--replicas=3"], None);
        let mark = sim.requests().len();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let d = sim.kubectl_json(&["-n", &ns, "get", "deployment", "notes"]);
        assert_eq!(d["spec"]["replicas"], 3, "the operator left the HPA's count alone");
        let deployment_writes: Vec<Value> =
            operator_writes(&sim, mark).into_iter().filter(|w| w["resource"] == "deployments").collect();
        assert!(deployment_writes.is_empty(), "no Deployment write after the handover: {deployment_writes:?}");
    }
    assert!(!replicas_managers(&sim, &ns).contains(&"pinak-operator".to_owned()), "the operator owns no replicas");

    // Autoscaling off again: the HPA goes and the spec's count comes back.
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&ns, 2, "")));
    sim.kubectl_ok(
        &["-n", &ns, "wait", "--for=jsonpath={.spec.replicas}=2", "deployment/notes", "--timeout=30s"],
        None,
    );
    kubesim::testing::eventually(30, "the HPA to be deleted", || {
        (!sim.kubectl(&["-n", &ns, "get", "hpa", "notes"], None).status.success()).then_some(())
    })
    .await;
    sim.kubectl_ok(&["-n", &ns, "delete", "memorystore", "notes", "--timeout=60s"], None);
}
