//! Deployments: one ReplicaSet per pod template (named `<deployment>-<template hash>`), a
//! rolling update that removes old pods only as new ones become available, and a status with
//! the conditions kubectl, Helm and kstatus read.

use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::replicaset::write_status;
use super::{Controller, controlled_by, controller_ref, controller_uid, rt, uid};
use crate::api::{Cluster, Ctx, DeleteOptions, PatchType};
use crate::resources::GroupResource;
use crate::store::{Change, EventType};

pub struct DeploymentController;

const MANAGER: &str = "deployment-controller";
const HASH_LABEL: &str = "pod-template-hash";

/// A stable, label-safe hash of a pod template.
pub fn template_hash(template: &Value) -> String {
    let digest = Sha256::digest(template.to_string().as_bytes());
    hex::encode(&digest[..5])
}

/// A RollingUpdate bound (`maxUnavailable` / `maxSurge`) as a count of `desired`.
fn bound(v: &Value, desired: i64, round_up: bool, default_pct: i64) -> i64 {
    let pct = |p: i64| {
        let x = desired * p;
        if round_up { (x + 99) / 100 } else { x / 100 }
    };
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s.trim_end_matches('%').parse().map(pct).unwrap_or_else(|_| pct(default_pct)),
        _ => pct(default_pct),
    }
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove(HASH_LABEL);
    }
    t
}

