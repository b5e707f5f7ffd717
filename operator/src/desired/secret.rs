//! The store's Secret (`<store>-pinak`): the login role's credentials and the API's token
//! secret. Generated values are kept for as long as the Secret exists: regenerating the token
//! secret would invalidate every token, and the password would have to change in Postgres.
//!
//! Password rotation (annotation [`ROTATE_ANNOTATION`] on the store): the store has two login
//! roles; a rotation gives the one not in use a new password and writes it here, and the pods,
//! which read the user and password from this Secret's files for every new connection, move to
//! it without a restart. The old role keeps its password until the next rotation, which waits
//! at least the grace period, so every pod has read the new files before the old ones stop
//! working.

use std::collections::BTreeMap;

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use pinak_crds::MemoryStore;
use sha2::{Digest, Sha256};

use super::labels::child_metadata;
use crate::error::Result;
use crate::names::StoreNames;

/// The database's URL without credentials (`PINAK_DATABASE_URL` of the pods).
pub const KEY_DATABASE_URL: &str = "database-url";
/// The login role in use and its password: files in the pods, re-read for new connections.
pub const KEY_DATABASE_USERNAME: &str = "database-username";
pub const KEY_DATABASE_PASSWORD: &str = "database-password";
/// HS256 secret for tokens without `kid` (`PINAK_JWT_SECRET_FILE`).
pub const KEY_JWT_SECRET: &str = "jwt-secret";
/// The embedding provider's API key from Vault (`PINAK_EMBEDDING_API_KEY_FILE`).
pub const KEY_EMBEDDING_API_KEY: &str = "embedding-api-key";

/// Set on a MemoryStore to rotate its database password: each new value asks for one rotation.
pub const ROTATE_ANNOTATION: &str = "pinak.dev/rotate-database-password";
/// On the Secret: the rotation request handled last, and when.
pub const ROTATED_FOR_ANNOTATION: &str = "pinak.dev/rotated-for";
pub const ROTATED_AT_ANNOTATION: &str = "pinak.dev/rotated-at";

/// The values of the Secret: generated ones, or those Vault supplies.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValues {
    /// The login role in use (`database-username`).
    pub login_role: String,
    pub password: String,
    pub jwt_secret: String,
    pub embedding_api_key: Option<String>,
    /// The last rotation request handled (or seen when the Secret was made), and when.
    pub rotation: Option<Rotation>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub request: String,
    pub at: Timestamp,
}

/// What a reconcile does about the rotation annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotationStep {
    /// Nothing asked, or already done.
    None,
    /// The Secret is new: the request in place is taken as done (the first password is new).
    Record(Rotation),
    /// Move to the other login role with a new password.
    Rotate(Rotation),
    /// Asked too soon after the last rotation: some pods may still use the role it would
    /// change. Try again after this long.
    Wait(Duration),
}

/// The rotation step for `requested` (the store's annotation) given the Secret's `values`
/// (`None`: there is no Secret yet).
pub fn rotation_step(
    requested: Option<&str>,
    values: Option<&SecretValues>,
    now: Timestamp,
    grace: Duration,
) -> RotationStep {
    let Some(request) = requested else { return RotationStep::None };
    let wanted = Rotation { request: request.to_owned(), at: now };
    let Some(values) = values else { return RotationStep::Record(wanted) };
    match &values.rotation {
        Some(done) if done.request == request => RotationStep::None,
        Some(done) => {
            let since = now.duration_since(done.at);
            let since = Duration::try_from(since).unwrap_or(Duration::ZERO);
            if since < grace { RotationStep::Wait(grace - since) } else { RotationStep::Rotate(wanted) }
        }
        None => RotationStep::Rotate(wanted),
    }
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValues(<redacted>)")
    }
}

