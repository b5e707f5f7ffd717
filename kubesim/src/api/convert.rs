//! One storage, two API versions: `events.k8s.io/v1` Events are stored as core `v1` Events,
//! as the real server does, so `kubectl get events` and `kubectl describe` show what the
//! kube-runtime recorder writes through `events.k8s.io`.

use serde_json::{Map, Value};

use crate::resources::ResourceType;

/// (events.k8s.io/v1 field, core v1 field); metadata is shared.
const EVENT_FIELDS: [(&str, &str); 13] = [
    ("regarding", "involvedObject"),
    ("related", "related"),
    ("note", "message"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
];

fn is_events_api(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.kind == "Event"
}

/// Moves the fields named in `pairs` (from, to) into a new object of `api_version`.
fn remap(obj: &Value, api_version: &str, pairs: impl Iterator<Item = (&'static str, &'static str)>) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    if let Some(m) = obj.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    for (from, to) in pairs {
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// An object as `rt`'s version shows it, from its stored form.
pub fn from_storage(rt: &ResourceType, stored: &Value) -> Option<Value> {
    if !is_events_api(rt) {
        return None;
    }
    let mut out = remap(stored, "events.k8s.io/v1", EVENT_FIELDS.iter().map(|(new, core)| (*core, *new)));
    if let Some(count) = stored.get("count").filter(|c| !c.is_null()) {
        out["deprecatedCount"] = count.clone();
    }
    Some(out)
}

/// An object written through `rt`'s version, in its stored form.
pub fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    if !is_events_api(rt) {
        return obj;
    }
    let mut out = remap(&obj, "v1", EVENT_FIELDS.iter().copied());
    if let Some(count) = obj.get("deprecatedCount").filter(|c| !c.is_null()) {
        out["count"] = count.clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_the_two_versions() {
        let reg = Registry::builtin();
        let rt = reg.find("events.k8s.io", "v1", "events").unwrap();
        let new = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "a"},
            "regarding": {"kind": "MemoryStore", "name": "notes"}, "note": "Ready", "reason": "Reconciled",
            "type": "Normal", "reportingController": "pinak-operator", "eventTime": "2026-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}, "deprecatedCount": 2,
        });
        let core = to_storage(rt, new.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "notes");
        assert_eq!(core["message"], "Ready");
        assert_eq!(core["reportingComponent"], "pinak-operator");
        assert_eq!(core["count"], 2);
        assert_eq!(from_storage(rt, &core).unwrap(), new);
        let core_rt = reg.find("", "v1", "events").unwrap();
        assert!(from_storage(core_rt, &core).is_none(), "the core version is the stored form");
    }
}
