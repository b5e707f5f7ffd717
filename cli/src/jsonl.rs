//! `pinak add --jsonl`: bulk import through `/batch`. Every line is checked against the layer's
//! JSON Schema (fetched from the API, so the check follows the server) before the first
//! request, so a malformed file imports nothing.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use crate::client::Api;
use crate::memory::{Layer, batch_path, read_input, schema_path};
use crate::{Failure, Global};

/// The API's limit on items per `/batch` call.
const BATCH_MAX: usize = 500;
/// Bad lines listed before the rest are only counted.
const SHOWN_ERRORS: usize = 20;

/// The subset of JSON Schema the layer schemas use: type, required, additionalProperties
/// false, items, minLength. Returns why `v` does not match, naming the field.
fn check(schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let named = |what: String| if at.is_empty() { what } else { format!("`{at}` {what}") };
    if let Some(ty) = schema.get("type") {
        let types: Vec<&str> = match ty {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            other => other.as_str().into_iter().collect(),
        };
        if !types.iter().any(|t| type_matches(t, v)) {
            return Err(named(format!("must be {}", types.join(" or "))));
        }
    }
    match v {
        Value::Object(map) => {
            let join = |k: &str| if at.is_empty() { k.to_owned() } else { format!("{at}.{k}") };
            for req in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !map.contains_key(req) {
                    return Err(format!("missing field `{}`", join(req)));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, field) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => check(sub, field, &join(k))?,
                    None if schema["additionalProperties"] == false => {
                        return Err(format!("unknown field `{}`", join(k)));
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{at}[{i}]"))?;
                }
            }
        }
        Value::String(s) => {
            if let Some(min) = schema["minLength"].as_u64()
                && (s.chars().count() as u64) < min
            {
                return Err(named("must not be empty".into()));
            }
        }
        _ => {}
    }
    Ok(())
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        _ => true,
    }
}

/// The items of a JSON-lines text with their line numbers (blank lines skipped), or every bad
/// line as `line N: why`.
fn parse_lines(text: &str, schema: &Value) -> Result<Vec<(usize, Value)>, Vec<String>> {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let checked = serde_json::from_str::<Value>(line)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|v| if v.is_object() { Ok(v) } else { Err("not a JSON object".into()) })
            .and_then(|v| check(schema, &v, "").map(|()| v));
        match checked {
            Ok(v) => items.push((n + 1, v)),
            Err(why) => errors.push(format!("line {}: {why}", n + 1)),
        }
    }
    if items.is_empty() && errors.is_empty() {
        errors.push("no records (the file is empty)".into());
    }
    if errors.is_empty() { Ok(items) } else { Err(errors) }
}

pub fn import(g: &Global, layer: Layer, path: &Path) -> Result<String, Failure> {
    if layer == Layer::Working {
        return Err(Failure::Usage("--jsonl takes semantic, episodic, procedural or rag (the /batch layers)".into()));
    }
    let text = read_input(path)?;
    let api = Api::new(g)?;
    let schema = api.get(&schema_path(layer), &[])?.body;
    let items = parse_lines(&text, &schema).map_err(|errors| {
        let mut msg = format!("{}: {} bad line(s); nothing was sent", path.display(), errors.len());
        for e in errors.iter().take(SHOWN_ERRORS) {
            msg.push_str("\n  ");
            msg.push_str(e);
        }
        if errors.len() > SHOWN_ERRORS {
            msg.push_str(&format!("\n  … and {} more", errors.len() - SHOWN_ERRORS));
        }
        Failure::Input(msg)
    })?;

    let total = items.len();
    let (mut ids, mut quarantined) = (Vec::new(), Vec::new());
    let mut stderr = std::io::stderr();
    for chunk in items.chunks(BATCH_MAX) {
        let body: Vec<&Value> = chunk.iter().map(|(_, v)| v).collect();
        let answer = api.post(&batch_path(), &json!({"layer": layer.name(), "items": body})).map_err(|e| {
            // Earlier chunks are committed; say which lines failed and how far the import got,
            // so it can be resumed. An item index in the API's detail counts from the first.
            let (first, last) = (chunk[0].0, chunk[chunk.len() - 1].0);
            let stored = ids.len() + quarantined.len();
            e.context(format!("sending lines {first}-{last}; {stored} of {total} records were stored before"))
        })?;
        let (key, into) = if answer.status == 202 { ("quarantined", &mut quarantined) } else { ("ids", &mut ids) };
        into.extend(answer.body[key].as_array().cloned().unwrap_or_default());
        // Progress is informative only; a closed stderr must not stop the import.
        let _ = writeln!(stderr, "pinak: {}/{total} {} records sent", ids.len() + quarantined.len(), layer.name());
    }
    let summary = json!({"layer": layer.name(), "count": ids.len(), "ids": ids, "quarantined": quarantined});
    Ok(if g.json {
        summary.to_string()
    } else if quarantined.is_empty() {
        format!("added {} {} memories", ids.len(), layer.name())
    } else {
        format!("added {} {} memories; {} held for review", ids.len(), layer.name(), quarantined.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        serde_json::from_str(include_str!("../../api/schemas/procedural.schema.json")).unwrap()
    }

    #[test]
    fn every_bad_line_is_reported() {
        let text = [
            r#"{"skill_name": "deploy", "steps": ["build", "ship"]}"#,
            "",
            r#"{"skill_name": "deploy"}"#,
            r#"{"skill_name": "", "steps": []}"#,
            r#"{"skill_name": "x", "steps": ["a", 2]}"#,
            r#"{"skill_name": "x", "steps": [], "colour": "red"}"#,
            "[1]",
            "{not json",
        ]
        .join("\n");
        let errors = parse_lines(&text, &schema()).unwrap_err();
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert_eq!(errors[0], "line 3: missing field `steps`");
        assert_eq!(errors[1], "line 4: `skill_name` must not be empty");
        assert_eq!(errors[2], "line 5: `steps[1]` must be string");
        assert_eq!(errors[3], "line 6: unknown field `colour`");
        assert_eq!(errors[4], "line 7: not a JSON object");
        assert!(errors[5].starts_with("line 8: not JSON"), "{errors:?}");
    }

    #[test]
    fn good_lines_parse_and_empty_input_is_refused() {
        let items = parse_lines("{\"skill_name\": \"a\", \"steps\": []}\n\n", &schema()).unwrap();
        assert_eq!(items.len(), 1);
        assert!(parse_lines("\n \n", &schema()).is_err());
    }
}
