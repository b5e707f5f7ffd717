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

/// CTE `kq`: the query's terms (`$3`) as an array of `tsquery` (`terms`, in query order) and
/// their disjunction (`anyq`, NULL when the query has no term, which matches nothing).
pub fn terms_cte() -> String {
    format!(
        "kq AS (SELECT array_agg(tq::tsquery ORDER BY at) AS terms, string_agg('(' || tq || ')', ' | ')::tsquery AS anyq
         FROM (SELECT min(p) AS at, {} AS tq
               FROM unnest(to_tsvector($3)) e, unnest(e.positions) p
               GROUP BY e.lexeme ORDER BY min(p) LIMIT {MAX_TERMS}) s)",
        term_text("e.lexeme")
    )
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
        let sql = terms_cte();
        assert!(sql.contains("to_tsvector($3)"));
        assert!(!sql.contains("to_tsquery("), "no parser of user text: {sql}");
    }
}