fn sync(cluster: &Cluster, event_copy: &Value) {
    let ns = event_copy["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = event_copy["metadata"]["name"].as_str().unwrap_or_default();
    // The stored object, not the event's copy: events are handled after later writes, and a
    // status computed from a stale copy (its conditions' times) would differ from the stored
    // one, be written, and raise another stale event, forever.
    let Some(current) = cluster.get_raw(&GroupResource::new("apps", "deployments"), Some(ns), name) else { return };
    let d = &current;
    if !d["metadata"]["deletionTimestamp"].is_null() {
        return;
    }
    let Some(rs_rt) = rt(cluster, "apps", "replicasets") else { return };
    let ctx = Ctx::system(MANAGER);
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let template = &d["spec"]["template"];
    let hash = template_hash(template);
    let owned: Vec<Value> = cluster
        .list_raw(&GroupResource::new("apps", "replicasets"), Some(ns))
        .into_iter()
        .filter(|rs| controlled_by(rs, uid(d)))
        .collect();
    let new_rs = owned.iter().find(|rs| without_hash(&rs["spec"]["template"]) == without_hash(template)).cloned();
    let revision = owned
        .iter()
        .filter_map(|rs| {
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str()?.parse::<i64>().ok()
        })
        .max()
        .unwrap_or(0);
    let paused = d["spec"]["paused"] == true;
    let recreate = d["spec"]["strategy"]["type"] == "Recreate";
    let old: Vec<&Value> = owned.iter().filter(|rs| new_rs.as_ref().is_none_or(|n| uid(n) != uid(rs))).collect();
    let old_pods: i64 = old.iter().map(|rs| rs["status"]["replicas"].as_i64().unwrap_or(0)).sum();
    let new_rs = match new_rs {
        Some(rs) => Some(rs),
        None if paused => None,
        None => {
            let mut t = template.clone();
            t["metadata"]["labels"][HASH_LABEL] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"][HASH_LABEL] = json!(hash);
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": format!("{name}-{hash}"), "namespace": ns,
                    "labels": t["metadata"]["labels"],
                    "annotations": {"deployment.kubernetes.io/revision": (revision + 1).to_string(), "deployment.kubernetes.io/desired-replicas": desired.to_string()},
                    "ownerReferences": [controller_ref(d)],
                },
                "spec": {"replicas": 0, "selector": selector, "template": t},
            });
            match cluster.create(&ctx, &rs_rt, Some(ns), rs) {
                Ok(o) => Some(o.object),
                Err(e) => {
                    tracing::warn!(deployment = name, error = %e.message, "creating a replicaset failed");
                    None
                }
            }
        }
    };
    let new_available = new_rs.as_ref().map_or(0, |rs| rs["status"]["availableReplicas"].as_i64().unwrap_or(0));
    if !paused && let Some(rs) = &new_rs {
        // Recreate waits for every old pod to be gone; a rolling update starts at once.
        let target = if recreate && old_pods > 0 { 0 } else { desired };
        scale(cluster, rs, target);
    }
    if !paused {
        // Old pods leave only as new ones become available: no moment with fewer than desired.
        let keep = if recreate { 0 } else { (desired - new_available).max(0) };
        let mut left = keep;
        for rs in &old {
            let current = rs["spec"]["replicas"].as_i64().unwrap_or(0);
            let target = current.min(left);
            left -= target;
            scale(cluster, rs, target);
        }
        prune_history(cluster, d, &old);
    }
    let all: Vec<Value> = cluster
        .list_raw(&GroupResource::new("apps", "replicasets"), Some(ns))
        .into_iter()
        .filter(|rs| controlled_by(rs, uid(d)))
        .collect();
    let sum = |f: &str| all.iter().map(|rs| rs["status"][f].as_i64().unwrap_or(0)).sum::<i64>();
    let updated = new_rs
        .as_ref()
        .and_then(|n| all.iter().find(|rs| uid(rs) == uid(n)))
        .map_or(0, |rs| rs["status"]["replicas"].as_i64().unwrap_or(0));
    let (replicas, ready, available) = (sum("replicas"), sum("readyReplicas"), sum("availableReplicas"));
    let strategy = &d["spec"]["strategy"]["rollingUpdate"];
    let mut max_unavailable = bound(&strategy["maxUnavailable"], desired, false, 25);
    if max_unavailable == 0 && bound(&strategy["maxSurge"], desired, true, 25) == 0 {
        max_unavailable = 1;
    }
    if recreate {
        max_unavailable = desired;
    }
    let rs_name = new_rs.as_ref().and_then(|r| r["metadata"]["name"].as_str()).unwrap_or_default().to_owned();
    let complete = updated == desired && replicas == desired && available == desired;
    let (p_reason, p_msg) = if complete {
        ("NewReplicaSetAvailable", format!("ReplicaSet \"{rs_name}\" has successfully progressed."))
    } else {
        ("ReplicaSetUpdated", format!("ReplicaSet \"{rs_name}\" is progressing."))
    };
    let available_ok = available >= desired - max_unavailable;
    let conditions = vec![
        condition(
            d,
            "Available",
            available_ok,
            if available_ok { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
            if available_ok {
                "Deployment has minimum availability."
            } else {
                "Deployment does not have minimum availability."
            },
        ),
        condition(d, "Progressing", true, p_reason, &p_msg),
    ];
    let mut status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "conditions": conditions,
    });
    if desired - available > 0 {
        status["unavailableReplicas"] = json!(desired - available);
    }
    for f in ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas"] {
        if status[f] == 0 {
            status.as_object_mut().map(|m| m.remove(f));
        }
    }
    if let Some(rs) = &new_rs {
        let rev = rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"].clone();
        if d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] != rev
            && let Some(t) = rt(cluster, "apps", "deployments")
        {
            let patch = json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": rev}}});
            let body = serde_json::to_vec(&patch).unwrap_or_default();
            let _ = cluster.patch(&ctx, &t, Some(ns), name, PatchType::Merge, &body, false, None);
        }
    }
    let Some(fresh) = cluster.get_raw(&GroupResource::new("apps", "deployments"), Some(ns), name) else { return };
    write_status(cluster, "apps", "deployments", &fresh, status, MANAGER);
}

