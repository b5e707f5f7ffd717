//! The API's semantics called directly (no HTTP): what controllers rely on.

use kubesim::api::{Cluster, Ctx, PatchType};
use serde_json::{Value, json};

fn deployment(replicas: Option<i64>) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
    });
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    d
}

#[test]
fn an_update_by_the_applier_keeps_what_its_next_apply_drops() {
    let cluster = Cluster::new();
    kubesim::controllers::bootstrap(&cluster, "");
    let reg = cluster.registry();
    let rt = reg.find("apps", "v1", "deployments").unwrap().clone();
    let ctx = Ctx::system("pinak-operator");
    let apply = |d: &Value| {
        cluster.patch(&ctx, &rt, Some("default"), "web", PatchType::Apply, &serde_json::to_vec(d).unwrap(), true, None)
    };
    apply(&deployment(Some(3))).unwrap();
    // The same manager pins replicas with an Update, then stops applying them (the HPA hand-over).
    let pin = serde_json::to_vec(&json!({"spec": {"replicas": 4}})).unwrap();
    cluster.patch(&ctx, &rt, Some("default"), "web", PatchType::Merge, &pin, false, None).unwrap();
    let out = apply(&deployment(None)).unwrap().object;
    assert_eq!(
        out["spec"]["replicas"], 4,
        "the Update entry still owns replicas: {}",
        out["metadata"]["managedFields"]
    );
    let ops: Vec<(&str, &str)> = out["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["manager"].as_str().unwrap(), e["operation"].as_str().unwrap()))
        .collect();
    assert!(ops.contains(&("pinak-operator", "Apply")) && ops.contains(&("pinak-operator", "Update")), "{ops:?}");
}

#[test]
fn a_json_patch_test_of_null_passes_on_a_missing_path() {
    let cluster = Cluster::new();
    kubesim::controllers::bootstrap(&cluster, "");
    let reg = cluster.registry();
    let rt = reg.find("", "v1", "configmaps").unwrap().clone();
    let ctx = Ctx::system("t");
    cluster.create(&ctx, &rt, Some("default"), json!({"metadata": {"name": "c"}})).unwrap();
    let p = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]}]);
    let out = cluster
        .patch(&ctx, &rt, Some("default"), "c", PatchType::Json, &serde_json::to_vec(&p).unwrap(), false, None)
        .unwrap();
    assert_eq!(out.object["metadata"]["finalizers"], json!(["x/y"]));
    let bad = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]);
    let err = cluster
        .patch(&ctx, &rt, Some("default"), "c", PatchType::Json, &serde_json::to_vec(&bad).unwrap(), false, None)
        .unwrap_err();
    assert_eq!(err.code, 422, "a test of null fails once the field is set");
}

#[test]
fn events_written_through_events_k8s_io_are_core_events_too() {
    let cluster = Cluster::new();
    kubesim::controllers::bootstrap(&cluster, "");
    let reg = cluster.registry();
    let new_api = reg.find("events.k8s.io", "v1", "events").unwrap().clone();
    let core = reg.find("", "v1", "events").unwrap().clone();
    let ev = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
        "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}, "note": "started", "reason": "Started",
        "type": "Normal", "action": "Start", "reportingController": "kubelet", "reportingInstance": "kubesim",
        "eventTime": "2026-01-01T00:00:00.000000Z",
    });
    cluster.create(&Ctx::system("t"), &new_api, Some("default"), ev).unwrap();
    let (list, _) = cluster.list(&core, Some("default"), &Default::default()).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!((items[0]["apiVersion"].as_str(), items[0]["message"].as_str()), (Some("v1"), Some("started")));
    assert_eq!(items[0]["involvedObject"]["name"], "p");
    let back = cluster.get(&new_api, Some("default"), "e1").unwrap();
    assert_eq!((back["apiVersion"].as_str(), back["note"].as_str()), (Some("events.k8s.io/v1"), Some("started")));
}
