//! The keyword leg of search: full-text match with OR semantics and BM25-style scoring.
//!
//! A question rarely contains every word of the memory that answers it, so the prototype's
//! AND match (FTS5, then `plainto_tsquery`) found nothing for natural-language queries. Here
//! any query term may match, and the matches are ranked by how informative their terms are.
//!
//! * **Terms.** The query is parsed by the store's text-search configuration (the session's
//!   `default_text_search_config`, `PINAK_TEXT_SEARCH_CONFIG`, `english` by default): stop words
//!   go, words are stemmed. The first `MAX_TERMS` distinct stems are kept. User text is only
//!   ever data: each stem is quoted and escaped before it becomes a `tsquery`, so no operator in
//!   the query is ever parsed.
//! * **Match.** The stored `fts` columns hold each memory's words unstemmed (`simple`), so a
//!   stem of four or more letters matches as a prefix (`'support':*` finds "supporting"), with
//!   the `y` form beside an `i` stem ("famili" also finds "family"); a shorter stem matches
//!   itself and its plural. Stemming the query rather than the stored words means the language
//!   can change without rewriting a table or rebuilding an index. Every list is served by the
//!   layer's GIN index on `fts`; no `ILIKE` scan remains.
//! * **Score.** BM25 with binary term frequency (memories are short; a term rarely repeats):
//!   `sum(idf(term)) * (k1 + 1) / (1 + k1 * (1 - b + b * len / avglen))`, with
//!   `idf = ln(1 + (N - df + 0.5) / (df + 0.5))`. `df` and the average length come from the
//!   scope's matching rows; `N` is the scope's size when the vector-path cache knows it (the
//!   three vectorised layers, exact up to its counting limit), else the number of matches.
//! * **Cost.** Matching any term reads and scores every row holding one, so the terms that
//!   select candidates are chosen in the pod, rarest first by the planner's statistics
//!   (`CommonTerms`): a term in over `MAX_MATCH_SHARE` of a table's rows never selects, and
//!   terms stop selecting once their estimated matches in the scope pass `MATCH_BUDGET_ROWS`.
//!   A term that does not select still scores the candidates the others select. The query is
//!   parsed in its own small statement so that this choice is made here, in microseconds,
//!   rather than by matching each term against the common lexemes in SQL.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgConnection;

/// Distinct query stems used; the rest of a long query is ignored by this leg.
pub const MAX_TERMS: usize = 10;
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// A lexeme as one quoted `tsquery` operand: quotes doubled and backslashes escaped, so any
/// lexeme, whatever it holds, is a literal and never an operator.
fn quoted(lexeme: &str) -> String {
    format!("'{}'", lexeme.replace('\\', "\\\\").replace('\'', "''"))
}

/// The `tsquery` text of one stem (see the module comment for the rules).
pub fn term_query(stem: &str) -> String {
    let q = quoted(stem);
    if stem.chars().count() < 4 {
        return format!("{q} | {}", quoted(&format!("{stem}s")));
    }
    match stem.strip_suffix('i') {
        Some(base) => format!("{q}:* | {}", quoted(&format!("{base}y"))),
        None => format!("{q}:*"),
    }
}

/// A term is left out of the match (it still scores) when the store's statistics put it in
/// more than this share of a text table's rows: such a term is nearly a stop word (low IDF),
/// yet matching it means reading and scoring a tenth of a large scope.
pub const MAX_MATCH_SHARE: f64 = 0.02;

/// Rows the selecting terms may be expected to match in a scope: past it, the rarer terms
/// select alone. Memories holding only the more common words of the query are then left to
/// the vector leg; the rare words are the ones that tell memories apart.
pub const MATCH_BUDGET_ROWS: f64 = 250.0;

/// The query's lexemes (the store's configuration: stop words dropped, words stemmed), in
/// order of first appearance, at most `MAX_TERMS`.
static LEXEMES_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT e.lexeme FROM unnest(to_tsvector($1)) e
         ORDER BY (SELECT min(p) FROM unnest(e.positions) p), e.lexeme LIMIT {MAX_TERMS}"
    )
});

