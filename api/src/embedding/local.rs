//! sentence-transformers/all-MiniLM-L6-v2 on the CPU with candle. A sentence embedding is
//! the BERT encoder output averaged over the real (unpadded) tokens and L2-normalised,
//! which is what sentence-transformers does for this model (1_Pooling: mean tokens, then
//! its Normalize module).

use std::collections::HashMap;
use std::fmt::Display;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Encoding, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::EmbeddingError;

const MODEL_NAME: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// `max_seq_length` in the model's sentence_bert_config.json, [CLS] and [SEP] included.
const MAX_SEQ_LEN: usize = 256;
/// Texts per forward pass. Attention scores take batch × 12 heads × seq² floats, so this
/// bounds a worst-case chunk of 256-token texts to about 100 MB.
const CHUNK: usize = 32;

pub struct LocalEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
}

// The embedder is shared behind an Arc and used from the blocking pool.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LocalEmbedder>();
};

impl LocalEmbedder {
    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, EmbeddingError> {
        let config = load_config(&dir.join("config.json"))?;
        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"))?;
        let model = load_model(&dir.join("model.safetensors"), &config)?;
        Ok(Self { model, tokenizer })
    }

    pub fn model_name(&self) -> &str {
        MODEL_NAME
    }

    /// Embeds `texts` into unit-length 384-d vectors, in input order. Blocking and
    /// CPU-bound: call it from a blocking thread.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        // Like sentence-transformers, group texts of similar length so that each chunk
        // pads little; results go back to their input positions afterwards.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));

        let mut out = vec![Vec::new(); texts.len()];
        for positions in order.chunks(CHUNK) {
            let chunk: Vec<&str> = positions.iter().map(|&i| texts[i]).collect();
            for (&i, vector) in positions.iter().zip(self.embed_chunk(&chunk)?) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    fn embed_chunk(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbeddingError::Inference(format!("tokenization failed: {e}")))?;
        self.forward(&encodings).map_err(|e| EmbeddingError::Inference(e.to_string()))
    }

    fn forward(&self, encodings: &[Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let ids = batch_tensor(encodings, Encoding::get_ids)?;
        let type_ids = batch_tensor(encodings, Encoding::get_type_ids)?;
        let mask = batch_tensor(encodings, Encoding::get_attention_mask)?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        l2_normalize(&mean_pool(&hidden, &mask)?)?.to_vec2()
    }
}

fn load_err(path: &Path, reason: impl Display) -> EmbeddingError {
    EmbeddingError::Load { path: path.display().to_string(), reason: reason.to_string() }
}

fn load_config(path: &Path) -> Result<Config, EmbeddingError> {
    let text = std::fs::read_to_string(path).map_err(|e| load_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| load_err(path, e))
}

fn load_tokenizer(path: &Path) -> Result<Tokenizer, EmbeddingError> {
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| load_err(path, e))?;
    // The shipped tokenizer.json pads every input to 128 tokens and truncates at 128:
    // pad each batch only to its longest text instead, and truncate where the model was
    // trained to (sentence-transformers overrides both the same way).
    let padding = PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        ..tokenizer.get_padding().cloned().unwrap_or_default()
    };
    tokenizer.with_padding(Some(padding));
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: MAX_SEQ_LEN, ..Default::default() }))
        .map_err(|e| load_err(path, e))?;
    Ok(tokenizer)
}

fn load_model(path: &Path, config: &Config) -> Result<BertModel, EmbeddingError> {
    let device = Device::Cpu;
    let tensors = candle_core::safetensors::load(path, &device).map_err(|e| load_err(path, e))?;
    let vb = VarBuilder::from_tensors(strip_bert_prefix(tensors), DType::F32, &device);
    BertModel::load(vb, config).map_err(|e| load_err(path, e))
}

/// Exports of this model name their tensors either `embeddings.…` (sentence-transformers)
/// or `bert.embeddings.…` (a BertForX checkpoint); one spelling keeps loading simple.
fn strip_bert_prefix(tensors: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    tensors
        .into_iter()
        .map(|(name, t)| match name.strip_prefix("bert.") {
            Some(rest) => (rest.to_owned(), t),
            None => (name, t),
        })
        .collect()
}

/// One `[texts, longest]` u32 tensor from a per-token field of a padded batch.
fn batch_tensor(encodings: &[Encoding], field: fn(&Encoding) -> &[u32]) -> candle_core::Result<Tensor> {
    let longest = encodings.first().map_or(0, Encoding::len);
    let flat: Vec<u32> = encodings.iter().flat_map(|e| field(e).iter().copied()).collect();
    Tensor::from_vec(flat, (encodings.len(), longest), &Device::Cpu)
}

/// Mean of the token vectors `[texts, seq, dim]` over the positions where `mask` is 1.
fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    // Same floor as sentence-transformers; only reachable for an all-padding row.
    let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
    summed.broadcast_div(&counts)
}

fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    // torch.nn.functional.normalize's epsilon keeps a zero vector finite.
    let norms = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
    x.broadcast_div(&norms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_bert_prefix_only_at_the_start() {
        let t = Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap();
        let names = ["bert.embeddings.x", "encoder.layer.0.y", "pooler.bert.z"];
        let map = names.iter().map(|n| (n.to_string(), t.clone())).collect();
        let mut got: Vec<String> = strip_bert_prefix(map).into_keys().collect();
        got.sort();
        assert_eq!(got, ["embeddings.x", "encoder.layer.0.y", "pooler.bert.z"]);
    }

    #[test]
    fn mean_pool_ignores_padding() {
        // One text of two real tokens and one pad token whose vector must not count.
        let hidden = Tensor::new(&[[[1f32, 2.], [3., 4.], [100., 100.]]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 0]], &Device::Cpu).unwrap();
        let pooled = mean_pool(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(pooled, [[2., 3.]]);
    }

    #[test]
    fn normalizes_to_unit_length_and_keeps_zero_finite() {
        let x = Tensor::new(&[[3f32, 4.], [0., 0.]], &Device::Cpu).unwrap();
        let got = l2_normalize(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(got, [[0.6, 0.8], [0., 0.]]);
    }
}
