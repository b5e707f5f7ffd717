//! `pinak-bench quality`: retrieval quality on LoCoMo (Maharana et al., "Evaluating Very
//! Long-Term Conversational Memory of LLM Agents", 2024; github.com/snap-research/LoCoMo,
//! `data/locomo10.json`, CC BY-NC 4.0). The data is never part of this repository: the path
//! is an argument.
//!
//! One tenant per conversation; every turn becomes one episodic memory, written through
//! `POST /api/v1/memory/batch` of a real `pinak-api` with the built-in local model
//! (all-MiniLM-L6-v2). Every question is then asked through `GET /api/v1/memory/search` in
//! the modes keyword, vector and hybrid, and, over the same texts in-process, to two
//! baselines: plain Okapi BM25 and an exact dense search with the same model. Scored at turn
//! level against each question's evidence turns: recall_any@1/5/10, recall_all@10, NDCG@10,
//! per category and overall. Then the API's search latency per mode at concurrency 1 and 8.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::api::{self, ApiProcess, ApiSpec};
use crate::load::{Limits, Op, warm_and_drive};
use crate::report::{Table, ms, rate};

/// Marker label of the results section in docs/quality.md.
const DOC_LABEL: &str = "locomo";
const K: usize = 10;
/// Memories per `POST /api/v1/memory/batch` (the API's maximum).
const BATCH: usize = 500;
const PROJECT: &str = "locomo";
const MODES: [&str; 3] = ["keyword", "vector", "hybrid"];
/// Searches in flight while the quality queries run.
const QUERY_CONC: usize = 4;
/// Texts per call to the in-process embedder.
const EMBED_CHUNK: usize = 256;
/// Okapi BM25 parameters.
const BM25_K1: f64 = 1.2;
const BM25_B: f64 = 0.75;
/// LoCoMo's question categories. The data holds numbers only; the names follow the paper's
/// order (single-hop, multi-hop, temporal, open-domain, adversarial) matched to the order
/// [4, 1, 2, 3, 5] in which the LoCoMo repository's task_eval/evaluation_stats.py prints them.
const CATEGORIES: [(u8, &str); 5] =
    [(1, "multi-hop"), (2, "temporal"), (3, "open-domain"), (4, "single-hop"), (5, "adversarial")];
const SYSTEMS: [&str; 5] = ["API keyword", "API vector", "API hybrid", "in-process BM25", "in-process exact dense"];

pub const USAGE: &str = "usage: pinak-bench quality --locomo FILE [--api-bin PATH] [--database-url URL]
                           [--model-dir DIR] [--doc FILE] [--limit-conversations N]
                           [--seconds S] [--keep]

  --locomo       LoCoMo's data/locomo10.json (download it from github.com/snap-research/LoCoMo;
                 it is not part of this repository)
  --api-bin      pinak-api binary (default: pinak-api beside this binary)
  --database-url admin URL of the benchmark Postgres (default $PINAK_BENCH_DATABASE_URL); a
                 schema bench_quality_<time> is created and dropped afterwards
  --model-dir    all-MiniLM-L6-v2 directory (default $PINAK_MODEL_DIR), for the API's local
                 backend and the in-process dense baseline
  --doc          write the results section into FILE (docs/quality.md)
  --limit-conversations N   only the first N conversations
  --seconds      time limit of one latency measurement (default 5)
  --keep         keep the schema afterwards";

struct Args {
    locomo: PathBuf,
    api_bin: PathBuf,
    database_url: String,
    model_dir: PathBuf,
    doc: Option<PathBuf>,
    limit: Option<usize>,
    seconds: f64,
    keep: bool,
}

