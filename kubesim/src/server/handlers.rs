//! Resource requests: decode the body, call the API's semantics, encode the answer (JSON,
//! a Table for `kubectl get`, or a watch stream).

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use hyper::Response;
use serde_json::{Value, json};

use super::request::ResourceRequest;
use super::{ApiServer, Req, error_response, json_response, protobuf};
use crate::api::list::ListOptions;
use crate::api::table::{self, IncludeObject};
use crate::api::watch::WatchSpec;
use crate::api::{ApiError, ApiResult, Ctx, DeleteOptions, FieldValidation, Outcome, PatchType};
use crate::auth::TokenBinding;
use crate::auth::rbac::{self, Attributes, Decision, Policy, UserInfo};
use crate::resources::ResourceType;

pub async fn resource(server: &Arc<ApiServer>, r: &Req, rr: &ResourceRequest) -> Response<Body> {
    match dispatch(server, r, rr).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

async fn dispatch(server: &Arc<ApiServer>, r: &Req, rr: &ResourceRequest) -> ApiResult<Response<Body>> {
    let reg = server.cluster.registry();
    let not_found = || ApiError::new(404, "NotFound", "the server could not find the requested resource");
    let rt = reg.find(&rr.group, &rr.version, &rr.resource).cloned().ok_or_else(not_found)?;
    if !rt.namespaced && rr.namespace.is_some() {
        return Err(not_found());
    }
    if rt.is_virtual() {
        if rr.verb != "create" {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({})",
                rr.resource
            )));
        }
        return reviews(server, r, &rt).await;
    }
    let ns = rr.namespace.as_deref();
    let name = rr.name.as_deref().unwrap_or_default();
    let sub = rr.subresource.as_deref();
    if let Some(s) = sub {
        let token = rt.kind == "ServiceAccount" && s == "token";
        let finalize = rt.kind == "Namespace" && s == "finalize";
        let proxy = rt.group.is_empty() && rt.kind == "Service" && s == "proxy";
        let portforward = rt.group.is_empty() && rt.kind == "Pod" && s == "portforward";
        if !(rt.has_subresource(s) || token || finalize || proxy || portforward) {
            return Err(not_found());
        }
        if proxy {
            return super::connect::service_proxy(server, r, &rt, ns.unwrap_or_default(), name).await;
        }
        if portforward {
            return super::connect::portforward(server, r, &rt, ns.unwrap_or_default(), name, &rr.verb);
        }
        if token {
            return token_request(server, r, &rt, ns, name);
        }
        if s == "scale" {
            return scale(server, r, &rt, ns, name, &rr.verb);
        }
        if s == "finalize" {
            return Ok(json_response(200, &server.cluster.get(&rt, None, name)?));
        }
        if s == "log" {
            return pod_log(server, r, &rt, ns, name, &rr.verb);
        }
    }
    if !rt.verbs.contains(&rr.verb) {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            rt.qualified()
        )));
    }
    if rt.namespaced && ns.is_none() && !matches!(rr.verb.as_str(), "list" | "watch") {
        return Err(not_found());
    }
    let ctx = ctx_of(r)?;
    match rr.verb.as_str() {
        "get" => {
            let obj = server.cluster.get(&rt, ns, name)?;
            if wants_table(r) {
                let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_owned();
                return Ok(json_response(200, &table::table(&rt, &[obj], &rv, include(r))));
            }
            Ok(json_response(200, &obj))
        }
        "list" => {
            let opts = ListOptions::from_query(&rt, &r.query)?;
            let (list, rv) = server.cluster.list(&rt, ns, &opts)?;
            if wants_table(r) {
                let items = list["items"].as_array().cloned().unwrap_or_default();
                let mut t = table::table(&rt, &items, &rv.to_string(), include(r));
                t["metadata"]["continue"] = list["metadata"]["continue"].clone();
                return Ok(json_response(200, &t));
            }
            Ok(json_response(200, &list))
        }
        "watch" => watch(server, r, &rt, ns, rr.name.as_deref()),
        "create" => {
            let body = decode_body(r)?;
            let out = server.cluster.create(&ctx, &rt, ns, body)?;
            Ok(outcome(out, 201))
        }
        "update" => {
            let body = decode_body(r)?;
            let out = server.cluster.update(&ctx, &rt, ns, name, body, sub)?;
            Ok(outcome(out, 200))
        }
        "patch" => {
            let ct = r.header("content-type");
            let ptype = PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            if ptype == PatchType::Apply && r.query.get("fieldManager").is_none_or(|m| m.is_empty()) {
                return Err(ApiError::invalid_field(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    "fieldManager",
                    "Required value: is required for apply patch",
                ));
            }
            let force = r.query.get("force").is_some_and(|f| f == "true");
            let out = server.cluster.patch(&ctx, &rt, ns, name, ptype, &r.body, force, sub)?;
            let code = if out.created { 201 } else { 200 };
            Ok(outcome(out, code))
        }
        "delete" => {
            let opts = delete_options(r)?;
            let obj = server.cluster.delete(&ctx, &rt, ns, name, &opts)?;
            Ok(json_response(200, &obj))
        }
        "deletecollection" => {
            let opts = delete_options(r)?;
            let list_opts = ListOptions::from_query(&rt, &r.query)?;
            let (list, _) = server.cluster.list(&rt, ns, &list_opts)?;
            let mut deleted = Vec::new();
            for item in list["items"].as_array().cloned().unwrap_or_default() {
                let item_ns = item["metadata"]["namespace"].as_str().map(str::to_owned);
                let item_name = item["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                match server.cluster.delete(&ctx, &rt, item_ns.as_deref(), &item_name, &opts) {
                    Ok(o) => deleted.push(o),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let mut out = list.clone();
            out["items"] = json!(deleted);
            Ok(json_response(200, &out))
        }
        v => Err(ApiError::method_not_allowed(format!("verb {v} is not supported"))),
    }
}

fn outcome(out: Outcome, code: u16) -> Response<Body> {
    let mut resp = json_response(code, &out.object);
    for w in out.warnings {
        if let Ok(v) = format!("299 - {:?}", w).parse() {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

fn ctx_of(r: &Req) -> ApiResult<Ctx> {
    let field_validation = match r.query.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            )));
        }
    };
    let dry_run = match r.query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            )));
        }
    };
    // As the real server: a write without fieldManager is owned by its user agent's program.
    let manager = match r.query.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => m.clone(),
        None => r.header("user-agent").split('/').next().filter(|s| !s.is_empty()).unwrap_or("unknown").to_owned(),
    };
    Ok(Ctx { user: r.user.clone(), field_manager: manager, dry_run, field_validation })
}

