//! The rule for indexes in migrations (README.md, "Indexes on tables that may hold rows"),
//! checked over the embedded migrations by the tests below. The SQL is split into statements
//! by a small lexer that knows comments, string literals, quoted identifiers and dollar quotes,
//! so text inside them never counts as a statement.

use std::collections::HashSet;

use sqlx::migrate::Migration;

/// Migrations up to this one were applied before the rule and cannot change (sqlx checks their
/// checksums). 0004 rebuilds the HNSW indexes inside its transaction: README.md says why that
/// stays.
const FROZEN_THROUGH: i64 = 6;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A keyword or an unquoted identifier (or a number), as written.
    Word(String),
    /// A double-quoted identifier, unquoted.
    Ident(String),
    /// A string or dollar-quoted literal; its text does not matter here.
    Literal,
    Punct(char),
}

/// The statements of `sql`, each as its tokens; empty statements are dropped.
fn statements(sql: &str) -> Vec<Vec<Token>> {
    let chars: Vec<char> = sql.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && at(i + 1) == Some('-') {
            while at(i).is_some_and(|c| c != '\n') {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            // Block comments nest in Postgres.
            let mut depth = 0;
            while let Some(c) = at(i) {
                if c == '/' && at(i + 1) == Some('*') {
                    depth += 1;
                    i += 2;
                } else if c == '*' && at(i + 1) == Some('/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '\'' {
            i = skip_string(&chars, i, false);
            current.push(Token::Literal);
        } else if c == '"' {
            let mut ident = String::new();
            i += 1;
            while let Some(c) = at(i) {
                i += 1;
                if c == '"' {
                    if at(i) == Some('"') {
                        ident.push('"');
                        i += 1;
                    } else {
                        break;
                    }
                } else {
                    ident.push(c);
                }
            }
            current.push(Token::Ident(ident));
        } else if c == '$' && dollar_tag(&chars, i).is_some() {
            let tag = dollar_tag(&chars, i).unwrap_or_default();
            let body = i + tag.len();
            let end = (body..chars.len()).find(|&j| chars[j..].starts_with(&tag)).unwrap_or(chars.len());
            i = (end + tag.len()).min(chars.len());
            current.push(Token::Literal);
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // E'...' strings take backslash escapes.
            if word.eq_ignore_ascii_case("e") && at(i) == Some('\'') {
                i = skip_string(&chars, i, true);
                current.push(Token::Literal);
            } else {
                current.push(Token::Word(word));
            }
        } else if c == ';' {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            i += 1;
        } else {
            current.push(Token::Punct(c));
            i += 1;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The index just past the string literal opening at `start`.
fn skip_string(chars: &[char], start: usize, backslash: bool) -> usize {
    let mut i = start + 1;
    while let Some(&c) = chars.get(i) {
        i += 1;
        if backslash && c == '\\' {
            i += 1;
        } else if c == '\'' {
            if chars.get(i) == Some(&'\'') {
                i += 1;
            } else {
                return i;
            }
        }
    }
    chars.len()
}

/// `$$` or `$tag$` opening at `start`.
fn dollar_tag(chars: &[char], start: usize) -> Option<Vec<char>> {
    let mut i = start + 1;
    while chars.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
        i += 1;
    }
    let starts_with_digit = chars.get(start + 1).is_some_and(char::is_ascii_digit);
    (chars.get(i) == Some(&'$') && !starts_with_digit).then(|| chars[start..=i].to_vec())
}

fn is_word(token: Option<&Token>, keyword: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
}

fn has_word(tokens: &[Token], keyword: &str) -> bool {
    tokens.iter().any(|t| is_word(Some(t), keyword))
}

fn has_words(tokens: &[Token], keywords: &[&str]) -> bool {
    tokens.windows(keywords.len()).any(|w| w.iter().zip(keywords).all(|(t, k)| is_word(Some(t), k)))
}

/// The (last part of the possibly qualified) name starting at `i`, as Postgres folds it.
fn name_at(tokens: &[Token], mut i: usize) -> Option<String> {
    let mut name = None;
    loop {
        name = match tokens.get(i) {
            Some(Token::Word(w)) => Some(w.to_lowercase()),
            Some(Token::Ident(q)) => Some(q.clone()),
            _ => return name,
        };
        if tokens.get(i + 1) != Some(&Token::Punct('.')) {
            return name;
        }
        i += 2;
    }
}

/// What a statement does, as far as the rule cares.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    CreateTable(Option<String>),
    CreateIndex {
        table: Option<String>,
        concurrently: bool,
        if_not_exists: bool,
    },
    DropIndex {
        concurrently: bool,
        if_exists: bool,
    },
    Reindex {
        concurrently: bool,
    },
    /// ALTER TABLE adding a PRIMARY KEY, UNIQUE or EXCLUDE constraint that builds its index.
    ConstraintIndex {
        table: Option<String>,
    },
    Other,
}

fn kind(tokens: &[Token]) -> Kind {
    let t = |i: usize| tokens.get(i);
    if is_word(t(0), "create") {
        let mut i = 1;
        while ["global", "local", "temp", "temporary", "unlogged"].iter().any(|k| is_word(t(i), k)) {
            i += 1;
        }
        if is_word(t(i), "table") {
            i += 1;
            if is_word(t(i), "if") {
                i += 3;
            }
            return Kind::CreateTable(name_at(tokens, i));
        }
        let mut i = 1;
        if is_word(t(i), "unique") {
            i += 1;
        }
        if is_word(t(i), "index") {
            let rest = &tokens[i + 1..];
            let on = rest.iter().position(|t| is_word(Some(t), "on"));
            let table = on.and_then(|p| name_at(rest, if is_word(rest.get(p + 1), "only") { p + 2 } else { p + 1 }));
            return Kind::CreateIndex {
                table,
                concurrently: is_word(t(i + 1), "concurrently"),
                if_not_exists: has_words(rest, &["if", "not", "exists"]),
            };
        }
    } else if is_word(t(0), "drop") && is_word(t(1), "index") {
        return Kind::DropIndex {
            concurrently: is_word(t(2), "concurrently"),
            if_exists: has_words(&tokens[2..], &["if", "exists"]),
        };
    } else if is_word(t(0), "reindex") {
        return Kind::Reindex { concurrently: has_word(tokens, "concurrently") };
    } else if is_word(t(0), "alter") && is_word(t(1), "table") {
        let builds = ["primary", "unique", "exclude"].iter().any(|k| has_word(tokens, k));
        if builds && !has_words(tokens, &["using", "index"]) {
            let mut i = 2;
            if is_word(t(i), "if") {
                i += 2;
            }
            if is_word(t(i), "only") {
                i += 1;
            }
            return Kind::ConstraintIndex { table: name_at(tokens, i) };
        }
    }
    Kind::Other
}

/// Where `migrations` break the rule, one message each (empty: none).
///
/// A table the migration does not create itself counts as one an earlier migration created:
/// it may hold rows. That also covers a table renamed since.
pub(crate) fn violations<'a>(migrations: impl IntoIterator<Item = &'a Migration>) -> Vec<String> {
    let mut found = Vec::new();
    for m in migrations.into_iter().filter(|m| m.version > FROZEN_THROUGH && m.migration_type.is_up_migration()) {
        let mut complain = |what: String| found.push(format!("migration {} ({}): {what}", m.version, m.description));
        let statements = statements(m.sql.as_str());
        let kinds: Vec<Kind> = statements.iter().map(|s| kind(s)).collect();
        let created: HashSet<&String> =
            kinds.iter().filter_map(|k| if let Kind::CreateTable(Some(t)) = k { Some(t) } else { None }).collect();
        let on_existing = |table: &Option<String>| table.as_ref().is_none_or(|t| !created.contains(t));
        let alone = m.no_tx && statements.len() == 1;
        for (tokens, kind) in statements.iter().zip(&kinds) {
            match kind {
                Kind::CreateIndex { table, concurrently, if_not_exists } if on_existing(table) => {
                    let name = table.as_deref().unwrap_or("?");
                    if !(alone && *concurrently && *if_not_exists) {
                        complain(format!(
                            "CREATE INDEX on {name}, a table that may hold rows, must be the only statement of a \
                             `-- no-transaction` file and read CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS"
                        ));
                    }
                }
                Kind::DropIndex { concurrently, if_exists } if !(alone && *concurrently && *if_exists) => complain(
                    "DROP INDEX must be the only statement of a `-- no-transaction` file and read \
                     DROP INDEX CONCURRENTLY IF EXISTS"
                        .into(),
                ),
                Kind::Reindex { concurrently } if !(alone && *concurrently) => complain(
                    "REINDEX must be the only statement of a `-- no-transaction` file and use CONCURRENTLY".into(),
                ),
                Kind::ConstraintIndex { table } if on_existing(table) => complain(format!(
                    "ALTER TABLE {} adds a constraint that builds an index while the table is locked: build \
                     it with CREATE UNIQUE INDEX CONCURRENTLY first and add the constraint USING INDEX",
                    table.as_deref().unwrap_or("?")
                )),
                _ if !m.no_tx && has_word(tokens, "concurrently") => complain(
                    "a CONCURRENTLY statement runs only outside a transaction: the file's first line must be \
                     exactly `-- no-transaction`"
                        .into(),
                ),
                _ => {}
            }
        }
        let concurrent = |k: &Kind| {
            matches!(
                k,
                Kind::CreateIndex { concurrently: true, .. }
                    | Kind::DropIndex { concurrently: true, .. }
                    | Kind::Reindex { concurrently: true }
            )
        };
        if m.no_tx && !(kinds.len() == 1 && concurrent(&kinds[0])) {
            complain(
                "a `-- no-transaction` file holds exactly one CONCURRENTLY index statement (Postgres runs \
                 several in one implicit transaction; the runner lifts lock_timeout for these files)"
                    .into(),
            );
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use sqlx::SqlStr;
    use sqlx::migrate::{MigrationType, Migrator};

    use super::*;

    fn migration(version: i64, sql: &'static str) -> Migration {
        // The test sqlx applies to a file.
        let no_tx = sql.starts_with("-- no-transaction");
        Migration::new(version, Cow::Borrowed("test"), MigrationType::Simple, SqlStr::from_static(sql), no_tx)
    }

    /// `sql` as migration 7, after a 0001 that creates `t`.
    fn check(sql: &'static str) -> Vec<String> {
        let set = [migration(1, "CREATE TABLE t (x int, y int);"), migration(7, sql)];
        violations(&set)
    }

    #[test]
    fn embedded_migrations_follow_the_index_rule() {
        assert!((1..=FROZEN_THROUGH).all(|v| crate::MIGRATOR.version_exists(v)), "the frozen migrations are there");
        let found = violations(crate::MIGRATOR.iter());
        assert!(
            found.is_empty(),
            "migrations/README.md, \"Indexes on tables that may hold rows\":\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn the_test_fixtures_are_judged_as_the_runner_tests_expect() {
        let with =
            |fixture: &Migrator| -> Vec<Migration> { crate::MIGRATOR.iter().chain(fixture.iter()).cloned().collect() };
        assert_eq!(violations(&with(&sqlx::migrate!("tests/fixtures/concurrent"))), Vec::<String>::new());
        assert_eq!(violations(&with(&sqlx::migrate!("tests/fixtures/unique"))), Vec::<String>::new());
        let blocking = violations(&with(&sqlx::migrate!("tests/fixtures/blocking")));
        assert_eq!(blocking.len(), 1, "{blocking:?}");
        assert!(blocking[0].contains("CREATE INDEX on memories_semantic"), "{blocking:?}");
    }

    #[test]
    fn a_concurrent_build_in_its_own_file_passes() {
        let ok = "-- no-transaction\n-- why\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_x ON t (x);\n";
        assert_eq!(check(ok), Vec::<String>::new());
        let unique = "-- no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_x ON ONLY public.\"t\" (x)";
        assert_eq!(check(unique), Vec::<String>::new());
    }

    #[test]
    fn the_readme_rebuild_sequence_passes() {
        let set = [
            migration(1, "CREATE TABLE t (x int, y int); CREATE INDEX t_x ON t (x);"),
            migration(7, "-- no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_x_new ON t (x, y);"),
            migration(8, "-- no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS t_x;"),
            migration(9, "ALTER INDEX IF EXISTS t_x_new RENAME TO t_x;"),
        ];
        assert_eq!(violations(&set), Vec::<String>::new());
    }

    #[test]
    fn blocking_index_statements_on_existing_tables_fail() {
        for sql in [
            "CREATE INDEX t_x ON t (x);",
            "create unique index t_x on t using btree (x)",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_x ON t (x);",
            "\n-- no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_x ON t (x);",
            "-- no-transaction\nCREATE INDEX CONCURRENTLY t_x ON t (x);",
            "-- no-transaction\nCREATE INDEX IF NOT EXISTS t_x ON t (x);",
            "-- no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_x ON t (x); CREATE INDEX CONCURRENTLY IF NOT EXISTS t_y ON t (y);",
            "DROP INDEX t_x;",
            "-- no-transaction\nDROP INDEX t_x;",
            "-- no-transaction\nDROP INDEX CONCURRENTLY t_x;",
            "REINDEX INDEX t_x;",
            "ALTER TABLE t ADD CONSTRAINT t_u UNIQUE (x);",
            "ALTER TABLE ONLY t ADD PRIMARY KEY (x, y);",
        ] {
            assert!(!check(sql).is_empty(), "{sql:?} passed");
        }
    }

    #[test]
    fn no_transaction_is_for_one_concurrent_index_statement() {
        assert_eq!(check("-- no-transaction\nVACUUM t;").len(), 1);
        assert_eq!(check("-- no-transaction\nREINDEX INDEX CONCURRENTLY t_x;"), Vec::<String>::new());
        assert_eq!(check("-- no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS t_x;"), Vec::<String>::new());
    }

    #[test]
    fn new_tables_and_frozen_migrations_may_build_indexes_in_a_transaction() {
        let new_table = "CREATE TABLE IF NOT EXISTS \"U\" (x int);\nCREATE INDEX u_x ON public.\"U\" (x);\n\
                         CREATE TABLE v (x int, UNIQUE (x)); ALTER TABLE v ADD PRIMARY KEY (x);";
        assert_eq!(check(new_table), Vec::<String>::new());
        let frozen =
            [migration(1, "CREATE TABLE t (x int);"), migration(4, "DROP INDEX t_x; CREATE INDEX t_x ON t (x);")];
        assert_eq!(violations(&frozen), Vec::<String>::new());
        assert_eq!(check("ALTER TABLE t ADD CONSTRAINT t_u UNIQUE USING INDEX t_u;"), Vec::<String>::new());
        assert_eq!(check("ALTER INDEX t_x RENAME TO t_y;"), Vec::<String>::new());
    }

    #[test]
    fn comments_strings_and_bodies_are_not_statements() {
        let sql = "-- CREATE INDEX a ON t (x);\n/* DROP INDEX a; /* nested; */ still; */\n\
                   SELECT 'CREATE INDEX b ON t (x); it''s', E'\\'; DROP INDEX c;', \"CREATE INDEX\";\n\
                   CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $body$ CREATE INDEX d ON t (x); $body$;\n\
                   DO $$ BEGIN EXECUTE 'DROP INDEX e'; END $$";
        assert_eq!(statements(sql).len(), 3, "{:?}", statements(sql));
        assert_eq!(check(sql), Vec::<String>::new());
    }

    #[test]
    fn statement_kinds() {
        let kind_of = |sql| kind(&statements(sql)[0]);
        assert_eq!(
            kind_of("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON ONLY s.\"T\" USING hnsw ((e::halfvec(3)))"),
            Kind::CreateIndex { table: Some("T".into()), concurrently: true, if_not_exists: true }
        );
        assert_eq!(
            kind_of("CREATE INDEX ON T (x)"),
            Kind::CreateIndex { table: Some("t".into()), concurrently: false, if_not_exists: false }
        );
        assert_eq!(kind_of("CREATE UNLOGGED TABLE IF NOT EXISTS s.T (x int)"), Kind::CreateTable(Some("t".into())));
        assert_eq!(
            kind_of("DROP INDEX CONCURRENTLY IF EXISTS i"),
            Kind::DropIndex { concurrently: true, if_exists: true }
        );
        assert_eq!(
            kind_of("ALTER TABLE IF EXISTS ONLY t ADD UNIQUE (x)"),
            Kind::ConstraintIndex { table: Some("t".into()) }
        );
        assert_eq!(kind_of("ALTER TABLE t DROP CONSTRAINT t_unique"), Kind::Other);
    }
}