fn parse_args(argv: &[String]) -> Result<Args> {
    let mut locomo = None;
    let mut api_bin = {
        let exe = std::env::current_exe().context("path of pinak-bench")?;
        exe.parent().map(|d| d.join("pinak-api")).unwrap_or_else(|| PathBuf::from("pinak-api"))
    };
    let mut database_url = std::env::var("PINAK_BENCH_DATABASE_URL").ok();
    let mut model_dir = std::env::var("PINAK_MODEL_DIR").ok().map(PathBuf::from);
    let mut doc = None;
    let mut limit = None;
    let mut seconds = 5.0;
    let mut keep = false;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().with_context(|| format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--locomo" => locomo = Some(PathBuf::from(val()?)),
            "--api-bin" => api_bin = PathBuf::from(val()?),
            "--database-url" => database_url = Some(val()?),
            "--model-dir" => model_dir = Some(PathBuf::from(val()?)),
            "--doc" => doc = Some(PathBuf::from(val()?)),
            "--limit-conversations" => limit = Some(val()?.parse::<usize>().context("--limit-conversations")?),
            "--seconds" => seconds = val()?.parse::<f64>().context("--seconds")?,
            "--keep" => keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let locomo = locomo.with_context(|| format!("--locomo FILE is required\n{USAGE}"))?;
    let database_url = database_url
        .context("no database: pass --database-url or set PINAK_BENCH_DATABASE_URL (scripts/bench does)")?;
    let model_dir = model_dir
        .context("no model: pass --model-dir or set PINAK_MODEL_DIR (source .tools/env; scripts/bench does)")?;
    if !api_bin.exists() {
        bail!("{} not found: build it with cargo build --release -p pinak-api (scripts/bench does)", api_bin.display());
    }
    Ok(Args { locomo, api_bin, database_url, model_dir, doc, limit, seconds, keep })
}

// ------------------------------------------------------------------------------ data ---

pub struct Turn {
    pub dia_id: String,
    /// The memory's text: `"{speaker}: {text}"`, plus ` [shares a photo: {caption}]`.
    pub content: String,
}

pub struct Question {
    pub text: String,
    pub category: u8,
    /// Indices into the conversation's turns, deduplicated.
    pub evidence: Vec<usize>,
}

pub struct Conversation {
    pub sample_id: String,
    pub turns: Vec<Turn>,
    pub questions: Vec<Question>,
}

#[derive(Default)]
pub struct LoadStats {
    /// Questions in the file (of the conversations read).
    pub questions: usize,
    /// Questions without one valid evidence turn, by category: not scored.
    pub skipped: BTreeMap<u8, usize>,
    /// Evidence ids that name no turn of their conversation (or do not parse): dropped.
    pub dropped_ids: usize,
}

/// One dialogue id in canonical form `D<session>:<turn>` (`D:11:26` -> `D11:26`,
/// `D30:05` -> `D30:5`); None when it does not parse.
fn normalise_id(raw: &str) -> Option<String> {
    let s = raw.trim().trim_matches(|c: char| c == '(' || c == ')' || c == '[' || c == ']' || c == '\'' || c == '"');
    let rest = s.strip_prefix('D')?.trim_start_matches(':');
    let (a, b) = rest.split_once(':')?;
    let a: u32 = a.trim().parse().ok()?;
    let b: u32 = b.trim().parse().ok()?;
    Some(format!("D{a}:{b}"))
}

/// The ids one evidence entry names (`D8:6; D9:17` is two), canonical; unparsable parts dropped.
pub fn normalise_evidence(raw: &str) -> Vec<String> {
    raw.split([';', ',']).flat_map(str::split_whitespace).filter_map(normalise_id).collect()
}

fn turn_content(turn: &Value) -> Option<(String, String)> {
    let dia_id = normalise_id(turn.get("dia_id")?.as_str()?)?;
    let speaker = turn.get("speaker").and_then(Value::as_str).unwrap_or("");
    let text = turn.get("text").and_then(Value::as_str).unwrap_or("");
    let mut content = format!("{speaker}: {text}");
    if let Some(caption) = turn.get("blip_caption").and_then(Value::as_str).filter(|c| !c.trim().is_empty()) {
        content.push_str(&format!(" [shares a photo: {caption}]"));
    }
    Some((dia_id, content))
}

fn parse_sample(sample: &Value, stats: &mut LoadStats) -> Result<Conversation> {
    let sample_id = sample.get("sample_id").and_then(Value::as_str).context("a sample without sample_id")?.to_owned();
    let conv = sample
        .get("conversation")
        .and_then(Value::as_object)
        .with_context(|| format!("{sample_id}: no conversation object"))?;
    let mut sessions: Vec<(u32, &Vec<Value>)> = conv
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("session_")?.parse::<u32>().ok()?, v.as_array()?)))
        .collect();
    sessions.sort_by_key(|(n, _)| *n);
    let mut turns = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (_, list) in sessions {
        for t in list {
            let Some((dia_id, content)) = turn_content(t) else { continue };
            if index.contains_key(&dia_id) {
                continue;
            }
            index.insert(dia_id.clone(), turns.len());
            turns.push(Turn { dia_id, content });
        }
    }
    let mut questions = Vec::new();
    for q in sample.get("qa").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        stats.questions += 1;
        let category = q.get("category").and_then(Value::as_u64).unwrap_or(0) as u8;
        let text = q.get("question").and_then(Value::as_str).unwrap_or("").trim().to_owned();
        let mut evidence = Vec::new();
        for raw in q.get("evidence").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
            let ids = raw.as_str().map(normalise_evidence).unwrap_or_default();
            if ids.is_empty() {
                stats.dropped_ids += 1;
            }
            for id in ids {
                match index.get(&id) {
                    Some(&i) if !evidence.contains(&i) => evidence.push(i),
                    Some(_) => {}
                    None => stats.dropped_ids += 1,
                }
            }
        }
        if evidence.is_empty() || text.is_empty() {
            *stats.skipped.entry(category).or_default() += 1;
            continue;
        }
        questions.push(Question { text, category, evidence });
    }
    Ok(Conversation { sample_id, turns, questions })
}

pub fn load_locomo(text: &str, limit: Option<usize>) -> Result<(Vec<Conversation>, LoadStats)> {
    let data: Value = serde_json::from_str(text).context("parsing the LoCoMo JSON")?;
    let samples = data.as_array().context("LoCoMo JSON: expected a list of samples")?;
    let mut stats = LoadStats::default();
    let convs = samples
        .iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(|s| parse_sample(s, &mut stats))
        .collect::<Result<Vec<_>>>()?;
    Ok((convs, stats))
}

// --------------------------------------------------------------------------- metrics ---

/// Sums of the per-question metrics; `ranked` holds turn indices (anything not a turn of the
/// conversation, e.g. `usize::MAX`, is simply never relevant).
#[derive(Clone, Copy, Debug, Default)]
pub struct Scores {
    pub n: usize,
    pub any1: f64,
    pub any5: f64,
    pub any10: f64,
    pub all10: f64,
    pub ndcg10: f64,
}

