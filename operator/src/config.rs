//! The operator's own configuration, from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Image of pinak-api when a store does not name one. The Helm chart sets
/// `PINAK_OPERATOR_API_IMAGE` to the operator's own image (one image, two entrypoints).
pub const DEFAULT_API_IMAGE: &str = concat!("pinak:", env!("CARGO_PKG_VERSION"));

/// Where Kubernetes projects a pod's service-account token.
pub const DEFAULT_SERVICE_ACCOUNT_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

#[derive(Clone, Debug, PartialEq)]
pub struct OperatorConfig {
    /// `PINAK_OPERATOR_LISTEN`: health and metrics server.
    pub listen: SocketAddr,
    /// `PINAK_OPERATOR_API_IMAGE`: default `spec.api.image`.
    pub api_image: String,
    /// `PINAK_OPERATOR_MODEL_DIR`: `PINAK_MODEL_DIR` for stores on the `local` backend. Unset:
    /// the image's own default (the Dockerfile sets it).
    pub model_dir: Option<String>,
    /// `PINAK_OPERATOR_RESYNC_SECS`: how often a healthy store is re-checked without any event
    /// (catches drift in Postgres, which sends no watch events).
    pub resync: Duration,
    /// `PINAK_OPERATOR_SERVICE_ACCOUNT_TOKEN_FILE`: the token the operator logs in to Vault
    /// with (kubernetes auth method). Re-read at each login, since projected tokens rotate.
    pub service_account_token_file: PathBuf,
    /// `PINAK_OPERATOR_ROTATION_GRACE_SECS`: the least time between two password rotations of
    /// a store. The second changes the password the pods used before the first, so every pod
    /// must have read the new credential files by then (the kubelet updates mounted Secrets
    /// within about a minute).
    pub rotation_grace: Duration,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            api_image: DEFAULT_API_IMAGE.to_owned(),
            model_dir: None,
            resync: Duration::from_secs(300),
            service_account_token_file: PathBuf::from(DEFAULT_SERVICE_ACCOUNT_TOKEN_FILE),
            rotation_grace: Duration::from_secs(180),
        }
    }
}

impl OperatorConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let d = Self::default();
        let listen = match get("PINAK_OPERATOR_LISTEN") {
            Some(v) => {
                v.parse().map_err(|e| anyhow::anyhow!("PINAK_OPERATOR_LISTEN={v:?} is not an address:port: {e}"))?
            }
            None => d.listen,
        };
        let resync = match get("PINAK_OPERATOR_RESYNC_SECS") {
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => anyhow::bail!("PINAK_OPERATOR_RESYNC_SECS={v:?} must be a positive number of seconds"),
            },
            None => d.resync,
        };
        let rotation_grace = match get("PINAK_OPERATOR_ROTATION_GRACE_SECS") {
            Some(v) => Duration::from_secs(v.parse::<u64>().map_err(|_| {
                anyhow::anyhow!("PINAK_OPERATOR_ROTATION_GRACE_SECS={v:?} must be a number of seconds")
            })?),
            None => d.rotation_grace,
        };
        Ok(Self {
            rotation_grace,
            listen,
            api_image: get("PINAK_OPERATOR_API_IMAGE").unwrap_or(d.api_image),
            model_dir: get("PINAK_OPERATOR_MODEL_DIR"),
            resync,
            service_account_token_file: get("PINAK_OPERATOR_SERVICE_ACCOUNT_TOKEN_FILE")
                .map_or(d.service_account_token_file, PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(OperatorConfig::from_lookup(|_| None).unwrap(), OperatorConfig::default());
        let c = OperatorConfig::from_lookup(|k| match k {
            "PINAK_OPERATOR_LISTEN" => Some("127.0.0.1:9000".into()),
            "PINAK_OPERATOR_API_IMAGE" => Some("registry/pinak:1".into()),
            "PINAK_OPERATOR_RESYNC_SECS" => Some("60".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.api_image, "registry/pinak:1");
        assert_eq!(c.resync, Duration::from_secs(60));
        assert!(OperatorConfig::from_lookup(|k| (k == "PINAK_OPERATOR_LISTEN").then(|| "nope".into())).is_err());
        assert!(OperatorConfig::from_lookup(|k| (k == "PINAK_OPERATOR_RESYNC_SECS").then(|| "0".into())).is_err());
    }
}
