//! The memory commands: `add`, `search`, `get`, `context`.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde_json::{Map, Value, json};

use crate::client::Api;
use crate::output::{cell, record, table};
use crate::{Failure, Global, jsonl};

const MEMORY: &str = "/api/v1/memory";

/// The layers the CLI reads and writes. Not taken from pinak-api, so the CLI does not link the
/// server and its database stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layer {
    Semantic,
    Episodic,
    Procedural,
    Rag,
    Working,
}

impl Layer {
    /// The API's name for the layer, which is also the command-line value.
    pub fn name(self) -> String {
        self.to_possible_value().expect("no layer is skipped").get_name().to_owned()
    }

    fn add_path(self) -> String {
        match self {
            Layer::Semantic => format!("{MEMORY}/add"),
            other => format!("{MEMORY}/{}/add", other.name()),
        }
    }

    /// Layers whose records have no single text field: their input is always a JSON object.
    fn needs_object(self) -> bool {
        matches!(self, Layer::Procedural | Layer::Rag)
    }
}

/// Add one memory, or many with `--jsonl`.
///
/// Semantic, episodic and working memories take their `content` from the arguments, `-`
/// (stdin) or `--file`; procedural and rag memories (and any layer with `--object`) take a
/// JSON object, the body of the layer's add route.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The memory's text (words are joined with spaces); `-` reads stdin
    #[arg(conflicts_with_all = ["file", "jsonl"])]
    text: Vec<String>,
    #[arg(long, value_enum, default_value_t = Layer::Semantic)]
    layer: Layer,
    /// Read the text (or JSON object) from this file
    #[arg(long, conflicts_with = "jsonl")]
    file: Option<PathBuf>,
    /// The input is a JSON object sent as the layer's add body
    #[arg(long)]
    object: bool,
    /// A tag (repeatable; semantic and episodic)
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Bulk: one JSON object per line (`-` for stdin), every line checked against the layer's
    /// schema before anything is sent, then sent through /batch in chunks of up to 500
    #[arg(long, value_name = "FILE", conflicts_with_all = ["object", "tags"])]
    jsonl: Option<PathBuf>,
}

/// Reads a file, or stdin for `-`.
pub fn read_input(path: &Path) -> Result<String, Failure> {
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| Failure::Input(format!("cannot read {}: {e}", path.display())))?;
    Ok(text)
}

fn add_body(args: &AddArgs) -> Result<Value, Failure> {
    let input = match (&args.file, args.text.as_slice()) {
        (Some(path), _) => read_input(path)?,
        (None, [dash]) if dash == "-" => read_input(Path::new("-"))?,
        (None, []) => {
            return Err(Failure::Usage("nothing to add: give the text, `-` for stdin, --file or --jsonl".into()));
        }
        (None, words) => words.join(" "),
    };
    let input = input.trim();
    if input.is_empty() {
        return Err(Failure::Input("the memory is empty".into()));
    }
    if !args.tags.is_empty() && !matches!(args.layer, Layer::Semantic | Layer::Episodic) {
        return Err(Failure::Usage(format!(
            "--tag applies to semantic and episodic memories, not {}",
            args.layer.name()
        )));
    }
    let mut body = if args.object || args.layer.needs_object() {
        match serde_json::from_str::<Value>(input) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(Failure::Input(format!("a {} memory must be a JSON object", args.layer.name()))),
            Err(e) => return Err(Failure::Input(format!("not a JSON object: {e}"))),
        }
    } else {
        Map::from_iter([("content".to_owned(), json!(input))])
    };
    if !args.tags.is_empty() {
        body.insert("tags".into(), json!(args.tags));
    }
    Ok(Value::Object(body))
}

pub fn add(g: &Global, args: &AddArgs) -> Result<String, Failure> {
    if let Some(path) = &args.jsonl {
        return jsonl::import(g, args.layer, path);
    }
    let body = add_body(args)?;
    let api = Api::new(g)?;
    let answer = api.post(&args.layer.add_path(), &body)?;
    if g.json {
        return Ok(answer.body.to_string());
    }
    let id = cell(&answer.body["id"]);
    Ok(if answer.status == 202 {
        format!("{} memory held for review as quarantine item {id}", args.layer.name())
    } else {
        format!("added {} memory {id}", args.layer.name())
    })
}

