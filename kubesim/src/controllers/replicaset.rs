//! ReplicaSets: keep `spec.replicas` pods from the template, and the status counts true.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Controller, controlled_by, controller_ref, controller_uid, rt, uid};
use crate::api::{Cluster, Ctx, DeleteOptions, PatchType};
use crate::resources::GroupResource;
use crate::store::Change;

pub struct ReplicaSetController;

const MANAGER: &str = "replicaset-controller";

pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn sync(cluster: &Cluster, rs: &Value) {
    if !rs["metadata"]["deletionTimestamp"].is_null() {
        return;
    }
    let ns = rs["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = rs["metadata"]["name"].as_str().unwrap_or_default();
    let rs_uid = uid(rs);
    let pods: Vec<Value> = cluster
        .list_raw(&GroupResource::new("", "pods"), Some(ns))
        .into_iter()
        .filter(|p| controlled_by(p, rs_uid))
        .collect();
    let active: Vec<&Value> = pods.iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect();
    let desired = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let ctx = Ctx::system(MANAGER);
    let Some(pod_rt) = rt(cluster, "", "pods") else { return };
    if active.len() < desired {
        let template = &rs["spec"]["template"];
        for _ in active.len()..desired {
            let mut meta = template["metadata"].clone();
            if !meta.is_object() {
                meta = json!({});
            }
            meta["generateName"] = json!(format!("{name}-"));
            meta["namespace"] = json!(ns);
            meta["ownerReferences"] = json!([controller_ref(rs)]);
            let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]});
            if let Err(e) = cluster.create(&ctx, &pod_rt, Some(ns), pod) {
                tracing::warn!(replicaset = name, error = %e.message, "creating a pod failed");
                break;
            }
        }
    } else if active.len() > desired {
        // Not-ready pods go first, then the newest: what the real controller prefers.
        let mut victims = active.clone();
        victims.sort_by_key(|p| {
            (
                pod_ready(p),
                std::cmp::Reverse(p["metadata"]["creationTimestamp"].as_str().unwrap_or_default().to_owned()),
            )
        });
        for p in victims.into_iter().take(active.len() - desired) {
            let pname = p["metadata"]["name"].as_str().unwrap_or_default();
            let _ = cluster.delete(&ctx, &pod_rt, Some(ns), pname, &DeleteOptions::default());
        }
    }
    let ready = active.iter().filter(|p| pod_ready(p)).count();
    let status = json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": active.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": rs["metadata"]["generation"],
    });
    write_status(cluster, "apps", "replicasets", rs, status, MANAGER);
}

/// Writes a status through the status subresource only when it differs from the stored one.
pub fn write_status(cluster: &Cluster, group: &str, resource: &str, obj: &Value, status: Value, manager: &str) {
    if obj["status"] == status {
        return;
    }
    let Some(t) = rt(cluster, group, resource) else { return };
    let ns = obj["metadata"]["namespace"].as_str();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    // A merge patch would keep keys the new status dropped: replace the status whole.
    let body = serde_json::to_vec(&json!([{"op": "add", "path": "/status", "value": status}])).unwrap_or_default();
    let _ = cluster.patch(&Ctx::system(manager), &t, ns, name, PatchType::Json, &body, false, Some("status"));
}

impl Controller for ReplicaSetController {
    fn on_change(&self, cluster: &Arc<Cluster>, change: &Change) {
        match (change.gr.group.as_str(), change.gr.resource.as_str()) {
            ("apps", "replicasets") if change.kind != crate::store::EventType::Deleted => sync(cluster, &change.object),
            ("", "pods") => {
                let Some(owner) = controller_uid(&change.object) else { return };
                let ns = change.object["metadata"]["namespace"].as_str();
                let rs = cluster
                    .list_raw(&GroupResource::new("apps", "replicasets"), ns)
                    .into_iter()
                    .find(|r| uid(r) == owner);
                if let Some(rs) = rs {
                    sync(cluster, &rs);
                }
            }
            _ => {}
        }
    }

    fn resync(&self, cluster: &Arc<Cluster>) {
        for rs in cluster.list_raw(&GroupResource::new("apps", "replicasets"), None) {
            sync(cluster, &rs);
        }
    }
}