impl SecretValues {
    /// The values in `live`, with each missing or empty one made by its generator. A login
    /// role that is not one of the store's (an edited Secret) falls back to the first, with a
    /// new password.
    pub fn resolve(
        live: Option<&Secret>,
        names: &StoreNames,
        password: impl FnOnce() -> Result<String>,
        jwt_secret: impl FnOnce() -> Result<String>,
    ) -> Result<Self> {
        let kept = |key: &str| {
            live.and_then(|s| s.data.as_ref())
                .and_then(|d| d.get(key))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .filter(|v| !v.is_empty())
        };
        let role = kept(KEY_DATABASE_USERNAME).filter(|r| names.login_roles().contains(&r.as_str()));
        let kept_password = role.as_ref().and(kept(KEY_DATABASE_PASSWORD));
        let annotation = |key: &str| live.and_then(|s| s.metadata.annotations.as_ref()).and_then(|a| a.get(key));
        let rotation = match (annotation(ROTATED_FOR_ANNOTATION), annotation(ROTATED_AT_ANNOTATION)) {
            (Some(request), Some(at)) => at.parse().ok().map(|at| Rotation { request: request.clone(), at }),
            _ => None,
        };
        Ok(Self {
            login_role: role.unwrap_or_else(|| names.login_role.clone()),
            password: kept_password.map_or_else(password, Ok)?,
            jwt_secret: kept(KEY_JWT_SECRET).map_or_else(jwt_secret, Ok)?,
            embedding_api_key: None,
            rotation,
        })
    }
}

