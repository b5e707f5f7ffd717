//! The real kubectl 1.35 against a fresh kubesim: discovery, CRDs with defaults and CEL,
//! server-side apply conflicts, finalizers, garbage collection, RBAC, scale, patch, wait.

mod common;

use common::{Sim, eventually, repo_root};
use serde_json::json;

const MEMORYSTORE_CRD: &str = "crds/memorystore.yaml";

fn crd_path() -> String {
    repo_root().join(MEMORYSTORE_CRD).display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discovery_and_builtins() {
    let sim = Sim::start().await;
    let v = sim.kubectl_ok(&["version", "-o", "json"], None);
    assert!(v.contains("\"minor\": \"35\""), "{v}");
    let ns = sim.kubectl_ok(&["get", "namespaces"], None);
    for n in ["default", "kube-system"] {
        assert!(ns.contains(n), "{ns}");
    }
    let res = sim.kubectl_ok(&["api-resources"], None);
    for r in ["deployments", "customresourcedefinitions", "leases", "horizontalpodautoscalers", "networkpolicies"] {
        assert!(res.contains(r), "api-resources lacks {r}: {res}");
    }
    // Typed clients send protobuf for these.
    sim.kubectl_ok(&["create", "namespace", "team-a"], None);
    sim.kubectl_ok(&["-n", "team-a", "create", "secret", "generic", "s1", "--from-literal=k=v"], None);
    sim.kubectl_ok(&["-n", "team-a", "create", "configmap", "c1", "--from-literal=a=b"], None);
    let s = sim.kubectl_json(&["-n", "team-a", "get", "secret", "s1"]);
    assert_eq!(s["data"]["k"], "dg==");
    let err = sim.kubectl_err(&["-n", "team-a", "get", "secret", "nope"], None);
    assert!(err.contains("secrets \"nope\" not found"), "{err}");
    let yes = sim.kubectl_ok(&["auth", "can-i", "create", "deployments", "-n", "team-a"], None);
    assert_eq!(yes.trim(), "yes");
    let explain = sim.kubectl_ok(&["explain", "deployment.spec.replicas"], None);
    assert!(explain.contains("replicas"), "{explain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crd_then_custom_resource_with_defaults_and_cel() {
    let sim = Sim::start().await;
    sim.kubectl_ok(&["apply", "-f", &crd_path()], None);
    sim.kubectl_ok(&["wait", "--for=condition=Established", "crd/memorystores.pinak.dev", "--timeout=20s"], None);
    sim.kubectl_ok(&["create", "namespace", "team-a"], None);
    let store = r#"
apiVersion: pinak.dev/v1alpha1
kind: MemoryStore
metadata: {name: notes, namespace: team-a}
spec:
  database: {adminCredentials: {secretRef: {name: pg-admin}}}
"#;
    sim.kubectl_ok(&["apply", "-f", "-"], Some(store));
    let got = sim.kubectl_json(&["-n", "team-a", "get", "memorystore", "notes"]);
    assert_eq!(got["spec"]["database"]["reclaimPolicy"], "Retain", "defaults applied: {got}");
    assert_eq!(got["metadata"]["generation"], 1);
    // Server-side apply of the same object works too, and printer columns render.
    sim.kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(store));
    let described = sim.kubectl_ok(&["-n", "team-a", "describe", "memorystore", "notes"], None);
    assert!(described.contains("Name:") && described.contains("Reclaim Policy:"), "{described}");
    let table = sim.kubectl_ok(&["-n", "team-a", "get", "memorystores"], None);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("notes"), "{table}");
    let bad = r#"
apiVersion: pinak.dev/v1alpha1
kind: MemoryStore
metadata: {name: bad, namespace: team-a}
spec:
  database: {adminCredentials: {secretRef: {name: pg-admin}, vaultPath: x}}
"#;
    let err = sim.kubectl_err(&["apply", "-f", "-"], Some(bad));
    assert!(err.contains("is invalid"), "CEL rejection expected: {err}");
    let unknown = store.replace("database:", "bogusField: 1\n  database:");
    let err = sim.kubectl_err(&["apply", "-f", "-"], Some(&unknown));
    assert!(err.contains("bogusField"), "strict field validation expected: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_side_apply_conflict_and_force() {
    let sim = Sim::start().await;
    let cm = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: default}}\ndata: {{k: {v}}}\n")
    };
    sim.kubectl_ok(&["apply", "--server-side", "--field-manager=alice", "-f", "-"], Some(&cm("a")));
    let err = sim.kubectl_err(&["apply", "--server-side", "--field-manager=bob", "-f", "-"], Some(&cm("b")));
    assert!(err.contains("conflict") && err.contains("alice") && err.contains(".data.k"), "{err}");
    sim.kubectl_ok(&["apply", "--server-side", "--field-manager=bob", "--force-conflicts", "-f", "-"], Some(&cm("b")));
    let got = sim.kubectl_json(&["get", "configmap", "c", "--show-managed-fields"]);
    assert_eq!(got["data"]["k"], "b");
    let managers: Vec<&str> =
        got["metadata"]["managedFields"].as_array().unwrap().iter().filter_map(|m| m["manager"].as_str()).collect();
    assert!(managers.contains(&"bob"), "{managers:?}");
    // The same value from two managers is shared, not a conflict.
    sim.kubectl_ok(&["apply", "--server-side", "--field-manager=carol", "-f", "-"], Some(&cm("b")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finalizer_holds_a_delete_and_owner_gc() {
    let sim = Sim::start().await;
    let held =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, namespace: default, finalizers: [example.com/hold]}\n";
    sim.kubectl_ok(&["apply", "-f", "-"], Some(held));
    sim.kubectl_ok(&["delete", "configmap", "held", "--wait=false"], None);
    let got = sim.kubectl_json(&["get", "configmap", "held"]);
    assert!(got["metadata"]["deletionTimestamp"].is_string(), "{got}");
    sim.kubectl_ok(&["patch", "configmap", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#], None);
    let err = sim.kubectl_err(&["get", "configmap", "held"], None);
    assert!(err.contains("not found"), "{err}");

    sim.kubectl_ok(&["create", "configmap", "owner"], None);
    let owner = sim.kubectl_json(&["get", "configmap", "owner"]);
    let dep = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "dep", "namespace": "default", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]},
    });
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&dep.to_string()));
    sim.kubectl_ok(&["delete", "configmap", "owner"], None);
    eventually(10, "the dependent Secret to be collected", || {
        (!sim.kubectl(&["get", "secret", "dep"], None).status.success()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rbac_allow_and_deny_with_a_service_account_token() {
    let sim = Sim::start().await;
    sim.kubectl_ok(&["create", "namespace", "apps"], None);
    sim.kubectl_ok(&["-n", "apps", "create", "serviceaccount", "reader"], None);
    sim.kubectl_ok(&["-n", "apps", "create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps"], None);
    sim.kubectl_ok(
        &["-n", "apps", "create", "rolebinding", "reader", "--role=cm-reader", "--serviceaccount=apps:reader"],
        None,
    );
    let token = sim.kubectl_ok(&["-n", "apps", "create", "token", "reader"], None);
    let token = token.trim();
    let as_reader = |args: &[&str]| {
        let mut a = vec!["--token", token, "--kubeconfig", sim.kubeconfig().to_str().unwrap()];
        a.extend_from_slice(args);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let allowed = as_reader(&["-n", "apps", "get", "configmaps"]);
    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
    sim.kubectl_ok(&allowed, None);
    let denied = as_reader(&["-n", "apps", "get", "secrets"]);
    let denied: Vec<&str> = denied.iter().map(String::as_str).collect();
    let err = sim.kubectl_err(&denied, None);
    assert!(
        err.contains("secrets is forbidden: User \"system:serviceaccount:apps:reader\" cannot list resource \"secrets\" in API group \"\" in the namespace \"apps\""),
        "{err}"
    );
    let whoami = as_reader(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    let whoami: Vec<&str> = whoami.iter().map(String::as_str).collect();
    assert_eq!(sim.kubectl_ok(&whoami, None), "system:serviceaccount:apps:reader");
    let forbidden: Vec<_> = sim.requests().into_iter().filter(|r| r["code"] == 403).collect();
    assert_eq!(forbidden.len(), 1, "exactly the denied list is logged as 403: {forbidden:?}");
    assert_eq!(forbidden[0]["resource"], "secrets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_patch_and_wait_on_a_deployment() {
    let sim = Sim::start().await;
    let deploy = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "not-mapped:1"}]}
"#;
    sim.kubectl_ok(&["apply", "-f", "-"], Some(deploy));
    sim.kubectl_ok(&["scale", "deployment/web", "--replicas=3"], None);
    let d = sim.kubectl_json(&["get", "deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 3);
    sim.kubectl_ok(
        &["patch", "deployment", "web", "-p", r#"{"spec":{"template":{"metadata":{"annotations":{"x":"1"}}}}}"#],
        None,
    );
    let d = sim.kubectl_json(&["get", "deployment", "web"]);
    assert_eq!(d["metadata"]["generation"], 3, "scale and template patch each bump the generation: {d}");
    eventually(10, "a second ReplicaSet with the new template, scaled to 3", || {
        let rs = sim.kubectl_json(&["get", "replicasets", "-l", "app=web"]);
        let items = rs["items"].as_array().cloned().unwrap_or_default();
        let newest = items.iter().find(|r| r["spec"]["template"]["metadata"]["annotations"]["x"] == "1")?;
        (items.len() == 2 && newest["spec"]["replicas"] == 3).then_some(())
    })
    .await;
    // Unmapped images stay Pending with a reason, never Running.
    let pods = sim.kubectl_json(&["get", "pods", "-l", "app=web"]);
    for p in pods["items"].as_array().unwrap() {
        assert_eq!(p["status"]["phase"], "Pending", "{p}");
    }
    sim.kubectl_ok(&["wait", "--for=jsonpath={.status.observedGeneration}=3", "deployment/web", "--timeout=20s"], None);
    let described = sim.kubectl_ok(&["describe", "deployment", "web"], None);
    assert!(described.contains("Replicas:") && described.contains("NewReplicaSet:"), "{described}");
    let pod_name = sim.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"], None);
    let pod = sim.kubectl_ok(&["describe", "pod", &pod_name], None);
    assert!(pod.contains("ErrImagePull"), "an unmapped image is explained: {pod}");
    sim.kubectl_ok(&["delete", "deployment", "web"], None);
    eventually(15, "pods collected after their deployment", || {
        let pods = sim.kubectl_json(&["get", "pods"]);
        pods["items"].as_array().is_some_and(|a| a.is_empty()).then_some(())
    })
    .await;
}
