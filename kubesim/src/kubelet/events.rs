//! Core/v1 Events about a pod, as the kubelet (and scheduler) record them, so `kubectl describe
//! pod` tells what happened. Only transitions are recorded — never per probe or per retry — so a
//! steady pod writes nothing.

use serde_json::{Value, json};

use crate::api::{Cluster, Ctx};
use crate::resources::GroupResource;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

pub struct Event<'a> {
    pub kind: Kind,
    pub reason: &'a str,
    pub message: String,
    /// `spec.containers{name}` for container events.
    pub field_path: Option<String>,
    /// `kubelet`, or `default-scheduler` for the binding.
    pub component: &'a str,
}

pub fn record(cluster: &Cluster, pod: &Value, event: Event) {
    let Some(rt) = cluster.registry().find_gr(&GroupResource::new("", "events")).cloned() else { return };
    let meta = &pod["metadata"];
    let ns = meta["namespace"].as_str().unwrap_or_default();
    let now = crate::api::now();
    let suffix = format!("{:016x}", uuid::Uuid::new_v4().as_u128() as u64);
    let mut involved = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": ns,
        "name": meta["name"],
        "uid": meta["uid"],
        "resourceVersion": meta["resourceVersion"],
    });
    if let Some(path) = &event.field_path {
        involved["fieldPath"] = json!(path);
    }
    let body = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{}.{suffix}", meta["name"].as_str().unwrap_or_default()), "namespace": ns},
        "involvedObject": involved,
        "reason": event.reason,
        "message": event.message,
        "type": match event.kind { Kind::Normal => "Normal", Kind::Warning => "Warning" },
        "source": {"component": event.component, "host": super::NODE_NAME},
        "reportingComponent": event.component,
        "reportingInstance": super::NODE_NAME,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    // An event for a namespace being deleted is refused; nothing depends on events.
    let _ = cluster.create(&Ctx::system(event.component), &rt, Some(ns), body);
}
