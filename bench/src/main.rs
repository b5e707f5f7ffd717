//! `pinak-bench`: end-to-end benchmarks of pinak-api on a real corpus (see docs/performance.md).
//!
//! Runs against a dedicated Postgres (`scripts/bench` starts the `bench` cluster) and the real
//! `pinak-api` binary as child processes, on fresh schemas. Workloads: ingest through the API,
//! search (direct SQL ceiling, exact baseline, through the API) at several concurrencies,
//! filtered search on a 1 % project, cold start and peak memory. Every loop is bounded in
//! request count and time; everything is on loopback.

mod api;
mod corpus;
mod cpu;
mod load;
mod operator;
mod quality;
mod report;
mod sql;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::api::{ApiBatchIngest, ApiIngest, ApiMixed, ApiProcess, ApiSearch, ApiSpec};
use crate::corpus::size_label;
use crate::load::{Cell, Limits, warm_and_drive};
use crate::report::{Table, ms, rate, recall};
use crate::sql::{IndexVariant, Kind, MAIN_PROJECT, SMALL_PROJECT, SqlBatchIngest, SqlSearch};
use pinak_api::retrieval::vector_path::Rule;

const API_MAIN: &str = "API GET /memory/search (query vector by HTTP lookup)";
const API_SMALL: &str = "API GET /memory/search (service's path choice)";
const BATCH_PATH: &str = "API batch add (semantic), 100 memories per request";
const BATCH_CEILING: &str =
    "SQL: the API's batch COPY in-process, 100 rows per transaction (no HTTP, auth, access or audit rows)";
const MIXED_PATH: &str = "API 90 % search (main) / 10 % add (another project)";
/// ef_search values of the recall-vs-throughput sweep.
const SWEEP_SQL: [u32; 7] = [10, 20, 40, 80, 100, 200, 400];
const SWEEP_API: [u32; 3] = [40, 100, 200];
const SWEEP_CONC: usize = 8;
/// Index variants built on a copy of the store's vectors: the store's (migration) index
/// first, as the control.
const VARIANTS: [IndexVariant; 3] = [
    IndexVariant { m: 16, ef_construction: 64, half: false },
    IndexVariant { m: 32, ef_construction: 128, half: false },
    IndexVariant { m: 16, ef_construction: 64, half: true },
];
const VARIANT_EF: [u32; 3] = [20, 40, 100];
/// Above this many documents the index variants are not built (each build takes minutes).
const VARIANT_MAX_DOCS: usize = 200_000;

const USAGE: &str =
    "usage: pinak-bench operator [--stores 1,10,100] ...   (the operator's reconcile benchmark; operator --help)
       pinak-bench quality --locomo FILE ...          (retrieval quality on LoCoMo; quality --help)
       pinak-bench [--size 1k|10k|100k|N] [--quick] [--database-url URL] [--api-bin PATH]
                   [--model-dir DIR] [--cache-dir DIR] [--doc FILE] [--seconds S] [--keep] [--real N]

  --size       documents in the store (default 10k; --quick: 1k). 100k embeds ~101k sentences
               once (15-20 min on 2 cores), cached in the cache dir afterwards.
  --quick      smoke test: 1k documents, ~1.5 s per measurement.
  --database-url  admin URL of a Postgres 16 + pgvector cluster used only by benchmarks
               (default $PINAK_BENCH_DATABASE_URL). Schemas named bench_* are dropped.
  --api-bin    pinak-api binary (default target/release/pinak-api).
  --model-dir  all-MiniLM-L6-v2 directory (default $PINAK_MODEL_DIR).
  --cache-dir  corpus cache (default .tools/bench).
  --doc        write the results section for this size into FILE (docs/performance.md).
  --seconds    time limit of one measurement (default 6, quick 1.5).
  --keep       keep the benchmark schemas afterwards.
  --real       real (embedded) documents; the rest up to --size are synthetic mixes of two
               real vectors, labelled as such (e.g. --size 1m --real 100k). Default: all real.";

struct Args {
    size: usize,
    quick: bool,
    database_url: String,
    api_bin: PathBuf,
    model_dir: Option<PathBuf>,
    cache_dir: PathBuf,
    doc: Option<PathBuf>,
    seconds: f64,
    keep: bool,
    real: Option<usize>,
}

fn parse_size(s: &str) -> Result<usize> {
    let s = s.trim().to_ascii_lowercase();
    let n = if let Some(k) = s.strip_suffix('k') {
        k.parse::<usize>()? * 1000
    } else if let Some(m) = s.strip_suffix('m') {
        m.parse::<usize>()? * 1_000_000
    } else {
        s.parse::<usize>()?
    };
    if n < 200 {
        bail!("--size must be at least 200");
    }
    Ok(n)
}

