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

/// The generated values of the Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValues {
    pub password: String,
    pub jwt_secret: String,
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
        })
    }
}

/// The Secret with `values`, and the pods' URL for the login role.
pub fn secret(store: &MemoryStore, names: &StoreNames, values: &SecretValues, database_url: &str) -> Secret {
    let data = BTreeMap::from([
        (KEY_DATABASE_URL.to_owned(), bytes(database_url)),
        (KEY_DATABASE_USERNAME.to_owned(), bytes(&names.login_role)),
        (KEY_DATABASE_PASSWORD.to_owned(), bytes(&values.password)),
        (KEY_JWT_SECRET.to_owned(), bytes(&values.jwt_secret)),
    ]);
    Secret {
        metadata: child_metadata(store, names, &names.secret),
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Default::default()
    }
}

/// Hash of the values the pods read from the Secret at start (environment variables): part of
/// the pod template, so a changed value rolls the pods exactly once.
pub fn env_hash(secret: &Secret) -> String {
    let mut h = Sha256::new();
    for key in [KEY_DATABASE_URL, KEY_JWT_SECRET] {
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
        let values = SecretValues { password: "pw".into(), jwt_secret: "jwt".into() };
        let s = secret(&store, &names, &values, "postgres://ms_a:pw@db:5432/pinak");
        crate::test_support::assert_golden("secret.json", &s);
        let changed = secret(&store, &names, &values, "postgres://ms_a:pw@db2:5432/pinak");
        assert_ne!(env_hash(&s), env_hash(&changed));
        assert_eq!(env_hash(&s), env_hash(&s.clone()));
    }
}
