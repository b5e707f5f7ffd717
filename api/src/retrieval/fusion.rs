//! How a search's keyword and vector lists become one ranking, and the per-request options
//! that choose it (`mode`, `fusion`, `rrf_k`, `weight`).
//!
//! * **Reciprocal-rank fusion** (the default): `sum over lists of 1 / (k + rank)`, divided by
//!   its largest possible value so a hit ranked first in every list that ran scores 1.0. It
//!   needs no calibration between BM25 scores and vector distances, which are on unrelated
//!   scales; on LoCoMo it beats each list alone (docs/quality.md).
//! * **Weighted** (the prototype's formula, `fusion=weighted` or any `weight`): `w * vector +
//!   (1 - w) * keyword`, with vector score `1 / (1 + d²)` and keyword score `1 - i / n` by
//!   position in the keyword list.
//!
//! Each list is first merged across layers: keyword hits by BM25 score, vector hits by
//! distance (one model, so distances compare across layers). A hit found by both keeps the row
//! of its keyword hit.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde_json::{Value, json};

use crate::store::layers::Layer;
use crate::web::error::AppError;

/// The prototype's vector weight, used by `fusion=weighted` when no `weight` is given.
pub const DEFAULT_VECTOR_WEIGHT: f64 = 0.5;
/// The usual RRF constant (Cormack et al. 2009); `rrf_k` overrides it per request.
pub const DEFAULT_RRF_K: f64 = 60.0;

/// Which lists a search runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Hybrid,
    Keyword,
    Vector,
}

impl Mode {
    pub fn keyword(self) -> bool {
        self != Mode::Vector
    }
    pub fn vector(self) -> bool {
        self != Mode::Keyword
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fusion {
    Rrf { k: f64 },
    Weighted { weight: f64 },
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Rrf { k: DEFAULT_RRF_K }
    }
}

/// A search's options, as the routes accept them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchOptions {
    pub mode: Mode,
    pub fusion: Fusion,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self { mode: Mode::Hybrid, fusion: Fusion::default() }
    }
}

fn invalid(field: &str, msg: String) -> AppError {
    AppError::validation(&["query", field], msg, "value_error")
}

impl SearchOptions {
    /// Checks the optional query parameters: `mode` (hybrid, keyword, vector), `fusion` (rrf,
    /// weighted), `rrf_k` (1-1000, with rrf), `weight` (0-1; implies weighted).
    pub fn parse(
        mode: Option<&str>,
        fusion: Option<&str>,
        rrf_k: Option<f64>,
        weight: Option<f64>,
    ) -> Result<Self, AppError> {
        let mode = match mode.unwrap_or("hybrid") {
            "hybrid" => Mode::Hybrid,
            "keyword" => Mode::Keyword,
            "vector" => Mode::Vector,
            other => return Err(invalid("mode", format!("mode should be hybrid, keyword or vector, not '{other}'"))),
        };
        let fusion_name = fusion.unwrap_or(if weight.is_some() { "weighted" } else { "rrf" });
        let fusion = match fusion_name {
            "rrf" => {
                if weight.is_some() {
                    return Err(invalid("weight", "weight applies to fusion=weighted, not rrf".into()));
                }
                let k = rrf_k.unwrap_or(DEFAULT_RRF_K);
                if !(1.0..=1000.0).contains(&k) {
                    return Err(invalid("rrf_k", "rrf_k should be between 1 and 1000".into()));
                }
                Fusion::Rrf { k }
            }
            "weighted" => {
                if rrf_k.is_some() {
                    return Err(invalid("rrf_k", "rrf_k applies to fusion=rrf, not weighted".into()));
                }
                let weight = weight.unwrap_or(DEFAULT_VECTOR_WEIGHT);
                if !(0.0..=1.0).contains(&weight) {
                    return Err(invalid("weight", "weight should be between 0 and 1".into()));
                }
                Fusion::Weighted { weight }
            }
            other => return Err(invalid("fusion", format!("fusion should be rrf or weighted, not '{other}'"))),
        };
        Ok(Self { mode, fusion })
    }
}

/// A ranked hit: the row (with `type` and `score` added) and its id.
#[derive(Clone, Debug)]
pub struct Hit {
    pub layer: Layer,
    pub id: String,
    pub row: Value,
    pub score: f64,
}

fn id_of(row: &Value) -> String {
    row["id"].as_str().unwrap_or_default().to_owned()
}

/// One candidate while fusing: its row, and its rank (0-based) and raw value in each list.
struct Entry_ {
    layer: Layer,
    row: Value,
    keyword: Option<usize>,
    vector: Option<(usize, f64)>,
}

