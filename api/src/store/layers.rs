//! The seven memory layers and, for the four document layers, how a payload maps to columns,
//! which fields an admin may edit, and which text is embedded. Column names here are the only
//! identifiers ever spliced into SQL; all values are bound parameters.

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    Semantic,
    Episodic,
    Procedural,
    Rag,
    Working,
    Session,
    Event,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Json,
    Int,
}

/// A payload key and the column that stores it.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub key: &'static str,
    pub column: &'static str,
    pub kind: Kind,
}

const fn f(key: &'static str, column: &'static str, kind: Kind) -> Field {
    Field { key, column, kind }
}

const SEMANTIC: &[Field] = &[f("content", "content", Kind::Text), f("tags", "tags", Kind::Json)];
const EPISODIC: &[Field] = &[
    f("content", "content", Kind::Text),
    f("goal", "goal", Kind::Text),
    f("outcome", "outcome", Kind::Text),
    f("plan", "plan", Kind::Json),
    f("tool_logs", "steps", Kind::Json),
    f("salience", "salience", Kind::Int),
];
const PROCEDURAL: &[Field] = &[
    f("skill_name", "skill_name", Kind::Text),
    f("trigger", "trigger", Kind::Text),
    f("steps", "steps", Kind::Json),
    f("description", "description", Kind::Text),
    f("code_snippet", "code_snippet", Kind::Text),
];
const RAG: &[Field] = &[
    f("query", "query", Kind::Text),
    f("external_source", "external_source", Kind::Text),
    f("content", "content", Kind::Text),
];

impl Layer {
    pub const DOCUMENT_LAYERS: [Layer; 4] = [Layer::Semantic, Layer::Episodic, Layer::Procedural, Layer::Rag];
    pub const VECTOR_LAYERS: [Layer; 3] = [Layer::Semantic, Layer::Episodic, Layer::Procedural];

    pub fn parse(s: &str) -> Option<Layer> {
        Some(match s {
            "semantic" => Layer::Semantic,
            "episodic" => Layer::Episodic,
            "procedural" => Layer::Procedural,
            "rag" => Layer::Rag,
            "working" => Layer::Working,
            "session" => Layer::Session,
            "event" | "events" => Layer::Event,
            _ => return None,
        })
    }

    /// Layers that admins edit and delete and that quarantine can hold.
    pub fn parse_document(s: &str) -> Option<Layer> {
        Layer::parse(s).filter(|l| Layer::DOCUMENT_LAYERS.contains(l))
    }

    pub fn name(self) -> &'static str {
        match self {
            Layer::Semantic => "semantic",
            Layer::Episodic => "episodic",
            Layer::Procedural => "procedural",
            Layer::Rag => "rag",
            Layer::Working => "working",
            Layer::Session => "session",
            Layer::Event => "event",
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            Layer::Semantic => "memories_semantic",
            Layer::Episodic => "memories_episodic",
            Layer::Procedural => "memories_procedural",
            Layer::Rag => "memories_rag",
            Layer::Working => "working_memory",
            Layer::Session => "logs_session",
            Layer::Event => "logs_events",
        }
    }

    pub fn is_vectorised(self) -> bool {
        Layer::VECTOR_LAYERS.contains(&self)
    }

    /// Payload fields of a document layer.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Layer::Semantic => SEMANTIC,
            Layer::Episodic => EPISODIC,
            Layer::Procedural => PROCEDURAL,
            Layer::Rag => RAG,
            _ => &[],
        }
    }

    /// Fields an admin may change with `PUT /{layer}/{id}`.
    pub fn updatable(self) -> &'static [&'static str] {
        match self {
            Layer::Semantic => &["content", "tags"],
            Layer::Episodic => &["content", "goal", "outcome", "plan", "salience"],
            Layer::Procedural => &["skill_name", "trigger", "steps", "description", "code_snippet"],
            Layer::Rag => &["query", "external_source", "content"],
            _ => &[],
        }
    }

    /// Payload keys whose text is embedded, joined by spaces (absent keys count as "").
    fn embedded_keys(self) -> &'static [&'static str] {
        match self {
            Layer::Semantic => &["content"],
            Layer::Episodic => &["content", "goal", "outcome"],
            Layer::Procedural => &["skill_name", "trigger", "description"],
            _ => &[],
        }
    }

    /// The text to embed for a payload, or `None` for layers without vectors.
    pub fn embedding_text(self, payload: &Value) -> Option<String> {
        if !self.is_vectorised() {
            return None;
        }
        let parts: Vec<&str> =
            self.embedded_keys().iter().map(|k| payload.get(*k).and_then(Value::as_str).unwrap_or("")).collect();
        Some(parts.join(" "))
    }

    /// The payload view of a stored row (inverse of the column mapping).
    pub fn payload_of_row(self, row: &Value) -> Value {
        let mut out = serde_json::Map::new();
        for field in self.fields() {
            match row.get(field.column) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    out.insert(field.key.to_string(), v.clone());
                }
            }
        }
        Value::Object(out)
    }
}
