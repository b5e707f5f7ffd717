//! What to run in Postgres, as pure functions of what is wanted and what is there. The
//! statements only ever differ from the empty list when something is missing or changed, so a
//! steady-state reconcile writes nothing to the database either.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::sql::{ident, literal};
use crate::error::{Error, Result};
use crate::names::StoreNames;

/// `statement_timeout` of the login role: above the API's 30 s request timeout, so the API
/// answers first, but a runaway statement still ends.
pub const STATEMENT_TIMEOUT: &str = "60s";

/// What the operator wants in Postgres for one store.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    pub names: &'a StoreNames,
    /// The login role in use (one of `names.login_roles()`) and its password (kept in the
    /// store's Secret). The other login role is left as it is: its sessions, and new ones with
    /// its password, keep working while a rotation reaches the pods.
    pub login_role: &'a str,
    pub password: &'a str,
    pub connection_limit: i32,
}

/// What Postgres has now, for the names of one store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Existing schemas among the store's, with their comments.
    pub schemas: BTreeMap<String, Option<String>>,
    /// Existing roles among the store's, with their comments.
    pub roles: BTreeMap<String, Option<String>>,
    /// The login role is a member of the owner role.
    pub login_in_owner: bool,
    pub admin_is_superuser: bool,
    /// The admin role is a member of the owner role (needed by a non-superuser admin).
    pub admin_in_owner: bool,
    pub vector: Option<Extension>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    pub version: String,
    pub schema: String,
}

/// Comment of the login role: the ownership marker plus a hash of everything the plan sets on
/// the role (password included). A differing hash is how the operator knows the role needs
/// updating without reading `pg_authid`, which needs superuser. The hash of a 256-bit random
/// password reveals nothing usable.
pub fn login_comment(t: &Target<'_>) -> String {
    let mut h = Sha256::new();
    for part in [t.password, &t.connection_limit.to_string(), &t.names.owner_role, &t.names.schema, STATEMENT_TIMEOUT] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!("{};config={}", t.names.ownership_marker(), &hex::encode(h.finalize())[..16])
}

/// Refuses names that exist in Postgres but were not made by this operator for this store.
pub fn check_ownership(names: &StoreNames, o: &Observed) -> Result<()> {
    let marker = names.ownership_marker();
    for schema in [&names.schema, &names.worker_schema] {
        if let Some(comment) = o.schemas.get(schema)
            && comment.as_deref() != Some(marker.as_str())
        {
            return Err(Error::SchemaNotOwned { schema: schema.clone(), found: comment.clone() });
        }
    }
    for role in [names.owner_role.as_str(), names.login_role.as_str(), names.login_role_b.as_str()] {
        if let Some(comment) = o.roles.get(role)
            && !is_ours(comment.as_deref(), &marker)
        {
            return Err(Error::RoleNotOwned { role: role.to_owned(), found: comment.clone() });
        }
    }
    Ok(())
}

fn is_ours(comment: Option<&str>, marker: &str) -> bool {
    comment.is_some_and(|c| c == marker || c.strip_prefix(marker).is_some_and(|rest| rest.starts_with(';')))
}

