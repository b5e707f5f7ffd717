//! Every name derived from one store, computed once per reconcile so that the database, the
//! Secret, the children and the status agree on them.

use kube::ResourceExt;
use pinak_crds::{MAX_PG_IDENTIFIER_LEN, MemoryStore};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Container port of pinak-api in the pods.
pub const API_PORT: i32 = 8080;
/// Port of the store's Service.
pub const SERVICE_PORT: i32 = 80;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreNames {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The store's schema: `spec.database.schema` or `ms_<namespace>_<name>`.
    pub schema: String,
    /// graphile_worker's queue schema; must equal `pinak_api::runtime::jobs::worker_schema(schema)`.
    pub worker_schema: String,
    /// NOLOGIN role that owns the schemas and every object in them.
    pub owner_role: String,
    /// The two login roles the API pods use in turn (`_a` first, then `_b`): a password
    /// rotation sets a new password on the one not in use and moves the pods to it, so the old
    /// credentials keep working until every pod has the new ones. Both are members of
    /// `owner_role`, so either sees the same data.
    pub login_role: String,
    pub login_role_b: String,
    /// Deployment, Service, PodDisruptionBudget and HorizontalPodAutoscaler share this name.
    pub workload: String,
    /// The operator-owned Secret with the store's credentials.
    pub secret: String,
    /// The operator-owned Secret with the public token-verification keys from Vault, one file
    /// per `kid`, mounted as the pods' `PINAK_JWT_KEYS_DIR`.
    pub jwt_keys_secret: String,
}

impl StoreNames {
    /// Derives and validates the names; a store whose names cannot be used is `InvalidSpec`.
    pub fn of(store: &MemoryStore) -> Result<Self> {
        let name = store.name_any();
        let namespace = store.namespace().ok_or_else(|| Error::InvalidSpec("MemoryStore has no namespace".into()))?;
        let uid = store
            .uid()
            .ok_or_else(|| Error::InvalidSpec("MemoryStore has no uid (not read from the API server?)".into()))?;
        // The name becomes a Service name and a label value: a DNS-1035 label.
        if !is_dns1035_label(&name) {
            return Err(Error::InvalidSpec(format!(
                "name {name:?} must be a DNS-1035 label (at most 63 lowercase letters, digits and '-', starting with a letter) because it names the store's Service"
            )));
        }
        let schema = store.spec.resolved_schema(&namespace, &name);
        if !is_sql_identifier(&schema) || schema.starts_with("pg_") {
            return Err(Error::InvalidSpec(format!(
                "database.schema {schema:?} must match [a-z_][a-z0-9_]* (at most {MAX_PG_IDENTIFIER_LEN} bytes) and not start with pg_"
            )));
        }
        Ok(Self {
            worker_schema: suffixed_identifier(&schema, "_worker"),
            owner_role: suffixed_identifier(&schema, "_owner"),
            login_role: suffixed_identifier(&schema, "_a"),
            login_role_b: suffixed_identifier(&schema, "_b"),
            workload: name.clone(),
            secret: format!("{name}-pinak"),
            jwt_keys_secret: format!("{name}-pinak-jwt-keys"),
            schema,
            namespace,
            name,
            uid,
        })
    }

    /// Written as the comment of every schema and role the operator creates for this store.
    /// The uid makes a store recreated under the same name a different owner: a retained
    /// schema is not silently adopted by a new store.
    pub fn ownership_marker(&self) -> String {
        format!("pinak-operator:{}/{}:{}", self.namespace, self.name, self.uid)
    }

    /// Both login roles.
    pub fn login_roles(&self) -> [&str; 2] {
        [&self.login_role, &self.login_role_b]
    }

    /// The login role a rotation moves to from `current`.
    pub fn other_login_role(&self, current: &str) -> &str {
        if current == self.login_role { &self.login_role_b } else { &self.login_role }
    }

    /// In-cluster URL of the store's API.
    pub fn endpoint(&self) -> String {
        format!("http://{}.{}.svc:{SERVICE_PORT}", self.workload, self.namespace)
    }
}

