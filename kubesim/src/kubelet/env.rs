//! A container's environment, resolved as the real kubelet does: `envFrom` first (later sources
//! win), then `env` in order (a value may refer to earlier variables as `$(VAR)`), then the
//! service links of the namespace's Services, which any explicit variable overrides. `command`
//! and `args` are expanded against the result.

use serde_json::Value;

use super::downward;
use super::objects::{Objects, Source};

/// Where the pod's API server is, for the `KUBERNETES_SERVICE_*` variables.
pub struct ApiEndpoint {
    pub host: String,
    pub port: u16,
}

/// The environment of `container` in `pod` (the kubelet's view, with its IPs), in definition
/// order. An error is the message of the `CreateContainerConfigError` the container waits with.
pub fn container_env(
    objects: &dyn Objects,
    pod: &Value,
    container: &Value,
    api: &ApiEndpoint,
) -> Result<Vec<(String, String)>, String> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or_default();
        let (source, reference) = match (&from["secretRef"], &from["configMapRef"]) {
            (s, _) if s.is_object() => (Source::Secret, s),
            (_, c) if c.is_object() => (Source::ConfigMap, c),
            _ => continue,
        };
        let name = reference["name"].as_str().unwrap_or_default();
        let Some(data) = source.data(objects, name) else {
            if reference["optional"] == true {
                continue;
            }
            return Err(source.not_found(name));
        };
        // Keys that cannot be variable names are skipped, as the real kubelet does.
        for (k, v) in data.into_iter().filter(|(k, _)| !k.is_empty() && !k.contains('=')) {
            set(&mut vars, &format!("{prefix}{k}"), String::from_utf8_lossy(&v).into_owned());
        }
    }
    let links = service_links(&objects.list("services"), pod, api);
    for var in container["env"].as_array().into_iter().flatten() {
        let Some(name) = var["name"].as_str().filter(|n| !n.is_empty()) else { continue };
        let value = match var["value"].as_str().filter(|v| !v.is_empty()) {
            Some(v) => expand(v, |r| lookup(&vars, r).or_else(|| lookup(&links, r))),
            None => match value_from(objects, pod, container, &var["valueFrom"])? {
                Some(v) => v,
                // An optional reference to something missing leaves the variable out.
                None if !var["valueFrom"].is_null() => continue,
                None => String::new(),
            },
        };
        set(&mut vars, name, value);
    }
    for (k, v) in links {
        if lookup(&vars, &k).is_none() {
            vars.push((k, v));
        }
    }
    Ok(vars)
}

/// A `valueFrom`: Some(value), None for a missing optional reference (or no valueFrom at all).
fn value_from(objects: &dyn Objects, pod: &Value, container: &Value, from: &Value) -> Result<Option<String>, String> {
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        return downward::field_ref(pod, path).map(Some);
    }
    if from["resourceFieldRef"].is_object() {
        return downward::resource_field_ref(container, &from["resourceFieldRef"]).map(Some);
    }
    let (source, reference, kind) = match (&from["secretKeyRef"], &from["configMapKeyRef"]) {
        (s, _) if s.is_object() => (Source::Secret, s, "Secret"),
        (_, c) if c.is_object() => (Source::ConfigMap, c, "ConfigMap"),
        _ => return Ok(None),
    };
    let name = reference["name"].as_str().unwrap_or_default();
    let key = reference["key"].as_str().unwrap_or_default();
    let optional = reference["optional"] == true;
    let Some(data) = source.data(objects, name) else {
        return if optional { Ok(None) } else { Err(source.not_found(name)) };
    };
    match data.get(key) {
        Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
        None if optional => Ok(None),
        None => {
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
            Err(format!("couldn't find key {key} in {kind} {ns}/{name}"))
        }
    }
}

fn set(vars: &mut Vec<(String, String)>, name: &str, value: String) {
    match vars.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name.to_owned(), value)),
    }
}

