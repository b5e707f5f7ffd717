//! `pinak export` and `pinak import`: a project as JSON lines, through the API's export and
//! import routes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::client::Api;
use crate::memory::read_input;
use crate::{Failure, Global};

/// The API's cap on an import body.
const IMPORT_MAX_BYTES: usize = 64 * 1_048_576;
/// Rows between progress lines on stderr.
const PROGRESS_EVERY: usize = 5_000;

/// Write the project's records (every layer, vectors included) as JSON lines (admin)
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// File to write (`-` for stdout). The file appears only once the export is complete.
    #[arg(long, short, default_value = "-")]
    output: PathBuf,
}

/// Load an export into the token's project, all or nothing (admin)
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// An export file, or `-` for stdin
    file: PathBuf,
    /// Give every row a fresh id (to copy a project beside its source in the same store)
    #[arg(long)]
    new_ids: bool,
}

/// Rows per layer of an export line stream.
#[derive(Default)]
struct Tally(BTreeMap<String, usize>);

impl Tally {
    fn add(&mut self, line: &str) {
        let layer = serde_json::from_str::<Value>(line).ok().and_then(|v| v["layer"].as_str().map(str::to_owned));
        *self.0.entry(layer.unwrap_or_else(|| "?".into())).or_default() += 1;
    }

    fn total(&self) -> usize {
        self.0.values().sum()
    }

    fn text(&self) -> String {
        self.0.iter().map(|(l, n)| format!("{l} {n}")).collect::<Vec<_>>().join(", ")
    }
}

pub fn export(g: &Global, args: &ExportArgs) -> Result<String, Failure> {
    let api = Api::new(g)?;
    let resp = api.get_stream("/api/v1/memory/export")?;
    let to_stdout = args.output == Path::new("-");
    let partial = PathBuf::from({
        let mut name = args.output.clone().into_os_string();
        name.push(".partial");
        name
    });
    let mut sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        let file = std::fs::File::create(&partial)
            .map_err(|e| Failure::Other(format!("cannot create {}: {e}", partial.display())))?;
        Box::new(std::io::BufWriter::new(file))
    };
    let mut tally = Tally::default();
    let copied = copy_lines(resp, &mut sink, &mut tally);
    let flushed = copied.and_then(|()| sink.flush().map_err(|e| Failure::Other(format!("writing the export: {e}"))));
    drop(sink);
    if let Err(f) = flushed {
        if !to_stdout {
            let _ = std::fs::remove_file(&partial);
        }
        return Err(f);
    }
    if to_stdout {
        eprintln!("pinak: exported {} rows ({})", tally.total(), tally.text());
        return Ok(String::new());
    }
    std::fs::rename(&partial, &args.output)
        .map_err(|e| Failure::Other(format!("cannot move the export to {}: {e}", args.output.display())))?;
    Ok(format!("exported {} rows ({}) to {}", tally.total(), tally.text(), args.output.display()))
}

/// Copies the answer line by line, counting; a cut transfer is an error (the API aborts the
/// body when its export fails part-way).
fn copy_lines(resp: reqwest::blocking::Response, sink: &mut dyn Write, tally: &mut Tally) -> Result<(), Failure> {
    let cut = |e: std::io::Error| Failure::Unreachable(format!("the export was cut off: {e}"));
    for line in BufReader::new(resp).lines() {
        let line = line.map_err(cut)?;
        tally.add(&line);
        writeln!(sink, "{line}").map_err(|e| Failure::Other(format!("writing the export: {e}")))?;
        if tally.total().is_multiple_of(PROGRESS_EVERY) {
            eprintln!("pinak: {} rows exported...", tally.total());
        }
    }
    Ok(())
}

pub fn import(g: &Global, args: &ImportArgs) -> Result<String, Failure> {
    let text = read_input(&args.file)?;
    if text.len() > IMPORT_MAX_BYTES {
        return Err(Failure::Input(format!(
            "{} holds {} bytes; the API takes at most {IMPORT_MAX_BYTES} per import",
            args.file.display(),
            text.len()
        )));
    }
    let api = Api::new(g)?;
    let query = [("new_ids", args.new_ids.to_string())];
    let answer = api.post_text("/api/v1/memory/import", &query, text, "application/x-ndjson").map_err(|f| match f {
        // The API names the line; nothing was imported.
        Failure::Api(m) if m.contains(": 422 ") => Failure::Input(m),
        other => other,
    })?;
    if g.json {
        return Ok(answer.body.to_string());
    }
    let layers: Vec<String> = answer.body["layers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
        .map(|(l, n)| format!("{l} {n}"))
        .collect();
    Ok(format!("imported {} rows ({})", answer.body["imported"], layers.join(", ")))
}