/// A request body as JSON: JSON, YAML, or the protobuf some typed clients send.
pub fn decode_body(r: &Req) -> ApiResult<Value> {
    let ct = r.header("content-type");
    let media = ct.split(';').next().unwrap_or_default().trim();
    match media {
        "" | "application/json" | "*/*" => {
            serde_json::from_slice(&r.body).map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))
        }
        "application/yaml" => {
            serde_yaml::from_slice(&r.body).map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))
        }
        "application/vnd.kubernetes.protobuf" => protobuf::decode(&r.body).map_err(|e| match e {
            protobuf::DecodeError::Unsupported { api_version, kind } => ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("kubesim cannot decode protobuf {kind} ({api_version}); send application/json"),
            ),
            protobuf::DecodeError::Malformed(m) => ApiError::bad_request(format!("error decoding protobuf body: {m}")),
        }),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

fn delete_options(r: &Req) -> ApiResult<DeleteOptions> {
    let mut opts =
        if r.body.is_empty() { DeleteOptions::default() } else { DeleteOptions::from_json(&decode_body(r)?) };
    if let Some(p) = r.query.get("propagationPolicy") {
        opts.propagation = Some(p.clone());
    }
    if let Some(g) = r.query.get("gracePeriodSeconds").and_then(|g| g.parse().ok()) {
        opts.grace_period = Some(g);
    }
    Ok(opts)
}