/// Hybrid search across the layers, best first.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// What to look for (words are joined with spaces)
    #[arg(required = true)]
    query: Vec<String>,
    /// Most hits to ask for (1..100)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    limit: u16,
    /// Show only this layer's hits (filters the hits the API returned)
    #[arg(long, value_enum)]
    layer: Option<Layer>,
    /// Which lists rank the hits: both, fused (hybrid), or one of them
    #[arg(long, value_enum, default_value_t = Mode::Hybrid)]
    mode: Mode,
}

/// The API's search `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Hybrid,
    Keyword,
    Vector,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Hybrid => "hybrid",
            Mode::Keyword => "keyword",
            Mode::Vector => "vector",
        }
    }
}

/// The text a record is known by: its content, else its skill name or goal.
fn summary(r: &Value) -> String {
    ["content", "skill_name", "goal", "query"].iter().map(|k| cell(&r[k])).find(|s| !s.is_empty()).unwrap_or_default()
}

fn score(v: &Value) -> String {
    v.as_f64().map_or_else(String::new, |s| format!("{s:.3}"))
}

pub fn search(g: &Global, args: &SearchArgs) -> Result<String, Failure> {
    let api = Api::new(g)?;
    let query = [("query", args.query.join(" ")), ("k", args.limit.to_string()), ("mode", args.mode.name().into())];
    let hits = api.get(&format!("{MEMORY}/search"), &query)?.body;
    let hits: Vec<&Value> = hits
        .as_array()
        .ok_or_else(|| Failure::Api(format!("search answered {hits}, not a list")))?
        .iter()
        .filter(|h| args.layer.is_none_or(|l| h["metadata"]["type"] == l.name()))
        .collect();
    if g.json {
        return Ok(Value::Array(hits.into_iter().cloned().collect()).to_string());
    }
    let rows: Vec<Vec<String>> = hits
        .iter()
        .map(|h| vec![cell(&h["metadata"]["type"]), score(&h["metadata"]["score"]), cell(&h["id"]), summary(h)])
        .collect();
    Ok(table(&["LAYER", "SCORE", "ID", "CONTENT"], &rows))
}

/// Hybrid search grouped by layer: the recall call at the start of a task.
#[derive(Debug, clap::Args)]
pub struct ContextArgs {
    /// What the task is about (words are joined with spaces)
    #[arg(required = true)]
    query: Vec<String>,
    /// Most records to ask for (1..100)
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=100))]
    limit: u16,
    /// Which lists rank the records: both, fused (hybrid), or one of them
    #[arg(long, value_enum, default_value_t = Mode::Hybrid)]
    mode: Mode,
}

pub fn context(g: &Global, args: &ContextArgs) -> Result<String, Failure> {
    let api = Api::new(g)?;
    let query = [("query", args.query.join(" ")), ("limit", args.limit.to_string()), ("mode", args.mode.name().into())];
    let groups = api.get(&format!("{MEMORY}/retrieve_context"), &query)?.body;
    if g.json {
        return Ok(groups.to_string());
    }
    let groups = groups.as_object().ok_or_else(|| Failure::Api(format!("retrieve_context answered {groups}")))?;
    let rows: Vec<Vec<String>> = groups
        .iter()
        .flat_map(|(layer, records)| {
            records
                .as_array()
                .into_iter()
                .flatten()
                .map(move |r| vec![layer.clone(), score(&r["score"]), cell(&r["id"]), summary(r)])
        })
        .collect();
    Ok(table(&["LAYER", "SCORE", "ID", "CONTENT"], &rows))
}

/// Read one record.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    #[arg(value_enum)]
    layer: Layer,
    id: String,
}

pub fn get(g: &Global, args: &GetArgs) -> Result<String, Failure> {
    if args.id.is_empty() || args.id.contains(['/', '?', '#']) {
        return Err(Failure::Usage(format!("`{}` is not a record id", args.id)));
    }
    let api = Api::new(g)?;
    let rec = api.get(&format!("{MEMORY}/{}/{}", args.layer.name(), args.id), &[])?.body;
    Ok(if g.json { rec.to_string() } else { record(&rec) })
}

/// The batch route's path, for the bulk import.
pub fn batch_path() -> String {
    format!("{MEMORY}/batch")
}

pub fn schema_path(layer: Layer) -> String {
    format!("{MEMORY}/schema/{}", layer.name())
}
