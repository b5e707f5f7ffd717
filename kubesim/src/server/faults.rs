//! Fault injection for tests, on kubesim's own paths (admin only, through RBAC like any
//! non-resource URL):
//! - `POST /kubesim/faults` `{"path": "/apis/apps/v1/namespaces/a/deployments", "method": "PATCH",
//!   "count": 2, "code": 500, "delayMs": 0}`: the next `count` requests whose path starts with
//!   `path` (and whose method is `method`, if given) wait `delayMs` and then fail with `code`
//!   (no `code`: only the delay); `DELETE /kubesim/faults` clears them;
//! - `POST /kubesim/drop-watches`: ends every open watch (clients re-watch);
//! - `POST /kubesim/compact`: forgets the change history, so a watch that resumes from an older
//!   resourceVersion gets 410 Gone and must relist.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use hyper::Response;
use serde_json::{Value, json};

use super::{ApiServer, Req, error_response, json_response};
use crate::api::ApiError;

#[derive(Clone, Debug)]
pub struct Fault {
    pub method: Option<String>,
    pub path: String,
    pub remaining: u32,
    pub code: Option<u16>,
    pub delay_ms: u64,
}

#[derive(Default)]
pub struct Faults {
    list: Mutex<Vec<Fault>>,
}

impl Faults {
    /// The fault that applies to this request, counting it down.
    pub fn take(&self, method: &str, path: &str) -> Option<Fault> {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let i = list.iter().position(|f| {
            path.starts_with(&f.path) && f.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        let fault = list[i].clone();
        list[i].remaining -= 1;
        if list[i].remaining == 0 {
            list.remove(i);
        }
        Some(fault)
    }

    pub fn add(&self, f: Fault) {
        self.list.lock().unwrap_or_else(|e| e.into_inner()).push(f);
    }

    pub fn clear(&self) {
        self.list.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

pub async fn handle(server: &Arc<ApiServer>, r: &Req) -> Response<Body> {
    match (r.method.as_str(), r.path.trim_end_matches('/')) {
        ("POST", "/kubesim/faults") => {
            let v: Value = match serde_json::from_slice(&r.body) {
                Ok(v) => v,
                Err(e) => return error_response(&ApiError::bad_request(format!("fault: {e}"))),
            };
            let Some(path) = v["path"].as_str() else {
                return error_response(&ApiError::bad_request("fault: \"path\" is required"));
            };
            let fault = Fault {
                method: v["method"].as_str().map(str::to_owned),
                path: path.to_owned(),
                remaining: v["count"].as_u64().unwrap_or(1).max(1) as u32,
                code: v["code"].as_u64().map(|c| c as u16),
                delay_ms: v["delayMs"].as_u64().unwrap_or(0),
            };
            server.faults.add(fault);
            json_response(201, &json!({"status": "Success"}))
        }
        ("DELETE", "/kubesim/faults") => {
            server.faults.clear();
            json_response(200, &json!({"status": "Success"}))
        }
        ("POST", "/kubesim/drop-watches") => {
            server.cluster.watch_kill.send_modify(|n| *n += 1);
            json_response(200, &json!({"status": "Success"}))
        }
        ("POST", "/kubesim/compact") => {
            let rv = {
                let mut inner = server.cluster.lock();
                inner.store.compact();
                inner.store.current_rv()
            };
            json_response(200, &json!({"status": "Success", "compactedResourceVersion": rv.to_string()}))
        }
        _ => {
            error_response(&ApiError::new(404, "NotFound", format!("kubesim has no endpoint {} {}", r.method, r.path)))
        }
    }
}
