//! Text embeddings behind one type. The backend is chosen by `PINAK_EMBEDDING_BACKEND`;
//! every stored vector records the model name and dimension that produced it.

mod dummy;
mod http;
mod local;

use std::sync::Arc;
use std::time::Instant;

pub use dummy::DummyEmbedder;
pub use http::{HttpEmbedder, HttpEmbedderConfig};
pub use local::LocalEmbedder;

/// Dimension of the `vector` columns in `migrations/` (all-MiniLM-L6-v2 and the dummy encoder).
pub const STORED_DIM: usize = 384;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    #[error("embedding model could not be loaded from {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("embedding inference failed: {0}")]
    Inference(String),
    #[error("embedding provider request failed: {0}")]
    Provider(String),
    #[error("embedding has dimension {got}, the store's vector columns hold {want}")]
    Dimension { got: usize, want: usize },
}

/// The configured backend. `None` means keyword-only search (no vectors are written).
#[derive(Clone)]
pub enum Embedder {
    Local(Arc<LocalEmbedder>),
    Http(Arc<HttpEmbedder>),
    Dummy(DummyEmbedder),
    None,
}

impl Embedder {
    pub fn is_enabled(&self) -> bool {
        !matches!(self, Embedder::None)
    }

    /// `name` as recorded beside each stored vector (`embedding_model` column).
    pub fn model_name(&self) -> Option<&str> {
        match self {
            Embedder::Local(m) => Some(m.model_name()),
            Embedder::Http(m) => Some(m.model_name()),
            Embedder::Dummy(_) => Some(DummyEmbedder::MODEL_NAME),
            Embedder::None => None,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Embedder::Local(_) => "local",
            Embedder::Http(_) => "http",
            Embedder::Dummy(_) => "dummy",
            Embedder::None => "none",
        }
    }

    /// Embeds a batch. CPU-bound backends run on the blocking pool so the async runtime
    /// keeps serving other requests. Returns `Ok(None)` when vectors are disabled.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Option<Vec<Vec<f32>>>, EmbeddingError> {
        let started = Instant::now();
        let out = match self {
            Embedder::None => return Ok(None),
            Embedder::Dummy(d) => texts.iter().map(|t| d.embed_one(t)).collect(),
            Embedder::Local(m) => {
                let m = m.clone();
                tokio::task::spawn_blocking(move || {
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    m.embed(&refs)
                })
                .await
                .map_err(|e| EmbeddingError::Inference(e.to_string()))??
            }
            Embedder::Http(h) => h.embed(&texts).await?,
        };
        for v in &out {
            if v.len() != STORED_DIM {
                return Err(EmbeddingError::Dimension { got: v.len(), want: STORED_DIM });
            }
        }
        crate::runtime::metrics::observe_embedding(self.backend_name(), started.elapsed());
        Ok(Some(out))
    }

    pub async fn embed_one(&self, text: &str) -> Result<Option<Vec<f32>>, EmbeddingError> {
        Ok(self.embed(vec![text.to_owned()]).await?.map(|mut v| v.remove(0)))
    }
}
