//! The candle all-MiniLM-L6-v2 against reference embeddings from an independent numpy
//! forward pass of the same model (scripts/gen_reference_embeddings.py, which also checks
//! itself against the similarities published for this model). Needs the model files:
//! `PINAK_MODEL_DIR` points at them, as set by scripts/test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pinak_api::embedding::{EmbeddingError, LocalEmbedder};
use serde::Deserialize;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/minilm_reference.json");
const MIN_COSINE: f32 = 0.999;

#[derive(Deserialize)]
struct Reference {
    model: String,
    sentences: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(FIXTURE).expect("reading the reference fixture");
    serde_json::from_str(&text).expect("parsing the reference fixture")
}

/// Loaded once: every test in this file shares the 90 MB model.
fn embedder() -> &'static LocalEmbedder {
    static EMBEDDER: OnceLock<LocalEmbedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        // A missing model must fail the run, not skip it: a skipped check proves nothing.
        let dir = std::env::var_os("PINAK_MODEL_DIR")
            .map(PathBuf::from)
            .expect("PINAK_MODEL_DIR is not set: run scripts/test");
        LocalEmbedder::load(&dir).unwrap_or_else(|e| panic!("loading the model: {e}"))
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (norm(a) * norm(b))
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn embed_all(texts: &[&str]) -> Vec<Vec<f32>> {
    embedder().embed(texts).expect("embedding")
}

#[test]
fn matches_the_reference_in_one_batch_and_one_by_one() {
    let reference = reference();
    assert_eq!(embedder().model_name(), reference.model);
    let sentences: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();

    let batch = embed_all(&sentences);
    let single: Vec<Vec<f32>> = sentences.iter().map(|s| embed_all(&[s]).remove(0)).collect();

    let (mut min_cosine, mut max_diff) = (f32::MAX, 0f32);
    for (i, sentence) in sentences.iter().enumerate() {
        let want = &reference.embeddings[i];
        assert_eq!(batch[i].len(), want.len(), "dimension of {sentence:?}");
        let (cos_batch, cos_single) = (cosine(&batch[i], want), cosine(&single[i], want));
        assert!(cos_batch > MIN_COSINE, "batched {sentence:?}: cosine {cos_batch}");
        assert!(cos_single > MIN_COSINE, "single {sentence:?}: cosine {cos_single}");
        // Padding to the batch's longest text must not change a text's vector.
        let diff = max_abs_diff(&batch[i], &single[i]);
        assert!(diff < 1e-4, "{sentence:?}: batch and single differ by {diff}");
        assert!((norm(&batch[i]) - 1.0).abs() < 1e-4, "{sentence:?} is not unit length");
        min_cosine = min_cosine.min(cos_batch).min(cos_single);
        max_diff = max_diff.max(diff);
    }
    eprintln!(
        "{} sentences: minimum cosine to the reference {min_cosine:.7}, batch vs single max |diff| {max_diff:.2e}",
        sentences.len()
    );
}

#[test]
fn keeps_input_order_across_chunks() {
    // More texts than one forward pass takes, in an order unlike the length-sorted one.
    let reference = reference();
    let texts: Vec<&str> = (0..70).map(|i| reference.sentences[i * 7 % reference.sentences.len()].as_str()).collect();
    for (text, got) in texts.iter().zip(embed_all(&texts)) {
        let i = reference.sentences.iter().position(|s| s == text).unwrap();
        let cos = cosine(&got, &reference.embeddings[i]);
        assert!(cos > MIN_COSINE, "{text:?} came back as another text's vector (cosine {cos})");
    }
}

#[test]
fn odd_inputs_embed_without_error() {
    let long = "word ".repeat(1_000);
    let texts = ["", long.as_str(), "🦀🔥🎉", "\0\0\0", "\u{feff}\u{200b}", "ｆｕｌｌｗｉｄｔｈ"];
    let out = embed_all(&texts);
    assert_eq!(out.len(), texts.len());
    for (text, v) in texts.iter().zip(&out) {
        assert_eq!(v.len(), 384, "{text:?}");
        assert!(v.iter().all(|x| x.is_finite()), "{text:?} gave a non-finite value");
    }
    assert!(embed_all(&[]).is_empty());
}

#[test]
fn a_missing_model_is_a_load_error_naming_the_file() {
    let dir = Path::new("/nonexistent/pinak-model");
    match LocalEmbedder::load(dir) {
        Err(EmbeddingError::Load { path, .. }) => {
            assert!(path.starts_with("/nonexistent/pinak-model/"))
        }
        Err(other) => panic!("expected a load error, got {other}"),
        Ok(_) => panic!("loaded a model from a directory that does not exist"),
    }
}
