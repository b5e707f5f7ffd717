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
//! * **Cost.** Matching any term reads every row holding one, so a term held by a large share of
//!   the table (by the planner's statistics, `CommonTerms`) does not select candidates; it still
//!   scores those the other terms select. On a 10k-row project of documentation sentences with
//!   sentence-long queries, that cut the median candidates from ~1,050 to ~270.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgConnection;

/// Distinct query stems used; the rest of a long query is ignored by this leg.
pub const MAX_TERMS: usize = 10;
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// A stem as a quoted `tsquery` operand: quotes doubled and backslashes escaped, so any stem
/// is one literal lexeme.
fn quoted(expr: &str) -> String {
    format!("('''' || replace(replace({expr}, '\\', '\\\\'), '''', '''''') || '''')")
}

/// The `tsquery` text of one stem `l` (see the module comment for the rules).
fn term_text(l: &str) -> String {
    let q = quoted(l);
    let y = quoted(&format!("left({l}, -1) || 'y'"));
    let plural = quoted(&format!("{l} || 's'"));
    format!(
        "CASE WHEN length({l}) >= 4 THEN {q} || ':*' || CASE WHEN right({l}, 1) = 'i' THEN ' | ' || {y} ELSE '' END
              ELSE {q} || ' | ' || {plural} END"
    )
}

/// A term is left out of the match (it still scores) when the store's statistics put it in
/// more than this share of a text table's rows: such a term is nearly a stop word (low IDF),
/// yet matching it means reading and scoring a tenth of a large scope.
pub const MAX_MATCH_SHARE: f64 = 0.02;

/// CTE `kq`: the query's terms (`$3`) as an array of `tsquery` (`terms`, in query order) and the
/// disjunction that selects candidates (`anyq`): every term but the common ones (see
/// `MAX_MATCH_SHARE`; estimated from `elems`/`freqs`, the store's most common lexemes and their
/// shares, `CommonTerms`), or the rarest term when all are common. NULL when the query has no
/// term, which matches nothing.
pub fn terms_cte(elems: &str, freqs: &str) -> String {
    format!(
        "kt AS (SELECT min(p) AS at, e.lexeme AS lx, {tq} AS tq
               FROM unnest(to_tsvector($3)) e, unnest(e.positions) p
               GROUP BY e.lexeme ORDER BY min(p) LIMIT {MAX_TERMS}),
         ks AS (SELECT kt.*, coalesce((SELECT sum(c.f) FROM unnest({elems}::text[], {freqs}::float4[]) c(el, f)
                    WHERE CASE WHEN length(kt.lx) >= 4 THEN starts_with(c.el, kt.lx) ELSE c.el IN (kt.lx, kt.lx || 's') END), 0) AS share
                FROM kt),
         kq AS (SELECT array_agg(tq::tsquery ORDER BY at) AS terms,
                       coalesce(string_agg('(' || tq || ')', ' | ') FILTER (WHERE share <= {MAX_MATCH_SHARE}),
                                (SELECT tq FROM ks ORDER BY share, at LIMIT 1))::tsquery AS anyq
                FROM ks)",
        tq = term_text("e.lexeme")
    )
}

/// The most common lexemes of the store's text columns and their shares of rows, from the
/// planner's statistics (`pg_stats.most_common_elems`, kept by ANALYZE), kept in the pod: the
/// view is slow to read in a database of many schemas, and the shares change slowly.
pub struct CommonTerms {
    entry: Mutex<Option<(Instant, Arc<Common>)>>,
}

/// Parallel lists: lexeme, and the largest share of rows holding it in any text table.
#[derive(Clone, Default, Debug)]
pub struct Common {
    pub elems: Vec<String>,
    pub freqs: Vec<f32>,
}

/// How long statistics are reused; an empty answer (no ANALYZE yet) is asked again sooner.
const COMMON_TTL: Duration = Duration::from_secs(300);
const EMPTY_TTL: Duration = Duration::from_secs(10);

static COMMON_SQL: LazyLock<String> = LazyLock::new(|| {
    let tables: Vec<String> =
        crate::retrieval::search::KEYWORD_SOURCES.iter().map(|l| format!("'{}'", l.table())).collect();
    format!(
        "SELECT u.el, max(u.f)::float4 FROM pg_stats s,
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
            let ttl = if common.elems.is_empty() { EMPTY_TTL } else { COMMON_TTL };
            if at.elapsed() < ttl {
                return Ok(common.clone());
            }
        }
        let rows: Vec<(String, f32)> = sqlx::query_as(sqlx::AssertSqlSafe(COMMON_SQL.as_str())).fetch_all(conn).await?;
        let common = Arc::new(Common {
            elems: rows.iter().map(|r| r.0.clone()).collect(),
            freqs: rows.iter().map(|r| r.1).collect(),
        });
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
    fn user_text_reaches_the_statement_only_as_a_parameter() {
        // The terms come from `$3` through to_tsvector; nothing is spliced into the text.
        let sql = terms_cte("$5", "$6");
        assert!(sql.contains("to_tsvector($3)"));
        assert!(!sql.contains("to_tsquery("), "no parser of user text: {sql}");
    }
}