/// Statements that bring Postgres from `o` to `t`, to run in ONE transaction: a crash midway
/// leaves nothing half-made (a schema without its ownership comment would be refused forever).
/// `verifier` is called only when the login role's password must be (re)set.
pub fn setup_plan(t: &Target<'_>, o: &Observed, verifier: impl FnOnce() -> Result<String>) -> Result<Vec<String>> {
    check_ownership(t.names, o)?;
    let n = t.names;
    let marker = literal(&n.ownership_marker());
    let (owner, login) = (ident(&n.owner_role), ident(t.login_role));
    let mut plan = Vec::new();

    if !o.roles.contains_key(&n.owner_role) {
        plan.push(format!("CREATE ROLE {owner} NOLOGIN"));
        plan.push(format!("COMMENT ON ROLE {owner} IS {marker}"));
    }
    if !o.admin_is_superuser && !o.admin_in_owner {
        // A non-superuser admin (CREATEROLE) must be a member to hand schemas to the owner
        // role and to run the migrations as it.
        plan.push(format!("GRANT {owner} TO CURRENT_USER"));
    }

    let comment = login_comment(t);
    if !n.login_roles().contains(&t.login_role) {
        return Err(Error::InvalidSpec(format!("{:?} is not one of the store's login roles", t.login_role)));
    }
    let login_exists = o.roles.contains_key(t.login_role);
    if !login_exists || o.roles.get(t.login_role).cloned().flatten().as_deref() != Some(comment.as_str()) {
        let verb = if login_exists { "ALTER ROLE" } else { "CREATE ROLE" };
        plan.push(format!(
            "{verb} {login} WITH LOGIN INHERIT CONNECTION LIMIT {} PASSWORD {}",
            t.connection_limit,
            literal(&verifier()?)
        ));
        if !o.login_in_owner {
            plan.push(format!("GRANT {owner} TO {login}"));
        }
        // pgvector's types live in public, hence its place in the path. `role`: sessions act
        // as the owner role, so objects the pods create (graphile_worker's queue tables) belong
        // to it and not to one login role; a rotated-in second login role can then alter them.
        plan.push(format!("ALTER ROLE {login} SET search_path = {}, public", ident(&n.schema)));
        plan.push(format!("ALTER ROLE {login} SET statement_timeout = {}", literal(STATEMENT_TIMEOUT)));
        plan.push(format!("ALTER ROLE {login} SET role = {}", literal(&n.owner_role)));
        plan.push(format!("COMMENT ON ROLE {login} IS {}", literal(&comment)));
    } else if !o.login_in_owner {
        plan.push(format!("GRANT {owner} TO {login}"));
    }

    match &o.vector {
        None => plan.push("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public".to_owned()),
        Some(ext) if ext.schema != "public" => {
            return Err(Error::Pgvector(format!(
                "the vector extension is installed in schema {:?}; pinak-api expects it in public",
                ext.schema
            )));
        }
        Some(_) => {}
    }

    for schema in [&n.schema, &n.worker_schema] {
        if !o.schemas.contains_key(schema) {
            let s = ident(schema);
            plan.push(format!("CREATE SCHEMA {s} AUTHORIZATION {owner}"));
            plan.push(format!("REVOKE ALL ON SCHEMA {s} FROM PUBLIC"));
            plan.push(format!("COMMENT ON SCHEMA {s} IS {marker}"));
        }
    }
    if !o.schemas.contains_key(&n.worker_schema) {
        // graphile_worker installs its queue with `CREATE SCHEMA IF NOT EXISTS`, which needs
        // CREATE on the database even when the schema exists, unless its `migrations` table is
        // already there (then it only runs its migrations, as the owner role). Same definition
        // as graphile_worker's installer.
        let table = format!("{}.{}", ident(&n.worker_schema), ident("migrations"));
        plan.push(format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, ts timestamptz DEFAULT now() NOT NULL, breaking boolean NOT NULL DEFAULT false)"
        ));
        plan.push(format!("ALTER TABLE {table} OWNER TO {owner}"));
    }
    Ok(plan)
}

/// Statements that drop a store's database objects (`reclaimPolicy: Delete`). Only objects
/// carrying this store's ownership marker are dropped; a foreign schema under the same name
/// is left alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReclaimPlan {
    /// Run and committed first: no new sessions of the login role, so its existing ones can be
    /// ended and cannot come back while the schemas are dropped.
    pub lock_out: Vec<String>,
    pub drop: Vec<String>,
}

