//! Authentication: the admin token of the kubeconfig, and service-account tokens (ES256 JWTs
//! shaped like the real projected tokens, so that Vault's kubernetes auth can parse them and
//! then ask TokenReview about them).

pub mod rbac;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

use crate::api::Cluster;
use crate::resources::GroupResource;
use rbac::UserInfo;

pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
pub const ADMIN_USER: &str = "kubesim-admin";

pub struct Authenticator {
    admin_token: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// What a service-account token is bound to.
pub struct TokenBinding<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub service_account_uid: &'a str,
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    /// (kind, name, uid) of the bound object: the pod a kubelet-projected token belongs to.
    pub bound: Option<(&'a str, &'a str, &'a str)>,
}

impl Authenticator {
    pub fn generate() -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::generate()?;
        let encoding = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes())?;
        let decoding = DecodingKey::from_ec_pem(key.public_key_pem().as_bytes())?;
        let admin_token = format!("kubesim-admin-{}", uuid::Uuid::new_v4().simple());
        Ok(Authenticator { admin_token, encoding, decoding })
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub fn admin() -> UserInfo {
        UserInfo {
            name: ADMIN_USER.to_owned(),
            groups: vec!["system:masters".to_owned(), "system:authenticated".to_owned()],
        }
    }

    /// The user behind a bearer token, if it is valid now.
    pub fn authenticate(&self, cluster: &Cluster, token: &str) -> Option<UserInfo> {
        if token == self.admin_token {
            return Some(Self::admin());
        }
        self.verify(cluster, token, &[]).ok().map(|(user, _, _)| user)
    }

    pub fn mint(&self, b: &TokenBinding) -> anyhow::Result<(String, i64)> {
        let now = chrono::Utc::now().timestamp();
        let exp = now + b.expiration_seconds.max(600);
        let mut k8s = json!({
            "namespace": b.namespace,
            "serviceaccount": {"name": b.service_account, "uid": b.service_account_uid},
        });
        if let Some((kind, name, uid)) = b.bound {
            k8s[kind.to_lowercase()] = json!({"name": name, "uid": uid});
        }
        let audiences = if b.audiences.is_empty() { vec![ISSUER.to_owned()] } else { b.audiences.clone() };
        let claims = json!({
            "aud": audiences,
            "exp": exp,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": k8s,
            "sub": format!("system:serviceaccount:{}:{}", b.namespace, b.service_account),
        });
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)?;
        Ok((token, exp))
    }

    /// Verifies a service-account token: signature, expiry, audiences (when given: the token
    /// must carry one of them), and that its service account (and bound pod) still exist with
    /// the same uid. Returns the user, the matched audiences and the claims.
    pub fn verify(
        &self,
        cluster: &Cluster,
        token: &str,
        audiences: &[String],
    ) -> Result<(UserInfo, Vec<String>, Value), String> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[ISSUER]);
        v.validate_aud = false;
        let data = jsonwebtoken::decode::<Value>(token, &self.decoding, &v)
            .map_err(|e| format!("invalid bearer token: {e}"))?;
        let claims = data.claims;
        let token_aud: Vec<String> = match &claims["aud"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        };
        let matched: Vec<String> = if audiences.is_empty() {
            token_aud.iter().filter(|a| a.as_str() == ISSUER).cloned().collect()
        } else {
            audiences.iter().filter(|a| token_aud.contains(a)).cloned().collect()
        };
        if matched.is_empty() {
            return Err("token audiences are invalid".into());
        }
        let k8s = &claims["kubernetes.io"];
        let ns = k8s["namespace"].as_str().unwrap_or_default();
        let sa = k8s["serviceaccount"]["name"].as_str().unwrap_or_default();
        let sa_uid = k8s["serviceaccount"]["uid"].as_str().unwrap_or_default();
        let live = cluster.get_raw(&GroupResource::new("", "serviceaccounts"), Some(ns), sa);
        if live.as_ref().and_then(|s| s["metadata"]["uid"].as_str()) != Some(sa_uid) {
            return Err(format!("service account {ns}/{sa} has been deleted"));
        }
        if let Some(pod) = k8s.get("pod") {
            let name = pod["name"].as_str().unwrap_or_default();
            let live = cluster.get_raw(&GroupResource::new("", "pods"), Some(ns), name);
            if live.as_ref().and_then(|p| p["metadata"]["uid"].as_str()) != pod["uid"].as_str() {
                return Err(format!("pod {ns}/{name} has been deleted"));
            }
        }
        let user = UserInfo {
            name: format!("system:serviceaccount:{ns}:{sa}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        };
        Ok((user, matched, claims))
    }
}
