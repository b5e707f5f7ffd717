//! Human output: fixed-width tables whose last column is cut to keep one record per line.

use serde_json::Value;

/// Widest the last column gets before it is cut with an ellipsis.
const LAST_COLUMN_MAX: usize = 80;

pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| one_line(c)).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(&cut(cell, LAST_COLUMN_MAX));
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    out.join("\n")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}

/// A JSON value as a cell: strings without quotes, absent as empty.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `key  value` lines for one record, keys sorted.
pub fn record(v: &Value) -> String {
    match v.as_object() {
        Some(map) => {
            let width = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
            map.iter()
                .map(|(k, v)| format!("{k:<width$}  {}", cell(v)).trim_end().to_owned())
                .collect::<Vec<_>>()
                .join("\n")
        }
        None => cell(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_cut() {
        let long = "x".repeat(200);
        let t = table(&["A", "BB"], &[vec!["1".into(), "two\nlines".into()], vec!["333".into(), long]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "A    BB");
        assert_eq!(lines[1], "1    two lines");
        assert_eq!(lines[2].chars().count(), 5 + LAST_COLUMN_MAX);
        assert!(lines[2].ends_with('…'));
        assert_eq!(record(&json!({"id": "a", "tags": ["t"], "n": null})), "id    a\nn\ntags  [\"t\"]");
    }
}
