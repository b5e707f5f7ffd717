//! Deterministic 384-d encoder for tests: the same text always gives the same vector,
//! with no model files. Values are uniform in [0, 1) like the prototype's dummy encoder.

use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, Default)]
pub struct DummyEmbedder;

impl DummyEmbedder {
    pub const MODEL_NAME: &'static str = "dummy-sha256-384";

    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let digest = Sha256::digest(text.as_bytes());
        let mut state = u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"));
        (0..super::STORED_DIM)
            .map(|_| {
                // splitmix64: a tiny, well-mixed generator is enough for test vectors.
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                (z >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }
}