impl Scores {
    pub fn add(&mut self, ranked: &[usize], relevant: &[usize]) {
        let top = &ranked[..ranked.len().min(K)];
        let any = |k: usize| f64::from(u8::from(top.iter().take(k).any(|i| relevant.contains(i))));
        self.n += 1;
        self.any1 += any(1);
        self.any5 += any(5);
        self.any10 += any(10);
        self.all10 += f64::from(u8::from(relevant.iter().all(|r| top.contains(r))));
        self.ndcg10 += ndcg(top, relevant);
    }

    pub fn merge(&mut self, o: &Scores) {
        self.n += o.n;
        self.any1 += o.any1;
        self.any5 += o.any5;
        self.any10 += o.any10;
        self.all10 += o.all10;
        self.ndcg10 += o.ndcg10;
    }

    fn mean(&self, sum: f64) -> f64 {
        if self.n == 0 { f64::NAN } else { sum / self.n as f64 }
    }
}

/// NDCG@10 with binary relevance; a relevant turn listed twice counts once.
pub fn ndcg(top: &[usize], relevant: &[usize]) -> f64 {
    let gain = |pos: usize| 1.0 / ((pos + 2) as f64).log2();
    let mut seen = HashSet::new();
    let dcg: f64 = top
        .iter()
        .take(K)
        .enumerate()
        .filter(|&(_, &i)| relevant.contains(&i) && seen.insert(i))
        .map(|(pos, _)| gain(pos))
        .sum();
    let ideal: f64 = (0..relevant.len().min(K)).map(gain).sum();
    if ideal > 0.0 { dcg / ideal } else { 0.0 }
}

fn fmt3(v: f64) -> String {
    if v.is_nan() { "-".into() } else { format!("{v:.3}") }
}

// ---------------------------------------------------------------------------- BM25 ---

/// Lower-cased alphanumeric runs; no stemming, no stop words.
pub fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect()
}

/// Okapi BM25 (k1 = 1.2, b = 0.75) over a fixed set of documents; a query is the OR of its
/// distinct words, each weighted by idf = ln(1 + (N - df + 0.5) / (df + 0.5)).
pub struct Bm25 {
    postings: HashMap<String, Vec<(usize, u32)>>,
    doc_len: Vec<f64>,
    avgdl: f64,
}

impl Bm25 {
    pub fn new(docs: &[&str]) -> Self {
        let mut postings: HashMap<String, Vec<(usize, u32)>> = HashMap::new();
        let mut doc_len = Vec::with_capacity(docs.len());
        for (d, text) in docs.iter().enumerate() {
            let toks = tokens(text);
            doc_len.push(toks.len() as f64);
            let mut tf: HashMap<String, u32> = HashMap::new();
            for t in toks {
                *tf.entry(t).or_default() += 1;
            }
            for (t, n) in tf {
                postings.entry(t).or_default().push((d, n));
            }
        }
        let avgdl = if doc_len.is_empty() { 0.0 } else { doc_len.iter().sum::<f64>() / doc_len.len() as f64 };
        Bm25 { postings, doc_len, avgdl }
    }

    /// The top `k` documents (score > 0), best first; ties by document order.
    pub fn search(&self, query: &str, k: usize) -> Vec<usize> {
        self.scored(query, k).into_iter().map(|(d, _)| d).collect()
    }

    /// `search` with the scores.
    pub fn scored(&self, query: &str, k: usize) -> Vec<(usize, f64)> {
        let n = self.doc_len.len() as f64;
        let mut scores: HashMap<usize, f64> = HashMap::new();
        let mut seen = HashSet::new();
        for term in tokens(query) {
            if !seen.insert(term.clone()) {
                continue;
            }
            let Some(list) = self.postings.get(&term) else { continue };
            let df = list.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(d, tf) in list {
                let tf = f64::from(tf);
                let norm = BM25_K1 * (1.0 - BM25_B + BM25_B * self.doc_len[d] / self.avgdl.max(f64::EPSILON));
                *scores.entry(d).or_default() += idf * tf * (BM25_K1 + 1.0) / (tf + norm);
            }
        }
        let mut ranked: Vec<(usize, f64)> = scores.into_iter().filter(|(_, s)| *s > 0.0).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);
        ranked
    }
}

/// Exact top `k` by dot product (cosine: the model's vectors are unit length), best first.
pub fn dense_top_k(query: &[f32], docs: &[Vec<f32>], k: usize) -> Vec<usize> {
    let mut scored: Vec<(usize, f32)> =
        docs.iter().enumerate().map(|(i, d)| (i, d.iter().zip(query).map(|(a, b)| a * b).sum())).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().take(k).map(|(i, _)| i).collect()
}

// ------------------------------------------------------------------------- the API ---

/// One conversation in the store: its tenant's token and memory id -> turn index.
struct Stored {
    token: Arc<String>,
    ids: HashMap<String, usize>,
}

