//! The built-in controllers of kube-controller-manager that Pinak's tests depend on: namespace
//! lifecycle, garbage collection by ownerReference, Deployments and ReplicaSets, and legacy
//! service-account token Secrets. Each reacts to store changes and writes through the same API
//! semantics as clients (as a `system:` user), so their writes show in watches and logs.

pub mod deployment;
pub mod gc;
pub mod namespace;
pub mod replicaset;
pub mod serviceaccount;

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::api::{Cluster, Ctx};
use crate::auth::Authenticator;
use crate::resources::{GroupResource, ResourceType};
use crate::store::Change;

/// Objects every cluster starts with.
pub fn bootstrap(cluster: &Cluster, ca_pem: &str) {
    let ctx = Ctx::system("kube-apiserver");
    let reg = cluster.registry();
    let Some(ns_rt) = reg.find("", "v1", "namespaces") else { return };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let _ = cluster.create(
            &ctx,
            ns_rt,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
        namespace::populate(cluster, ns, ca_pem);
    }
    if let Some(svc) = reg.find("", "v1", "services") {
        let kubernetes = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
        });
        let _ = cluster.create(&ctx, svc, Some("default"), kubernetes);
    }
    if let Some(cr) = reg.find("rbac.authorization.k8s.io", "v1", "clusterroles") {
        for role in bootstrap_cluster_roles() {
            let _ = cluster.create(&ctx, cr, None, role);
        }
    }
}

/// The bootstrap ClusterRoles charts and Vault setups bind to.
fn bootstrap_cluster_roles() -> Vec<Value> {
    let role = |name: &str, rules: Value| json!({"metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}, "rules": rules});
    let read = json!(["get", "list", "watch"]);
    vec![
        role(
            "cluster-admin",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        ),
        role(
            "system:auth-delegator",
            json!([
                {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
                {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
            ]),
        ),
        role(
            "view",
            json!([
                {"apiGroups": [""], "resources": ["configmaps", "endpoints", "events", "pods", "pods/log", "services", "serviceaccounts", "namespaces"], "verbs": read},
                {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "deployments/scale"], "verbs": read},
                {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": read},
                {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": read},
                {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": read},
            ]),
        ),
    ]
}

/// One controller: what it does with a change, and with a full resync.
pub trait Controller: Send + Sync + 'static {
    fn on_change(&self, cluster: &Arc<Cluster>, change: &Change);
    fn resync(&self, cluster: &Arc<Cluster>);
}

pub fn spawn_all(cluster: Arc<Cluster>, auth: Arc<Authenticator>, ca_pem: String) {
    run(cluster.clone(), namespace::NamespaceController { ca_pem: ca_pem.clone() });
    run(cluster.clone(), gc::GarbageCollector);
    run(cluster.clone(), deployment::DeploymentController);
    run(cluster.clone(), replicaset::ReplicaSetController);
    run(cluster, serviceaccount::TokenSecretController { ca_pem, auth });
}

/// Runs a controller on every change, resyncing at start, when it fell behind, and every few
/// seconds (which also retries what failed).
fn run<C: Controller>(cluster: Arc<Cluster>, c: C) {
    tokio::spawn(async move {
        let mut rx = cluster.lock().store.subscribe();
        c.resync(&cluster);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3));
        loop {
            tokio::select! {
                change = rx.recv() => match change {
                    Ok(ch) => c.on_change(&cluster, &ch),
                    Err(RecvError::Lagged(_)) => c.resync(&cluster),
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => c.resync(&cluster),
            }
        }
    });
}

pub fn rt(cluster: &Cluster, group: &str, resource: &str) -> Option<ResourceType> {
    cluster.registry().find_gr(&GroupResource::new(group, resource)).cloned()
}

pub fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or_default()
}

/// The owner reference of `owner` as its controller.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Is `obj` controlled by the object with `owner_uid`?
pub fn controlled_by(obj: &Value, owner_uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(owner_uid) && r["controller"] == true))
}

/// The uid of `obj`'s controller, if any.
pub fn controller_uid(obj: &Value) -> Option<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .and_then(|r| r["uid"].as_str().map(str::to_owned))
}
