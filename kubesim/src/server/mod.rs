//! The HTTPS front: TLS, authentication, RBAC, the request log, fault injection, and routing to
//! discovery, OpenAPI and the resource handlers.

pub mod connect;
pub mod discovery;
pub mod faults;
pub mod handlers;
pub mod openapi;
pub mod protobuf;
pub mod request;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::api::{ApiError, Cluster};
use crate::auth::Authenticator;
use crate::auth::rbac::{self, Attributes, Decision, Policy, UserInfo};
use crate::resources::GroupResource;
use request::Target;

/// The largest request body accepted (the real server's limit is 3 MiB for most requests).
const MAX_BODY: usize = 3 * 1024 * 1024;

pub struct ApiServer {
    pub cluster: Arc<Cluster>,
    pub auth: Arc<Authenticator>,
    pub address: SocketAddr,
    pub faults: faults::Faults,
    /// The kubelet's state directory, where `pods/<name>/log` reads container logs.
    pub state_dir: std::path::PathBuf,
    request_log: Option<Mutex<std::fs::File>>,
    openapi_cache: Mutex<HashMap<String, (u64, Value, String)>>,
}

/// A request after authentication.
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    /// The query as sent (still percent-encoded), for the service proxy to pass on.
    pub raw_query: Option<String>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    pub user: UserInfo,
    /// The connection, once switched to another protocol (WebSocket for pods/portforward).
    pub upgrade: Mutex<Option<hyper::upgrade::OnUpgrade>>,
}

impl Req {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    json_typed(code, v, "application/json")
}

pub fn json_typed(code: u16, v: &Value, content_type: &str) -> Response<Body> {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type)
        .header("cache-control", "no-cache, private")
        .body(Body::from(body))
        .unwrap_or_default()
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.status())
}

impl ApiServer {
    pub fn new(
        cluster: Arc<Cluster>,
        auth: Arc<Authenticator>,
        address: SocketAddr,
        request_log: Option<std::fs::File>,
        state_dir: std::path::PathBuf,
    ) -> Self {
        ApiServer {
            cluster,
            auth,
            address,
            faults: faults::Faults::default(),
            state_dir,
            request_log: request_log.map(Mutex::new),
            openapi_cache: Mutex::new(HashMap::new()),
        }
    }

    /// Accepts TLS connections until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, tls: Arc<rustls::ServerConfig>) {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            let server = self.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    }