fn wants_table(r: &Req) -> bool {
    r.header("accept").split(',').next().is_some_and(|first| first.contains("as=Table"))
}

fn include(r: &Req) -> IncludeObject {
    IncludeObject::parse(r.query.get("includeObject").map(String::as_str))
}

fn watch(
    server: &Arc<ApiServer>,
    r: &Req,
    rt: &ResourceType,
    ns: Option<&str>,
    name: Option<&str>,
) -> ApiResult<Response<Body>> {
    let mut query = r.query.clone();
    if let Some(n) = name {
        // The legacy single-object watch is a watch with a name selector.
        query.insert("fieldSelector".into(), format!("metadata.name={n}"));
    }
    let opts = ListOptions::from_query(rt, &query)?;
    let render: crate::api::watch::Render = if wants_table(r) {
        let rt2 = rt.clone();
        let inc = include(r);
        Box::new(move |o: &Value| {
            let rv = o["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_owned();
            table::table(&rt2, std::slice::from_ref(o), &rv, inc)
        })
    } else {
        Box::new(|o: &Value| o.clone())
    };
    let spec = WatchSpec { rt: rt.clone(), namespace: ns.map(str::to_owned), opts, render };
    let rx = server.cluster.watch(spec)?;
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|e| {
        let mut line = serde_json::to_vec(&e).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// `kubectl logs`: a container's output, cut by `tailLines`/`limitBytes`, streamed with `follow`.
fn pod_log(
    server: &Arc<ApiServer>,
    r: &Req,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    verb: &str,
) -> ApiResult<Response<Body>> {
    if verb != "get" {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({}/log)",
            rt.qualified()
        )));
    }
    let pod = server.cluster.get(rt, ns, name)?;
    let body = crate::kubelet::logs::body(server.cluster.clone(), &server.state_dir, &pod, &r.query)?;
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .header("cache-control", "no-cache, private")
        .body(body)
        .unwrap_or_default())
}

/// `kubectl scale` and the HPA: the `autoscaling/v1` Scale view of an object's replicas.
fn scale(
    server: &Arc<ApiServer>,
    r: &Req,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    verb: &str,
) -> ApiResult<Response<Body>> {
    let paths = scale_paths(rt);
    let obj = server.cluster.get(rt, ns, name)?;
    let view = scale_view(&obj, &paths);
    let ctx = ctx_of(r)?;
    let wanted = match verb {
        "get" => return Ok(json_response(200, &view)),
        "update" => decode_body(r)?,
        "patch" => {
            let ct = r.header("content-type");
            let ptype = PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let p: Value = match ptype {
                PatchType::Apply => {
                    serde_yaml::from_slice(&r.body).map_err(|e| ApiError::bad_request(e.to_string()))?
                }
                _ => serde_json::from_slice(&r.body).map_err(|e| ApiError::bad_request(e.to_string()))?,
            };
            let mut doc = view.clone();
            match ptype {
                PatchType::Json => {
                    let p: json_patch::Patch =
                        serde_json::from_value(p).map_err(|e| ApiError::bad_request(e.to_string()))?;
                    json_patch::patch(&mut doc, &p).map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
                }
                _ => json_patch::merge(&mut doc, &p),
            }
            doc
        }
        _ => return Err(ApiError::method_not_allowed("scale supports get, update and patch")),
    };
    let Some(replicas) = wanted["spec"]["replicas"].as_i64().filter(|r| *r >= 0) else {
        return Err(ApiError::invalid_field(
            "Scale",
            "autoscaling",
            name,
            "spec.replicas",
            "Invalid value: must be greater than or equal to 0",
        ));
    };
    let patch = set_path(&paths.0, json!(replicas));
    let body = serde_json::to_vec(&patch).unwrap_or_default();
    let out = server.cluster.patch(&ctx, rt, ns, name, PatchType::Merge, &body, false, None)?;
    Ok(json_response(200, &scale_view(&out.object, &paths)))
}

