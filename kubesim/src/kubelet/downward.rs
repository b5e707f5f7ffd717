//! The downward API: pod fields (`fieldRef`) and container resources (`resourceFieldRef`) as
//! the values env vars and downwardAPI volume files get.

use serde_json::Value;

use super::{HOST_IP, NODE_NAME};

/// A `fieldRef.fieldPath` for an env var. `pod` is the kubelet's view of the pod (its IPs set).
pub fn field_ref(pod: &Value, path: &str) -> Result<String, String> {
    let meta = &pod["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    if let Some((map, key)) = subscript(path) {
        return match map {
            "metadata.labels" => Ok(text(&meta["labels"][key])),
            "metadata.annotations" => Ok(text(&meta["annotations"][key])),
            _ => Err(format!("unsupported fieldPath: {path}")),
        };
    }
    match path {
        "metadata.name" => Ok(text(&meta["name"])),
        "metadata.namespace" => Ok(text(&meta["namespace"])),
        "metadata.uid" => Ok(text(&meta["uid"])),
        "spec.nodeName" => Ok(NODE_NAME.to_owned()),
        "spec.serviceAccountName" => Ok(text(&pod["spec"]["serviceAccountName"])),
        "status.podIP" => Ok(text(&pod["status"]["podIP"])),
        "status.podIPs" => Ok(ips(&pod["status"]["podIPs"])),
        "status.hostIP" => Ok(HOST_IP.to_owned()),
        "status.hostIPs" => Ok(HOST_IP.to_owned()),
        _ => Err(format!("unsupported fieldPath: {path}")),
    }
}

/// A `fieldRef.fieldPath` for a downwardAPI volume file: also whole label and annotation maps,
/// rendered as the real kubelet does (`key="value"` lines, sorted, quoted).
pub fn volume_field_ref(pod: &Value, path: &str) -> Result<String, String> {
    match path {
        "metadata.labels" | "metadata.annotations" => {
            let map = &pod["metadata"][path.trim_start_matches("metadata.")];
            let mut lines: Vec<String> = map
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", Value::String(v.as_str().unwrap_or_default().to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            lines.sort();
            Ok(lines.join("\n"))
        }
        _ => field_ref(pod, path),
    }
}

/// `metadata.labels['key']` → ("metadata.labels", "key").
fn subscript(path: &str) -> Option<(&str, &str)> {
    let (map, rest) = path.split_once("['")?;
    Some((map, rest.strip_suffix("']")?))
}

fn ips(list: &Value) -> String {
    let all: Vec<&str> =
        list.as_array().map(|a| a.iter().filter_map(|i| i["ip"].as_str()).collect()).unwrap_or_default();
    all.join(",")
}

/// A `resourceFieldRef`: the container's request or limit divided by `divisor`, rounded up. An
/// unset limit is the node's allocatable (this machine's CPUs and memory), an unset request 0.
pub fn resource_field_ref(container: &Value, field: &Value) -> Result<String, String> {
    let resource = field["resource"].as_str().unwrap_or_default();
    let Some((kind, name)) = resource.split_once('.') else {
        return Err(format!("unsupported container resource: {resource:?}"));
    };
    if !matches!(kind, "limits" | "requests") || !matches!(name, "cpu" | "memory" | "ephemeral-storage") {
        return Err(format!("unsupported container resource: {resource:?}"));
    }
    let divisor = match &field["divisor"] {
        Value::Null => 1.0,
        d => quantity(&quantity_text(d)).filter(|v| *v > 0.0).ok_or_else(|| format!("invalid divisor {d}"))?,
    };
    let set = &container["resources"][kind][name];
    let value = match set {
        Value::Null if kind == "limits" => node_allocatable(name),
        Value::Null => 0.0,
        v => quantity(&quantity_text(v)).ok_or_else(|| format!("invalid quantity {v} in {resource}"))?,
    };
    Ok(format!("{}", (value / divisor).ceil() as i64))
}

fn quantity_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A Kubernetes quantity in base units (cores, bytes): `250m`, `1.5`, `64Mi`, `2G`, `1e3`.
pub fn quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * factor)
}

/// What a container may use when it sets no limit: the whole machine.
fn node_allocatable(resource: &str) -> f64 {
    match resource {
        "cpu" => std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        "memory" => std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(str::to_owned)))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb * 1024.0),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                "labels": {"app": "web", "tier": "a\"b"}, "annotations": {"note": "hi"}},
            "spec": {"serviceAccountName": "runner"},
            "status": {"podIP": "127.2.0.7", "podIPs": [{"ip": "127.2.0.7"}]},
        })
    }

    #[test]
    fn pod_fields() {
        let p = pod();
        assert_eq!(field_ref(&p, "metadata.name").unwrap(), "web-1");
        assert_eq!(field_ref(&p, "metadata.namespace").unwrap(), "shop");
        assert_eq!(field_ref(&p, "metadata.uid").unwrap(), "u-1");
        assert_eq!(field_ref(&p, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(field_ref(&p, "metadata.labels['missing']").unwrap(), "");
        assert_eq!(field_ref(&p, "metadata.annotations['note']").unwrap(), "hi");
        assert_eq!(field_ref(&p, "spec.nodeName").unwrap(), "kubesim");
        assert_eq!(field_ref(&p, "spec.serviceAccountName").unwrap(), "runner");
        assert_eq!(field_ref(&p, "status.podIP").unwrap(), "127.2.0.7");
        assert_eq!(field_ref(&p, "status.podIPs").unwrap(), "127.2.0.7");
        assert_eq!(field_ref(&p, "status.hostIP").unwrap(), "127.0.0.1");
        assert_eq!(field_ref(&p, "metadata.labels").unwrap_err(), "unsupported fieldPath: metadata.labels");
        assert_eq!(volume_field_ref(&p, "metadata.labels").unwrap(), "app=\"web\"\ntier=\"a\\\"b\"");
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity("250m"), Some(0.25));
        assert_eq!(quantity("64Mi"), Some(64.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("2G"), Some(2e9));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("1.5"), Some(1.5));
        assert_eq!(quantity("12x"), None);
        assert_eq!(quantity(""), None);
    }

    #[test]
    fn resources_round_up_by_divisor() {
        let c = json!({"resources": {"limits": {"cpu": "1500m", "memory": "64Mi"}, "requests": {"cpu": 1}}});
        let rf = |resource: &str, divisor: Value| json!({"resource": resource, "divisor": divisor});
        assert_eq!(resource_field_ref(&c, &rf("limits.cpu", Value::Null)).unwrap(), "2");
        assert_eq!(resource_field_ref(&c, &rf("limits.cpu", json!("1m"))).unwrap(), "1500");
        assert_eq!(resource_field_ref(&c, &rf("limits.memory", json!("1Mi"))).unwrap(), "64");
        assert_eq!(resource_field_ref(&c, &rf("requests.cpu", Value::Null)).unwrap(), "1");
        assert_eq!(resource_field_ref(&c, &rf("requests.memory", Value::Null)).unwrap(), "0");
        let cpus = std::thread::available_parallelism().unwrap().get().to_string();
        assert_eq!(resource_field_ref(&json!({}), &rf("limits.cpu", Value::Null)).unwrap(), cpus);
        assert!(resource_field_ref(&c, &rf("limits.gpu", Value::Null)).is_err());
    }
}