/// The lexemes of `query` (see `LEXEMES_SQL`); none, without a round trip, for a blank query.
pub async fn lexemes(conn: &mut PgConnection, query: &str) -> Result<Vec<String>, sqlx::Error> {
    if query.trim().is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(sqlx::AssertSqlSafe(LEXEMES_SQL.as_str())).bind(query).fetch_all(conn).await
}

/// A query's keyword terms as the search statement takes them.
#[derive(Debug, Default, PartialEq)]
pub struct Terms {
    /// One `tsquery` per lexeme, in query order: each scores the rows holding it.
    pub each: Vec<String>,
    /// The disjunction that selects candidates; `None` (no lexeme) matches nothing.
    pub any: Option<String>,
}

/// Chooses the selecting terms of `lexemes` (see `MAX_MATCH_SHARE` and `MATCH_BUDGET_ROWS`):
/// rarest first by `common`'s shares, the rarest always. `scope_rows` is the largest known
/// scope size of the searched layers (0 when none is known: then only the share rule holds).
pub fn plan(lexemes: &[String], common: &Common, scope_rows: i64) -> Terms {
    let each: Vec<String> = lexemes.iter().map(|l| term_query(l)).collect();
    let mut order: Vec<(f64, usize)> = lexemes.iter().map(|l| common.share(l)).zip(0..).collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut chosen = Vec::new();
    let mut expected = 0.0;
    for (share, i) in order {
        expected += share * scope_rows as f64;
        if !chosen.is_empty() && (share > MAX_MATCH_SHARE || expected > MATCH_BUDGET_ROWS) {
            break;
        }
        chosen.push(i);
    }
    chosen.sort_unstable();
    let any =
        (!chosen.is_empty()).then(|| chosen.iter().map(|&i| format!("({})", each[i])).collect::<Vec<_>>().join(" | "));
    Terms { each, any }
}

/// CTE `kq`: the terms (`$3`, text[]) as `tsquery`s and the selecting disjunction (`$6`; NULL
/// matches nothing), both built by `plan` from the lexemes Postgres returned.
pub const TERMS_CTE: &str = "kq AS (SELECT $3::text[]::tsquery[] AS terms, $6::text::tsquery AS anyq)";

/// The most common lexemes of the store's text columns and their shares of rows, from the
/// planner's statistics (`pg_stats.most_common_elems`, kept by ANALYZE), kept in the pod: the
/// view is slow to read in a database of many schemas, and the shares change slowly.
pub struct CommonTerms {
    entry: Mutex<Option<(Instant, Arc<Common>)>>,
}

/// Lexemes with the largest share of rows holding each in any text table, sorted bytewise
/// (for prefix ranges).
#[derive(Clone, Default, Debug)]
pub struct Common {
    entries: Vec<(String, f64)>,
    /// The share assumed for a lexeme the statistics do not list: half the smallest listed
    /// (they keep lexemes above a cutoff); 0 when nothing is listed (no ANALYZE yet).
    unlisted: f64,
}

impl Common {
    pub fn new(mut entries: Vec<(String, f64)>) -> Self {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let unlisted = entries.iter().map(|e| e.1).reduce(f64::min).unwrap_or(0.0) / 2.0;
        Self { entries, unlisted }
    }

    fn exact(&self, lexeme: &str) -> f64 {
        self.entries.binary_search_by(|e| e.0.as_str().cmp(lexeme)).map_or(0.0, |i| self.entries[i].1)
    }

