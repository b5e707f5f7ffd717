//! Typed results. Each keeps the whole JSON object in `raw`, so fields this client does not
//! know about are never lost.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// One page of a list route; `next_cursor` (from `X-Next-Cursor`) is `None` on the last page.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// One hit of `GET /search`: `layer` and `score` come from the hit's `metadata`.
#[derive(Clone, Debug)]
pub struct SearchHit {
    pub id: String,
    pub content: String,
    pub layer: Option<String>,
    pub score: Option<f64>,
    pub distance: Option<f64>,
    pub tags: Vec<String>,
    pub created_at: Option<String>,
    pub raw: Value,
}

impl<'de> Deserialize<'de> for SearchHit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        if !raw.is_object() {
            return Err(serde::de::Error::custom("a search hit is an object"));
        }
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Ok(SearchHit {
            id: text(&raw["id"]).unwrap_or_default(),
            content: text(&raw["content"]).unwrap_or_default(),
            layer: text(&raw["metadata"]["type"]),
            score: raw["metadata"]["score"].as_f64(),
            distance: raw["distance"].as_f64(),
            tags: raw["tags"].as_array().map(|t| t.iter().filter_map(text).collect()).unwrap_or_default(),
            created_at: text(&raw["created_at"]),
            raw,
        })
    }
}

/// A stored record; `content` is the record's `content`, or a working note's `value`.
#[derive(Clone, Debug)]
pub struct Record {
    pub id: String,
    pub content: Option<String>,
    pub created_at: Option<String>,
    pub raw: Value,
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        let Some(id) = raw["id"].as_str().map(str::to_owned) else {
            return Err(serde::de::Error::custom("a record has a string `id`"));
        };
        let content = raw["content"].as_str().or(raw["value"].as_str()).map(str::to_owned);
        Ok(Record { id, content, created_at: raw["created_at"].as_str().map(str::to_owned), raw })
    }
}

/// Which lists a search runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Hybrid,
    Keyword,
    Vector,
}

/// How the keyword and vector lists merge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fusion {
    /// Reciprocal-rank fusion with constant `k` (the service's default, k = 60).
    Rrf { k: Option<f64> },
    /// A weighted sum; `vector_weight` in 0..1.
    Weighted { vector_weight: f64 },
}

/// Ranking options of `search_with` and `retrieve_context`; `None` leaves the service's default.
#[derive(Clone, Debug, Default)]
pub struct SearchOptions {
    pub mode: Option<Mode>,
    pub fusion: Option<Fusion>,
}

impl SearchOptions {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(mode) = self.mode {
            let m = match mode {
                Mode::Hybrid => "hybrid",
                Mode::Keyword => "keyword",
                Mode::Vector => "vector",
            };
            q.push(("mode", m.to_owned()));
        }
        match self.fusion {
            Some(Fusion::Rrf { k }) => {
                q.push(("fusion", "rrf".to_owned()));
                if let Some(k) = k {
                    q.push(("rrf_k", k.to_string()));
                }
            }
            Some(Fusion::Weighted { vector_weight }) => {
                q.push(("fusion", "weighted".to_owned()));
                q.push(("weight", vector_weight.to_string()));
            }
            None => {}
        }
        q
    }
}