fn lookup(vars: &[(String, String)], name: &str) -> Option<String> {
    vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// The variables a pod gets for the API server and, unless `enableServiceLinks` is false, for
/// every Service of its namespace that has a cluster IP (Docker link style, as the real kubelet).
fn service_links(services: &[Value], pod: &Value, api: &ApiEndpoint) -> Vec<(String, String)> {
    let mut out = link_vars("KUBERNETES", &api.host, &[(Some("https"), i64::from(api.port), "TCP")]);
    if pod["spec"]["enableServiceLinks"] == false {
        return out;
    }
    let mut services: Vec<&Value> = services.iter().collect();
    services.sort_by_key(|s| s["metadata"]["name"].as_str().unwrap_or_default().to_owned());
    for svc in services {
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
        let Some(ip) = svc["spec"]["clusterIP"].as_str().filter(|ip| !ip.is_empty() && *ip != "None") else { continue };
        if name == "kubernetes" && ns == "default" {
            continue;
        }
        let ports: Vec<(Option<&str>, i64, &str)> = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p["name"].as_str(), p["port"].as_i64()?, p["protocol"].as_str().unwrap_or("TCP"))))
            .collect();
        out.extend(link_vars(&name.to_uppercase().replace('-', "_"), ip, &ports));
    }
    out
}

fn link_vars(prefix: &str, ip: &str, ports: &[(Option<&str>, i64, &str)]) -> Vec<(String, String)> {
    let mut out = vec![(format!("{prefix}_SERVICE_HOST"), ip.to_owned())];
    let Some((_, first, first_proto)) = ports.first() else { return out };
    out.push((format!("{prefix}_SERVICE_PORT"), first.to_string()));
    for (name, port, _) in ports {
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            out.push((format!("{prefix}_SERVICE_PORT_{}", n.to_uppercase().replace('-', "_")), port.to_string()));
        }
    }
    out.push((format!("{prefix}_PORT"), format!("{}://{ip}:{first}", first_proto.to_lowercase())));
    for (_, port, proto) in ports {
        let p = format!("{prefix}_PORT_{port}_{}", proto.to_uppercase());
        out.push((p.clone(), format!("{}://{ip}:{port}", proto.to_lowercase())));
        out.push((format!("{p}_PROTO"), proto.to_lowercase()));
        out.push((format!("{p}_PORT"), port.to_string()));
        out.push((format!("{p}_ADDR"), ip.to_owned()));
    }
    out
}

/// `command`/`args` words with `$(VAR)` references to the container's environment expanded.
pub fn expand_words(words: &Value, env: &[(String, String)]) -> Vec<String> {
    words.as_array().into_iter().flatten().map(|w| expand(w.as_str().unwrap_or_default(), |r| lookup(env, r))).collect()
}