    /// The estimated share of rows that the stem's `term_query` matches: the shares of the
    /// listed lexemes it matches, summed (an upper bound), or `unlisted`.
    pub fn share(&self, stem: &str) -> f64 {
        let listed = if stem.chars().count() < 4 {
            self.exact(stem) + self.exact(&format!("{stem}s"))
        } else {
            let from = self.entries.partition_point(|e| e.0.as_str() < stem);
            let prefixed: f64 = self.entries[from..].iter().take_while(|e| e.0.starts_with(stem)).map(|e| e.1).sum();
            prefixed + stem.strip_suffix('i').map_or(0.0, |base| self.exact(&format!("{base}y")))
        };
        if listed > 0.0 { listed } else { self.unlisted }
    }
}

/// How long statistics are reused; an empty answer (no ANALYZE yet) is asked again sooner.
const COMMON_TTL: Duration = Duration::from_secs(300);
const EMPTY_TTL: Duration = Duration::from_secs(10);

static COMMON_SQL: LazyLock<String> = LazyLock::new(|| {
    let tables: Vec<String> =
        crate::retrieval::search::KEYWORD_SOURCES.iter().map(|l| format!("'{}'", l.table())).collect();
    format!(
        "SELECT u.el, max(u.f)::float8 FROM pg_stats s,
             unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) u(el, f)
         WHERE s.schemaname = current_schema() AND s.attname = 'fts' AND s.tablename IN ({})
           AND u.el IS NOT NULL AND u.f >= 0.001
         GROUP BY u.el",
        tables.join(", ")
    )
});

impl Default for CommonTerms {
    fn default() -> Self {
        Self { entry: Mutex::new(None) }
    }
}