/// `base` + `suffix` as one Postgres identifier of at most 63 bytes. Postgres would silently
/// truncate a longer one, and two stores could then share a role; a long base is shortened
/// and an 8-hex-digit hash of it keeps names apart. Same rule as
/// `pinak_api::runtime::jobs::worker_schema` (for `_worker` the two must agree, or the pods
/// would look for their queue elsewhere).
pub fn suffixed_identifier(base: &str, suffix: &str) -> String {
    if base.len() + suffix.len() <= MAX_PG_IDENTIFIER_LEN {
        return format!("{base}{suffix}");
    }
    let hash = hex::encode(&Sha256::digest(base.as_bytes())[..4]);
    let keep = MAX_PG_IDENTIFIER_LEN - suffix.len() - hash.len() - 1;
    // Callers pass validated ASCII identifiers; a char boundary check keeps this total anyway.
    let mut cut = keep.min(base.len());
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash}{suffix}", &base[..cut])
}

/// `[a-z_][a-z0-9_]*`, at most 63 bytes: what `PINAK_DB_SCHEMA` accepts.
pub fn is_sql_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && s.len() <= MAX_PG_IDENTIFIER_LEN
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

fn is_dns1035_label(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::store;

    #[test]
    fn names_of_a_plain_store() {
        let n = StoreNames::of(&store(serde_json::json!({}))).unwrap();
        assert_eq!(n.schema, "ms_team_a_notes_0dface7421");
        assert_eq!(n.worker_schema, "ms_team_a_notes_0dface7421_worker");
        assert_eq!(n.owner_role, "ms_team_a_notes_0dface7421_owner");
        assert_eq!(n.login_role, "ms_team_a_notes_0dface7421_a");
        assert_eq!(n.login_role_b, "ms_team_a_notes_0dface7421_b");
        assert_eq!(n.other_login_role(&n.login_role), n.login_role_b);
        assert_eq!(n.other_login_role(&n.login_role_b), n.login_role);
        assert_eq!(n.secret, "notes-pinak");
        assert_eq!(n.endpoint(), "http://notes.team-a.svc:80");
        assert_eq!(n.ownership_marker(), "pinak-operator:team-a/notes:00000000-0000-4000-8000-000000000001");
    }

    #[test]
    fn long_names_stay_distinct_and_within_the_limit() {
        let base = "s".repeat(63);
        let owner = suffixed_identifier(&base, "_owner");
        let login = suffixed_identifier(&base, "_a");
        let worker = suffixed_identifier(&base, "_worker");
        for n in [&owner, &login, &worker] {
            assert_eq!(n.len(), 63, "{n}");
            assert!(is_sql_identifier(n), "{n}");
        }
        assert!(owner.ends_with("_owner") && login.ends_with("_a") && worker.ends_with("_worker"));
        // Two bases that share the kept prefix get different hashes.
        let other = format!("{}t", "s".repeat(62));
        assert_ne!(suffixed_identifier(&other, "_owner"), owner);
    }

    #[test]
    fn worker_schema_matches_the_api_rule() {
        // pinak_api::runtime::jobs::worker_schema, evaluated by hand for a short and a long schema.
        assert_eq!(suffixed_identifier("ms_default_dev", "_worker"), "ms_default_dev_worker");
        let long = "a".repeat(60);
        let hash = hex::encode(&Sha256::digest(long.as_bytes())[..4]);
        assert_eq!(suffixed_identifier(&long, "_worker"), format!("{}_{hash}_worker", &long[..63 - 7 - 9]));
    }

    #[test]
    fn bad_names_are_invalid_specs_not_panics() {
        let mut s = store(serde_json::json!({"database": {"schema": "pg_catalog"}}));
        assert!(matches!(StoreNames::of(&s), Err(Error::InvalidSpec(_))));
        s.spec.database.schema = Some("x\"; DROP SCHEMA public; --".into());
        assert!(matches!(StoreNames::of(&s), Err(Error::InvalidSpec(_))));
        s.spec.database.schema = None;
        s.metadata.name = Some("1-starts-with-digit".into());
        assert!(matches!(StoreNames::of(&s), Err(Error::InvalidSpec(_))));
        s.metadata.name = Some("notes".into());
        s.metadata.uid = None;
        assert!(matches!(StoreNames::of(&s), Err(Error::InvalidSpec(_))));
    }
}