fn parse_args() -> Result<Args> {
    let mut size = None;
    let mut quick = false;
    let mut database_url = std::env::var("PINAK_BENCH_DATABASE_URL").ok();
    let mut api_bin = PathBuf::from("target/release/pinak-api");
    let mut model_dir = std::env::var("PINAK_MODEL_DIR").ok().map(PathBuf::from);
    let mut cache_dir = PathBuf::from(".tools/bench");
    let mut doc = None;
    let mut seconds = None;
    let mut keep = false;
    let mut real = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--size" => size = Some(parse_size(&val()?)?),
            "--quick" => quick = true,
            "--database-url" => database_url = Some(val()?),
            "--api-bin" => api_bin = PathBuf::from(val()?),
            "--model-dir" => model_dir = Some(PathBuf::from(val()?)),
            "--cache-dir" => cache_dir = PathBuf::from(val()?),
            "--doc" => doc = Some(PathBuf::from(val()?)),
            "--seconds" => seconds = Some(val()?.parse::<f64>()?),
            "--keep" => keep = true,
            "--real" => real = Some(parse_size(&val()?)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let database_url = database_url
        .context("no database: pass --database-url or set PINAK_BENCH_DATABASE_URL (scripts/bench does)")?;
    if !api_bin.exists() {
        bail!("{} not found: build it with cargo build --release -p pinak-api (scripts/bench does)", api_bin.display());
    }
    Ok(Args {
        size: size.unwrap_or(if quick { 1000 } else { 10_000 }),
        quick,
        database_url,
        api_bin,
        model_dir,
        cache_dir,
        doc,
        seconds: seconds.unwrap_or(if quick { 1.5 } else { 6.0 }),
        keep,
        real,
    })
}

fn read_first(path: &str, key: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim_start_matches([':', '=', ' ', '\t']).trim_matches('"').to_owned())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpu = read_first("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into());
    let mem = read_first("/proc/meminfo", "MemTotal")
        .and_then(|v| v.split_whitespace().next().and_then(|k| k.parse::<f64>().ok()))
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "?".into());
    let os = read_first("/etc/os-release", "PRETTY_NAME").unwrap_or_else(|| "?".into());
    format!("{cores} cores ({cpu}), {mem} RAM, {os}")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// One measured row of a table.
struct Row {
    path: String,
    cell: Cell,
}

fn cell_row(path: &str, c: &Cell) -> Vec<String> {
    vec![
        path.to_owned(),
        c.conc.to_string(),
        rate(c.throughput()),
        ms(c.pct(50.0)),
        ms(c.pct(95.0)),
        ms(c.pct(99.0)),
        recall(c.recall()),
        c.ops.to_string(),
        c.errors.to_string(),
    ]
}

const CELL_HEADERS: [&str; 9] =
    ["path", "conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "recall@10", "requests", "errors"];

fn error_notes<'a>(t: &mut Table, rows: impl IntoIterator<Item = &'a Row>) {
    for r in rows {
        if let Some(e) = &r.cell.first_error {
            t.note(format!(
                "{} at concurrency {}: {} errors, first: {}",
                r.path,
                r.cell.conc,
                r.cell.errors,
                e.replace('|', "/")
            ));
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

struct ColdStart {
    label: String,
    live: Vec<f64>,
    search: Vec<f64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = match argv.first().map(String::as_str) {
        Some("operator") => operator::main(&argv[1..]).await,
        Some("quality") => quality::main(&argv[1..]).await,
        _ => run().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pinak-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let args = parse_args()?;
    let started = Instant::now();
    let label = if args.quick { format!("quick-{}", size_label(args.size)) } else { size_label(args.size) };
    let limits =
        Limits { max_ops: if args.quick { 5_000 } else { 100_000 }, max_time: Duration::from_secs_f64(args.seconds) };
    let warm = Duration::from_secs_f64((args.seconds / 6.0).clamp(0.2, 1.0));
    let n_queries = if args.size >= 10_000 { 1000 } else { (args.size / 10).max(20) };
    let machine = machine();
    let load_before = loadavg();
    println!("pinak-bench {label}: {} documents, {n_queries} held-out queries; {machine}", args.size);
    let real = args.real.unwrap_or(args.size).min(args.size);
    if real >= 100_000 {
        println!(
            "note: {real} real documents: up to {} sentences are embedded with the local model the first time (15-45 min per 100k on 2 cores); later runs use the cache",
            real + n_queries
        );
    }

    // Defaults of the service, so the direct-SQL side runs with the same settings.
    let defaults = pinak_api::runtime::config::Config::from_lookup(|k| match k {
        "PINAK_DATABASE_URL" => Some("postgres://localhost/x".into()),
        "PINAK_JWT_SECRET" => Some(api::SECRET.into()),
        "PINAK_EMBEDDING_BACKEND" => Some("dummy".into()),
        _ => None,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ef = defaults.hnsw_ef_search;
    // The service default (2,000 rows), lowered for small runs so that the main project (99 %)
    // always takes the HNSW path and the 1 % project the exact one.
    let exact_max = (args.size as i64 / 5).min(defaults.exact_search_max_rows);
    let hybrid =
        Kind::Hybrid { ef, rule: Rule { max_rows: exact_max, max_fraction: defaults.exact_search_max_fraction } };

    // ---------------------------------------------------------------- corpus ---
    let t = Instant::now();
    let corpus = tokio::task::block_in_place(|| {
        corpus::load(&args.cache_dir, args.model_dir.as_deref(), args.size, n_queries, real)
    })?;
    let corpus_time = t.elapsed();
    let query_texts: Vec<String> = corpus.queries.iter().map(|q| q.text.clone()).collect();
    let doc_texts: Arc<Vec<String>> = Arc::new(corpus.docs.iter().map(|d| d.text.clone()).collect());
    let main_members: Vec<usize> = (0..corpus.docs.len()).filter(|&i| sql::project_of(i) == MAIN_PROJECT).collect();
    let small_members: Vec<usize> = (0..corpus.docs.len()).filter(|&i| sql::project_of(i) == SMALL_PROJECT).collect();
    let t = Instant::now();
    let truth_main = Arc::new(corpus::ground_truth(&corpus.queries, &corpus.docs, &main_members, 10));
    let truth_small = Arc::new(corpus::ground_truth(&corpus.queries, &corpus.docs, &small_members, 10));
    println!("ground truth (brute force in Rust) in {:.1} s", t.elapsed().as_secs_f64());

    // -------------------------------------------------------------- postgres ---
    let info = sql::server_info(&args.database_url).await?;
    let dropped = sql::drop_old_schemas(&args.database_url).await?;
    if dropped > 0 {
        println!("dropped {dropped} schema(s) of earlier benchmark runs");
    }
    let run_id = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let ingest_schema = format!("bench_ingest_{run_id}");
    let search_schema = format!("bench_search_{run_id}");
    let logs = args.cache_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = |name: &str| logs.join(format!("{name}.log"));

    let embed_url = api::serve_embeddings(
        corpus.queries.iter().map(|q| (q.text.clone(), q.vector.clone())).collect::<HashMap<_, _>>(),
    )
    .await?;
    let token_main = Arc::new(api::token(MAIN_PROJECT));
    let token_small = Arc::new(api::token(SMALL_PROJECT));
    let mut memory = Table::new("Peak memory of the API process", &["API process", "VmHWM MiB", "VmRSS at end MiB"]);

    // ---------------------------------------------------------------- ingest ---
    println!("\n== ingest through POST /api/v1/memory/add (dummy embeddings) ==");
    let mut ingest_rows = Vec::new();
    let ingest_count;
    {
        let p = ApiProcess::spawn(ApiSpec {
            bin: &args.api_bin,
            database_url: &args.database_url,
            schema: &ingest_schema,
            migrate: true,
            backend: "dummy",
            env: vec![],
            log: log("api-ingest"),
        })
        .await?;
        for conc in [1usize, 8, 32] {
            let workers = (0..conc)
                .map(|_| ApiIngest {
                    client: api::client(),
                    url: format!("{}/api/v1/memory/add", p.base),
                    token: token_main.clone(),
                    texts: doc_texts.clone(),
                })
                .collect();
            let (cell, _) =
                warm_and_drive(workers, Limits { max_ops: limits.max_ops.min(args.size), ..limits }, warm).await;
            println!(
                "  c={conc}: {:.0} memories/s, p99 {:.1} ms, errors {}",
                cell.throughput(),
                cell.pct(99.0),
                cell.errors
            );
            ingest_rows.push(Row { path: "API add (semantic)".into(), cell });
        }
        for conc in [1usize, 2, 4] {
            let mut ceiling = Vec::with_capacity(conc);
            for _ in 0..conc {
                ceiling.push(SqlBatchIngest::open(&args.database_url, &ingest_schema, doc_texts.clone()).await?);
            }
            let (cell, _) = warm_and_drive(
                ceiling,
                Limits { max_ops: limits.max_ops.min(args.size / api::BATCH).max(4), ..limits },
                warm,
            )
            .await;
            println!(
                "  ceiling c={conc}: {:.0} memories/s, errors {}",
                cell.throughput() * api::BATCH as f64,
                cell.errors
            );
            ingest_rows.push(Row { path: BATCH_CEILING.into(), cell });
            let workers = (0..conc)
                .map(|_| ApiBatchIngest {
                    client: api::client(),
                    url: format!("{}/api/v1/memory/batch", p.base),
                    token: token_main.clone(),
                    texts: doc_texts.clone(),
                })
                .collect();
            let (cell, _) = warm_and_drive(
                workers,
                Limits { max_ops: limits.max_ops.min(args.size / api::BATCH).max(4), ..limits },
                warm,
            )
            .await;
            println!(
                "  batch c={conc}: {:.0} memories/s, p99 {:.1} ms per request, errors {}",
                cell.throughput() * api::BATCH as f64,
                cell.pct(99.0),
                cell.errors
            );
            ingest_rows.push(Row { path: BATCH_PATH.into(), cell });
        }
        if let Some((hwm, rss)) = p.memory_mib() {
            memory.row(vec!["ingest (dummy backend)".into(), format!("{hwm:.0}"), format!("{rss:.0}")]);
        }
        let mut c = sql::connect(&args.database_url, Some(&ingest_schema)).await?;
        ingest_count = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM memories_semantic").fetch_one(&mut c).await?;
        p.stop();
    }

    // ------------------------------------------------------------------ load ---
    println!("\n== loading {} documents (real vectors) with COPY ==", corpus.docs.len());
    sql::migrate(&args.database_url, &search_schema).await?;
    let load_stats = sql::load_docs(&args.database_url, &search_schema, &corpus.docs).await?;
    println!(
        "  COPY {} rows in {:.1} s, HNSW build {:.1} s, VACUUM ANALYZE {:.1} s",
        load_stats.rows,
        load_stats.copy.as_secs_f64(),
        load_stats.index.as_secs_f64(),
        load_stats.analyze.as_secs_f64()
    );

    let shared = sql::Shared {
        vectors: Arc::new(corpus.queries.iter().map(|q| q.vector.clone()).collect()),
        texts: Arc::new(query_texts.clone()),
    };
    // One direct-SQL measurement: `conc` connections running `kind` on `project`.
    let sql_cell =
        async |kind: Kind, project: &'static str, truth: &Arc<Vec<Vec<usize>>>, conc: usize| -> Result<Cell> {
            let mut workers = Vec::with_capacity(conc);
            for _ in 0..conc {
                workers.push(
                    SqlSearch::open(&args.database_url, &search_schema, kind, project, &shared, truth.clone()).await?,
                );
            }
            Ok(warm_and_drive(workers, limits, warm).await.0)
        };
    let search_env = |backend_url: bool| {
        let mut env = vec![("PINAK_EXACT_SEARCH_MAX_ROWS".to_string(), exact_max.to_string())];
        if backend_url {
            env.push(("PINAK_EMBEDDING_URL".into(), embed_url.clone()));
            // The stored rows' model name: the API's re-embed job finds nothing to rewrite.
            env.push(("PINAK_EMBEDDING_MODEL".into(), sql::MODEL.into()));
        }
        env
    };

    // ---------------------------------------------------------------- search ---
    println!("\n== search, project '{MAIN_PROJECT}' ({} rows) ==", main_members.len());
    let mut search_rows: Vec<Row> = Vec::new();
    let mut mixed_rows: Vec<Row> = Vec::new();
    let mut sweep: Vec<(&str, u32, Cell)> = Vec::new();
    let mut pool_rows: Vec<Row> = Vec::new();
    // (path, req/s, cores used by the API process, Postgres, pinak-bench)
    let mut cpu_rows: Vec<(String, f64, (f64, f64, f64))> = Vec::new();
    let token_mixed = Arc::new(api::token("mixed"));
    let mut filtered_rows: Vec<Row> = Vec::new();
    let mut plans: Vec<(String, String)> = Vec::new();
    let mut main_plans: Vec<(String, String)> = Vec::new();
    {
        let mut p = ApiProcess::spawn(ApiSpec {
            bin: &args.api_bin,
            database_url: &args.database_url,
            schema: &search_schema,
            migrate: false,
            backend: "http",
            env: search_env(true),
            log: log("api-search"),
        })
        .await?;
        p.first_search(&token_main, &query_texts[0]).await?;
        for path in [Kind::HnswIterative(ef), Kind::Exact] {
            let mut s =
                SqlSearch::open(&args.database_url, &search_schema, path, MAIN_PROJECT, &shared, truth_main.clone())
                    .await?;
            main_plans.push((path.label(), s.plan().await.unwrap_or_else(|e| format!("EXPLAIN failed: {e}"))));
        }
        for conc in [1usize, 8, 32] {
            let paths: &[Kind] = if conc == 1 {
                &[hybrid, Kind::HnswIterative(ef), Kind::Exact]
            } else {
                &[hybrid, Kind::HnswIterative(ef)]
            };
            for &path in paths {
                let before = cpu::Snapshot::take(Some(p.pid()));
                let cell = sql_cell(path, MAIN_PROJECT, &truth_main, conc).await?;
                if conc == SWEEP_CONC && path == hybrid {
                    cpu_rows.push((
                        path.label(),
                        cell.throughput(),
                        cpu::Snapshot::take(Some(p.pid())).cores_since(&before),
                    ));
                }
                println!(
                    "  {} c={conc}: {:.0} q/s, p99 {:.2} ms, recall {}",
                    path.label(),
                    cell.throughput(),
                    cell.pct(99.0),
                    recall(cell.recall())
                );
                search_rows.push(Row { path: path.label(), cell });
            }
            let workers = (0..conc)
                .map(|_| ApiSearch::new(&p.base, token_main.clone(), &query_texts, truth_main.clone()))
                .collect();
            let before = cpu::Snapshot::take(Some(p.pid()));
            let (cell, _) = warm_and_drive(workers, limits, warm).await;
            if conc == SWEEP_CONC {
                cpu_rows.push((
                    API_MAIN.into(),
                    cell.throughput(),
                    cpu::Snapshot::take(Some(p.pid())).cores_since(&before),
                ));
            }
            println!(
                "  API c={conc}: {:.0} q/s, p99 {:.2} ms, recall {}, errors {}",
                cell.throughput(),
                cell.pct(99.0),
                recall(cell.recall()),
                cell.errors
            );
            search_rows.push(Row { path: API_MAIN.into(), cell });
        }
        println!("\n== filtered search, project '{SMALL_PROJECT}' ({} rows, 1 %) ==", small_members.len());
        let filtered_paths = [Kind::HnswDefault, Kind::HnswIterative(ef), Kind::Exact, hybrid];
        for path in filtered_paths {
            let mut s =
                SqlSearch::open(&args.database_url, &search_schema, path, SMALL_PROJECT, &shared, truth_small.clone())
                    .await?;
            plans.push((path.label(), s.plan().await.unwrap_or_else(|e| format!("EXPLAIN failed: {e}"))));
        }
        for conc in [1usize, 8] {
            for path in filtered_paths {
                let cell = sql_cell(path, SMALL_PROJECT, &truth_small, conc).await?;
                println!(
                    "  {} c={conc}: {:.0} q/s, p99 {:.2} ms, recall {}",
                    path.label(),
                    cell.throughput(),
                    cell.pct(99.0),
                    recall(cell.recall())
                );
                filtered_rows.push(Row { path: path.label(), cell });
            }
            let workers = (0..conc)
                .map(|_| ApiSearch::new(&p.base, token_small.clone(), &query_texts, truth_small.clone()))
                .collect();
            let (cell, _) = warm_and_drive(workers, limits, warm).await;
            println!(
                "  API c={conc}: {:.0} q/s, p99 {:.2} ms, recall {}",
                cell.throughput(),
                cell.pct(99.0),
                recall(cell.recall())
            );
            filtered_rows.push(Row { path: API_SMALL.into(), cell });
        }
        println!("\n== mixed: 90 % search, 10 % add ==");
        for conc in [8usize, 32] {
            let workers = (0..conc)
                .map(|_| ApiMixed {
                    search: ApiSearch::new(&p.base, token_main.clone(), &query_texts, truth_main.clone()),
                    add: ApiIngest {
                        client: api::client(),
                        url: format!("{}/api/v1/memory/add", p.base),
                        token: token_mixed.clone(),
                        texts: doc_texts.clone(),
                    },
                })
                .collect();
            let (cell, _) = warm_and_drive(workers, limits, warm).await;
            println!(
                "  mixed c={conc}: {:.0} req/s, p99 {:.2} ms, recall {}, errors {}",
                cell.throughput(),
                cell.pct(99.0),
                recall(cell.recall()),
                cell.errors
            );
            mixed_rows.push(Row { path: MIXED_PATH.into(), cell });
        }
        if let Some((hwm, rss)) = p.memory_mib() {
            memory.row(vec![
                "search (http lookup backend), after all search and mixed runs".into(),
                format!("{hwm:.0}"),
                format!("{rss:.0}"),
            ]);
        }
        p.stop();
        // The mixed run's adds sit in the full-text index's pending list (GIN fastupdate) until
        // a vacuum merges them, and every full-text query reads that list: vacuum, so the
        // runs below start from the table the runs above measured.
        let pending = sql_cell(hybrid, MAIN_PROJECT, &truth_main, SWEEP_CONC).await?;
        println!("  statement c={SWEEP_CONC} after the mixed run's adds: {:.0} q/s", pending.throughput());
        mixed_rows.push(Row { path: format!("{}, after the mixed runs' adds", hybrid.label()), cell: pending });
        sql::vacuum_semantic(&args.database_url, &search_schema).await?;
        let vacuumed = sql_cell(hybrid, MAIN_PROJECT, &truth_main, SWEEP_CONC).await?;
        println!("  statement c={SWEEP_CONC} after VACUUM: {:.0} q/s", vacuumed.throughput());
        mixed_rows.push(Row { path: format!("{}, after VACUUM", hybrid.label()), cell: vacuumed });

        println!("\n== recall vs throughput: ef_search sweep at c={SWEEP_CONC} ==");
        for ef in SWEEP_SQL {
            let cell = sql_cell(Kind::HnswIterative(ef), MAIN_PROJECT, &truth_main, SWEEP_CONC).await?;
            println!("  pgvector ef_search={ef}: {:.0} q/s, recall {}", cell.throughput(), recall(cell.recall()));
            sweep.push(("pgvector HNSW alone (SQL)", ef, cell));
        }
        // API search at concurrency `conc` on a fresh API process with one setting changed.
        let tuned_search = async |var: &str, value: String, conc: usize| -> Result<Cell> {
            let p = ApiProcess::spawn(ApiSpec {
                bin: &args.api_bin,
                database_url: &args.database_url,
                schema: &search_schema,
                migrate: false,
                backend: "http",
                env: [search_env(true), vec![(var.to_string(), value.clone())]].concat(),
                log: log(&format!("api-{var}-{value}")),
            })
            .await?;
            let workers = (0..conc)
                .map(|_| ApiSearch::new(&p.base, token_main.clone(), &query_texts, truth_main.clone()))
                .collect();
            let (cell, _) = warm_and_drive(workers, limits, warm).await;
            p.stop();
            Ok(cell)
        };
        for ef in SWEEP_API {
            let cell = tuned_search("PINAK_HNSW_EF_SEARCH", ef.to_string(), SWEEP_CONC).await?;
            println!("  API ef_search={ef}: {:.0} q/s, recall {}", cell.throughput(), recall(cell.recall()));
            sweep.push(("API search (fused top 10)", ef, cell));
        }

        println!("\n== pool size: API search at c=32 ==");
        for pool in [4usize, defaults.db_pool_size as usize, 16] {
            let cell = tuned_search("PINAK_DB_POOL_SIZE", pool.to_string(), 32).await?;
            println!("  PINAK_DB_POOL_SIZE={pool}: {:.0} q/s, p99 {:.2} ms", cell.throughput(), cell.pct(99.0));
            let control = if pool == defaults.db_pool_size as usize { " (default, the control)" } else { "" };
            pool_rows.push(Row { path: format!("API search, PINAK_DB_POOL_SIZE={pool}{control}"), cell });
        }
    }
    // Index variants: build options and halfvec, on a copy of the vectors, pgvector alone.
    let mut variant_rows: Vec<(Row, Duration, i64, u32)> = Vec::new();
    if corpus.docs.len() <= VARIANT_MAX_DOCS {
        println!("\n== HNSW index variants on a copy of the vectors, pgvector alone at c={SWEEP_CONC} ==");
        sql::create_tune_table(&args.database_url, &search_schema).await?;
        for index in VARIANTS {
            let (build, bytes) =
                sql::build_variant(&args.database_url, &search_schema, corpus.docs.len(), index).await?;
            println!("  {}: built in {:.1} s, {:.0} MiB", index.label(), build.as_secs_f64(), bytes as f64 / 1048576.0);
            for ef in VARIANT_EF {
                let cell = sql_cell(Kind::Variant { ef, index }, MAIN_PROJECT, &truth_main, SWEEP_CONC).await?;
                println!("    ef_search={ef}: {:.0} q/s, recall {}", cell.throughput(), recall(cell.recall()));
                variant_rows.push((Row { path: index.label(), cell }, build, bytes, ef));
            }
        }
    }
    let foreign_after_search = sql::foreign_vectors(&args.database_url, &search_schema).await?;
    if foreign_after_search > 0 {
        println!(
            "WARNING: {foreign_after_search} stored vectors were rewritten by another model during the search runs; recall figures are not valid"
        );
    }

    // ----------------------------------------------------------- local model ---
    let mut local_table = Table::new(
        "Query embedding with the local model (all-MiniLM-L6-v2, candle, CPU)",
        &["what", "conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "recall@10", "requests", "errors"],
    );
    let mut local_rows: Vec<Row> = Vec::new();
    if let Some(dir) = args.model_dir.as_deref() {
        println!("\n== local model: query embedding cost, and API search with PINAK_EMBEDDING_BACKEND=local ==");
        let embed_cell = tokio::task::block_in_place(|| {
            embed_latency(dir, &query_texts, if args.quick { 20 } else { 200 }, limits.max_time)
        })?;
        local_table.row(cell_row("embed one query in-process (LocalEmbedder::embed)", &embed_cell));
        let p = ApiProcess::spawn(ApiSpec {
            bin: &args.api_bin,
            database_url: &args.database_url,
            schema: &search_schema,
            migrate: false,
            backend: "local",
            env: [search_env(false), vec![("PINAK_MODEL_DIR".into(), dir.display().to_string())]].concat(),
            log: log("api-local"),
        })
        .await?;
        for conc in [1usize, 8] {
            let workers = (0..conc)
                .map(|_| ApiSearch::new(&p.base, token_main.clone(), &query_texts, truth_main.clone()))
                .collect();
            let (cell, _) = warm_and_drive(workers, limits, warm).await;
            println!(
                "  API (local model) c={conc}: {:.0} q/s, p99 {:.1} ms, recall {}",
                cell.throughput(),
                cell.pct(99.0),
                recall(cell.recall())
            );
            local_table.row(cell_row("API GET /memory/search, local model embeds the query", &cell));
            local_rows.push(Row { path: "API GET /memory/search, local model".into(), cell });
        }
        if let Some((hwm, rss)) = p.memory_mib() {
            memory.row(vec![
                "search (local model backend), after its search runs".into(),
                format!("{hwm:.0}"),
                format!("{rss:.0}"),
            ]);
        }
        p.stop();
        if let Some(r) = corpus.embed_rate {
            local_table.note(format!(
                "batch embedding while building the corpus this run: {r:.0} sentences/s ({} sentences)",
                corpus.embedded_now
            ));
        }
    } else {
        local_table.note("skipped: no --model-dir / PINAK_MODEL_DIR");
    }
    error_notes(&mut local_table, &local_rows);

    // ------------------------------------------------------------ cold start ---
    println!("\n== cold start of pinak-api ==");
    let reps = 3;
    let mut cold: Vec<ColdStart> = Vec::new();
    {
        let mut fresh = ColdStart {
            label: "empty database, migrations applied at start (dummy backend)".into(),
            live: vec![],
            search: vec![],
        };
        // On the ingest store: its rows carry the dummy model's name, so the API's re-embed job
        // has nothing to rewrite (on the search store it would replace the real vectors).
        let mut restart = ColdStart {
            label: format!("restart on a populated store, PINAK_MIGRATE=false (dummy backend, {ingest_count} rows)"),
            live: vec![],
            search: vec![],
        };
        let mut local = ColdStart {
            label: "restart on the populated store, PINAK_MIGRATE=false, local model loaded at start".into(),
            live: vec![],
            search: vec![],
        };
        for (i, query) in query_texts.iter().enumerate().take(reps) {
            let schema = format!("bench_cold_{run_id}_{i}");
            let mut p = ApiProcess::spawn(ApiSpec {
                bin: &args.api_bin,
                database_url: &args.database_url,
                schema: &schema,
                migrate: true,
                backend: "dummy",
                env: vec![],
                log: log("api-cold"),
            })
            .await?;
            let s = p.first_search(&token_main, query).await?;
            fresh.live.push(p.live_after.as_secs_f64() * 1000.0);
            fresh.search.push(s.as_secs_f64() * 1000.0);
            p.stop();
            sql::drop_schema(&args.database_url, &schema).await?;

            let mut p = ApiProcess::spawn(ApiSpec {
                bin: &args.api_bin,
                database_url: &args.database_url,
                schema: &ingest_schema,
                migrate: false,
                backend: "dummy",
                env: vec![],
                log: log("api-cold"),
            })
            .await?;
            let s = p.first_search(&token_main, query).await?;
            restart.live.push(p.live_after.as_secs_f64() * 1000.0);
            restart.search.push(s.as_secs_f64() * 1000.0);
            p.stop();

            if let Some(dir) = args.model_dir.as_deref() {
                let env = [search_env(false), vec![("PINAK_MODEL_DIR".into(), dir.display().to_string())]].concat();
                let mut p = ApiProcess::spawn(ApiSpec {
                    bin: &args.api_bin,
                    database_url: &args.database_url,
                    schema: &search_schema,
                    migrate: false,
                    backend: "local",
                    env,
                    log: log("api-cold"),
                })
                .await?;
                let s = p.first_search(&token_main, query).await?;
                local.live.push(p.live_after.as_secs_f64() * 1000.0);
                local.search.push(s.as_secs_f64() * 1000.0);
                if i == 0
                    && let Some((hwm, rss)) = p.memory_mib()
                {
                    memory.row(vec![
                        "local model backend, just after start + one search".into(),
                        format!("{hwm:.0}"),
                        format!("{rss:.0}"),
                    ]);
                }
                p.stop();
            }
        }
        cold.push(fresh);
        cold.push(restart);
        if !local.live.is_empty() {
            cold.push(local);
        }
        for c in &cold {
            println!(
                "  {}: live {:.0} ms, first search {:.0} ms (median of {reps})",
                c.label,
                median(c.live.clone()),
                median(c.search.clone())
            );
        }
    }

    let foreign_at_end = sql::foreign_vectors(&args.database_url, &search_schema).await?;
    if !args.keep {
        sql::drop_schema(&args.database_url, &ingest_schema).await?;
        sql::drop_schema(&args.database_url, &search_schema).await?;
    }

    // ---------------------------------------------------------------- report ---
    let mut md = String::new();
    md.push_str(&format!(
        "### Results at {} documents{}\n\nMeasured {} by `{}`; run took {:.0} s.\n\n",
        args.size,
        if args.quick { " (--quick smoke run: short measurements, not for comparison)" } else { "" },
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        if args.quick {
            "scripts/bench --quick".to_string()
        } else {
            format!(
                "scripts/bench --size {}{}",
                size_label(args.size),
                args.real.map(|r| format!(" --real {}", size_label(r))).unwrap_or_default()
            )
        },
        started.elapsed().as_secs_f64()
    ));

    let mut setup = Table::new("Setup", &["item", "value"]);
    setup.row(vec!["machine".into(), machine.clone()]);
    setup.row(vec![
        "load average".into(),
        format!(
            "{load_before} at start, {} at end (1/5/15 min; other work on the machine competes for the 2 cores)",
            loadavg()
        ),
    ]);
    setup.row(vec!["postgres".into(), format!("{}, pgvector {} ({})", info.version, info.pgvector, info.settings)]);
    setup.row(vec![
        "corpus".into(),
        format!(
            "{} real sentences from local docs ({} available), embedded with all-MiniLM-L6-v2 (384-d); {} held-out queries; {}",
            corpus.docs.len() - corpus.synthetic,
            corpus.source_sentences,
            corpus.queries.len(),
            if corpus.synthetic == 0 { "no synthetic vectors".to_string() } else { format!("plus {} SYNTHETIC documents (normalised mixes of two real vectors, --real)", corpus.synthetic) }
        ),
    ]);
    setup.row(vec![
        "corpus load".into(),
        format!("{:.1} s ({} embedded this run)", corpus_time.as_secs_f64(), corpus.embedded_now),
    ]);
    setup.row(vec![
        "store".into(),
        format!(
            "memories_semantic: project '{MAIN_PROJECT}' {} rows, project '{SMALL_PROJECT}' {} rows (1 %)",
            main_members.len(),
            small_members.len()
        ),
    ]);
    setup.row(vec![
        "bulk load".into(),
        format!(
            "COPY {} rows {:.1} s ({:.0} rows/s); HNSW build (migrations/0004: halfvec, m=16, ef_construction=64) {:.1} s; VACUUM ANALYZE {:.1} s",
            load_stats.rows,
            load_stats.copy.as_secs_f64(),
            load_stats.rows as f64 / load_stats.copy.as_secs_f64(),
            load_stats.index.as_secs_f64(),
            load_stats.analyze.as_secs_f64()
        ),
    ]);
    setup.row(vec![
        "API config".into(),
        format!("release binary, PINAK_DB_POOL_SIZE={} (default), PINAK_HNSW_EF_SEARCH={ef} (default), PINAK_EXACT_SEARCH_MAX_ROWS={exact_max}, PINAK_EXACT_SEARCH_MAX_FRACTION={} (default), PINAK_SCOPE_SIZE_TTL_SECS={} (default), request logs at info to a file, background job worker on (default)", defaults.db_pool_size, defaults.exact_search_max_fraction, defaults.scope_size_ttl.as_secs()),
    ]);
    setup.row(vec![
        "store integrity".into(),
        format!("rows re-embedded by another model (api/src/runtime/jobs.rs re-embed pass): {foreign_after_search} after the search runs, {foreign_at_end} at the end (must be 0)"),
    ]);
    setup.row(vec![
        "limits".into(),
        format!(
            "each measurement: closed loop, at most {} requests or {:.1} s, after a {:.1} s warm-up",
            limits.max_ops,
            args.seconds,
            warm.as_secs_f64()
        ),
    ]);
    md.push_str(&setup.markdown());

    let mut ingest =
        Table::new("Ingest through the API (`POST /api/v1/memory/add`, dummy embedding backend)", &CELL_HEADERS);
    for r in &ingest_rows {
        ingest.row(cell_row(&r.path, &r.cell));
    }
    ingest.note(format!("into an initially empty store (HNSW, GIN and B-tree indexes maintained per row); {ingest_count} rows at the end"));
    ingest.note(
        "each add: auth (revocation lookup), client registry upsert, row + access log + audit in one transaction",
    );
    let batch_rates = |path: &str| {
        ingest_rows
            .iter()
            .filter(|r| r.path == path)
            .map(|r| format!("{:.0} at c={}", r.cell.throughput() * api::BATCH as f64, r.cell.conc))
            .collect::<Vec<_>>()
            .join(", ")
    };
    ingest.note(format!(
        "batch rows: req/s counts requests (transactions) of {} memories each; memories/s through the API: {}; in-process ceiling: {}",
        api::BATCH,
        batch_rates(BATCH_PATH),
        batch_rates(BATCH_CEILING)
    ));
    ingest.note("each batch: auth, one client registry upsert, then all rows, one multi-row access insert and one audit append (one hold of the tenant's chain lock) in one transaction");
    error_notes(&mut ingest, &ingest_rows);
    md.push_str(&ingest.markdown());

    let mut search =
        Table::new(format!("Search, project '{MAIN_PROJECT}' ({} rows), k=10", main_members.len()), &CELL_HEADERS);
    for r in &search_rows {
        search.row(cell_row(&r.path, &r.cell));
    }
    search.note("\"the API's search statement\": search.rs's one hybrid statement (5 keyword lists, 3 vector lists with the path chosen by scope size, LIMIT 20 = 2 x k per list) and its fusion, called in-process over one connection with the API's session settings: the ceiling for the API");
    search.note("\"pgvector HNSW alone\": one layer's nearest 20, the raw index cost inside that statement; exact scan: the recall baseline");
    search.note("API row: the full request: HTTP, JWT check and revocation lookup, the same statement and fusion, the access-log and audit rows (asynchronous commit, PINAK_READ_LOG_SYNC_COMMIT=false); the query vector comes from a loopback embeddings endpoint that returns the corpus vector (~0.2 ms), so the model's cost is not in these figures (see the local-model table)");
    for (path, plan) in &main_plans {
        search.note(format!("plan of \"{path}\": {plan}"));
    }
    search.note("recall@10 of the API and of the API's statement: the fused hybrid top 10 against the exact vector top 10; keyword hits take places in the fused list, so this is not the index's recall (the pgvector rows are)");
    error_notes(&mut search, &search_rows);
    md.push_str(&search.markdown());

    let mut ratio = Table::new(
        "API throughput against the direct-SQL ceiling (the API's own statement, no HTTP)",
        &["conc", "API req/s", "SQL req/s", "API / ceiling", "API p99 ms", "SQL p99 ms"],
    );
    let ceiling = hybrid.label();
    let find = |rows: &[Row], label: &str, conc: usize| {
        rows.iter().find(|r| r.path == label && r.cell.conc == conc).map(|r| r.cell.clone())
    };
    let mut best_api = 0.0f64;
    let mut best_sql = 0.0f64;
    for conc in [1usize, 8, 32] {
        if let (Some(a), Some(s)) = (find(&search_rows, API_MAIN, conc), find(&search_rows, &ceiling, conc)) {
            best_api = best_api.max(a.throughput());
            best_sql = best_sql.max(s.throughput());
            ratio.row(vec![
                conc.to_string(),
                rate(a.throughput()),
                rate(s.throughput()),
                format!("{:.1} %", 100.0 * a.throughput() / s.throughput()),
                ms(a.pct(99.0)),
                ms(s.pct(99.0)),
            ]);
        }
    }
    md.push_str(&ratio.markdown());

    let mut cpu_t = Table::new(
        format!(
            "Where the CPU goes: milliseconds of CPU per request at concurrency {SWEEP_CONC}, project '{MAIN_PROJECT}'"
        ),
        &["path", "req/s", "API process", "PostgreSQL", "pinak-bench", "total", "cores busy"],
    );
    for (path, per_s, (api_cores, pg_cores, bench_cores)) in &cpu_rows {
        let per_request = |cores: f64| format!("{:.2}", 1000.0 * cores / per_s.max(1e-9));
        let total = api_cores + pg_cores + bench_cores;
        cpu_t.row(vec![
            path.clone(),
            rate(*per_s),
            per_request(*api_cores),
            per_request(*pg_cores),
            per_request(*bench_cores),
            per_request(total),
            format!("{total:.2}"),
        ]);
    }
    cpu_t.note("user + system time from /proc/<pid>/stat around each measurement (warm-up included), divided by the requests per second; PostgreSQL = every postgres process; pinak-bench = the load generator and, for the API row, the loopback embeddings endpoint the API asks for each query vector");
    md.push_str(&cpu_t.markdown());

    let mut filtered = Table::new(
        format!("Filtered search: project '{SMALL_PROJECT}' holds {} rows (1 %), k=10", small_members.len()),
        &CELL_HEADERS,
    );
    for r in &filtered_rows {
        filtered.row(cell_row(&r.path, &r.cell));
    }
    for (path, plan) in &plans {
        filtered.note(format!("plan of \"{path}\": {plan}"));
    }
    filtered.note(format!(
        "the API's rule (vector_path.rs): exact when the scope holds <= max(PINAK_EXACT_SEARCH_MAX_ROWS={exact_max}, PINAK_EXACT_SEARCH_MAX_FRACTION={} x the table's rows) vectors",
        defaults.exact_search_max_fraction
    ));
    error_notes(&mut filtered, &filtered_rows);
    md.push_str(&filtered.markdown());

    let mut mixed = Table::new("Mixed load through the API: 90 % search, 10 % add", &CELL_HEADERS);
    for r in &mixed_rows {
        mixed.row(cell_row(&r.path, &r.cell));
    }
    mixed.note("every 10th request adds a corpus sentence to project 'mixed' of the same store (same table, HNSW, GIN and B-tree indexes); the others search project 'main'; recall is over the searches, latency over both");
    mixed.note("the two SQL rows: the API's statement on 'main' right after the mixed runs (their adds wait in the GIN indexes' pending lists, which every full-text query reads, until a vacuum or the list's size limit merges them), then after VACUUM ANALYZE");
    error_notes(&mut mixed, &mixed_rows);
    md.push_str(&mixed.markdown());

    let mut sweep_t = Table::new(
        format!("Recall against throughput: ef_search sweep at concurrency {SWEEP_CONC}, project '{MAIN_PROJECT}'"),
        &["series", "ef_search", "req/s", "p99 ms", "recall@10"],
    );
    let mut csv = String::from("series,ef_search,qps,p99_ms,recall\n");
    for (series, ef, cell) in &sweep {
        sweep_t.row(vec![
            series.to_string(),
            ef.to_string(),
            rate(cell.throughput()),
            ms(cell.pct(99.0)),
            recall(cell.recall()),
        ]);
        csv.push_str(&format!(
            "{series},{ef},{:.1},{:.3},{:.4}\n",
            cell.throughput(),
            cell.pct(99.0),
            cell.recall().unwrap_or(f64::NAN)
        ));
    }
    let csv_path = args.cache_dir.join(format!("recall-qps-{label}.csv"));
    std::fs::write(&csv_path, &csv)?;
    sweep_t.note(format!(
        "plot: docs/recall-qps-{label}.png, drawn by scripts/bench from .tools/bench/recall-qps-{label}.csv"
    ));
    sweep_t
        .note("exact search is recall 1.000 (see the exact row above); the API's recall is of the fused hybrid list");
    sweep_t.note("each API row is a fresh API process started for it (1 s warm-up); ef_search 100 is the default, so its row is the control against the search table's API row");
    md.push_str(&sweep_t.markdown());

    let mut variants_t = Table::new(
        format!(
            "HNSW index variants: a copy of the vectors, pgvector alone at concurrency {SWEEP_CONC}, project '{MAIN_PROJECT}'"
        ),
        &["index", "build s", "index MiB", "ef_search", "req/s", "p99 ms", "recall@10"],
    );
    for (Row { path, cell }, build, bytes, ef) in &variant_rows {
        variants_t.row(vec![
            path.clone(),
            format!("{:.1}", build.as_secs_f64()),
            format!("{:.0}", *bytes as f64 / 1048576.0),
            ef.to_string(),
            rate(cell.throughput()),
            ms(cell.pct(99.0)),
            recall(cell.recall()),
        ]);
    }
    if variant_rows.is_empty() {
        variants_t.note(format!("not built above {VARIANT_MAX_DOCS} documents (each build takes minutes)"));
    }
    variants_t.note("the first variant is the index of migrations/0001 (full-precision vector, pgvector's defaults m=16, ef_construction=64); the halfvec variant is what migrations/0004 builds instead (on a halfvec column here, on an expression over the vector column in the store); queries return ids only, so their rates are above the 'pgvector HNSW alone' rows, which render the rows");
    error_notes(&mut variants_t, variant_rows.iter().map(|(row, ..)| row));
    md.push_str(&variants_t.markdown());

    let mut pool_t = Table::new("Pool size: API search at concurrency 32", &CELL_HEADERS);
    for r in &pool_rows {
        pool_t.row(cell_row(&r.path, &r.cell));
    }
    pool_t.note("each row is a fresh API process started for it (1 s warm-up), so the default's row here is the control for the other two");
    error_notes(&mut pool_t, &pool_rows);
    md.push_str(&pool_t.markdown());

    md.push_str(&local_table.markdown());

    let mut cold_t = Table::new(
        format!("Cold start of `pinak-api` (spawn to first answer; median of {reps}, min-max)"),
        &["scenario", "GET /live ms", "first search ms"],
    );
    for c in &cold {
        let span = |v: &[f64]| {
            format!(
                "{:.0} ({:.0}-{:.0})",
                median(v.to_vec()),
                v.iter().cloned().fold(f64::INFINITY, f64::min),
                v.iter().cloned().fold(0.0, f64::max)
            )
        };
        cold_t.row(vec![c.label.clone(), span(&c.live), span(&c.search)]);
    }
    cold_t.note("first search = first 200 from GET /api/v1/memory/search, polled right after /live answered (opens the first database connections)");
    md.push_str(&cold_t.markdown());

    memory.note("VmHWM from /proc/<pid>/status of the API child process");
    md.push_str(&memory.markdown());

    // Targets of the issue (defined at 100k x 384 on 2 cores).
    let mut targets = Table::new(
        format!(
            "Targets of the issue, checked at this size ({} documents; the targets are stated for 100k)",
            args.size
        ),
        &["target", "measured", "met"],
    );
    let yes = |b: bool| if b { "yes".to_string() } else { "no".to_string() };
    let api_c8 = find(&search_rows, API_MAIN, 8);
    let api_best = search_rows
        .iter()
        .filter(|r| r.path == API_MAIN)
        .max_by(|a, b| a.cell.throughput().total_cmp(&b.cell.throughput()))
        .map(|r| r.cell.clone());
    if let Some(a) = &api_best {
        let r = a.recall().unwrap_or(0.0);
        targets.row(vec![
            "search through the API: recall@10 >= 0.95 at >= 1,000 req/s".into(),
            format!("{:.0} req/s at c={}, fused recall@10 {:.3}", a.throughput(), a.conc, r),
            yes(r >= 0.95 && a.throughput() >= 1000.0),
        ]);
    }
    if let Some(s) = find(&search_rows, &Kind::HnswIterative(ef).label(), 8) {
        let r = s.recall().unwrap_or(0.0);
        targets.row(vec![
            "(index alone) pgvector HNSW recall@10 >= 0.95 at >= 1,000 req/s".into(),
            format!("{:.0} req/s at c=8, recall@10 {:.3}", s.throughput(), r),
            yes(r >= 0.95 && s.throughput() >= 1000.0),
        ]);
    }
    if let Some(a) = &api_c8 {
        targets.row(vec![
            "API search p99 < 20 ms at concurrency 8".into(),
            format!("{} ms", ms(a.pct(99.0))),
            yes(a.pct(99.0) < 20.0),
        ]);
    }
    if best_sql > 0.0 {
        targets.row(vec![
            "API throughput >= 80 % of the direct-SQL ceiling".into(),
            format!("{:.1} % (best {:.0} vs {:.0} req/s)", 100.0 * best_api / best_sql, best_api, best_sql),
            yes(best_api >= 0.8 * best_sql),
        ]);
    }
    let fr = |label: &str| {
        filtered_rows.iter().filter(|r| r.path == label).filter_map(|r| r.cell.recall()).fold(f64::NAN, f64::min)
    };
    let api_f = fr(API_SMALL);
    let iter_f = fr(&Kind::HnswIterative(ef).label());
    targets.row(vec![
        "filtered (1 %) recall@10 >= 0.95".into(),
        format!(
            "API {:.3}; SQL iterative scan {:.3}; SQL exact {:.3}; SQL HNSW defaults {:.3}",
            api_f,
            iter_f,
            fr(&Kind::Exact.label()),
            fr(&Kind::HnswDefault.label())
        ),
        yes(api_f >= 0.95),
    ]);
    let per_s = |r: &Row| r.cell.throughput() * if r.path == BATCH_PATH { api::BATCH as f64 } else { 1.0 };
    if let Some(best) =
        ingest_rows.iter().filter(|r| r.path != BATCH_CEILING).max_by(|a, b| per_s(a).total_cmp(&per_s(b)))
    {
        targets.row(vec![
            "ingest >= 2,000 memories/s (dummy backend)".into(),
            format!("{:.0}/s: {} at c={}", per_s(best), best.path, best.cell.conc),
            yes(per_s(best) >= 2000.0),
        ]);
    }
    for c in &cold {
        let live = median(c.live.clone());
        targets.row(vec![
            format!("cold start < 200 ms: {}", c.label),
            format!("live {live:.0} ms, first search {:.0} ms", median(c.search.clone())),
            yes(live < 200.0),
        ]);
    }
    md.push_str(&targets.markdown());

    println!("\n{md}");
    let results = args.cache_dir.join(format!("results-{label}.md"));
    std::fs::write(&results, &md)?;
    println!("results written to {}", results.display());
    if let Some(doc) = &args.doc {
        report::write_section(doc, &label, &md)?;
    }
    Ok(())
}

/// Latency of embedding one query at a time with the service's LocalEmbedder, in-process.
fn embed_latency(dir: &Path, queries: &[String], n: usize, max_time: Duration) -> Result<Cell> {
    let model = pinak_api::embedding::LocalEmbedder::load(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = model.embed(&[queries[0].as_str()]);
    let mut c = Cell { conc: 1, ..Default::default() };
    let start = Instant::now();
    for q in queries.iter().take(n) {
        if start.elapsed() > max_time {
            break;
        }
        let t = Instant::now();
        model.embed(&[q.as_str()]).map_err(|e| anyhow::anyhow!("{e}"))?;
        c.lat_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        c.ops += 1;
    }
    c.elapsed = start.elapsed();
    c.lat_ms.sort_by(|a, b| a.total_cmp(b));
    Ok(c)
}