impl CommonTerms {
    /// The cached lists, or fresh ones read on `conn`.
    pub async fn get(&self, conn: &mut PgConnection) -> Result<Arc<Common>, sqlx::Error> {
        if let Some((at, common)) = self.lock().as_ref() {
            let ttl = if common.entries.is_empty() { EMPTY_TTL } else { COMMON_TTL };
            if at.elapsed() < ttl {
                return Ok(common.clone());
            }
        }
        let rows: Vec<(String, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(COMMON_SQL.as_str())).fetch_all(conn).await?;
        let common = Arc::new(Common::new(rows));
        *self.lock() = Some((Instant::now(), common.clone()));
        Ok(common)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Arc<Common>)>> {
        // A panic while holding the lock cannot leave the entry inconsistent (one assignment).
        self.entry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The keyword list of one layer: CTE `{name}` with (id, score, pos), its `limit` best rows
/// by score (newest first among equals). `filter` is the layer's extra row condition (e.g.
/// unexpired), `at` its recency column, `scope_rows` an SQL expression for the scope's size
/// (0 when unknown).
pub fn layer_ctes(name: &str, table: &str, filter: &str, at: &str, scope_rows: &str, limit: &str) -> String {
    let flags: Vec<String> = (1..=MAX_TERMS).map(|j| format!("t.fts @@ kq.terms[{j}] AS m{j}")).collect();
    let dfs: Vec<String> = (1..=MAX_TERMS).map(|j| format!("count(*) FILTER (WHERE m{j})::float8 AS d{j}")).collect();
    let idfs: Vec<String> = (1..=MAX_TERMS)
        .map(|j| format!("CASE WHEN c.m{j} THEN ln(1 + (s.n - s.d{j} + 0.5) / (s.d{j} + 0.5)) ELSE 0 END"))
        .collect();
    format!(
        "{name}_c AS MATERIALIZED (SELECT t.id, t.{at} AS at, length(t.fts) AS len, {flags}
             FROM {table} t, kq WHERE t.tenant = $1 AND t.project_id = $2 AND t.fts @@ kq.anyq{filter}),
         {name}_s AS (SELECT greatest(count(*)::float8, {scope_rows}) AS n, coalesce(avg(len), 1)::float8 AS avglen, {dfs}
             FROM {name}_c),
         {name} AS (SELECT id, score, row_number() OVER (ORDER BY score DESC, at DESC) AS pos FROM (
             SELECT c.id, c.at, ({idfs}) * {k1p1} / (1 + {K1} * ({one_b} + {B} * c.len / greatest(s.avglen, 1))) AS score
             FROM {name}_c c, {name}_s s ORDER BY score DESC, at DESC LIMIT {limit}) x)",
        flags = flags.join(", "),
        dfs = dfs.join(", "),
        idfs = idfs.join(" + "),
        k1p1 = K1 + 1.0,
        one_b = 1.0 - B,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lx(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn every_term_slot_is_flagged_counted_and_weighed() {
        let sql = layer_ctes("k0", "memories_semantic", "", "created_at", "0", "20");
        for j in 1..=MAX_TERMS {
            assert!(sql.contains(&format!("kq.terms[{j}] AS m{j}")), "{sql}");
            assert!(sql.contains(&format!("FILTER (WHERE m{j})")), "{sql}");
            assert!(sql.contains(&format!("CASE WHEN c.m{j} THEN")), "{sql}");
        }
        assert!(!sql.contains(&format!("m{}", MAX_TERMS + 1)));
        assert!(sql.contains("LIMIT 20"));
    }

    #[test]
    fn a_lexeme_is_always_one_quoted_operand() {
        assert_eq!(term_query("support"), "'support':*");
        assert_eq!(term_query("famili"), "'famili':* | 'family'");
        assert_eq!(term_query("cat"), "'cat' | 'cats'");
        // Operators, quotes and backslashes inside a lexeme stay data.
        assert_eq!(term_query("a'|!b"), "'a''|!b':*");
        assert_eq!(term_query(r"x\'"), r"'x\\''' | 'x\\''s'");
    }

    #[test]
    fn shares_sum_the_lexemes_a_term_matches() {
        let common = Common::new(vec![
            ("connection".into(), 0.01),
            ("connect".into(), 0.005),
            ("family".into(), 0.002),
            ("cat".into(), 0.004),
            ("cats".into(), 0.001),
            ("catalog".into(), 0.05),
        ]);
        assert!((common.share("connect") - 0.015).abs() < 1e-12);
        assert!((common.share("famili") - 0.002).abs() < 1e-12);
        // A short stem matches itself and its plural, not every word it begins.
        assert!((common.share("cat") - 0.005).abs() < 1e-12);
        // Unlisted: half the smallest listed share.
        assert!((common.share("zebra") - 0.0005).abs() < 1e-12);
        assert_eq!(Common::default().share("zebra"), 0.0);
    }

    #[test]
    fn common_terms_score_but_do_not_select() {
        let common = Common::new(vec![("use".into(), 0.3), ("server".into(), 0.01)]);
        let t = plan(&lx(&["use", "server", "revok"]), &common, 0);
        assert_eq!(t.each, vec!["'use' | 'uses'", "'server':*", "'revok':*"]);
        assert_eq!(t.any.as_deref(), Some("('server':*) | ('revok':*)"));
        // All common: the rarest still selects.
        assert_eq!(plan(&lx(&["use"]), &common, 0).any.as_deref(), Some("('use' | 'uses')"));
        assert_eq!(plan(&[], &common, 100), Terms::default());
    }

    #[test]
    fn the_budget_keeps_the_rarest_terms_of_a_large_scope() {
        let common = Common::new(vec![("alpha".into(), 0.002), ("beta".into(), 0.01), ("gamma".into(), 0.015)]);
        let words = lx(&["gamma", "beta", "alpha"]);
        // 10,000 rows: alpha ~20, beta ~100 (120 in all), gamma ~150 (270 > 250) does not select.
        assert_eq!(plan(&words, &common, 10_000).any.as_deref(), Some("('beta':*) | ('alpha':*)"));
        // 100,000 rows: alpha alone is ~200.
        assert_eq!(plan(&words, &common, 100_000).any.as_deref(), Some("('alpha':*)"));
        // A small scope: every term under the share limit selects.
        assert_eq!(plan(&words, &common, 500).any.as_deref(), Some("('gamma':*) | ('beta':*) | ('alpha':*)"));
    }
}