/// Kubernetes variable expansion: `$(NAME)` becomes the variable's value, or stays as written
/// when it is not defined; `$$` is a literal `$`; any other `$` is kept.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            b'$' => {
                out.push(b'$');
                i += 2;
            }
            b'(' => match bytes[i + 2..].iter().position(|b| *b == b')') {
                Some(len) => {
                    let name = &input[i + 2..i + 2 + len];
                    match lookup(name) {
                        Some(v) => out.extend_from_slice(v.as_bytes()),
                        None => out.extend_from_slice(format!("$({name})").as_bytes()),
                    }
                    i += len + 3;
                }
                None => {
                    out.extend_from_slice(b"$(");
                    i += 2;
                }
            },
            _ => {
                out.push(b'$');
                i += 1;
            }
        }
    }
    // Only whole UTF-8 sequences were copied, split at ASCII bytes: still valid UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::super::objects::Fixed;
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let owned: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| lookup(&owned, name)
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let v = vars(&[("A", "1"), ("EMPTY", ""), ("É", "e")]);
        assert_eq!(expand("$(A)", &v), "1");
        assert_eq!(expand("x$(A)y$(A)", &v), "x1y1");
        assert_eq!(expand("$(MISSING)", &v), "$(MISSING)");
        assert_eq!(expand("$(EMPTY)-", &v), "-");
        assert_eq!(expand("$$(A)", &v), "$(A)");
        assert_eq!(expand("$$$(A)", &v), "$1");
        assert_eq!(expand("cost $5", &v), "cost $5");
        assert_eq!(expand("trailing $", &v), "trailing $");
        assert_eq!(expand("open $(A", &v), "open $(A");
        assert_eq!(expand("$(É)é$ü", &v), "eé$ü");
        assert_eq!(expand("$()", &v), "$()");
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"serviceAccountName": "default"},
            "status": {"podIP": "127.2.0.9"},
        })
    }

    fn objects() -> Fixed {
        Fixed::default()
            .with("secrets", json!({"metadata": {"name": "db"}, "data": {"password": "czNjcjN0", "user": "YWRtaW4="}}))
            .with("configmaps", json!({"metadata": {"name": "cfg"}, "data": {"LEVEL": "debug", "user": "cm-user"}}))
            .with(
                "services",
                json!({"metadata": {"name": "my-db", "namespace": "ns"},
                    "spec": {"clusterIP": "127.1.0.4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}}),
            )
            .with(
                "services",
                json!({"metadata": {"name": "headless", "namespace": "ns"}, "spec": {"clusterIP": "None"}}),
            )
    }

    const API: ApiEndpoint = ApiEndpoint { host: String::new(), port: 6443 };

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn env_from_env_and_references() {
        let api = ApiEndpoint { host: "127.0.0.1".into(), port: 6443 };
        let c = json!({
            "envFrom": [
                {"configMapRef": {"name": "cfg"}},
                {"secretRef": {"name": "db"}, "prefix": "DB_"},
                {"secretRef": {"name": "nope", "optional": true}},
            ],
            "env": [
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "ADDR", "value": "$(POD_IP):8080"},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "db", "key": "none", "optional": true}}},
                {"name": "LEVEL", "value": "info"},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "DB_HOST", "value": "$(MY_DB_SERVICE_HOST)"},
                {"name": "KUBERNETES_SERVICE_HOST", "value": "override"},
            ],
        });
        let env = container_env(&objects(), &pod(), &c, &api).unwrap();
        assert_eq!(get(&env, "user"), Some("cm-user"));
        assert_eq!(get(&env, "DB_user"), Some("admin"));
        assert_eq!(get(&env, "POD_IP"), Some("127.2.0.9"));
        assert_eq!(get(&env, "ADDR"), Some("127.2.0.9:8080"));
        assert_eq!(get(&env, "PW"), Some("s3cr3t"));
        assert_eq!(get(&env, "OPT"), None, "a missing optional key leaves the variable out");
        assert_eq!(get(&env, "LEVEL"), Some("info"), "env overrides envFrom");
        assert_eq!(get(&env, "APP"), Some("web"));
        assert_eq!(get(&env, "DB_HOST"), Some("127.1.0.4"), "service links are visible to $(VAR)");
        assert_eq!(get(&env, "MY_DB_SERVICE_PORT_PG"), Some("5432"));
        assert_eq!(get(&env, "MY_DB_PORT_5432_TCP"), Some("tcp://127.1.0.4:5432"));
        assert_eq!(get(&env, "HEADLESS_SERVICE_HOST"), None);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("override"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT"), Some("6443"));
        assert_eq!(env.iter().filter(|(k, _)| k == "KUBERNETES_SERVICE_HOST").count(), 1);
        assert_eq!(
            expand_words(&json!(["--addr", "$(ADDR)", "$$(ADDR)"]), &env),
            ["--addr", "127.2.0.9:8080", "$(ADDR)"]
        );
    }

    #[test]
    fn service_links_can_be_turned_off() {
        let mut p = pod();
        p["spec"]["enableServiceLinks"] = json!(false);
        let env = container_env(&objects(), &p, &json!({}), &API).unwrap();
        assert!(get(&env, "MY_DB_SERVICE_HOST").is_none());
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("6443"));
    }

    #[test]
    fn missing_references_give_the_real_messages() {
        let err = |env: Value| container_env(&objects(), &pod(), &json!({"env": env}), &API).unwrap_err();
        assert_eq!(
            err(json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}])),
            "secret \"gone\" not found"
        );
        assert_eq!(
            err(json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}])),
            "couldn't find key k in Secret ns/db"
        );
        assert_eq!(
            err(json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}])),
            "couldn't find key k in ConfigMap ns/cfg"
        );
        assert_eq!(
            err(json!([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}])),
            "unsupported fieldPath: spec.bogus"
        );
        let from = container_env(&objects(), &pod(), &json!({"envFrom": [{"configMapRef": {"name": "gone"}}]}), &API);
        assert_eq!(from.unwrap_err(), "configmap \"gone\" not found");
    }
}
