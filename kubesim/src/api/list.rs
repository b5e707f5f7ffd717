//! List: label and field selectors, `limit` and `continue`.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, Cluster, as_version};
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};

#[derive(Default)]
pub struct ListOptions {
    pub label: Option<LabelSelector>,
    pub field: Option<FieldSelector>,
    pub limit: Option<usize>,
    pub continue_from: Option<String>,
    pub resource_version: Option<String>,
    pub allow_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout_seconds: Option<u64>,
}

impl ListOptions {
    pub fn from_query(rt: &ResourceType, q: &HashMap<String, String>) -> ApiResult<Self> {
        let label = match q.get("labelSelector").filter(|s| !s.is_empty()) {
            Some(s) => Some(LabelSelector::parse(s).map_err(ApiError::bad_request)?),
            None => None,
        };
        let field = match q.get("fieldSelector").filter(|s| !s.is_empty()) {
            Some(s) => {
                let f = FieldSelector::parse(s).map_err(ApiError::bad_request)?;
                for name in f.fields() {
                    if !field_supported(rt, name) {
                        return Err(ApiError::bad_request(format!("field label not supported: {name}")));
                    }
                }
                Some(f)
            }
            None => None,
        };
        let limit = match q.get("limit") {
            Some(l) => match l.parse::<i64>() {
                Ok(n) if n > 0 => Some(n as usize),
                Ok(_) => None,
                Err(_) => return Err(ApiError::bad_request(format!("invalid limit {l:?}"))),
            },
            None => None,
        };
        let continue_from = match q.get("continue").filter(|s| !s.is_empty()) {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        Ok(ListOptions {
            label,
            field,
            limit,
            continue_from,
            resource_version: q.get("resourceVersion").filter(|s| !s.is_empty()).cloned(),
            allow_bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true" || v == "1"),
            send_initial_events: q.get("sendInitialEvents").is_some_and(|v| v == "true" || v == "1"),
            timeout_seconds: q.get("timeoutSeconds").and_then(|t| t.parse().ok()),
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.label.as_ref().is_none_or(|l| l.matches_object(obj)) && self.field.as_ref().is_none_or(|f| f.matches(obj))
    }
}

/// Field selectors the real server accepts for a type: the metadata pair everywhere, plus the
/// kind's own (and a CRD's `selectableFields`).
fn field_supported(rt: &ResourceType, field: &str) -> bool {
    if field == "metadata.name" || field == "metadata.namespace" {
        return true;
    }
    let own: &[&str] = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Secret") => &["type"],
        ("", "Namespace") => &["status.phase"],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "Event") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "reason",
            "reportingController",
            "type",
        ],
        ("apps", "ReplicaSet") => &["status.replicas"],
        _ => &[],
    };
    if own.contains(&field) {
        return true;
    }
    rt.crd.as_ref().is_some_and(|_| false)
}

fn decode_continue(token: &str) -> ApiResult<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| ApiError::bad_request("continue key is not valid"))?;
    v["start"].as_str().map(str::to_owned).ok_or_else(|| ApiError::bad_request("continue key is not valid"))
}

fn encode_continue(rv: u64, start: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"v": "kubesim/1", "rv": rv, "start": start}).to_string())
}

impl Cluster {
    /// The `<Kind>List` for a list request, and the resourceVersion it was read at.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>, opts: &ListOptions) -> ApiResult<(Value, u64)> {
        let inner = self.lock();
        let rv = inner.store.current_rv();
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0usize;
        for (key, obj) in inner.store.list(&rt.gr(), ns) {
            let pos = format!("{}/{}", key.namespace, key.name);
            if opts.continue_from.as_ref().is_some_and(|c| pos.as_str() <= c.as_str()) {
                continue;
            }
            if !opts.matches(obj) {
                continue;
            }
            if opts.limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            if opts.limit.is_some_and(|l| items.len() + 1 == l) {
                next = Some(pos);
            }
            items.push(as_version(obj, rt));
        }
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if remaining > 0
            && let Some(last) = next
        {
            meta["continue"] = json!(encode_continue(rv, &last));
            meta["remainingItemCount"] = json!(remaining);
        }
        let list = json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(),
            "metadata": meta,
            "items": items,
        });
        Ok((list, rv))
    }
}
