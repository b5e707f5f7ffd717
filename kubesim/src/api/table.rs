//! Server-side printing: `kubectl get` asks for a `meta.k8s.io/v1` Table, and the columns come
//! from here (a CRD's `additionalPrinterColumns`, or the built-in kinds' usual columns).

use serde_json::{Value, json};

use crate::resources::ResourceType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

struct Column {
    name: String,
    kind: &'static str,
    format: &'static str,
    priority: i64,
    description: String,
    /// `None` = Age, computed from creationTimestamp.
    path: Option<String>,
}

fn col(name: &str, path: &str, priority: i64) -> Column {
    Column {
        name: name.to_owned(),
        kind: "string",
        format: "",
        priority,
        description: String::new(),
        path: Some(path.to_owned()),
    }
}

fn age() -> Column {
    Column {
        name: "Age".into(),
        kind: "string",
        format: "",
        priority: 0,
        description: "CreationTimestamp is a timestamp representing the server time when this object was created."
            .into(),
        path: None,
    }
}

fn columns(rt: &ResourceType) -> Vec<Column> {
    let mut cols = vec![Column {
        name: "Name".into(),
        kind: "string",
        format: "name",
        priority: 0,
        description: "Name must be unique within a namespace.".into(),
        path: Some(".metadata.name".into()),
    }];
    if let Some(crd) = &rt.crd {
        let mut has_age = false;
        for c in &crd.printer_columns {
            let name = c["name"].as_str().unwrap_or_default().to_owned();
            has_age |= name == "Age";
            cols.push(Column {
                name,
                kind: match c["type"].as_str() {
                    Some("integer") => "integer",
                    Some("number") => "number",
                    Some("boolean") => "boolean",
                    Some("date") => "date",
                    _ => "string",
                },
                format: "",
                priority: c["priority"].as_i64().unwrap_or(0),
                description: c["description"].as_str().unwrap_or_default().to_owned(),
                path: c["jsonPath"].as_str().map(str::to_owned),
            });
        }
        if !has_age && crd.printer_columns.is_empty() {
            cols.push(age());
        }
        return cols;
    }
    let extra: Vec<Column> = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => vec![
            col("Ready", "@ready", 0),
            col("Status", "@podstatus", 0),
            col("Restarts", "@restarts", 0),
            age(),
            col("IP", ".status.podIP", 1),
            col("Node", ".spec.nodeName", 1),
        ],
        ("apps", "Deployment") => vec![
            col("Ready", "@deployready", 0),
            col("Up-to-date", ".status.updatedReplicas", 0),
            col("Available", ".status.availableReplicas", 0),
            age(),
        ],
        ("apps", "ReplicaSet") => vec![
            col("Desired", ".spec.replicas", 0),
            col("Current", ".status.replicas", 0),
            col("Ready", ".status.readyReplicas", 0),
            age(),
        ],
        ("", "Service") => vec![
            col("Type", ".spec.type", 0),
            col("Cluster-IP", ".spec.clusterIP", 0),
            col("External-IP", "@none", 0),
            col("Port(s)", "@ports", 0),
            age(),
        ],
        ("", "Secret") => vec![col("Type", ".type", 0), col("Data", "@datacount", 0), age()],
        ("", "ConfigMap") => vec![col("Data", "@datacount", 0), age()],
        ("", "Namespace") => vec![col("Status", ".status.phase", 0), age()],
        ("", "Event") => vec![
            col("Type", ".type", 0),
            col("Reason", ".reason", 0),
            col("Object", "@involved", 0),
            col("Message", ".message", 0),
        ],
        ("apiextensions.k8s.io", _) => vec![col("Created At", ".metadata.creationTimestamp", 0)],
        _ => vec![age()],
    };
    cols.extend(extra);
    cols
}

/// A `Table` of `objects`.
pub fn table(rt: &ResourceType, objects: &[Value], rv: &str, include: IncludeObject) -> Value {
    let cols = columns(rt);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority}))
        .collect();
    let rows: Vec<Value> = objects.iter().map(|o| row(&cols, o, include)).collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}, "columnDefinitions": defs, "rows": rows})
}

