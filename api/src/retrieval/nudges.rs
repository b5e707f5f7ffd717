//! Proactive nudges on working-memory writes: when a note touches deployment, security or
//! infrastructure, surface stored memories that record failures or warnings about it.
//! Nudges carry snippets, so they are reads: only a principal that may search gets them, and
//! only from layers it may read.

use serde_json::{Value, json};

use crate::retrieval::search::{self, Fusion, Mode, SearchOptions};
use crate::runtime::state::AppState;
use crate::security::auth::Principal;
use crate::security::permissions::Perm;
use crate::web::error::AppResult;

const CLUSTERS: [(&str, &[&str]); 3] = [
    ("deployment", &["deploy", "vercel", "production", "ship", "push"]),
    ("security", &["auth", "token", "secret", "key", "access", "password"]),
    ("infrastructure", &["database", "db", "server", "cluster", "aws", "gcp"]),
];
const ALARM_WORDS: [&str; 5] = ["expired", "failed", "warning", "error", "deprecated"];
const NUDGE_WEIGHT: f64 = 0.6;

pub async fn for_content(state: &AppState, p: &Principal, content: &str) -> AppResult<Vec<Value>> {
    if p.require(Perm::Search).is_err() {
        return Ok(Vec::new());
    }
    let lower = content.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let intents: Vec<&str> =
        CLUSTERS.iter().filter(|(_, kws)| kws.iter().any(|k| words.contains(k))).map(|(name, _)| *name).collect();
    if intents.is_empty() {
        return Ok(Vec::new());
    }
    let query = format!("{} failed error expired warning deprecated issue problem", intents.join(" "));
    let options = SearchOptions { mode: Mode::Hybrid, fusion: Fusion::Weighted { weight: NUDGE_WEIGHT } };
    let hits = search::hybrid(state, &p.scope, &query, 5, options).await?;
    let mut nudges: Vec<Value> = Vec::new();
    for hit in hits.into_iter().filter(|h| p.require(Perm::Read(h.layer)).is_ok()) {
        let text: String = ["content", "description", "goal", "outcome"]
            .iter()
            .filter_map(|k| hit.row.get(*k).and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let lowered = text.to_lowercase();
        if !ALARM_WORDS.iter().any(|w| lowered.contains(w)) {
            continue;
        }
        let strength = if lowered.contains("expired") || lowered.contains("error") { "HIGH" } else { "MEDIUM" };
        let snippet: String = text.chars().take(100).collect();
        let message = format!("Collision with {}: {snippet}...", hit.layer.name());
        if nudges.iter().any(|n| n["message"] == json!(message)) {
            continue;
        }
        nudges.push(json!({ "type": "proactive_nudge", "strength": strength, "message": message, "source_id": hit.id, "layer": hit.layer.name() }));
    }
    Ok(nudges)
}