async fn ingest(base: &str, convs: &[Conversation]) -> Result<(Vec<Stored>, Duration)> {
    let client = api::client();
    let url = format!("{base}/api/v1/memory/batch");
    let total: usize = convs.iter().map(|c| c.turns.len()).sum();
    let started = Instant::now();
    let mut done = 0;
    let mut out = Vec::with_capacity(convs.len());
    for conv in convs {
        let tenant = format!("locomo-{}", conv.sample_id);
        let token = Arc::new(api::token_for(&tenant, PROJECT));
        let mut ids = HashMap::with_capacity(conv.turns.len());
        for (b, chunk) in conv.turns.chunks(BATCH).enumerate() {
            let items: Vec<Value> = chunk.iter().map(|t| json!({"content": t.content})).collect();
            let r = client
                .post(&url)
                .bearer_auth(token.as_str())
                .json(&json!({"layer": "episodic", "items": items}))
                .send()
                .await?;
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if status.as_u16() != 201 {
                bail!("batch of {} answered {status}: {body}", conv.sample_id);
            }
            let got = body["ids"].as_array().context("batch answer without ids")?;
            if got.len() != chunk.len() {
                bail!("batch of {} items returned {} ids", chunk.len(), got.len());
            }
            for (i, id) in got.iter().enumerate() {
                ids.insert(id.as_str().context("non-string id")?.to_owned(), b * BATCH + i);
            }
            done += chunk.len();
            println!(
                "  ingest: {done}/{total} turns ({:.0} memories/s, embedded by the API's local model)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
        out.push(Stored { token, ids });
    }
    Ok((out, started.elapsed()))
}

fn search_url(base: &str, query: &str, params: &str) -> String {
    format!("{base}/api/v1/memory/search?k={K}&{params}&query={}", api::urlencode(query))
}

/// Hybrid fusion settings compared in every run (query parameters of `/search`); the first is
/// the API's default.
const FUSION_VARIANTS: [&str; 7] = [
    "mode=hybrid",
    "mode=hybrid&rrf_k=10",
    "mode=hybrid&rrf_k=30",
    "mode=hybrid&rrf_k=120",
    "mode=hybrid&fusion=weighted&weight=0.3",
    "mode=hybrid&fusion=weighted&weight=0.5",
    "mode=hybrid&fusion=weighted&weight=0.7",
];

/// What one API search gave: the ranked turn indices, and the hits whose content differed
/// from the text their id was written with (the id map's sanity check).
struct ApiAnswer {
    ranked: Vec<usize>,
    mismatched: Vec<String>,
}

async fn ask(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    ids: &HashMap<String, usize>,
    turns: &[Turn],
) -> Result<ApiAnswer> {
    let r = client.get(url).bearer_auth(token).send().await?;
    let status = r.status();
    let body = r.bytes().await?;
    if !status.is_success() {
        bail!("search answered {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
    }
    let hits: Vec<Value> = serde_json::from_slice(&body)?;
    let mut ranked = Vec::with_capacity(hits.len());
    let mut mismatched = Vec::new();
    for h in &hits {
        let idx = h["id"].as_str().and_then(|id| ids.get(id)).copied();
        match idx {
            Some(i) => {
                if h["content"].as_str() != Some(turns[i].content.as_str()) {
                    mismatched.push(format!("the hit written as turn {} holds other content", turns[i].dia_id));
                }
                ranked.push(i);
            }
            None => {
                mismatched.push(format!("unknown id {}", h["id"]));
                ranked.push(usize::MAX);
            }
        }
    }
    Ok(ApiAnswer { ranked, mismatched })
}

/// Every question with every parameter set of `variants`, `QUERY_CONC` in flight. Result:
/// [conv][question][variant].
async fn ask_all(
    base: &str,
    convs: &Arc<Vec<Conversation>>,
    stored: &Arc<Vec<Stored>>,
    variants: &[String],
) -> Result<Vec<Vec<Vec<Vec<usize>>>>> {
    let variants = Arc::new(variants.to_vec());
    let jobs: Arc<Vec<(usize, usize, usize)>> = Arc::new(
        convs
            .iter()
            .enumerate()
            .flat_map(|(c, conv)| {
                let n = variants.len();
                (0..conv.questions.len()).flat_map(move |q| (0..n).map(move |m| (c, q, m)))
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..QUERY_CONC {
        let (jobs, next, convs, stored, base, variants) =
            (jobs.clone(), next.clone(), convs.clone(), stored.clone(), base.to_owned(), variants.clone());
        set.spawn(async move {
            let client = api::client();
            let mut out = Vec::new();
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(c, q, m)) = jobs.get(j) else { break };
                let conv = &convs[c];
                let url = search_url(&base, &conv.questions[q].text, &variants[m]);
                let a = ask(&client, &url, &stored[c].token, &stored[c].ids, &conv.turns)
                    .await
                    .with_context(|| format!("{} question {q}, {}", conv.sample_id, variants[m]))?;
                if (j + 1) % 500 == 0 {
                    println!(
                        "  search: {}/{} requests ({:.0}/s)",
                        j + 1,
                        jobs.len(),
                        (j + 1) as f64 / started.elapsed().as_secs_f64()
                    );
                }
                out.push((c, q, m, a));
            }
            anyhow::Ok(out)
        });
    }
    let mut results: Vec<Vec<Vec<Vec<usize>>>> =
        convs.iter().map(|c| (0..c.questions.len()).map(|_| vec![Vec::new(); variants.len()]).collect()).collect();
    let mut mismatched = Vec::new();
    while let Some(r) = set.join_next().await {
        for (c, q, m, a) in r.context("search worker panicked")?? {
            mismatched.extend(a.mismatched);
            results[c][q][m] = a.ranked;
        }
    }
    if let Some(first) = mismatched.first() {
        bail!("{} hits did not map back to the turn they were written from, e.g. {first}", mismatched.len());
    }
    Ok(results)
}

/// `GET /api/v1/memory/search` in one mode, cycling over every question of every tenant.
struct ModeSearch {
    client: reqwest::Client,
    /// (token, url) per question.
    requests: Arc<Vec<(Arc<String>, String)>>,
}

impl Op for ModeSearch {
    async fn call(&mut self, seq: usize) -> Result<Option<f64>> {
        let (token, url) = &self.requests[seq % self.requests.len()];
        let r = self.client.get(url).bearer_auth(token.as_str()).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!("search answered {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        Ok(None)
    }
}

fn overall_fusion_row(table: &mut Table, label: String, x: &Scores) {
    table.row(vec![label, fmt3(x.mean(x.any1)), fmt3(x.mean(x.any10)), fmt3(x.mean(x.all10)), fmt3(x.mean(x.ndcg10))]);
}

// ---------------------------------------------------------------------------- run ---

pub async fn main(argv: &[String]) -> Result<()> {
    let args = parse_args(argv)?;
    let started = Instant::now();
    let text = std::fs::read_to_string(&args.locomo).with_context(|| format!("reading {}", args.locomo.display()))?;
    let (convs, stats) = load_locomo(&text, args.limit)?;
    drop(text);
    let n_turns: usize = convs.iter().map(|c| c.turns.len()).sum();
    let n_scored: usize = convs.iter().map(|c| c.questions.len()).sum();
    let n_skipped: usize = stats.skipped.values().sum();
    let file_name = args.locomo.file_name().and_then(|s| s.to_str()).unwrap_or("?").to_owned();
    println!(
        "pinak-bench quality: {file_name}: {} conversation(s), {n_turns} turns, {} questions ({n_scored} scored, {n_skipped} without valid evidence, {} evidence ids dropped); {}",
        convs.len(),
        stats.questions,
        stats.dropped_ids,
        crate::machine()
    );
    let load_before = crate::loadavg();
    let convs = Arc::new(convs);

    // ------------------------------------------------------- in-process baselines ---
    println!("\n== in-process baselines: BM25, exact dense (all-MiniLM-L6-v2) ==");
    let bm25: Vec<Vec<Vec<usize>>> = convs
        .iter()
        .map(|c| {
            let index = Bm25::new(&c.turns.iter().map(|t| t.content.as_str()).collect::<Vec<_>>());
            c.questions.iter().map(|q| index.search(&q.text, K)).collect()
        })
        .collect();
    let t = Instant::now();
    let dense: Vec<Vec<Vec<usize>>> = tokio::task::block_in_place(|| -> Result<_> {
        let model = pinak_api::embedding::LocalEmbedder::load(&args.model_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        let total = n_turns + n_scored;
        let mut done = 0;
        let mut embed = |texts: Vec<&str>| -> Result<Vec<Vec<f32>>> {
            let mut out = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(EMBED_CHUNK) {
                out.extend(model.embed(chunk).map_err(|e| anyhow::anyhow!("{e}"))?);
                done += chunk.len();
                println!("  embedding: {done}/{total} texts ({:.0}/s)", done as f64 / t.elapsed().as_secs_f64());
            }
            Ok(out)
        };
        let mut all = Vec::with_capacity(convs.len());
        for c in convs.iter() {
            let docs = embed(c.turns.iter().map(|t| t.content.as_str()).collect())?;
            let qs = embed(c.questions.iter().map(|q| q.text.as_str()).collect())?;
            all.push(qs.iter().map(|q| dense_top_k(q, &docs, K)).collect());
        }
        Ok(all)
    })?;
    let embed_time = t.elapsed();
    let embed_rate = (n_turns + n_scored) as f64 / embed_time.as_secs_f64();
    println!("  {} texts embedded in {:.1} s ({embed_rate:.0}/s)", n_turns + n_scored, embed_time.as_secs_f64());

    // -------------------------------------------------------------------- the API ---
    let run_id = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let schema = format!("bench_quality_{run_id}");
    let logs = PathBuf::from(".tools/bench/logs");
    std::fs::create_dir_all(&logs)?;
    println!("\n== pinak-api (local model backend), schema {schema} ==");
    let p = ApiProcess::spawn(ApiSpec {
        bin: &args.api_bin,
        database_url: &args.database_url,
        schema: &schema,
        migrate: true,
        backend: "local",
        env: vec![("PINAK_MODEL_DIR".into(), args.model_dir.display().to_string())],
        log: logs.join("api-quality.log"),
    })
    .await?;
    let outcome = async {
        let (stored, ingest_time) = ingest(&p.base, &convs).await?;
        let stored = Arc::new(stored);
        println!("\n== {} questions x {} modes through GET /api/v1/memory/search ==", n_scored, MODES.len());
        let t = Instant::now();
        let modes: Vec<String> = MODES.iter().map(|m| format!("mode={m}")).collect();
        let api_results = ask_all(&p.base, &convs, &stored, &modes).await?;
        let ask_time = t.elapsed();
        println!("\n== {} questions x {} hybrid fusion settings ==", n_scored, FUSION_VARIANTS.len());
        let variants: Vec<String> = FUSION_VARIANTS.iter().map(|v| v.to_string()).collect();
        let fusion_results = ask_all(&p.base, &convs, &stored, &variants).await?;
        println!("\n== search latency through the API ==");
        let mut latency = Vec::new();
        let limits = Limits { max_ops: 20_000, max_time: Duration::from_secs_f64(args.seconds) };
        for mode in MODES {
            let requests: Arc<Vec<(Arc<String>, String)>> = Arc::new(
                convs
                    .iter()
                    .zip(stored.iter())
                    .flat_map(|(c, s)| {
                        c.questions
                            .iter()
                            .map(|q| (s.token.clone(), search_url(&p.base, &q.text, &format!("mode={mode}"))))
                    })
                    .collect(),
            );
            for conc in [1usize, 8] {
                let workers =
                    (0..conc).map(|_| ModeSearch { client: api::client(), requests: requests.clone() }).collect();
                let (cell, _) = warm_and_drive(workers, limits, Duration::from_secs(1)).await;
                println!(
                    "  {mode} c={conc}: {:.0} req/s, p50 {:.1} ms, p95 {:.1} ms, errors {}",
                    cell.throughput(),
                    cell.pct(50.0),
                    cell.pct(95.0),
                    cell.errors
                );
                latency.push((mode, cell));
            }
        }
        anyhow::Ok((ingest_time, api_results, fusion_results, ask_time, latency))
    }
    .await;
    let memory = p.memory_mib();
    p.stop();
    if args.keep {
        println!("schema {schema} kept");
    } else if let Err(e) = crate::sql::drop_schema(&args.database_url, &schema).await {
        eprintln!("warning: could not drop schema {schema}: {e:#}");
    }
    let (ingest_time, api_results, fusion_results, ask_time, latency) = outcome?;

    // -------------------------------------------------------------------- scoring ---
    // scores[system][category]
    let mut scores: Vec<BTreeMap<u8, Scores>> = vec![BTreeMap::new(); SYSTEMS.len()];
    let mut modes_differ = 0;
    let mut vector_is_exact = 0;
    for (c, conv) in convs.iter().enumerate() {
        for (q, question) in conv.questions.iter().enumerate() {
            let api = &api_results[c][q];
            if api[0] != api[1] || api[1] != api[2] {
                modes_differ += 1;
            }
            if api[1] == dense[c][q] {
                vector_is_exact += 1;
            }
            let lists = [&api[0], &api[1], &api[2], &bm25[c][q], &dense[c][q]];
            for (s, ranked) in lists.iter().enumerate() {
                scores[s].entry(question.category).or_default().add(ranked, &question.evidence);
            }
        }
    }
    let pooled = |s: usize, cats: &[u8]| {
        let mut out = Scores::default();
        for cat in cats {
            if let Some(x) = scores[s].get(cat) {
                out.merge(x);
            }
        }
        out
    };
    let main_cats = [1u8, 2, 3, 4];
    let all_cats = [1u8, 2, 3, 4, 5];
    let n_main = pooled(0, &main_cats).n;

    let mut md = String::new();
    md.push_str(&format!("### LoCoMo retrieval quality ({file_name}, {} conversation(s))\n\n", convs.len()));
    md.push_str(&format!(
        "`pinak-bench quality`, {}: {} conversation(s) (one tenant each), {n_turns} turns stored as episodic memories, \
         {} questions of which {n_scored} scored ({n_skipped} have no evidence turn that exists and are skipped: {}; \
         {} evidence ids dropped). Embeddings: the built-in local model (all-MiniLM-L6-v2, 384-d), in the API \
         (`PINAK_EMBEDDING_BACKEND=local`) and in-process. Machine: {}; load average before {load_before}, after {}. \
         Whole run {:.0} s: in-process embedding {:.1} s ({embed_rate:.0} texts/s), ingest through the API {:.1} s \
         ({:.0} memories/s), {} quality searches {:.1} s.\n\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        convs.len(),
        stats.questions,
        stats.skipped.iter().map(|(c, n)| format!("{n} of category {c}")).collect::<Vec<_>>().join(", "),
        stats.dropped_ids,
        crate::machine(),
        crate::loadavg(),
        started.elapsed().as_secs_f64(),
        embed_time.as_secs_f64(),
        ingest_time.as_secs_f64(),
        n_turns as f64 / ingest_time.as_secs_f64(),
        n_scored * MODES.len(),
        ask_time.as_secs_f64(),
    ));

    let mut overall = Table::new(
        format!("Turn-level retrieval, categories 1-4 ({n_main} questions), k=10"),
        &["system", "recall_any@1", "recall_any@5", "recall_any@10", "recall_all@10", "NDCG@10"],
    );
    for (s, name) in SYSTEMS.iter().enumerate() {
        let x = pooled(s, &main_cats);
        overall.row(vec![
            name.to_string(),
            fmt3(x.mean(x.any1)),
            fmt3(x.mean(x.any5)),
            fmt3(x.mean(x.any10)),
            fmt3(x.mean(x.all10)),
            fmt3(x.mean(x.ndcg10)),
        ]);
    }
    overall.note("a question's relevant turns are its evidence turns; recall_any@k: one of them in the top k; recall_all@10: all of them in the top 10; NDCG@10: binary relevance, ideal = min(#evidence, 10) hits first");
    overall.note("API rows: GET /api/v1/memory/search?k=10&mode=keyword|vector|hybrid with the question as query; each memory is one turn, \"{speaker}: {text}\" (+ \" [shares a photo: {blip_caption}]\")");
    overall.note(format!("in-process BM25: Okapi, k1={BM25_K1}, b={BM25_B}, idf ln(1 + (N - df + 0.5)/(df + 0.5)), the OR of the question's distinct words; tokens are lower-cased alphanumeric runs, no stemming, no stop words; per conversation"));
    overall.note("in-process exact dense: the same model's unit vectors, exact top 10 by cosine over the conversation's turns (what the API's vector search would return with an exact scan)");
    if modes_differ == 0 {
        overall.note("the three API modes returned the same list for every question: this pinak-api ignores the `mode` parameter (its one hybrid search answered all three)");
    } else {
        overall.note(format!(
            "the three API modes' lists were not all equal on {modes_differ} of {n_scored} questions; API vector returned exactly the in-process exact dense top 10 on {vector_is_exact} of {n_scored}"
        ));
    }
    md.push_str(&overall.markdown());

    let mut headers = vec!["category".to_string(), "questions".to_string()];
    headers.extend(SYSTEMS.iter().map(|s| s.to_string()));
    let mut per_cat =
        Table::new("Per category: recall_any@10 / NDCG@10", &headers.iter().map(String::as_str).collect::<Vec<_>>());
    let mut cat_row = |label: String, cats: &[u8]| {
        let mut row = vec![label, pooled(0, cats).n.to_string()];
        for s in 0..SYSTEMS.len() {
            let x = pooled(s, cats);
            row.push(format!("{} / {}", fmt3(x.mean(x.any10)), fmt3(x.mean(x.ndcg10))));
        }
        per_cat.row(row);
    };
    for (cat, name) in CATEGORIES {
        cat_row(format!("{cat} {name}"), &[cat]);
    }
    cat_row("overall (1-4)".into(), &main_cats);
    cat_row("all incl. 5".into(), &all_cats);
    per_cat.note("category names: the data holds numbers only; named after the paper's categories in the order the LoCoMo repository's task_eval/evaluation_stats.py prints them ([4, 1, 2, 3, 5] = single-hop, multi-hop, temporal, open-domain, adversarial)");
    per_cat.note("category 5 (adversarial) questions have no answer in the conversation; their evidence turns are the ones the question is built on, so their recall is reported but kept out of 'overall'");
    md.push_str(&per_cat.markdown());

    let mut fusion = Table::new(
        format!("Hybrid fusion settings, categories 1-4 ({n_main} questions)"),
        &["query parameters", "recall_any@1", "recall_any@10", "recall_all@10", "NDCG@10"],
    );
    for (v, params) in FUSION_VARIANTS.iter().enumerate() {
        let mut x = Scores::default();
        for (c, conv) in convs.iter().enumerate() {
            for (q, question) in conv.questions.iter().enumerate() {
                if main_cats.contains(&question.category) {
                    x.add(&fusion_results[c][q][v], &question.evidence);
                }
            }
        }
        let label = if v == 0 { format!("{params} (the default: rrf, rrf_k=60)") } else { params.to_string() };
        overall_fusion_row(&mut fusion, label, &x);
    }
    fusion.note("each setting is a real /search request; weighted fusion = weight x 1/(1+d^2) + (1 - weight) x keyword position score, the prototype's formula");
    md.push_str(&fusion.markdown());

    let mut lat = Table::new(
        format!("Search latency through the API, k=10 ({n_scored} questions, cycled)"),
        &["mode", "conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "requests", "errors"],
    );
    for (mode, cell) in &latency {
        lat.row(vec![
            mode.to_string(),
            cell.conc.to_string(),
            rate(cell.throughput()),
            ms(cell.pct(50.0)),
            ms(cell.pct(95.0)),
            ms(cell.pct(99.0)),
            cell.ops.to_string(),
            cell.errors.to_string(),
        ]);
    }
    lat.note(format!(
        "closed loop, 1 s warm-up, then up to {:.0} s or 20,000 requests per row; each search embeds its query with the API's local model on the same 2 cores, which dominates vector and hybrid latency",
        args.seconds
    ));
    if let Some((hwm, _)) = memory {
        lat.note(format!("peak RSS of the API process (model loaded): {hwm:.0} MiB"));
    }
    for (mode, cell) in &latency {
        if let Some(e) = &cell.first_error {
            lat.note(format!(
                "{mode} at concurrency {}: {} errors, first: {}",
                cell.conc,
                cell.errors,
                e.replace('|', "/")
            ));
        }
    }
    md.push_str(&lat.markdown());

    println!("\n{md}");
    println!("run took {:.0} s", started.elapsed().as_secs_f64());
    if let Some(doc) = &args.doc {
        crate::report::write_section(doc, DOC_LABEL, &md)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_ids_are_normalised() {
        assert_eq!(normalise_evidence("D1:3"), vec!["D1:3"]);
        assert_eq!(normalise_evidence("D8:6; D9:17"), vec!["D8:6", "D9:17"]);
        assert_eq!(normalise_evidence("D:11:26"), vec!["D11:26"]);
        assert_eq!(normalise_evidence("D30:05"), vec!["D30:5"]);
        assert_eq!(normalise_evidence("(D2:1)"), vec!["D2:1"]);
        assert!(normalise_evidence("D").is_empty());
        assert!(normalise_evidence("").is_empty());
        assert!(normalise_evidence("X1:2").is_empty());
    }

    #[test]
    fn samples_map_evidence_to_turns_and_skip_questions_without_any() {
        let sample = json!({
            "sample_id": "s1",
            "conversation": {
                "speaker_a": "Ann", "speaker_b": "Bo",
                "session_2": [{"speaker": "Bo", "dia_id": "D2:1", "text": "later"}],
                "session_2_date_time": "t2",
                "session_1": [
                    {"speaker": "Ann", "dia_id": "D1:1", "text": "hello"},
                    {"speaker": "Bo", "dia_id": "D1:2", "text": "look", "blip_caption": "a red kite"}
                ],
                "session_1_date_time": "t1"
            },
            "qa": [
                {"question": "q1", "answer": "a", "evidence": ["D1:2; D2:1", "D:1:1", "D1:02"], "category": 1},
                {"question": "q2", "answer": "a", "evidence": ["D9:9"], "category": 2},
                {"question": "q3", "adversarial_answer": "a", "evidence": [], "category": 5}
            ]
        });
        let mut stats = LoadStats::default();
        let c = parse_sample(&sample, &mut stats).unwrap();
        let ids: Vec<&str> = c.turns.iter().map(|t| t.dia_id.as_str()).collect();
        assert_eq!(ids, ["D1:1", "D1:2", "D2:1"], "sessions in numeric order");
        assert_eq!(c.turns[0].content, "Ann: hello");
        assert_eq!(c.turns[1].content, "Bo: look [shares a photo: a red kite]");
        assert_eq!(c.questions.len(), 1);
        assert_eq!(c.questions[0].evidence, vec![1, 2, 0], "deduplicated, in order of mention");
        assert_eq!(stats.questions, 3);
        assert_eq!(stats.dropped_ids, 1, "D9:9 names no turn");
        assert_eq!(stats.skipped, BTreeMap::from([(2, 1), (5, 1)]));
    }

    #[test]
    fn metrics_on_a_hand_made_ranking() {
        // Relevant turns 7 and 3; ranked: miss, 7, miss, miss, miss, miss, 3.
        let ranked = [1, 7, 2, 4, 5, 6, 3, 8, 9, 10, 11];
        let mut s = Scores::default();
        s.add(&ranked, &[7, 3]);
        assert_eq!((s.n, s.any1, s.any5, s.any10, s.all10), (1, 0.0, 1.0, 1.0, 1.0));
        let dcg = 1.0 / 3f64.log2() + 1.0 / 8f64.log2();
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((s.ndcg10 - dcg / ideal).abs() < 1e-12, "{}", s.ndcg10);

        // A relevant turn only at rank 11 does not count; a repeated hit counts once.
        let mut t = Scores::default();
        t.add(&ranked, &[11]);
        t.add(&[5, 5, 9], &[5, 6]);
        assert_eq!((t.any1, t.any10, t.all10), (1.0, 1.0, 0.0));
        assert!((t.ndcg10 - 1.0 / (1.0 + 1.0 / 3f64.log2())).abs() < 1e-12);
        assert_eq!(ndcg(&[], &[1]), 0.0);
        assert_eq!(ndcg(&[1, 2], &[1]), 1.0);
        s.merge(&t);
        assert_eq!(s.n, 3);
        assert!((s.mean(s.any1) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn bm25_ranks_a_tiny_corpus() {
        let docs = ["the cat sat on the mat", "a dog chased the cat", "dogs and cats, cats and dogs", "nothing here"];
        let index = Bm25::new(&docs);
        // "dog" is in document 1 only ("dogs" is another token: no stemming).
        assert_eq!(index.search("Dog?", 10), vec![1]);
        // "cat" is in 0 and 1; 1 also has "chased": OR of the words.
        assert_eq!(index.search("cat chased", 10), vec![1, 0]);
        // The shorter document wins at equal term frequency (length normalisation).
        assert_eq!(index.search("cat", 10), vec![1, 0]);
        assert_eq!(index.search("cats", 1), vec![2]);
        assert!(index.search("zebra", 10).is_empty());
        // By hand: N=4, df("mat")=1, idf = ln(1 + 3.5/1.5); tf=1, dl=6, avgdl=(6+5+6+2)/4.
        let idf = (1.0f64 + 3.5 / 1.5).ln();
        let norm = 1.2 * (1.0 - 0.75 + 0.75 * 6.0 / 4.75);
        let got = index.scored("mat MAT", 10);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 0);
        assert!((got[0].1 - idf * 2.2 / (1.0 + norm)).abs() < 1e-12, "a repeated query word counts once");
        assert_eq!(tokens("Hello, World-42 é!"), vec!["hello", "world", "42", "é"]);
    }

    #[test]
    fn dense_top_k_is_by_cosine() {
        let docs = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8]];
        assert_eq!(dense_top_k(&[0.0, 1.0], &docs, 2), vec![1, 2]);
        assert_eq!(dense_top_k(&[1.0, 0.0], &docs, 10), vec![0, 2, 1]);
    }
}
