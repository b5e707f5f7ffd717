//! What a request asks for, parsed from its path and method as the API server's RequestInfo.

use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRequest {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// get, list, watch, create, update, patch, delete, deletecollection
    pub verb: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Resource(ResourceRequest),
    /// Anything else: discovery, OpenAPI, health, version, kubesim's own endpoints.
    NonResource {
        verb: String,
    },
}

pub fn parse(method: &str, path: &str, query: &HashMap<String, String>) -> Target {
    let non_resource = || Target::NonResource { verb: method.to_lowercase() };
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (g.to_string(), v.to_string(), rest),
        _ => return non_resource(),
    };
    let mut rest: Vec<&str> = rest.to_vec();
    let mut watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    if rest.first() == Some(&"watch") {
        watch = true;
        rest.remove(0);
    }
    let mut namespace = None;
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        namespace = Some(rest[1].to_owned());
        // `namespaces/<ns>/status` and `/finalize` are the namespace's own subresources.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest.drain(..2);
        } else {
            namespace = None;
        }
    }
    // `<resource>/<name>/proxy/<path...>`: the path is the backend's, not part of the request's
    // identity (RequestInfo stops at the subresource).
    let proxy = rest.len() >= 3 && rest[2] == "proxy";
    if proxy {
        rest.truncate(3);
    }
    let resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    if resource.is_empty() || rest.len() > 3 {
        return non_resource();
    }
    if proxy {
        // The query belongs to the backend too: no list/watch reading of it.
        let verb = match method {
            "GET" | "HEAD" => "get".to_owned(),
            "POST" => "create".to_owned(),
            "PUT" => "update".to_owned(),
            m => m.to_lowercase(),
        };
        return Target::Resource(ResourceRequest { group, version, namespace, resource, name, subresource, verb });
    }
    let verb = match (method, name.is_some()) {
        ("GET" | "HEAD", true) if watch => "watch",
        ("GET" | "HEAD", true) => "get",
        ("GET" | "HEAD", false) if watch => "watch",
        ("GET" | "HEAD", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return non_resource(),
    };
    Target::Resource(ResourceRequest { group, version, namespace, resource, name, subresource, verb: verb.to_owned() })
}

pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k), percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(method: &str, path: &str) -> ResourceRequest {
        match parse(method, path, &HashMap::new()) {
            Target::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths_to_requests() {
        let r = res("GET", "/apis/apps/v1/namespaces/a/deployments/web/scale");
        assert_eq!(
            (
                r.group.as_str(),
                r.namespace.as_deref(),
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref(),
                r.verb.as_str()
            ),
            ("apps", Some("a"), "deployments", Some("web"), Some("scale"), "get")
        );
        let r = res("GET", "/api/v1/namespaces/a");
        assert_eq!((r.resource.as_str(), r.name.as_deref(), r.namespace.as_deref()), ("namespaces", Some("a"), None));
        let r = res("PUT", "/api/v1/namespaces/a/finalize");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.subresource.as_deref()),
            ("namespaces", Some("a"), Some("finalize"))
        );
        let r = res("GET", "/api/v1/watch/namespaces/a/pods");
        assert_eq!((r.verb.as_str(), r.resource.as_str()), ("watch", "pods"));
        let r = res("DELETE", "/api/v1/namespaces/a/pods");
        assert_eq!(r.verb, "deletecollection");
        let r = res("POST", "/api/v1/namespaces/a/services/http:web:80/proxy/api/v1/items");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.subresource.as_deref(), r.verb.as_str()),
            ("services", Some("http:web:80"), Some("proxy"), "create")
        );
        let mut watch = HashMap::new();
        watch.insert("watch".to_owned(), "true".to_owned());
        let r = match parse("GET", "/api/v1/namespaces/a/services/web/proxy/", &watch) {
            Target::Resource(r) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!((r.subresource.as_deref(), r.verb.as_str()), (Some("proxy"), "get"));
        assert_eq!(res("DELETE", "/api/v1/namespaces/a/services/web/proxy/x").verb, "delete");
        assert_eq!(res("OPTIONS", "/api/v1/namespaces/a/services/web/proxy/x").verb, "options");
        assert!(matches!(parse("GET", "/apis/apps/v1", &HashMap::new()), Target::NonResource { .. }));
        assert!(matches!(parse("GET", "/version", &HashMap::new()), Target::NonResource { .. }));
    }

    #[test]
    fn query_decoding() {
        let q = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=1"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["watch"], "1");
        assert_eq!(parse_query(Some("x=%zz"))["x"], "%zz");
    }
}