/// Fuses `keyword` (layer, row, BM25 score) and `vector` (layer, row, L2 distance) into at most
/// `limit` hits, best first. `legs` is how many lists the search ran (1 or 2), which bounds
/// the RRF score.
pub fn fuse(
    mut keyword: Vec<(Layer, Value, f64)>,
    mut vector: Vec<(Layer, Value, f64)>,
    fusion: Fusion,
    legs: usize,
    limit: usize,
) -> Vec<Hit> {
    // Stable sorts: equal values keep the statement's order (layer order, then recency).
    keyword.sort_by(|a, b| b.2.total_cmp(&a.2));
    vector.sort_by(|a, b| a.2.total_cmp(&b.2));
    let n_keyword = keyword.len();
    let mut order: Vec<String> = Vec::new();
    let mut entries: HashMap<String, Entry_> = HashMap::new();
    for (rank, (layer, row, _)) in keyword.into_iter().enumerate() {
        let id = id_of(&row);
        if let Entry::Vacant(slot) = entries.entry(id.clone()) {
            order.push(id);
            slot.insert(Entry_ { layer, row, keyword: Some(rank), vector: None });
        }
    }
    let mut vector_rank = 0;
    for (layer, row, dist) in vector {
        let id = id_of(&row);
        match entries.get_mut(&id) {
            Some(e) if e.vector.is_some() => continue,
            Some(e) => e.vector = Some((vector_rank, dist)),
            None => {
                order.push(id.clone());
                entries.insert(id, Entry_ { layer, row, keyword: None, vector: Some((vector_rank, dist)) });
            }
        }
        vector_rank += 1;
    }
    let score = |e: &Entry_| match fusion {
        Fusion::Rrf { k } => {
            let rr = |rank: usize| 1.0 / (k + 1.0 + rank as f64);
            let sum = e.keyword.map_or(0.0, rr) + e.vector.map_or(0.0, |(r, _)| rr(r));
            sum / (legs.max(1) as f64 / (k + 1.0))
        }
        Fusion::Weighted { weight } => {
            let kw = e.keyword.map_or(0.0, |i| 1.0 - i as f64 / n_keyword.max(1) as f64);
            let vec = e.vector.map_or(0.0, |(_, d)| if d.is_finite() { 1.0 / (1.0 + d * d) } else { 0.1 });
            weight * vec + (1.0 - weight) * kw
        }
    };
    let mut out: Vec<Hit> = order
        .into_iter()
        .filter_map(|id| entries.remove(&id).map(|e| (id, e)))
        .map(|(id, e)| {
            let s = score(&e);
            let mut row = e.row;
            row["type"] = json!(e.layer.name());
            row["score"] = json!(s);
            Hit { layer: e.layer, id, row, score: s }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> Value {
        json!({ "id": id })
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.id.as_str()).collect()
    }

    #[test]
    fn rrf_puts_a_hit_of_both_lists_first_and_scores_it_one() {
        let keyword = vec![(Layer::Semantic, row("a"), 3.0), (Layer::Episodic, row("b"), 5.0)];
        let vector = vec![(Layer::Semantic, row("c"), 0.1), (Layer::Episodic, row("b"), 0.2)];
        let hits = fuse(keyword, vector, Fusion::default(), 2, 10);
        // b: keyword rank 0 (highest BM25 across layers) and vector rank 1.
        assert_eq!(ids(&hits), ["b", "c", "a"]);
        let top = 1.0 / 61.0 + 1.0 / 62.0;
        assert!((hits[0].score - top / (2.0 / 61.0)).abs() < 1e-12);
        assert_eq!(hits[0].row["type"], "episodic");
        // A hit first in both lists is the maximum, 1.0.
        let hits = fuse(vec![(Layer::Rag, row("x"), 1.0)], vec![(Layer::Rag, row("x"), 0.0)], Fusion::default(), 2, 1);
        assert!((hits[0].score - 1.0).abs() < 1e-12);
    }

    #[test]
    fn one_leg_scores_its_first_hit_one() {
        let hits = fuse(vec![(Layer::Semantic, row("a"), 2.0)], vec![], Fusion::default(), 1, 5);
        assert!((hits[0].score - 1.0).abs() < 1e-12);
    }

    #[test]
    fn weighted_fusion_is_the_prototype_formula() {
        let keyword = vec![(Layer::Semantic, row("a"), 2.0), (Layer::Semantic, row("b"), 1.0)];
        let vector = vec![(Layer::Semantic, row("b"), 1.0)];
        let hits = fuse(keyword, vector, Fusion::Weighted { weight: 0.5 }, 2, 10);
        // a: 0.5 * 1.0 (keyword first); b: 0.5 * 0.5 (keyword second) + 0.5 * 1/(1+1).
        assert_eq!(ids(&hits), ["a", "b"]);
        assert!((hits[0].score - 0.5).abs() < 1e-12);
        assert!((hits[1].score - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_duplicate_in_one_list_counts_once() {
        let vector =
            vec![(Layer::Semantic, row("a"), 0.1), (Layer::Semantic, row("a"), 0.2), (Layer::Semantic, row("b"), 0.3)];
        let hits = fuse(vec![], vector, Fusion::default(), 1, 10);
        assert_eq!(ids(&hits), ["a", "b"]);
        // b is the second distinct vector hit.
        assert!((hits[1].score - (1.0 / 62.0) / (1.0 / 61.0)).abs() < 1e-12);
    }

    #[test]
    fn options_are_checked_with_clear_messages() {
        assert_eq!(SearchOptions::parse(None, None, None, None).unwrap(), SearchOptions::default());
        let o = SearchOptions::parse(Some("keyword"), None, Some(10.0), None).unwrap();
        assert_eq!((o.mode, o.fusion), (Mode::Keyword, Fusion::Rrf { k: 10.0 }));
        let o = SearchOptions::parse(None, None, None, Some(0.8)).unwrap();
        assert_eq!(o.fusion, Fusion::Weighted { weight: 0.8 });
        for (m, f, k, w, field) in [
            (Some("semantic"), None, None, None, "mode"),
            (None, Some("max"), None, None, "fusion"),
            (None, None, Some(0.0), None, "rrf_k"),
            (None, Some("rrf"), None, Some(0.5), "weight"),
            (None, Some("weighted"), Some(60.0), None, "rrf_k"),
            (None, None, None, Some(1.5), "weight"),
        ] {
            let err = SearchOptions::parse(m, f, k, w).unwrap_err();
            let body = format!("{err:?}");
            assert!(body.contains(field), "{field}: {body}");
        }
    }
}
