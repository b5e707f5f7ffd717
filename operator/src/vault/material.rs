//! What the operator takes from Vault, as pure functions of the KV documents it read.
//!
//! - `adminCredentials.vaultPath`: key `url`, the admin connection URL;
//! - `paths.jwt`: key `secret` is the HS256 secret (tokens without `kid`); every other key is a
//!   public verification key named by its `kid`, as PEM or as one JWK in JSON. Each becomes a
//!   file `<kid>.pem` / `<kid>.json` of the store's JWT-keys Secret, which the pods mount as
//!   `PINAK_JWT_KEYS_DIR` and re-read within a second, so adding or removing a `kid` in Vault
//!   reaches the pods without a restart;
//! - `paths.embedding`: key `embedding.apiKeyVaultKey`, the embedding provider's API key.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};

/// The key of the admin URL at `adminCredentials.vaultPath`.
pub const ADMIN_URL_KEY: &str = "url";
/// The key of the HS256 secret at `paths.jwt`.
pub const JWT_SECRET_KEY: &str = "secret";

/// One KV version 2 document: its path (for messages) and its keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    pub path: String,
    pub data: BTreeMap<String, Value>,
}

impl Document {
    /// The string at `key`: missing, empty or not a string is a precise error.
    pub fn string(&self, key: &str) -> Result<String> {
        match self.data.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) | None => {
                Err(Error::VaultKeyMissing { path: self.path.clone(), key: key.to_owned() })
            }
            Some(other) => Err(Error::VaultInvalidValue {
                path: self.path.clone(),
                reason: format!("key {key:?} holds {}, not a string", kind(other)),
            }),
        }
    }
}

/// Token verification material from `paths.jwt`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct JwtMaterial {
    pub hs256_secret: Option<String>,
    /// File name (`<kid>.pem` or `<kid>.json`) → content.
    pub key_files: BTreeMap<String, String>,
}

impl std::fmt::Debug for JwtMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtMaterial")
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "<redacted>"))
            .field("key_files", &self.key_files.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Splits the `paths.jwt` document into the HS256 secret and one file per `kid`.
pub fn jwt_material(doc: &Document) -> Result<JwtMaterial> {
    let invalid = |reason: String| Error::VaultInvalidValue { path: doc.path.clone(), reason };
    let mut material = JwtMaterial::default();
    for (key, value) in &doc.data {
        let Value::String(text) = value else {
            return Err(invalid(format!("key {key:?} holds {}, not a string", kind(value))));
        };
        if key == JWT_SECRET_KEY {
            if text.len() < 32 {
                return Err(invalid(format!("key {JWT_SECRET_KEY:?} must be at least 32 bytes for HS256")));
            }
            material.hs256_secret = Some(text.clone());
            continue;
        }
        if !is_kid(key) {
            return Err(invalid(format!(
                "key {key:?} is not a usable kid: at most 200 of the characters a-z A-Z 0-9 - _ and not starting with '.' or '-'"
            )));
        }
        let trimmed = text.trim_start();
        let extension = if trimmed.starts_with("-----BEGIN") {
            "pem"
        } else if trimmed.starts_with('{') {
            "json"
        } else {
            return Err(invalid(format!("kid {key:?} holds neither a PEM public key nor a JWK (JSON)")));
        };
        material.key_files.insert(format!("{key}.{extension}"), text.clone());
    }
    if material.hs256_secret.is_none() && material.key_files.is_empty() {
        return Err(invalid("no HS256 `secret` and no public key by kid".into()));
    }
    Ok(material)
}

/// A `kid` that is also a Secret key and a file name: no dots (the API takes the file name
/// minus its extension as the kid), no leading `-`.
fn is_kid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(data: Value) -> Document {
        Document { path: "secret/team-a/jwt".into(), data: serde_json::from_value(data).unwrap() }
    }

    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";

    #[test]
    fn secret_and_keys_are_split_by_kid() {
        let m = jwt_material(&doc(json!({
            "secret": "0123456789abcdef0123456789abcdef",
            "k1": PEM,
            "k-2": "{\"kty\":\"OKP\"}",
        })))
        .unwrap();
        assert_eq!(m.hs256_secret.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(m.key_files.keys().collect::<Vec<_>>(), ["k-2.json", "k1.pem"]);
        assert!(!format!("{m:?}").contains("0123456789"), "the secret is redacted in Debug");
    }

    #[test]
    fn bad_documents_say_what_is_wrong() {
        let err = |data: Value| jwt_material(&doc(data)).unwrap_err().to_string();
        assert!(err(json!({})).contains("no HS256"), "{}", err(json!({})));
        assert!(err(json!({"secret": "short"})).contains("at least 32 bytes"));
        assert!(err(json!({"a.b": PEM})).contains("not a usable kid"));
        assert!(err(json!({"../x": PEM})).contains("not a usable kid"));
        assert!(err(json!({"k": "hello"})).contains("neither a PEM"));
        assert!(err(json!({"k": 3})).contains("a number, not a string"));
        assert!(err(json!({"k": 3})).contains("secret/team-a/jwt"), "the message names the path");
    }

    #[test]
    fn strings_are_required_and_non_empty() {
        let d = doc(json!({"url": "postgres://a@b/c", "empty": "", "n": 1}));
        assert_eq!(d.string("url").unwrap(), "postgres://a@b/c");
        assert!(matches!(d.string("empty"), Err(Error::VaultKeyMissing { .. })));
        assert!(matches!(d.string("missing"), Err(Error::VaultKeyMissing { .. })));
        assert!(d.string("n").unwrap_err().to_string().contains("a number"));
    }
}
