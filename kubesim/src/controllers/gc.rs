//! Garbage collection by ownerReference: dependents of a deleted owner are deleted
//! (background), the `foregroundDeletion` finalizer waits for blocking dependents to go, and
//! the `orphan` finalizer strips the owner's references from its dependents first.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Controller, uid};
use crate::api::{Cluster, Ctx, DeleteOptions, PatchType};
use crate::store::{Change, EventType, Key};

pub struct GarbageCollector;

fn refs(obj: &Value) -> Vec<Value> {
    obj["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Every stored object that names `owner_uid` among its owners.
fn dependents(cluster: &Cluster, owner_uid: &str) -> Vec<(Key, Value)> {
    let inner = cluster.lock();
    inner
        .store
        .all()
        .filter(|(_, v)| refs(v).iter().any(|r| r["uid"].as_str() == Some(owner_uid)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn merge_patch(cluster: &Cluster, key: &Key, patch: Value) {
    let Some(t) = cluster.registry().find_gr(&key.gr).cloned() else { return };
    let ns = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
    let body = serde_json::to_vec(&patch).unwrap_or_default();
    let _ = cluster.patch(
        &Ctx::system("generic-garbage-collector"),
        &t,
        ns,
        &key.name,
        PatchType::Merge,
        &body,
        false,
        None,
    );
}

fn delete(cluster: &Cluster, key: &Key, propagation: Option<&str>) {
    let Some(t) = cluster.registry().find_gr(&key.gr).cloned() else { return };
    let ns = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
    let opts = DeleteOptions { propagation: propagation.map(str::to_owned), ..Default::default() };
    let _ = cluster.delete(&Ctx::system("generic-garbage-collector"), &t, ns, &key.name, &opts);
}

/// Drops `owner_uid` from a dependent's references; deletes it when no owner is left.
fn release(cluster: &Cluster, key: &Key, obj: &Value, owner_uid: &str, orphan: bool) {
    let remaining: Vec<Value> = refs(obj).into_iter().filter(|r| r["uid"].as_str() != Some(owner_uid)).collect();
    if remaining.is_empty() && !orphan {
        if obj["metadata"]["deletionTimestamp"].is_null() {
            delete(cluster, key, None);
        }
        return;
    }
    merge_patch(cluster, key, json!({"metadata": {"ownerReferences": remaining}}));
}

/// The owner uids that no longer exist.
fn live_uids(cluster: &Cluster) -> HashSet<String> {
    cluster.lock().store.all().map(|(_, v)| uid(v).to_owned()).collect()
}

fn handle_deleting_owner(cluster: &Cluster, owner: &Value) {
    let owner_key_uid = uid(owner).to_owned();
    let f = finalizers(owner);
    if f.iter().any(|x| x == "orphan") {
        for (k, d) in dependents(cluster, &owner_key_uid) {
            release(cluster, &k, &d, &owner_key_uid, true);
        }
        remove_finalizer(cluster, owner, "orphan");
    } else if f.iter().any(|x| x == "foregroundDeletion") {
        let deps = dependents(cluster, &owner_key_uid);
        let blocking = deps.iter().filter(|(_, d)| {
            refs(d).iter().any(|r| r["uid"].as_str() == Some(owner_key_uid.as_str()) && r["blockOwnerDeletion"] == true)
        });
        if blocking.clone().count() == 0 {
            remove_finalizer(cluster, owner, "foregroundDeletion");
            return;
        }
        for (k, d) in blocking {
            if d["metadata"]["deletionTimestamp"].is_null() {
                delete(cluster, k, Some("Foreground"));
            }
        }
    }
}

fn remove_finalizer(cluster: &Cluster, obj: &Value, name: &str) {
    let Some(key) = key_of(cluster, obj) else { return };
    let left: Vec<String> = finalizers(obj).into_iter().filter(|f| f != name).collect();
    merge_patch(cluster, &key, json!({"metadata": {"finalizers": left}}));
}

fn key_of(cluster: &Cluster, obj: &Value) -> Option<Key> {
    let reg = cluster.registry();
    let t = reg.find_kind(obj["apiVersion"].as_str()?, obj["kind"].as_str()?)?;
    Some(Key::new(&t.gr(), obj["metadata"]["namespace"].as_str(), obj["metadata"]["name"].as_str()?))
}

impl Controller for GarbageCollector {
    fn on_change(&self, cluster: &Arc<Cluster>, change: &Change) {
        let obj = &change.object;
        match change.kind {
            EventType::Deleted => {
                let owner_uid = uid(obj).to_owned();
                for (k, d) in dependents(cluster, &owner_uid) {
                    release(cluster, &k, &d, &owner_uid, false);
                }
            }
            _ if !obj["metadata"]["deletionTimestamp"].is_null() => handle_deleting_owner(cluster, obj),
            _ => {}
        }
        // A dependent that lost its last blocking child may let a foreground owner go.
        if change.kind == EventType::Deleted {
            for r in refs(obj) {
                let owner_uid = r["uid"].as_str().unwrap_or_default();
                let owner = cluster.lock().store.all().find(|(_, v)| uid(v) == owner_uid).map(|(_, v)| v.clone());
                if let Some(o) = owner
                    && !o["metadata"]["deletionTimestamp"].is_null()
                {
                    handle_deleting_owner(cluster, &o);
                }
            }
        }
    }

    /// Dependents whose every owner is gone are deleted, as the real collector's graph does.
    fn resync(&self, cluster: &Arc<Cluster>) {
        let live = live_uids(cluster);
        let all: Vec<(Key, Value)> = cluster.lock().store.all().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, v) in all {
            let r = refs(&v);
            if !v["metadata"]["deletionTimestamp"].is_null() {
                handle_deleting_owner(cluster, &v);
                continue;
            }
            if !r.is_empty() && r.iter().all(|o| !live.contains(o["uid"].as_str().unwrap_or_default())) {
                delete(cluster, &k, None);
            }
        }
    }
}