/// The Secret with `values`, and the pods' database URL (without credentials).
pub fn secret(store: &MemoryStore, names: &StoreNames, values: &SecretValues, database_url: &str) -> Secret {
    let mut data = BTreeMap::from([
        (KEY_DATABASE_URL.to_owned(), bytes(database_url)),
        (KEY_DATABASE_USERNAME.to_owned(), bytes(&values.login_role)),
        (KEY_DATABASE_PASSWORD.to_owned(), bytes(&values.password)),
        (KEY_JWT_SECRET.to_owned(), bytes(&values.jwt_secret)),
    ]);
    if let Some(key) = &values.embedding_api_key {
        data.insert(KEY_EMBEDDING_API_KEY.to_owned(), bytes(key));
    }
    let mut secret = opaque(store, names, &names.secret, data);
    if let Some(r) = &values.rotation {
        secret.metadata.annotations = Some(BTreeMap::from([
            (ROTATED_FOR_ANNOTATION.to_owned(), r.request.clone()),
            (ROTATED_AT_ANNOTATION.to_owned(), r.at.to_string()),
        ]));
    }
    secret
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
/// the pod template, so a changed value rolls the pods exactly once. Only the connection URL
/// (host, port, database) is such a value; credentials, the HS256 secret and the embedding key
/// are files the API re-reads.
pub fn env_hash(secret: &Secret) -> String {
    let url = secret.data.as_ref().and_then(|d| d.get(KEY_DATABASE_URL)).map(|v| v.0.as_slice()).unwrap_or_default();
    hex::encode(Sha256::digest(url))
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

    fn values(names: &StoreNames) -> SecretValues {
        SecretValues {
            login_role: names.login_role.clone(),
            password: "pw".into(),
            jwt_secret: "jwt".into(),
            embedding_api_key: None,
            rotation: None,
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn rotation_moves_to_the_other_role_once_per_request_and_waits_out_the_grace() {
        let grace = Duration::from_secs(120);
        let names = StoreNames::of(&store(serde_json::json!({}))).unwrap();
        let mut v = values(&names);
        assert_eq!(rotation_step(None, Some(&v), at(0), grace), RotationStep::None);
        let first = Rotation { request: "1".into(), at: at(0) };
        // A store created with the annotation: its first password is new anyway.
        assert_eq!(rotation_step(Some("1"), None, at(0), grace), RotationStep::Record(first.clone()));
        // Never rotated: at once.
        assert_eq!(rotation_step(Some("1"), Some(&v), at(0), grace), RotationStep::Rotate(first.clone()));
        v.rotation = Some(first);
        assert_eq!(rotation_step(Some("1"), Some(&v), at(500), grace), RotationStep::None, "done once");
        assert_eq!(rotation_step(Some("2"), Some(&v), at(30), grace), RotationStep::Wait(Duration::from_secs(90)));
        let second = Rotation { request: "2".into(), at: at(120) };
        assert_eq!(rotation_step(Some("2"), Some(&v), at(120), grace), RotationStep::Rotate(second));
    }

    #[test]
    fn the_role_in_use_and_the_last_rotation_are_read_back_from_the_secret() {
        let store = store(serde_json::json!({}));
        let names = StoreNames::of(&store).unwrap();
        let mut v = values(&names);
        v.login_role = names.login_role_b.clone();
        v.rotation = Some(Rotation { request: "7".into(), at: at(5) });
        let live = secret(&store, &names, &v, "postgres://h/db");
        let annotations = live.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[ROTATED_FOR_ANNOTATION], "7");
        let keep = || panic!("kept");
        assert_eq!(SecretValues::resolve(Some(&live), &names, keep, keep).unwrap(), v);
        // A Secret naming a role that is not the store's: back to the first, with a new password.
        let mut edited = live.clone();
        edited.data.as_mut().unwrap().insert(KEY_DATABASE_USERNAME.into(), ByteString(b"postgres".to_vec()));
        let back = SecretValues::resolve(Some(&edited), &names, generated("fresh"), keep).unwrap();
        assert_eq!((back.login_role.as_str(), back.password.as_str()), (names.login_role.as_str(), "fresh"));
        // The URL carries no credentials, so a rotation changes nothing the pods read at start.
        let mut rotated = v.clone();
        rotated.login_role = names.login_role.clone();
        rotated.password = "other".into();
        assert_eq!(env_hash(&live), env_hash(&secret(&store, &names, &rotated, "postgres://h/db")));
    }

    #[test]
    fn values_are_generated_once_then_kept() {
        let store = store(serde_json::json!({}));
        let names = StoreNames::of(&store).unwrap();
        let first = SecretValues::resolve(None, &names, generated("pw1"), generated("jwt1")).unwrap();
        assert_eq!((first.password.as_str(), first.jwt_secret.as_str()), ("pw1", "jwt1"));
        assert_eq!(first.login_role, names.login_role);
        let live = secret(&store, &names, &first, "postgres://h/db");
        let keep = || panic!("must not regenerate");
        let again = SecretValues::resolve(Some(&live), &names, keep, keep).unwrap();
        assert_eq!(again, first);
        // An emptied key is regenerated, the other kept.
        let mut emptied = live.clone();
        emptied.data.as_mut().unwrap().insert(KEY_JWT_SECRET.into(), ByteString(Vec::new()));
        let v = SecretValues::resolve(Some(&emptied), &names, || panic!("kept"), generated("jwt2")).unwrap();
        assert_eq!((v.password.as_str(), v.jwt_secret.as_str()), ("pw1", "jwt2"));
        assert!(!format!("{v:?}").contains("pw1"));
    }

    #[test]
    fn secret_golden() {
        let store = store(serde_json::json!({}));
        let names = StoreNames::of(&store).unwrap();
        let values = values(&names);
        let s = secret(&store, &names, &values, "postgres://db:5432/pinak");
        crate::test_support::assert_golden("secret.json", &s);
        let changed = secret(&store, &names, &values, "postgres://db2:5432/pinak");
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
        // The embedding key and the HS256 secret are files the pods re-read: a change rolls nothing.
        let mut values = values(&names);
        let without = secret(&store, &names, &values, "postgres://h/db");
        values.embedding_api_key = Some("sk-1".into());
        values.jwt_secret = "another-hs256-secret-of-at-least-32-bytes".into();
        let with = secret(&store, &names, &values, "postgres://h/db");
        assert_eq!(with.data.as_ref().unwrap()[KEY_EMBEDDING_API_KEY].0, b"sk-1");
        assert_eq!(env_hash(&without), env_hash(&with));
    }
}
