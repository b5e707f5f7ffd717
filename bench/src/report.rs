//! Result tables, rendered as Markdown (readable in a terminal too).

pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub notes: Vec<String>,
}

impl Table {
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Self {
        Table {
            title: title.into(),
            headers: headers.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn note(&mut self, n: impl Into<String>) {
        self.notes.push(n.into());
    }

    pub fn markdown(&self) -> String {
        let n = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut s = String::from("|");
            for (i, w) in width.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                // Text columns left, figures right.
                let numeric =
                    c.chars().next().is_some_and(|ch| ch.is_ascii_digit() || ch == '-' || ch == '<' || ch == '>');
                let pad = w - c.chars().count();
                if numeric && i > 0 {
                    s.push_str(&format!(" {}{} |", " ".repeat(pad), c));
                } else {
                    s.push_str(&format!(" {}{} |", c, " ".repeat(pad)));
                }
            }
            s
        };
        let mut out = format!("#### {}\n\n", self.title);
        out.push_str(&line(&self.headers));
        out.push('\n');
        out.push('|');
        for w in &width {
            out.push_str(&format!("{}|", "-".repeat(w + 2)));
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        out.push('\n');
        out
    }
}

pub fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

pub fn rate(v: f64) -> String {
    if v < 100.0 { format!("{v:.1}") } else { format!("{v:.0}") }
}

pub fn recall(v: Option<f64>) -> String {
    v.map(|r| format!("{r:.3}")).unwrap_or_else(|| "-".into())
}

/// Replaces the text between `<!-- bench-results:LABEL -->` and `<!-- /bench-results:LABEL -->`
/// in `doc` (appending the block when the markers are missing).
/// Replaces (or appends) the results section `label` of the Markdown file `doc` with `md`.
pub fn write_section(doc: &std::path::Path, label: &str, md: &str) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(doc).unwrap_or_default();
    std::fs::write(doc, splice(&old, label, md))?;
    println!("results section '{label}' updated in {}", doc.display());
    Ok(())
}

pub fn splice(doc: &str, label: &str, body: &str) -> String {
    let begin = format!("<!-- bench-results:{label} -->");
    let end = format!("<!-- /bench-results:{label} -->");
    let block = format!("{begin}\n{body}{end}");
    match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{}{}", &doc[..b], block, &doc[e + end.len()..]),
        _ => format!("{}\n{}\n", doc.trim_end(), block),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_its_own_block() {
        let doc = "intro\n<!-- bench-results:10k -->\nold\n<!-- /bench-results:10k -->\n<!-- bench-results:100k -->\nkeep\n<!-- /bench-results:100k -->\n";
        let out = splice(doc, "10k", "new\n");
        assert!(out.contains("<!-- bench-results:10k -->\nnew\n<!-- /bench-results:10k -->"));
        assert!(out.contains("keep") && !out.contains("old") && out.starts_with("intro\n"));
        assert_eq!(splice(&out, "10k", "new\n"), out, "idempotent");
    }

    #[test]
    fn splice_appends_when_markers_are_missing() {
        let out = splice("# Performance\n", "quick-1k", "x\n");
        assert_eq!(out, "# Performance\n<!-- bench-results:quick-1k -->\nx\n<!-- /bench-results:quick-1k -->\n");
    }
}
