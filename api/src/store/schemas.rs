//! The layer payload contracts (JSON Schema draft-07, `api/schemas/*.schema.json`), compiled
//! once at start. Direct writes are validated against them (422 on failure); quarantine
//! proposals store the errors and are re-validated on approval.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::store::layers::Layer;

const SOURCES: [(Layer, &str); 5] = [
    (Layer::Semantic, include_str!("../../schemas/semantic.schema.json")),
    (Layer::Episodic, include_str!("../../schemas/episodic.schema.json")),
    (Layer::Procedural, include_str!("../../schemas/procedural.schema.json")),
    (Layer::Rag, include_str!("../../schemas/rag.schema.json")),
    (Layer::Working, include_str!("../../schemas/working.schema.json")),
];

/// One schema violation: where (a JSON pointer into the payload) and what.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

pub struct LayerSchemas {
    compiled: BTreeMap<&'static str, (Value, jsonschema::Validator)>,
}

impl LayerSchemas {
    pub fn load() -> Self {
        let compiled = SOURCES
            .iter()
            .map(|(layer, src)| {
                let schema: Value = serde_json::from_str(src).expect("layer schemas are checked in and valid JSON");
                let validator = jsonschema::draft7::new(&schema).expect("layer schemas are valid draft-07");
                (layer.name(), (schema, validator))
            })
            .collect();
        LayerSchemas { compiled }
    }

    pub fn get(&self, layer: &str) -> Option<&Value> {
        self.compiled.get(layer).map(|(schema, _)| schema)
    }

    pub fn all(&self) -> serde_json::Map<String, Value> {
        self.compiled.iter().map(|(name, (schema, _))| (name.to_string(), schema.clone())).collect()
    }

    /// All violations of `payload` against the layer's schema (empty when valid).
    pub fn validate(&self, layer: Layer, payload: &Value) -> Vec<Violation> {
        let Some((_, validator)) = self.compiled.get(layer.name()) else {
            return vec![Violation { path: String::new(), message: format!("Schema not found for {}", layer.name()) }];
        };
        validator
            .iter_errors(payload)
            .map(|e| Violation { path: e.instance_path().to_string(), message: e.to_string() })
            .collect()
    }
}