pub fn reclaim_plan(names: &StoreNames, o: &Observed) -> ReclaimPlan {
    let marker = names.ownership_marker();
    let mut plan = ReclaimPlan::default();
    let logins_ours: Vec<&str> = names
        .login_roles()
        .into_iter()
        .filter(|r| o.roles.get(*r).is_some_and(|c| is_ours(c.as_deref(), &marker)))
        .collect();
    for login in &logins_ours {
        plan.lock_out.push(format!("ALTER ROLE {} NOLOGIN", ident(login)));
    }
    for schema in [&names.schema, &names.worker_schema] {
        if o.schemas.get(schema).is_some_and(|c| c.as_deref() == Some(marker.as_str())) {
            plan.drop.push(format!("DROP SCHEMA IF EXISTS {} CASCADE", ident(schema)));
        }
    }
    let owner_ours = o.roles.get(&names.owner_role).is_some_and(|c| is_ours(c.as_deref(), &marker));
    if owner_ours {
        // Also drops what the owner role owns elsewhere in this database and revokes what it
        // was granted: the role is the store's, so all of that is the store's.
        plan.drop.push(format!("DROP OWNED BY {}", ident(&names.owner_role)));
    }
    // The login roles own nothing (their sessions act as the owner role), so they need no DROP
    // OWNED, which a non-superuser admin could not run on them anyway.
    for login in &logins_ours {
        plan.drop.push(format!("DROP ROLE IF EXISTS {}", ident(login)));
    }
    if owner_ours {
        plan.drop.push(format!("DROP ROLE IF EXISTS {}", ident(&names.owner_role)));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::store;

    fn names() -> StoreNames {
        StoreNames::of(&store(serde_json::json!({"database": {"schema": "ms_notes"}}))).unwrap()
    }

    fn target(names: &StoreNames) -> Target<'_> {
        Target { names, login_role: &names.login_role, password: "pw", connection_limit: 52 }
    }

    fn verifier() -> Result<String> {
        Ok("SCRAM-SHA-256$4096:c2FsdA==$x:y".into())
    }

    /// What Postgres looks like right after the plan for an empty database has run.
    fn provisioned(n: &StoreNames) -> Observed {
        let marker = n.ownership_marker();
        Observed {
            schemas: [(n.schema.clone(), Some(marker.clone())), (n.worker_schema.clone(), Some(marker.clone()))].into(),
            roles: [(n.owner_role.clone(), Some(marker)), (n.login_role.clone(), Some(login_comment(&target(n))))]
                .into(),
            login_in_owner: true,
            admin_is_superuser: true,
            admin_in_owner: false,
            vector: Some(Extension { version: "0.8.5".into(), schema: "public".into() }),
        }
    }

    #[test]
    fn empty_database_gets_everything() {
        let n = names();
        let plan =
            setup_plan(&target(&n), &Observed { admin_is_superuser: true, ..Default::default() }, verifier).unwrap();
        let marker = "'pinak-operator:team-a/notes:00000000-0000-4000-8000-000000000001'";
        let expected = vec![
            "CREATE ROLE \"ms_notes_owner\" NOLOGIN".to_owned(),
            format!("COMMENT ON ROLE \"ms_notes_owner\" IS {marker}"),
            "CREATE ROLE \"ms_notes_a\" WITH LOGIN INHERIT CONNECTION LIMIT 52 PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$x:y'"
                .to_owned(),
            "GRANT \"ms_notes_owner\" TO \"ms_notes_a\"".to_owned(),
            "ALTER ROLE \"ms_notes_a\" SET search_path = \"ms_notes\", public".to_owned(),
            "ALTER ROLE \"ms_notes_a\" SET statement_timeout = '60s'".to_owned(),
            "ALTER ROLE \"ms_notes_a\" SET role = 'ms_notes_owner'".to_owned(),
            format!("COMMENT ON ROLE \"ms_notes_a\" IS {}", literal(&login_comment(&target(&n)))),
            "CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public".to_owned(),
            "CREATE SCHEMA \"ms_notes\" AUTHORIZATION \"ms_notes_owner\"".to_owned(),
            "REVOKE ALL ON SCHEMA \"ms_notes\" FROM PUBLIC".to_owned(),
            format!("COMMENT ON SCHEMA \"ms_notes\" IS {marker}"),
            "CREATE SCHEMA \"ms_notes_worker\" AUTHORIZATION \"ms_notes_owner\"".to_owned(),
            "REVOKE ALL ON SCHEMA \"ms_notes_worker\" FROM PUBLIC".to_owned(),
            format!("COMMENT ON SCHEMA \"ms_notes_worker\" IS {marker}"),
            "CREATE TABLE \"ms_notes_worker\".\"migrations\" (id int PRIMARY KEY, ts timestamptz DEFAULT now() NOT NULL, breaking boolean NOT NULL DEFAULT false)".to_owned(),
            "ALTER TABLE \"ms_notes_worker\".\"migrations\" OWNER TO \"ms_notes_owner\"".to_owned(),
        ];
        assert_eq!(plan, expected);
    }

    #[test]
    fn steady_state_plans_nothing_and_never_needs_a_verifier() {
        let n = names();
        let plan = setup_plan(&target(&n), &provisioned(&n), || panic!("no password change expected")).unwrap();
        assert_eq!(plan, Vec::<String>::new());
    }

    #[test]
    fn a_changed_password_or_limit_updates_only_the_login_role() {
        let n = names();
        let o = provisioned(&n);
        for t in [Target { password: "new", ..target(&n) }, Target { connection_limit: 104, ..target(&n) }] {
            let plan = setup_plan(&t, &o, verifier).unwrap();
            assert!(plan[0].starts_with("ALTER ROLE \"ms_notes_a\" WITH LOGIN INHERIT CONNECTION LIMIT"), "{plan:?}");
            assert!(plan.iter().all(|s| s.contains("\"ms_notes_a\"")), "{plan:?}");
            assert_eq!(
                plan.last().unwrap(),
                &format!("COMMENT ON ROLE \"ms_notes_a\" IS {}", literal(&login_comment(&t)))
            );
        }
    }

    #[test]
    fn a_non_superuser_admin_joins_the_owner_role() {
        let n = names();
        let o = Observed { admin_is_superuser: false, ..provisioned(&n) };
        assert_eq!(setup_plan(&target(&n), &o, verifier).unwrap(), vec!["GRANT \"ms_notes_owner\" TO CURRENT_USER"]);
    }

    #[test]
    fn foreign_schemas_and_roles_are_refused_before_any_statement() {
        let n = names();
        for comment in
            [None, Some("someone else's".to_owned()), Some("pinak-operator:team-a/notes:other-uid".to_owned())]
        {
            let mut o = provisioned(&n);
            o.schemas.insert(n.schema.clone(), comment.clone());
            assert!(matches!(setup_plan(&target(&n), &o, verifier), Err(Error::SchemaNotOwned { .. })));
            let mut o = provisioned(&n);
            o.roles.insert(n.owner_role.clone(), comment.clone());
            assert!(matches!(setup_plan(&target(&n), &o, verifier), Err(Error::RoleNotOwned { .. })));
            let mut o = provisioned(&n);
            o.roles.insert(n.login_role.clone(), comment);
            assert!(matches!(setup_plan(&target(&n), &o, verifier), Err(Error::RoleNotOwned { .. })));
        }
        // A marker that merely starts like ours is not ours.
        let mut o = provisioned(&n);
        o.roles.insert(n.owner_role.clone(), Some(format!("{}0", n.ownership_marker())));
        assert!(matches!(setup_plan(&target(&n), &o, verifier), Err(Error::RoleNotOwned { .. })));
    }

    #[test]
    fn pgvector_outside_public_is_reported() {
        let n = names();
        let mut o = provisioned(&n);
        o.vector = Some(Extension { version: "0.8.5".into(), schema: "extensions".into() });
        assert!(matches!(setup_plan(&target(&n), &o, verifier), Err(Error::Pgvector(_))));
    }

    /// Names come from validated identifiers, but the plan must stay safe on its own: every
    /// identifier is quoted and every literal escaped, whatever it contains.
    #[test]
    fn hostile_names_cannot_inject() {
        let mut n = names();
        n.schema = "x\"; DROP SCHEMA public CASCADE; --".into();
        n.worker_schema = "w\"w".into();
        n.owner_role = "o\"; DROP ROLE postgres; --".into();
        n.login_role = "l'\"".into();
        n.namespace = "ns'; DROP TABLE t; --".into();
        n.name = "a\\'b".into();
        let plan = setup_plan(&target(&n), &Observed::default(), verifier).unwrap();
        for stmt in &plan {
            // Removing every quoted identifier and literal must leave only SQL keywords and
            // punctuation: nothing from the names is outside quotes.
            let bare = strip_quoted(stmt);
            assert!(!bare.contains("DROP"), "{stmt} -> {bare}");
            assert!(!bare.contains(';'), "{stmt} -> {bare}");
        }
        assert!(plan.contains(&"CREATE SCHEMA \"x\"\"; DROP SCHEMA public CASCADE; --\" AUTHORIZATION \"o\"\"; DROP ROLE postgres; --\"".to_owned()));
        let drops = reclaim_plan(&n, &provisioned(&n));
        for stmt in drops.lock_out.iter().chain(&drops.drop) {
            let bare = strip_quoted(stmt);
            assert!(!bare.contains(';') && bare.matches("DROP").count() <= 1, "{stmt} -> {bare}");
        }
    }

    /// `stmt` with every "..." identifier and '...' / E'...' literal removed (SQL's rules:
    /// doubled quotes stay inside; in E'' a backslash escapes the next character).
    fn strip_quoted(stmt: &str) -> String {
        let chars: Vec<char> = stmt.chars().collect();
        let (mut out, mut i) = (String::new(), 0);
        while i < chars.len() {
            let c = chars[i];
            let escape_string = c == 'E' && chars.get(i + 1) == Some(&'\'');
            if c == '"' || c == '\'' || escape_string {
                let q = if escape_string { '\'' } else { c };
                i += if escape_string { 2 } else { 1 };
                loop {
                    match chars.get(i) {
                        None => panic!("unterminated quote in {stmt}"),
                        Some('\\') if escape_string => i += 2,
                        Some(&x) if x == q && chars.get(i + 1) == Some(&q) => i += 2,
                        Some(&x) if x == q => break,
                        Some(_) => i += 1,
                    }
                }
                out.push('_');
            } else {
                out.push(c);
            }
            i += 1;
        }
        out
    }

    #[test]
    fn reclaim_drops_only_what_is_ours() {
        let n = names();
        let plan = reclaim_plan(&n, &provisioned(&n));
        assert_eq!(plan.lock_out, vec!["ALTER ROLE \"ms_notes_a\" NOLOGIN"]);
        assert_eq!(
            plan.drop,
            vec![
                "DROP SCHEMA IF EXISTS \"ms_notes\" CASCADE",
                "DROP SCHEMA IF EXISTS \"ms_notes_worker\" CASCADE",
                "DROP OWNED BY \"ms_notes_owner\"",
                "DROP ROLE IF EXISTS \"ms_notes_a\"",
                "DROP ROLE IF EXISTS \"ms_notes_owner\"",
            ]
        );
        // A foreign schema with our name, and roles of another store: nothing to drop.
        let mut o = provisioned(&n);
        o.schemas.insert(n.schema.clone(), Some("not ours".into()));
        o.roles.insert(n.owner_role.clone(), Some("pinak-operator:x/y:z".into()));
        o.roles.insert(n.login_role.clone(), None);
        let plan = reclaim_plan(&n, &o);
        assert_eq!(plan.lock_out, Vec::<String>::new());
        assert_eq!(plan.drop, vec!["DROP SCHEMA IF EXISTS \"ms_notes_worker\" CASCADE"]);
        assert_eq!(reclaim_plan(&n, &Observed::default()), ReclaimPlan::default());
    }

    #[test]
    fn a_rotation_provisions_the_second_login_role_and_reclaim_drops_both() {
        let n = names();
        let mut o = provisioned(&n);
        o.login_in_owner = false; // observed for the target's role, b, which does not exist yet
        let b = Target { login_role: &n.login_role_b, password: "new", ..target(&n) };
        let plan = setup_plan(&b, &o, verifier).unwrap();
        assert_eq!(
            plan[0],
            "CREATE ROLE \"ms_notes_b\" WITH LOGIN INHERIT CONNECTION LIMIT 52 PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$x:y'"
        );
        assert!(plan.contains(&"GRANT \"ms_notes_owner\" TO \"ms_notes_b\"".to_owned()), "{plan:?}");
        assert!(!plan.iter().any(|s| s.contains("\"ms_notes_a\"")), "the role in use before is left as it is");
        o.roles.insert(n.login_role_b.clone(), Some(login_comment(&b)));
        let reclaim = reclaim_plan(&n, &o);
        assert_eq!(reclaim.lock_out, vec!["ALTER ROLE \"ms_notes_a\" NOLOGIN", "ALTER ROLE \"ms_notes_b\" NOLOGIN"]);
        assert!(reclaim.drop.contains(&"DROP ROLE IF EXISTS \"ms_notes_b\"".to_owned()));
        // A foreign role under the second name is refused like the first.
        o.roles.insert(n.login_role_b.clone(), Some("someone else's".into()));
        assert!(matches!(setup_plan(&target(&n), &o, verifier), Err(Error::RoleNotOwned { .. })));
        let stranger = Target { login_role: "postgres", ..target(&n) };
        assert!(setup_plan(&stranger, &provisioned(&n), verifier).is_err(), "only the store's login roles");
    }
}
