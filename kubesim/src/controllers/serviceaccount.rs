//! Legacy service-account token Secrets (`type: kubernetes.io/service-account-token` with the
//! `kubernetes.io/service-account.name` annotation) get a long-lived token, `ca.crt` and
//! `namespace`, as the token controller fills them; Vault setups use one as the reviewer JWT.

use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use super::{Controller, rt};
use crate::api::{Cluster, Ctx, PatchType};
use crate::auth::{Authenticator, TokenBinding};
use crate::resources::GroupResource;
use crate::store::{Change, EventType};

pub struct TokenSecretController {
    pub ca_pem: String,
    pub auth: Arc<Authenticator>,
}

const TYPE: &str = "kubernetes.io/service-account-token";

impl TokenSecretController {
    fn fill(&self, cluster: &Cluster, secret: &Value) {
        if secret["type"] != TYPE
            || !secret["data"]["token"].is_null()
            || !secret["metadata"]["deletionTimestamp"].is_null()
        {
            return;
        }
        let ns = secret["metadata"]["namespace"].as_str().unwrap_or_default();
        let Some(sa_name) = secret["metadata"]["annotations"]["kubernetes.io/service-account.name"].as_str() else {
            return;
        };
        let Some(sa) = cluster.get_raw(&GroupResource::new("", "serviceaccounts"), Some(ns), sa_name) else { return };
        let binding = TokenBinding {
            namespace: ns,
            service_account: sa_name,
            service_account_uid: super::uid(&sa),
            audiences: Vec::new(),
            expiration_seconds: 10 * 365 * 86_400,
            bound: None,
        };
        let Ok((token, _)) = self.auth.mint(&binding) else { return };
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let patch = json!({
            "metadata": {"annotations": {"kubernetes.io/service-account.uid": super::uid(&sa)}},
            "data": {"token": b64(&token), "ca.crt": b64(&self.ca_pem), "namespace": b64(ns)},
        });
        let Some(t) = rt(cluster, "", "secrets") else { return };
        let body = serde_json::to_vec(&patch).unwrap_or_default();
        let name = secret["metadata"]["name"].as_str().unwrap_or_default();
        let _ =
            cluster.patch(&Ctx::system("token-controller"), &t, Some(ns), name, PatchType::Merge, &body, false, None);
    }
}

impl Controller for TokenSecretController {
    fn on_change(&self, cluster: &Arc<Cluster>, change: &Change) {
        if change.gr.group.is_empty() && change.gr.resource == "secrets" && change.kind != EventType::Deleted {
            self.fill(cluster, &change.object);
        }
    }

    fn resync(&self, cluster: &Arc<Cluster>) {
        for s in cluster.list_raw(&GroupResource::new("", "secrets"), None) {
            self.fill(cluster, &s);
        }
    }
}
