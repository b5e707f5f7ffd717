//! One value of a Secret a store names: its admin URL, its Vault token, a CloudNativePG
//! Cluster's superuser credentials. Missing Secrets and keys are precise errors.

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;

use crate::error::{Error, Result};

/// Key `key` of `secret` (named `name` in errors): present, UTF-8 and not empty.
pub fn value(secret: &Secret, name: &str, key: &str) -> Result<String> {
    let bytes = secret.data.as_ref().and_then(|d| d.get(key)).filter(|v| !v.0.is_empty());
    let bytes = bytes.ok_or_else(|| Error::SecretKeyMissing { name: name.to_owned(), key: key.to_owned() })?;
    String::from_utf8(bytes.0.clone())
        .map_err(|_| Error::SecretKeyNotText { name: name.to_owned(), key: key.to_owned() })
}

/// Reads Secret `name` in `namespace` and returns its key `key` (see [`value`]).
pub async fn read(client: &Client, namespace: &str, name: &str, key: &str) -> Result<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::SecretNotFound { namespace: namespace.to_owned(), name: name.to_owned() })?;
    value(&secret, name, key)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    #[test]
    fn values_must_be_present_text() {
        let secret = Secret {
            data: Some(BTreeMap::from([
                ("url".to_owned(), ByteString(b"postgres://h/db".to_vec())),
                ("empty".to_owned(), ByteString(Vec::new())),
                ("binary".to_owned(), ByteString(vec![0xff, 0xfe])),
            ])),
            ..Default::default()
        };
        assert_eq!(value(&secret, "pg", "url").unwrap(), "postgres://h/db");
        assert!(matches!(value(&secret, "pg", "empty"), Err(Error::SecretKeyMissing { .. })));
        assert!(matches!(value(&secret, "pg", "nope"), Err(Error::SecretKeyMissing { .. })));
        let err = value(&secret, "pg", "binary").unwrap_err();
        assert_eq!(err.to_string(), "Secret pg key \"binary\" is not UTF-8 text");
    }
}