fn row(cols: &[Column], obj: &Value, include: IncludeObject) -> Value {
    let cells: Vec<Value> = cols.iter().map(|c| cell(c, obj)).collect();
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            r["object"] =
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]});
        }
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

fn cell(c: &Column, obj: &Value) -> Value {
    let Some(path) = &c.path else { return json!(age_of(obj)) };
    let v = match path.as_str() {
        "@ready" => {
            let statuses = obj["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
            let total = obj["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|s| s["ready"] == true).count();
            json!(format!("{ready}/{total}"))
        }
        "@podstatus" => {
            let waiting = obj["status"]["containerStatuses"]
                .as_array()
                .and_then(|a| a.iter().find_map(|s| s["state"]["waiting"]["reason"].as_str().map(str::to_owned)));
            if !obj["metadata"]["deletionTimestamp"].is_null() {
                json!("Terminating")
            } else {
                json!(waiting.unwrap_or_else(|| obj["status"]["phase"].as_str().unwrap_or("Pending").to_owned()))
            }
        }
        "@restarts" => {
            let n: i64 = obj["status"]["containerStatuses"]
                .as_array()
                .map_or(0, |a| a.iter().filter_map(|s| s["restartCount"].as_i64()).sum());
            json!(n)
        }
        "@deployready" => json!(format!(
            "{}/{}",
            obj["status"]["readyReplicas"].as_i64().unwrap_or(0),
            obj["spec"]["replicas"].as_i64().unwrap_or(0)
        )),
        "@none" => json!("<none>"),
        "@ports" => {
            let ports: Vec<String> = obj["spec"]["ports"]
                .as_array()
                .map(|a| {
                    a.iter().map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP"))).collect()
                })
                .unwrap_or_default();
            json!(if ports.is_empty() { "<none>".to_owned() } else { ports.join(",") })
        }
        "@datacount" => {
            let n =
                obj["data"].as_object().map_or(0, |m| m.len()) + obj["binaryData"].as_object().map_or(0, |m| m.len());
            json!(n)
        }
        "@involved" => json!(format!(
            "{}/{}",
            obj["involvedObject"]["kind"].as_str().unwrap_or_default().to_lowercase(),
            obj["involvedObject"]["name"].as_str().unwrap_or_default()
        )),
        p => jsonpath(obj, p).unwrap_or(Value::Null),
    };
    match (c.kind, v) {
        (_, Value::Null) => Value::Null,
        ("string", Value::Number(n)) => json!(n.to_string()),
        (_, v) => v,
    }
}

/// `5s`, `3m`, `2h`, `4d`: kubectl's short age.
fn age_of(obj: &Value) -> String {
    let Some(ts) = obj["metadata"]["creationTimestamp"].as_str() else { return "<unknown>".into() };
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) else { return "<unknown>".into() };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b` (first match) and
/// `.a[?(@.type=="Ready")].status`.
pub fn jsonpath(obj: &Value, path: &str) -> Option<Value> {
    let mut cur = obj.clone();
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?.clone();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            let arr = cur.as_array()?.clone();
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, want) = filter.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                let field = field.trim();
                cur = arr.into_iter().find(|e| match &e[field] {
                    Value::String(s) => s == want,
                    Value::Number(n) => n.to_string() == want,
                    Value::Bool(b) => b.to_string() == want,
                    _ => false,
                })?;
            } else if inner == "*" {
                cur = arr.into_iter().next()?;
            } else {
                cur = arr.get(inner.parse::<usize>().ok()?)?.clone();
            }
        } else {
            return None;
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_forms() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}], "n": 3}});
        assert_eq!(jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status"), Some(json!("True")));
        assert_eq!(jsonpath(&o, ".status.conditions[0].type"), Some(json!("A")));
        assert_eq!(jsonpath(&o, ".status.n"), Some(json!(3)));
        assert_eq!(jsonpath(&o, ".status.missing"), None);
        assert_eq!(jsonpath(&o, ".status.conditions[?(@.type==\"Nope\")].status"), None);
    }
}