/// (specReplicasPath, statusReplicasPath, labelSelectorPath) without the leading dot.
fn scale_paths(rt: &ResourceType) -> (String, String, Option<String>) {
    let strip = |v: &Value| v.as_str().map(|s| s.trim_start_matches('.').to_owned());
    match rt.crd.as_ref().and_then(|c| c.scale.clone()) {
        Some(s) => (
            strip(&s["specReplicasPath"]).unwrap_or_else(|| "spec.replicas".into()),
            strip(&s["statusReplicasPath"]).unwrap_or_else(|| "status.replicas".into()),
            strip(&s["labelSelectorPath"]),
        ),
        None => ("spec.replicas".into(), "status.replicas".into(), None),
    }
}

fn get_path<'a>(obj: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(obj, |v, p| &v[p])
}

fn set_path(path: &str, value: Value) -> Value {
    path.rsplit('.').fold(value, |inner, p| json!({ p: inner }))
}

fn scale_view(obj: &Value, paths: &(String, String, Option<String>)) -> Value {
    let selector = match &paths.2 {
        Some(p) => get_path(obj, p).as_str().unwrap_or_default().to_owned(),
        None => selector_string(&obj["spec"]["selector"]),
    };
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"], "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": get_path(obj, &paths.0).as_i64().unwrap_or(0)},
        "status": {"replicas": get_path(obj, &paths.1).as_i64().unwrap_or(0), "selector": selector},
    })
}