/// A condition, keeping its transition time (and the whole entry) when nothing changed.
fn condition(d: &Value, kind: &str, ok: bool, reason: &str, message: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let old = d["status"]["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == kind)).cloned();
    if let Some(o) = &old
        && o["status"] == status
        && o["reason"] == reason
        && o["message"] == message
    {
        return o.clone();
    }
    let now = crate::api::now();
    let transition = match &old {
        Some(o) if o["status"] == status => o["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    json!({"type": kind, "status": status, "reason": reason, "message": message, "lastUpdateTime": now, "lastTransitionTime": transition})
}

fn scale(cluster: &Cluster, rs: &Value, replicas: i64) {
    if rs["spec"]["replicas"].as_i64() == Some(replicas) {
        return;
    }
    let Some(t) = rt(cluster, "apps", "replicasets") else { return };
    let patch = json!({"spec": {"replicas": replicas}});
    let body = serde_json::to_vec(&patch).unwrap_or_default();
    let ns = rs["metadata"]["namespace"].as_str();
    let name = rs["metadata"]["name"].as_str().unwrap_or_default();
    let _ = cluster.patch(&Ctx::system(MANAGER), &t, ns, name, PatchType::Merge, &body, false, None);
}

/// Old ReplicaSets scaled to zero beyond `revisionHistoryLimit` are deleted, oldest first.
fn prune_history(cluster: &Cluster, d: &Value, old: &[&Value]) {
    let limit = d["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10).max(0) as usize;
    let mut idle: Vec<&&Value> = old
        .iter()
        .filter(|rs| rs["spec"]["replicas"].as_i64() == Some(0) && rs["status"]["replicas"].as_i64().unwrap_or(0) == 0)
        .collect();
    if idle.len() <= limit {
        return;
    }
    idle.sort_by_key(|rs| rs["metadata"]["creationTimestamp"].as_str().unwrap_or_default().to_owned());
    let Some(t) = rt(cluster, "apps", "replicasets") else { return };
    for rs in idle.iter().take(idle.len() - limit) {
        let ns = rs["metadata"]["namespace"].as_str();
        let name = rs["metadata"]["name"].as_str().unwrap_or_default();
        let _ = cluster.delete(&Ctx::system(MANAGER), &t, ns, name, &DeleteOptions::default());
    }
}

impl Controller for DeploymentController {
    fn on_change(&self, cluster: &Arc<Cluster>, change: &Change) {
        match (change.gr.group.as_str(), change.gr.resource.as_str()) {
            ("apps", "deployments") if change.kind != EventType::Deleted => sync(cluster, &change.object),
            ("apps", "replicasets") => {
                let Some(owner) = controller_uid(&change.object) else { return };
                let ns = change.object["metadata"]["namespace"].as_str();
                let d = cluster
                    .list_raw(&GroupResource::new("apps", "deployments"), ns)
                    .into_iter()
                    .find(|d| uid(d) == owner);
                if let Some(d) = d {
                    sync(cluster, &d);
                }
            }
            _ => {}
        }
    }

    fn resync(&self, cluster: &Arc<Cluster>) {
        for d in cluster.list_raw(&GroupResource::new("apps", "deployments"), None) {
            sync(cluster, &d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_update_bounds() {
        assert_eq!(bound(&json!("25%"), 4, false, 25), 1);
        assert_eq!(bound(&json!("25%"), 1, false, 25), 0);
        assert_eq!(bound(&json!("25%"), 1, true, 25), 1);
        assert_eq!(bound(&json!(2), 10, false, 25), 2);
        assert_eq!(bound(&Value::Null, 8, false, 25), 2);
    }

    #[test]
    fn hash_ignores_nothing_but_is_stable() {
        let t = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        assert_eq!(template_hash(&t), template_hash(&t.clone()));
        let mut t2 = t.clone();
        t2["spec"]["containers"][0]["image"] = json!("j");
        assert_ne!(template_hash(&t), template_hash(&t2));
        assert_eq!(template_hash(&t).len(), 10);
    }
}
