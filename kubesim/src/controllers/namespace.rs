//! Namespace lifecycle: every namespace gets its `default` ServiceAccount and the
//! `kube-root-ca.crt` ConfigMap; a namespace being deleted is emptied, then removed.

use std::sync::Arc;

use serde_json::json;

use super::{Controller, rt};
use crate::api::{Cluster, Ctx, DeleteOptions};
use crate::resources::GroupResource;
use crate::store::{Change, Key};

pub struct NamespaceController {
    pub ca_pem: String,
}

/// Creates what a new namespace holds from the start (existing objects are left as they are).
pub fn populate(cluster: &Cluster, ns: &str, ca_pem: &str) {
    let ctx = Ctx::system("namespace-controller");
    let sa_gr = GroupResource::new("", "serviceaccounts");
    if cluster.get_raw(&sa_gr, Some(ns), "default").is_none()
        && let Some(t) = rt(cluster, "", "serviceaccounts")
    {
        let _ = cluster.create(&ctx, &t, Some(ns), json!({"metadata": {"name": "default"}}));
    }
    let cm_gr = GroupResource::new("", "configmaps");
    if cluster.get_raw(&cm_gr, Some(ns), "kube-root-ca.crt").is_none()
        && let Some(t) = rt(cluster, "", "configmaps")
    {
        let cm = json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ca_pem}});
        let _ = cluster.create(&ctx, &t, Some(ns), cm);
    }
}

/// Deletes everything left in a terminating namespace; removes the namespace once it is empty.
fn finalize(cluster: &Arc<Cluster>, ns: &str) {
    let ctx = Ctx::system("namespace-controller");
    let contents: Vec<(Key, bool)> = {
        let inner = cluster.lock();
        inner
            .store
            .all()
            .filter(|(k, _)| k.namespace == ns && k.gr.resource != "namespaces")
            .map(|(k, v)| (k.clone(), !v["metadata"]["deletionTimestamp"].is_null()))
            .collect()
    };
    if contents.is_empty() {
        if let Some(obj) = cluster.get_raw(&GroupResource::new("", "namespaces"), None, ns) {
            cluster.finish_delete(&GroupResource::new("", "namespaces"), None, ns, super::uid(&obj));
        }
        return;
    }
    let reg = cluster.registry();
    for (key, deleting) in contents {
        if deleting {
            continue;
        }
        if let Some(t) = reg.find_gr(&key.gr) {
            let _ = cluster.delete(&ctx, t, Some(ns), &key.name, &DeleteOptions::default());
        }
    }
}

impl Controller for NamespaceController {
    fn on_change(&self, cluster: &Arc<Cluster>, change: &Change) {
        let obj = &change.object;
        if change.gr.group.is_empty() && change.gr.resource == "namespaces" {
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            if obj["metadata"]["deletionTimestamp"].is_null() {
                if change.kind == crate::store::EventType::Added {
                    populate(cluster, name, &self.ca_pem);
                }
            } else {
                finalize(cluster, name);
            }
            return;
        }
        let Some(ns) = obj["metadata"]["namespace"].as_str() else { return };
        let terminating = cluster
            .get_raw(&GroupResource::new("", "namespaces"), None, ns)
            .is_some_and(|n| !n["metadata"]["deletionTimestamp"].is_null());
        if terminating {
            finalize(cluster, ns);
        }
    }

    fn resync(&self, cluster: &Arc<Cluster>) {
        for n in cluster.list_raw(&GroupResource::new("", "namespaces"), None) {
            let name = n["metadata"]["name"].as_str().unwrap_or_default();
            if n["metadata"]["deletionTimestamp"].is_null() {
                populate(cluster, name, &self.ca_pem);
            } else {
                finalize(cluster, name);
            }
        }
    }
}