    async fn handle(self: Arc<Self>, mut req: Request<hyper::body::Incoming>) -> Response<Body> {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let raw_query = req.uri().query().map(str::to_owned);
        let query = request::parse_query(raw_query.as_deref());
        let headers = req.headers().clone();
        let upgrade = headers.contains_key(hyper::header::UPGRADE).then(|| hyper::upgrade::on(&mut req));
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .map(str::to_owned);
        let target = request::parse(&method, &path, &query);
        let Some(user) = token.and_then(|t| self.auth.authenticate(&self.cluster, &t)) else {
            self.log(None, &target, &path, 401, &headers);
            return error_response(&ApiError::unauthorized());
        };
        let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                let e = ApiError::new(413, "RequestEntityTooLarge", "the request body is too large");
                return error_response(&e);
            }
        };
        if let Some(fault) = self.faults.take(&method, &path) {
            if fault.delay_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(fault.delay_ms)).await;
            }
            if let Some(code) = fault.code {
                self.log(Some(&user), &target, &path, code, &headers);
                let reason = if code >= 500 { "InternalError" } else { "BadRequest" };
                return error_response(&ApiError::new(
                    code,
                    reason,
                    format!("kubesim: injected fault on {method} {path}"),
                ));
            }
        }
        if let Err(e) = self.authorize(&user, &target, &path, headers.contains_key(hyper::header::UPGRADE)) {
            self.log(Some(&user), &target, &path, e.code, &headers);
            return error_response(&e);
        }
        let upgrade = Mutex::new(upgrade);
        let r = Req { method, path: path.clone(), query, raw_query, headers: headers.clone(), body, user, upgrade };
        let response = match &target {
            Target::Resource(rr) => handlers::resource(&self, &r, rr).await,
            Target::NonResource { .. } => self.non_resource(&r).await,
        };
        self.log(Some(&r.user), &target, &path, response.status().as_u16(), &headers);
        response
    }

    fn authorize(&self, user: &UserInfo, target: &Target, path: &str, upgrade: bool) -> Result<(), ApiError> {
        if user.groups.iter().any(|g| g == "system:masters") {
            return Ok(());
        }
        self.authorize_verb(user, target, path, None)?;
        // As the real server (AuthorizePodWebsocketUpgradeCreatePermission, on since 1.31): a
        // WebSocket GET to exec, attach or portforward must also be allowed to `create` them.
        if let Target::Resource(r) = target
            && upgrade
            && r.verb == "get"
            && r.group.is_empty()
            && r.resource == "pods"
            && matches!(r.subresource.as_deref(), Some("exec" | "attach" | "portforward"))
        {
            self.authorize_verb(user, target, path, Some("create"))?;
        }
        Ok(())
    }

    fn authorize_verb(&self, user: &UserInfo, target: &Target, path: &str, verb: Option<&str>) -> Result<(), ApiError> {
        let attrs = match target {
            Target::Resource(r) => Attributes::Resource {
                verb: verb.map_or_else(|| r.verb.clone(), str::to_owned),
                api_group: r.group.clone(),
                resource: r.resource.clone(),
                subresource: r.subresource.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            },
            Target::NonResource { verb } => Attributes::NonResource { verb: verb.clone(), path: path.to_owned() },
        };
        let policy = self.policy_objects();
        let policy = Policy {
            roles: &policy[0],
            cluster_roles: &policy[1],
            role_bindings: &policy[2],
            cluster_role_bindings: &policy[3],
        };
        match rbac::authorize(user, &attrs, &policy) {
            Decision::Allow => Ok(()),
            Decision::Deny => {
                Err(ApiError::forbidden(rbac::forbidden_message(user, &attrs)).with_details(match target {
                    Target::Resource(r) => {
                        json!({"name": r.name.clone().unwrap_or_default(), "group": r.group, "kind": r.resource})
                    }
                    Target::NonResource { .. } => json!({}),
                }))
            }
        }
    }

    /// Roles, ClusterRoles, RoleBindings, ClusterRoleBindings as stored now.
    pub fn policy_objects(&self) -> [Vec<Value>; 4] {
        let g = "rbac.authorization.k8s.io";
        ["roles", "clusterroles", "rolebindings", "clusterrolebindings"]
            .map(|r| self.cluster.list_raw(&GroupResource::new(g, r), None))
    }

    async fn non_resource(self: &Arc<Self>, r: &Req) -> Response<Body> {
        let reg = self.cluster.registry();
        let accept = r.header("accept");
        let path = r.path.trim_end_matches('/');
        if r.method != "GET" && !path.starts_with("/kubesim/") {
            return error_response(&ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({} {})",
                r.method, r.path
            )));
        }
        match path {
            "/version" => json_response(200, &discovery::version()),
            "/healthz" | "/livez" | "/readyz" => {
                Response::builder().header("content-type", "text/plain").body(Body::from("ok")).unwrap_or_default()
            }
            "/api" if discovery::wants_aggregated(accept) => {
                json_typed(200, &discovery::aggregated(&reg, true), discovery::AGGREGATED_CONTENT_TYPE)
            }
            "/api" => json_response(200, &discovery::api_versions(&self.address.to_string())),
            "/apis" if discovery::wants_aggregated(accept) => {
                json_typed(200, &discovery::aggregated(&reg, false), discovery::AGGREGATED_CONTENT_TYPE)
            }
            "/apis" => json_response(200, &discovery::group_list(&reg)),
            "/openapi/v3" => self.openapi_root(),
            // An empty v2 document: kubectl validates `kind: List` files client-side against v2
            // and accepts an empty one; every other client uses v3.
            "/openapi/v2" => Response::builder()
                .header("content-type", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
                .body(Body::empty())
                .unwrap_or_default(),
            p if p.starts_with("/openapi/v3/") => self.openapi_gv(&p["/openapi/v3/".len()..]),
            p if p.starts_with("/kubesim/") => faults::handle(self, r).await,
            p => {
                let parts: Vec<&str> = p.trim_matches('/').split('/').collect();
                let doc = match parts.as_slice() {
                    ["api", v] => discovery::resource_list(&reg, "", v),
                    ["apis", g] => discovery::api_group(&reg, g),
                    ["apis", g, v] => discovery::resource_list(&reg, g, v),
                    _ => None,
                };
                match doc {
                    Some(d) => json_response(200, &d),
                    None => error_response(&ApiError::new(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    )),
                }
            }
        }
    }

    /// The group-version documents, rebuilt when the registry changes (a CRD came or went).
    fn openapi_docs(&self) -> Vec<(String, Value, String)> {
        let reg = self.cluster.registry();
        let generation = Arc::as_ptr(&reg) as u64;
        let mut cache = self.openapi_cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (group, versions) in reg.groups() {
            for v in versions {
                let path = if group.is_empty() { format!("api/{v}") } else { format!("apis/{group}/{v}") };
                if let Some((g, doc, hash)) = cache.get(&path)
                    && *g == generation
                {
                    out.push((path, doc.clone(), hash.clone()));
                    continue;
                }
                let subs: Vec<Vec<&str>> =
                    reg.types.iter().map(|t| t.subresources.iter().map(String::as_str).collect()).collect();
                let types: Vec<openapi::OpenApiType> = reg
                    .types
                    .iter()
                    .zip(&subs)
                    .filter(|(t, _)| t.group == group && t.version == v)
                    .map(|(t, s)| openapi::OpenApiType {
                        group: &t.group,
                        version: &t.version,
                        kind: &t.kind,
                        plural: &t.plural,
                        namespaced: t.namespaced,
                        subresources: s,
                        crd_schema: t.crd.as_ref().map(|c| &c.schema),
                    })
                    .collect();
                let doc = openapi::group_version_doc(&types);
                let hash = openapi::doc_hash(&doc);
                cache.insert(path.clone(), (generation, doc.clone(), hash.clone()));
                out.push((path, doc, hash));
            }
        }
        out
    }

    fn openapi_root(&self) -> Response<Body> {
        let paths: Vec<(String, String)> = self.openapi_docs().into_iter().map(|(p, _, h)| (p, h)).collect();
        json_response(200, &openapi::root_doc(&paths))
    }

    fn openapi_gv(&self, gv: &str) -> Response<Body> {
        match self.openapi_docs().into_iter().find(|(p, _, _)| p == gv) {
            Some((_, doc, hash)) => {
                let mut resp = json_response(200, &doc);
                if let Ok(v) = format!("\"{hash}\"").parse() {
                    resp.headers_mut().insert("etag", v);
                }
                resp
            }
            None => error_response(&ApiError::new(404, "NotFound", format!("no OpenAPI v3 document for {gv}"))),
        }
    }

    fn log(&self, user: Option<&UserInfo>, target: &Target, path: &str, code: u16, headers: &hyper::HeaderMap) {
        let Some(file) = &self.request_log else { return };
        let mut line = json!({
            "time": crate::api::now(),
            "user": user.map(|u| u.name.clone()),
            "groups": user.map(|u| u.groups.clone()),
            "path": path,
            "code": code,
            "userAgent": headers.get("user-agent").and_then(|v| v.to_str().ok()),
        });
        match target {
            Target::Resource(r) => {
                line["verb"] = json!(r.verb);
                line["apiGroup"] = json!(r.group);
                line["resource"] = json!(r.resource);
                line["subresource"] = json!(r.subresource);
                line["namespace"] = json!(r.namespace);
                line["name"] = json!(r.name);
            }
            Target::NonResource { verb } => line["verb"] = json!(verb),
        }
        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(f, "{line}");
    }
}
