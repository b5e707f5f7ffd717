//! The store's Secret (`<store>-pinak`): the login role's credentials and the API's token
//! secret. Generated values are kept for as long as the Secret exists: regenerating the token
//! secret would invalidate every token, and the password would have to change in Postgres.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use pinak_crds::MemoryStore;
use sha2::{Digest, Sha256};

use super::labels::child_metadata;
use crate::error::Result;
use crate::names::StoreNames;

/// The login role's URL (`PINAK_DATABASE_URL` of the pods).
pub const KEY_DATABASE_URL: &str = "database-url";
/// The login role's name and password, also kept apart so that rotation (issue 16) can hand
/// them to the pods as files.
pub const KEY_DATABASE_USERNAME: &str = "database-username";
pub const KEY_DATABASE_PASSWORD: &str = "database-password";
/// HS256 secret for tokens without `kid` (`PINAK_JWT_SECRET`).
pub const KEY_JWT_SECRET: &str = "jwt-secret";
/// The embedding provider's API key from Vault (`PINAK_EMBEDDING_API_KEY`).
pub const KEY_EMBEDDING_API_KEY: &str = "embedding-api-key";

/// The values of the Secret: generated ones, or those Vault supplies.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValues {
    pub password: String,
    pub jwt_secret: String,
    pub embedding_api_key: Option<String>,
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValues(<redacted>)")
    }
}

impl SecretValues {
    /// The values in `live`, with each missing or empty one made by its generator.
    pub fn resolve(
        live: Option<&Secret>,
        password: impl FnOnce() -> Result<String>,
        jwt_secret: impl FnOnce() -> Result<String>,
    ) -> Result<Self> {
        let kept = |key: &str| {
            live.and_then(|s| s.data.as_ref())
                .and_then(|d| d.get(key))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .filter(|v| !v.is_empty())
        };
        Ok(Self {
            password: kept(KEY_DATABASE_PASSWORD).map_or_else(password, Ok)?,
            jwt_secret: kept(KEY_JWT_SECRET).map_or_else(jwt_secret, Ok)?,
            embedding_api_key: None,
        })
    }
}

/// The Secret with `values`, and the pods' URL for the login role.
pub fn secret(store: &MemoryStore, names: &StoreNames, values: &SecretValues, database_url: &str) -> Secret {
    let mut data = BTreeMap::from([
        (KEY_DATABASE_URL.to_owned(), bytes(database_url)),
        (KEY_DATABASE_USERNAME.to_owned(), bytes(&names.login_role)),
        (KEY_DATABASE_PASSWORD.to_owned(), bytes(&values.password)),
        (KEY_JWT_SECRET.to_owned(), bytes(&values.jwt_secret)),
    ]);
    if let Some(key) = &values.embedding_api_key {
        data.insert(KEY_EMBEDDING_API_KEY.to_owned(), bytes(key));
    }
    opaque(store, names, &names.secret, data)
}

/// The Secret of public token-verification keys (file name `<kid>.pem` / `<kid>.json` →
/// content). The pods mount it whole and re-read it within a second of the kubelet's update,
/// so keys come and go without a restart.
pub fn jwt_keys_secret(store: &MemoryStore, names: &StoreNames, key_files: &BTreeMap<String, String>) -> Secret {
    let data = key_files.iter().map(|(file, pem)| (file.clone(), bytes(pem))).collect();
    opaque(store, names, &names.jwt_keys_secret, data)
}

fn opaque(store: &MemoryStore, names: &StoreNames, name: &str, data: BTreeMap<String, ByteString>) -> Secret {
    Secret {
        metadata: child_metadata(store, names, name),
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Default::default()
    }
}

/// Hash of the values the pods read from the Secret at start (environment variables): part of
/// the pod template, so a changed value rolls the pods exactly once.
pub fn env_hash(secret: &Secret) -> String {
    let mut h = Sha256::new();
    for key in [KEY_DATABASE_URL, KEY_JWT_SECRET, KEY_EMBEDDING_API_KEY] {
        let value = secret.data.as_ref().and_then(|d| d.get(key)).map(|v| v.0.as_slice()).unwrap_or_default();
        h.update((value.len() as u64).to_be_bytes());
        h.update(value);
    }
    hex::encode(h.finalize())
}

fn bytes(s: &str) -> ByteString {
    ByteString(s.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::store;

    fn generated(v: &'static str) -> impl FnOnce() -> Result<String> {
        move || Ok(v.to_owned())
    }

    #[test]
    fn values_are_generated_once_then_kept() {
        let store = store(serde_json::json!({}));
        let names = StoreNames::of(&store).unwrap();
        let first = SecretValues::resolve(None, generated("pw1"), generated("jwt1")).unwrap();
        assert_eq!((first.password.as_str(), first.jwt_secret.as_str()), ("pw1", "jwt1"));
        let live = secret(&store, &names, &first, "postgres://u:pw1@h/db");
        let again =
            SecretValues::resolve(Some(&live), || panic!("must not regenerate"), || panic!("must not regenerate"))
                .unwrap();
        assert_eq!(again, first);
        // An emptied key is regenerated, the other kept.
        let mut emptied = live.clone();
        emptied.data.as_mut().unwrap().insert(KEY_JWT_SECRET.into(), ByteString(Vec::new()));
        let v = SecretValues::resolve(Some(&emptied), || panic!("kept"), generated("jwt2")).unwrap();
        assert_eq!((v.password.as_str(), v.jwt_secret.as_str()), ("pw1", "jwt2"));
        assert!(!format!("{v:?}").contains("pw1"));
    }

    #[test]
    fn secret_golden() {
        let store = store(serde_json::json!({}));
        let names = StoreNames::of(&store).unwrap();
        let values = SecretValues { password: "pw".into(), jwt_secret: "jwt".into(), embedding_api_key: None };
        let s = secret(&store, &names, &values, "postgres://ms_a:pw@db:5432/pinak");
        crate::test_support::assert_golden("secret.json", &s);
        let changed = secret(&store, &names, &values, "postgres://ms_a:pw@db2:5432/pinak");
        assert_ne!(env_hash(&s), env_hash(&changed));
        assert_eq!(env_hash(&s), env_hash(&s.clone()));
    }

    #[test]
    fn jwt_keys_secret_has_one_file_per_kid() {
        let store = store(serde_json::json!({}));
        let names = StoreNames::of(&store).unwrap();
        let files = BTreeMap::from([("k1.pem".to_owned(), "PEM".to_owned()), ("k2.json".to_owned(), "{}".to_owned())]);
        let s = jwt_keys_secret(&store, &names, &files);
        assert_eq!(s.metadata.name.as_deref(), Some("notes-pinak-jwt-keys"));
        let data = s.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["k1.pem", "k2.json"]);
        assert_eq!(data["k1.pem"].0, b"PEM");
        // The embedding key is part of what rolls the pods (it is read at start).
        let mut values = SecretValues { password: "pw".into(), jwt_secret: "jwt".into(), embedding_api_key: None };
        let without = secret(&store, &names, &values, "postgres://h/db");
        values.embedding_api_key = Some("sk-1".into());
        let with = secret(&store, &names, &values, "postgres://h/db");
        assert_eq!(with.data.as_ref().unwrap()[KEY_EMBEDDING_API_KEY].0, b"sk-1");
        assert_ne!(env_hash(&without), env_hash(&with));
    }
}
