//! Mode `Serverless` (`api.mode`), end to end on kubesim with the real Postgres and real
//! `pinak-api` pods. kubesim runs no Knative Serving: the test installs its Service CRD and
//! plays Knative's part, as Knative would: the revision's pods from the Knative Service's own
//! template, the revision's readiness in the Service's status, and the Route's Service that
//! takes the store's name. The operator's part is all real: discovery, the Knative Service, the
//! hand-over from the Deployment and back, and the status.

use kubesim::testing::{Sim, eventually, skip_on_external_cluster};
use pinak_tests::operator::{
    API_IMAGE, cluster, operator_logs, operator_writes, service_base, start_operator, start_operator_with,
    store_jwt_secret, store_manifest, tenant_namespace, token, wait_condition, wait_ready,
};
use serde_json::{Value, json};

const KNATIVE_CRD: &str = include_str!("../fixtures/knative-serving-crd.yaml");
const REVISION: &str = "notes-00001";

fn serverless_store(ns: &str) -> String {
    store_manifest(ns, 1, "")
        .replace("api: {replicas: 1}", "api: {mode: Serverless, serverless: {minScale: 1, maxScale: 3}}")
}

fn get(sim: &Sim, ns: &str, kind: &str, name: &str) -> Option<Value> {
    let out = sim.kubectl(&["-n", ns, "get", kind, name, "-o", "json"], None);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// A memory search through the store's Service with a token of the store: its status and body.
async fn search(sim: &Sim, ns: &str, query: &str) -> (u16, String) {
    let answer = reqwest::Client::new()
        .get(format!("{}/search?query={query}", service_base(sim, ns)))
        .bearer_auth(token(&store_jwt_secret(sim, ns), ns))
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

async fn add(sim: &Sim, ns: &str, content: &str) {
    let answer = reqwest::Client::new()
        .post(format!("{}/add", service_base(sim, ns)))
        .bearer_auth(token(&store_jwt_secret(sim, ns), ns))
        .json(&json!({"content": content}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201, "{}", answer.text().await.unwrap());
}

/// Controller reference to the Knative Service, as Knative's own children carry one (through
/// its Configuration and Route): they go when it goes.
fn owned_by(ksvc: &Value) -> Value {
    json!([{"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": ksvc["metadata"]["name"],
            "uid": ksvc["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}])
}

/// Knative's revision: a Deployment of the Knative Service's pod template. The one change is
/// the listen address: on Knative the API binds every interface (queue-proxy comes over
/// 127.0.0.1), while kubesim's pods share the host and must bind their own pod IP.
fn run_revision(sim: &Sim, ns: &str, ksvc: &Value) {
    let mut template = ksvc["spec"]["template"].clone();
    template["metadata"]["labels"]["serving.knative.dev/revision"] = json!(REVISION);
    for var in template["spec"]["containers"][0]["env"].as_array_mut().unwrap() {
        if var["name"] == "PINAK_LISTEN" {
            assert_eq!(var["value"], "0.0.0.0:8080");
            var["value"] = json!("$(POD_IP):8080");
        }
    }
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("{REVISION}-deployment"), "namespace": ns, "ownerReferences": owned_by(ksvc)},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"serving.knative.dev/revision": REVISION}},
                 "template": template}
    });
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&deployment.to_string()));
    let rollout = ["-n", ns, "rollout", "status", &format!("deployment/{REVISION}-deployment"), "--timeout=60s"];
    sim.kubectl_ok(&rollout, None);
}