/// A metav1.LabelSelector in the query-string form (`a=b,c in (x,y)`).
pub fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    for e in sel["matchExpressions"].as_array().cloned().unwrap_or_default() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> =
            e["values"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        parts.push(match e["operator"].as_str() {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("Exists") => key.to_owned(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

/// `POST serviceaccounts/<name>/token`: a TokenRequest answered with a signed token.
fn token_request(
    server: &Arc<ApiServer>,
    r: &Req,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
) -> ApiResult<Response<Body>> {
    if r.method != "POST" {
        return Err(ApiError::method_not_allowed("token supports create only"));
    }
    let sa = server.cluster.get(rt, ns, name)?;
    let body = if r.body.is_empty() { json!({}) } else { decode_body(r)? };
    let spec = &body["spec"];
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let bound_ref = &spec["boundObjectRef"];
    let bound = bound_ref["kind"]
        .as_str()
        .map(|k| (k, bound_ref["name"].as_str().unwrap_or_default(), bound_ref["uid"].as_str().unwrap_or_default()));
    let binding = TokenBinding {
        namespace: ns.unwrap_or_default(),
        service_account: name,
        service_account_uid: sa["metadata"]["uid"].as_str().unwrap_or_default(),
        audiences: audiences.clone(),
        expiration_seconds: spec["expirationSeconds"].as_i64().unwrap_or(3600),
        bound,
    };
    let (token, exp) = server.auth.mint(&binding).map_err(|e| ApiError::internal(e.to_string()))?;
    let exp_ts = chrono::DateTime::from_timestamp(exp, 0).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let mut out = body.clone();
    out["apiVersion"] = json!("authentication.k8s.io/v1");
    out["kind"] = json!("TokenRequest");
    out["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": crate::api::now()});
    out["status"] = json!({"token": token, "expirationTimestamp": exp_ts});
    Ok(json_response(201, &out))
}

/// The review kinds: answered from the request, never stored.
async fn reviews(server: &Arc<ApiServer>, r: &Req, rt: &ResourceType) -> ApiResult<Response<Body>> {
    let mut body = decode_body(r)?;
    let spec = body["spec"].clone();
    let policy_objects = server.policy_objects();
    let policy = Policy {
        roles: &policy_objects[0],
        cluster_roles: &policy_objects[1],
        role_bindings: &policy_objects[2],
        cluster_role_bindings: &policy_objects[3],
    };
    let status = match rt.kind.as_str() {
        "TokenReview" => {
            let token = spec["token"].as_str().unwrap_or_default();
            let audiences: Vec<String> = spec["audiences"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            if token == server.auth.admin_token() {
                json!({"authenticated": true, "user": {"username": crate::auth::ADMIN_USER, "groups": crate::auth::Authenticator::admin().groups}, "audiences": audiences})
            } else {
                match server.auth.verify(&server.cluster, token, &audiences) {
                    Ok((user, matched, claims)) => {
                        let k8s = &claims["kubernetes.io"];
                        let mut extra = json!({});
                        if let Some(pod) = k8s.get("pod") {
                            extra["authentication.kubernetes.io/pod-name"] = json!([pod["name"]]);
                            extra["authentication.kubernetes.io/pod-uid"] = json!([pod["uid"]]);
                        }
                        extra["authentication.kubernetes.io/credential-id"] =
                            json!([format!("JTI={}", claims["jti"].as_str().unwrap_or_default())]);
                        json!({"authenticated": true, "user": {"username": user.name, "uid": k8s["serviceaccount"]["uid"], "groups": user.groups, "extra": extra}, "audiences": matched})
                    }
                    Err(e) => json!({"authenticated": false, "error": e}),
                }
            }
        }
        "SelfSubjectAccessReview" | "SubjectAccessReview" => {
            let user = if rt.kind == "SubjectAccessReview" {
                UserInfo {
                    name: spec["user"].as_str().unwrap_or_default().to_owned(),
                    groups: spec["groups"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default(),
                }
            } else {
                r.user.clone()
            };
            let attrs = if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
                let s = |k: &str| ra[k].as_str().filter(|x| !x.is_empty()).map(str::to_owned);
                Attributes::Resource {
                    verb: s("verb").unwrap_or_default(),
                    api_group: s("group").unwrap_or_default(),
                    resource: s("resource").unwrap_or_default(),
                    subresource: s("subresource"),
                    namespace: s("namespace"),
                    name: s("name"),
                }
            } else {
                let nra = &spec["nonResourceAttributes"];
                Attributes::NonResource {
                    verb: nra["verb"].as_str().unwrap_or_default().to_owned(),
                    path: nra["path"].as_str().unwrap_or_default().to_owned(),
                }
            };
            let masters = user.groups.iter().any(|g| g == "system:masters");
            match rbac::authorize(&user, &attrs, &policy) {
                _ if masters => json!({"allowed": true}),
                Decision::Allow => json!({"allowed": true, "reason": "RBAC: allowed"}),
                Decision::Deny => json!({"allowed": false}),
            }
        }
        "SelfSubjectRulesReview" => {
            let ns = spec["namespace"].as_str().unwrap_or("default");
            let (res, non) = if r.user.groups.iter().any(|g| g == "system:masters") {
                (
                    vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
                    vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
                )
            } else {
                rbac::rules_for(&r.user, ns, &policy)
            };
            json!({"resourceRules": res, "nonResourceRules": non, "incomplete": false})
        }
        "SelfSubjectReview" => json!({"userInfo": {"username": r.user.name, "groups": r.user.groups}}),
        other => return Err(ApiError::not_implemented(&format!("the review kind {other}"))),
    };
    body["apiVersion"] = json!(rt.api_version());
    body["kind"] = json!(rt.kind);
    if !body["metadata"].is_object() {
        body["metadata"] = json!({});
    }
    body["metadata"]["creationTimestamp"] = Value::Null;
    body["status"] = status;
    Ok(json_response(201, &body))
}