fn set_knative_status(sim: &Sim, ns: &str, ksvc: &Value, routed: bool) {
    let routes = if routed { "True" } else { "False" };
    let status = json!({"status": {
        "observedGeneration": ksvc["metadata"]["generation"],
        "latestCreatedRevisionName": REVISION, "latestReadyRevisionName": REVISION,
        "url": format!("http://notes.{ns}.example.com"),
        "conditions": [
            {"type": "ConfigurationsReady", "status": "True"},
            {"type": "RoutesReady", "status": routes, "reason": if routed { "" } else { "NotOwned" }},
            {"type": "Ready", "status": routes, "reason": if routed { "" } else { "NotOwned" },
             "message": if routed { "" } else { "There is an existing placeholder Service \"notes\" that we do not own." }},
        ]
    }});
    let patch = ["-n", ns, "patch", "ksvc", "notes", "--subresource=status", "--type=merge", "-p"];
    sim.kubectl_ok(&[&patch[..], &[status.to_string().as_str()]].concat(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_goes_serverless_and_back_and_keeps_its_data() {
    if skip_on_external_cluster(
        "the test installs a stand-in Knative Service CRD and plays Knative's controllers, which would fight a real Knative Serving",
    ) {
        return;
    }
    let (sim, admin_url) = cluster().await;
    let operator = start_operator(&sim);
    let ns = tenant_namespace(&sim, &admin_url);
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&ns, 1, "")));
    wait_ready(&sim, &ns);
    add(&sim, &ns, "written under mode Deployment: the harbour gate code is 4711").await;

    // Serverless without Knative: said precisely, and the Deployment keeps serving.
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&serverless_store(&ns)));
    let degraded = wait_condition(&sim, &ns, "notes", "Degraded", "True", "KnativeNotInstalled").await;
    assert!(degraded["message"].as_str().unwrap().contains("keeps its current workload"), "{degraded}");
    assert!(get(&sim, &ns, "deployment", "notes").is_some());
    let (status, body) = search(&sim, &ns, "harbour").await;
    assert!(status == 200 && body.contains("4711"), "{status} {body}");

    // Knative installed; the operator started after it watches Knative Services too.
    operator.kill();
    sim.kubectl_ok(&["apply", "-f", "-"], Some(KNATIVE_CRD));
    sim.kubectl_ok(&["wait", "--for=condition=Established", "crd/services.serving.knative.dev", "--timeout=20s"], None);
    let _operator = start_operator_with(&sim, "operator-knative.log", &[]);
    let ksvc = eventually(60, "the Knative Service", || get(&sim, &ns, "ksvc", "notes")).await;
    let annotations = &ksvc["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["autoscaling.knative.dev/min-scale"], "1");
    assert_eq!(annotations["autoscaling.knative.dev/max-scale"], "3");
    assert_eq!(annotations["autoscaling.knative.dev/metric"], "concurrency");
    assert_eq!(ksvc["spec"]["template"]["spec"]["containers"][0]["image"], API_IMAGE);
    assert_eq!(ksvc["metadata"]["ownerReferences"][0]["kind"], "MemoryStore");
    // Until a revision is ready the Deployment stays, and serves.
    wait_condition(&sim, &ns, "notes", "Degraded", "False", "AsExpected").await;
    assert!(get(&sim, &ns, "deployment", "notes").is_some(), "kept while the revision starts");
    assert_eq!(search(&sim, &ns, "harbour").await.0, 200);

    // Knative's part: the revision runs the Knative Service's template, and becomes ready.
    run_revision(&sim, &ns, &ksvc);
    set_knative_status(&sim, &ns, &ksvc, false);
    // The operator hands the name over: its Deployment, Service and PDB go.
    for kind in ["deployment", "service", "poddisruptionbudget"] {
        eventually(60, &format!("the {kind} of mode Deployment to go"), || {
            get(&sim, &ns, kind, "notes").is_none().then_some(())
        })
        .await;
    }
    // Knative's Route takes the name, to the revision's pods.
    let route_service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "notes", "namespace": ns, "ownerReferences": owned_by(&ksvc)},
        "spec": {"selector": {"serving.knative.dev/revision": REVISION},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    });
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&route_service.to_string()));
    set_knative_status(&sim, &ns, &ksvc, true);
    let ready = wait_ready(&sim, &ns);
    let available = wait_condition(&sim, &ns, "notes", "ApiAvailable", "True", "KnativeServiceReady").await;
    assert!(available["message"].as_str().unwrap().contains(&format!("http://notes.{ns}.example.com")), "{available}");
    assert!(ready["status"].get("replicas").is_none(), "{}", ready["status"]);
    // The revision's pods serve the same store: what was written before is there.
    let (status, body) = search(&sim, &ns, "harbour").await;
    assert!(status == 200 && body.contains("4711"), "{status} {body}");
    add(&sim, &ns, "written under mode Serverless: the ferry leaves at dawn").await;
    // Steady state: a reconcile of the unchanged Serverless store writes nothing.
    let mark = sim.requests().len();
    sim.kubectl_ok(&["-n", &ns, "annotate", "memorystore", "notes", "pinak.dev/poke=1", "--overwrite"], None);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let writes = operator_writes(&sim, mark);
    assert!(writes.is_empty(), "writes in steady state: {writes:?}");

    // Back to mode Deployment: the Deployment serves first, then the Knative Service goes
    // (and the Route's Service with it), then the store's own Service returns.
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store_manifest(&ns, 1, "")));
    eventually(90, "the Knative Service to go", || get(&sim, &ns, "ksvc", "notes").is_none().then_some(())).await;
    let own_service = eventually(90, "the store's own Service", || {
        get(&sim, &ns, "service", "notes").filter(|s| s["metadata"]["ownerReferences"][0]["kind"] == "MemoryStore")
    })
    .await;
    assert!(own_service["spec"]["selector"].get("serving.knative.dev/revision").is_none());
    wait_condition(&sim, &ns, "notes", "ApiAvailable", "True", "MinimumReplicasAvailable").await;
    wait_ready(&sim, &ns);
    let (status, body) = search(&sim, &ns, "ferry").await;
    assert!(status == 200 && body.contains("dawn"), "{status} {body}\n{}", operator_logs(&sim));
    sim.kubectl_ok(&["-n", &ns, "delete", "memorystore", "notes", "--timeout=60s"], None);
}
